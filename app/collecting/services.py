"""The owner's monthly routine: what is open, who owes what for a month, and the messages to send.

Money changes (paying, reopening, voiding) are the ledger's; this module reads
and composes. *Overdue* is always derived from the due date and today, never stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from urllib.parse import quote

from babel.dates import format_date, format_skeleton, get_date_format
from babel.lists import format_list
from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.admin.models import Staff
from app.admin.services import PracticeSettings
from app.auth.models import User
from app.clients.models import Client
from app.collecting.models import BillingMessage
from app.db import begin_write
from app.ledger.models import Allocation, Charge, Payment
from app.web import i18n
from app.web.i18n import _

TONES = ("friendly", "reminder", "final")
CHANNELS = ("whatsapp", "email", "copy")
UNPAID = ("open", "partial")


def month_bounds(month: str) -> tuple[date, date]:
    """First day of the month and first day of the next one."""
    first = date.fromisoformat(month + "-01")
    return first, (first.replace(day=28) + timedelta(days=4)).replace(day=1)


def previous_month(day: date) -> str:
    last = day.replace(day=1) - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def valid_month(month: str | None) -> bool:
    return bool(month and re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month))


# --- the open-charges list ------------------------------------------------------------------


@dataclass
class ChargeFilter:
    month: str | None = None
    client_id: int | None = None
    staff_id: int | None = None
    status: str = "unpaid"  # unpaid (open + partial), open, partial, paid, void, all
    overdue: bool = False


@dataclass
class ChargeRow:
    charge: Charge
    client_name: str
    staff_name: str | None
    changed_by: str | None
    overdue: bool


async def open_charges(
    session: AsyncSession, filters: ChargeFilter, today: date, limit: int = 50, offset: int = 0
) -> tuple[list[ChargeRow], int, int]:
    """Charges matching the filters, oldest first, with rows, total count and total still open."""
    changer = aliased(User)
    conditions = []
    if valid_month(filters.month):
        first, nxt = month_bounds(filters.month)  # type: ignore[arg-type]
        conditions += [Charge.date >= first, Charge.date < nxt]
    if filters.client_id:
        conditions.append(Charge.client_id == filters.client_id)
    if filters.staff_id:
        conditions.append(Charge.staff_id == filters.staff_id)
    if filters.status == "unpaid":
        conditions.append(Charge.status.in_(UNPAID))
    elif filters.status in ("open", "partial", "paid", "void"):
        conditions.append(Charge.status == filters.status)
    if filters.overdue:
        conditions += [Charge.status.in_(UNPAID), Charge.due_date < today]
    count, still_open = (
        await session.execute(
            select(
                func.count(Charge.id),
                func.coalesce(
                    func.sum(
                        case(
                            (Charge.status.in_(UNPAID), Charge.amount_cents - Charge.paid_cents),
                            else_=0,
                        )
                    ),
                    0,
                ),
            ).where(*conditions)
        )
    ).one()
    rows = await session.execute(
        select(Charge, Client.name, Staff.name, changer.display_name)
        .join(Client, Client.id == Charge.client_id)
        .outerjoin(Staff, Staff.id == Charge.staff_id)
        .outerjoin(changer, changer.id == Charge.status_changed_by_id)
        .where(*conditions)
        .order_by(Charge.date, Charge.id)
        .limit(limit)
        .offset(offset)
    )
    return (
        [
            ChargeRow(c, name, staff, who, c.status in UNPAID and c.due_date < today)
            for c, name, staff, who in rows
        ],
        count,
        still_open,
    )


async def charge_row(session: AsyncSession, charge_id: int, today: date) -> ChargeRow | None:
    changer = aliased(User)
    row = (
        await session.execute(
            select(Charge, Client.name, Staff.name, changer.display_name)
            .join(Client, Client.id == Charge.client_id)
            .outerjoin(Staff, Staff.id == Charge.staff_id)
            .outerjoin(changer, changer.id == Charge.status_changed_by_id)
            .where(Charge.id == charge_id)
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        return None
    c, name, staff, who = row
    return ChargeRow(c, name, staff, who, c.status in UNPAID and c.due_date < today)


# --- the month review -----------------------------------------------------------------------


@dataclass
class Payer:
    """How a client has paid so far: the late-payer indicator."""

    charges: int = 0
    paid_late: int = 0
    paid: int = 0
    overdue: int = 0

    @property
    def late_share(self) -> float:
        return self.paid_late / self.paid if self.paid else 0.0

    @property
    def overdue_share(self) -> float:
        return self.overdue / self.charges if self.charges else 0.0

    @property
    def level(self) -> str:
        """good / watch / late — which tone the owner will probably want."""
        if self.overdue_share >= 0.3 or self.late_share >= 0.5:
            return "late"
        if self.overdue or self.late_share >= 0.2:
            return "watch"
        return "good"

    @property
    def suggested_tone(self) -> str:
        return {"good": "friendly", "watch": "reminder", "late": "final"}[self.level]


@dataclass
class Debtor:
    client_id: int
    client_name: str
    phone_digits: str | None
    email: str | None
    count: int
    dates: list[date]
    total_cents: int
    oldest_due: date
    payer: Payer = field(default_factory=Payer)
    sent: BillingMessage | None = None
    messages: dict[str, str] = field(default_factory=dict)


async def unpaid_for_month(
    session: AsyncSession,
    month: str,
    practice: PracticeSettings,
    today: date,
    limit: int | None = None,
    offset: int = 0,
) -> list[Debtor]:
    """One row per client with charges still open (or partly paid) dated in ``month``.

    Each row: number of sessions, their dates, what is still owed for them, the
    oldest due date, the client's payer history and this month's sent message.
    Sorted by total owed, largest first. With ``limit``, only that page of rows
    gets its history and messages (``month_review`` counts them all).
    """
    debtors = (await _debtors(session, month))[offset : None if limit is None else offset + limit]
    await _describe(session, debtors, month, practice, today)
    return debtors


@dataclass
class Review:
    """A page of the month review and the whole month's figures."""

    debtors: list[Debtor]
    count: int
    total_cents: int


async def month_review(
    session: AsyncSession,
    month: str,
    practice: PracticeSettings,
    today: date,
    limit: int,
    offset: int = 0,
) -> Review:
    """The month review one page at a time: who owes most first, all of them counted."""
    debtors = await _debtors(session, month)
    shown = debtors[offset : offset + limit]
    await _describe(session, shown, month, practice, today)
    return Review(shown, len(debtors), sum(d.total_cents for d in debtors))


async def _debtors(session: AsyncSession, month: str) -> list[Debtor]:
    """The month's debtors with what they owe for it, largest total first (no dates or history yet).

    Summed per client in the database and read as plain rows: a month has
    thousands of open charges, and building a Python object per charge was
    most of the month review's time.
    """
    first, nxt = month_bounds(month)
    owed = (
        select(
            Charge.client_id,
            func.count().label("n"),
            func.sum(Charge.amount_cents - Charge.paid_cents).label("open_cents"),
            func.min(Charge.due_date).label("oldest_due"),
        )
        .where(Charge.date >= first, Charge.date < nxt, Charge.status.in_(UNPAID))
        .group_by(Charge.client_id)
        .subquery()
    )
    stmt = select(
        Client.id, Client.name, Client.phone_digits, Client.email,
        owed.c.n, owed.c.open_cents, owed.c.oldest_due,
    ).join(owed, owed.c.client_id == Client.id)  # fmt: skip
    rows = await (await session.connection()).execute(stmt)
    debtors = [
        Debtor(cid, name, phone, email, n, [], total, due)
        for cid, name, phone, email, n, total, due in rows
    ]
    debtors.sort(key=lambda d: (-d.total_cents, d.client_name))
    return debtors


async def _dates(session: AsyncSession, debtors: list[Debtor], month: str) -> None:
    """Fill in the dates of the open sessions of these debtors (one page of them)."""
    first, nxt = month_bounds(month)
    by_id = {d.client_id: d for d in debtors}
    rows = await (await session.connection()).execute(
        select(Charge.client_id, Charge.date)
        .where(
            Charge.client_id.in_(list(by_id)),
            Charge.date >= first,
            Charge.date < nxt,
            Charge.status.in_(UNPAID),
        )
        .order_by(Charge.client_id, Charge.date)
    )
    for cid, day in rows:
        by_id[cid].dates.append(day)


async def _describe(
    session: AsyncSession, debtors: list[Debtor], month: str, practice: PracticeSettings,
    today: date,
) -> None:  # fmt: skip
    """Payer history, this month's sent message and the billing messages of these debtors."""
    if not debtors:
        return
    await _dates(session, debtors, month)
    by_id = {d.client_id: d for d in debtors}
    for cid, payer in (await payer_history(session, list(by_id), today)).items():
        by_id[cid].payer = payer
    sent = await session.scalars(
        select(BillingMessage)
        .where(BillingMessage.month == month, BillingMessage.client_id.in_(list(by_id)))
        .order_by(BillingMessage.sent_at)
    )
    for message in sent:
        by_id[message.client_id].sent = message  # the latest wins
    for d in debtors:
        d.messages = {tone: billing_message(practice, tone, d, month) for tone in TONES}


async def payer_history(
    session: AsyncSession, client_ids: list[int], today: date
) -> dict[int, Payer]:
    """Per client: charges, how many were paid after their due date, how many are overdue now."""
    # Only these clients' allocations: grouping every allocation of the practice
    # made the month review take seconds.
    paid_on = (
        select(Allocation.charge_id, func.max(Payment.received_on).label("paid_on"))
        .join(Payment, Payment.id == Allocation.payment_id)
        .join(Charge, Charge.id == Allocation.charge_id)
        .where(Allocation.amount_cents > 0, Charge.client_id.in_(client_ids))
        .group_by(Allocation.charge_id)
        .subquery()
    )
    rows = await session.execute(
        select(
            Charge.client_id,
            func.count(Charge.id),
            func.sum(case((Charge.status == "paid", 1), else_=0)),
            func.sum(
                case(
                    (and_(Charge.status == "paid", paid_on.c.paid_on > Charge.due_date), 1), else_=0
                )
            ),
            func.sum(case((and_(Charge.status.in_(UNPAID), Charge.due_date < today), 1), else_=0)),
        )
        .outerjoin(paid_on, paid_on.c.charge_id == Charge.id)
        .where(Charge.client_id.in_(client_ids), Charge.status != "void")
        .group_by(Charge.client_id)
    )
    return {
        cid: Payer(charges=n or 0, paid=paid or 0, paid_late=late or 0, overdue=overdue or 0)
        for cid, n, paid, late, overdue in rows
    }


# --- billing messages -----------------------------------------------------------------------


@cache
def _day_month_pattern(locale: str) -> str:
    pattern = get_date_format("short", locale=locale).pattern
    pattern = re.sub(r"[^dM]*y+[^dM]*", "", pattern)  # drop the year and its separator
    return re.sub(r"d+", "dd", re.sub(r"M+", "MM", pattern))


@cache
def _day_month_strftime(locale: str) -> str | None:
    """The pattern for ``strftime`` when it is only days, months and separators."""
    pattern = _day_month_pattern(locale)
    if re.fullmatch(r"(dd|MM|[^A-Za-z'%])+", pattern) is None:
        return None
    return pattern.replace("dd", "%d").replace("MM", "%m")


def day_month(day: date, locale: str) -> str:
    """A day and month the way the locale writes short dates, two digits each: 03/02 or 02/03."""
    plain = _day_month_strftime(locale)
    if plain is not None:  # Babel per date was a fifth of the month review's time
        return day.strftime(plain)
    return format_date(day, _day_month_pattern(locale), locale=locale)


def list_dates(days: list[date], language: str, locale: str) -> str:
    """The session dates as the language lists them: "03/02, 10/02 e 17/02"."""
    text = format_list([day_month(d, locale) for d in days], locale=language)
    if language.startswith("en"):
        text = text.replace(", and ", " and ")  # house style: no serial comma
    return text


@cache  # a pure function of its two words, asked three times per debtor on the month review
def month_name(month: str, language: str) -> str:
    """ "fevereiro de 2026", "February 2026", "febrero de 2026"."""
    return format_skeleton("yMMMM", month_bounds(month)[0], locale=language)


_PLACEHOLDER = re.compile(r"\{(client|month|dates|count|total|instructions|practice)\}")


def render_message(template: str, values: dict[str, str]) -> str:
    """Fill the known placeholders only; anything else in braces stays as typed."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template).strip()


def billing_message(practice: PracticeSettings, tone: str, debtor: Debtor, month: str) -> str:
    fmt = practice.formatting
    template = getattr(practice, f"message_{tone}")
    return render_message(
        template,
        {
            "client": debtor.client_name.split()[0] if debtor.client_name else "",
            "month": month_name(month, fmt.language),
            "dates": list_dates(debtor.dates, fmt.language, fmt.locale),
            "count": str(debtor.count),
            "total": i18n.format_money(debtor.total_cents, fmt),
            "instructions": practice.payment_instructions.strip(),
            "practice": practice.practice_name,
        },
    )


def whatsapp_link(phone_digits: str | None, text: str) -> str:
    return f"https://wa.me/{phone_digits or ''}?text={quote(text)}"


def mailto_link(email: str | None, subject: str, text: str) -> str:
    return f"mailto:{quote(email or '', safe='@')}?subject={quote(subject)}&body={quote(text)}"


async def mark_sent(
    session: AsyncSession, actor: User, client_id: int, month: str, tone: str, channel: str
) -> BillingMessage:
    """Record that this month's message went to the client (for "who was already contacted")."""
    if tone not in TONES or channel not in CHANNELS or not valid_month(month):
        raise ValueError(_("Unknown tone, channel or month."))
    await begin_write(session)
    if await session.get(Client, client_id) is None:
        await session.rollback()
        raise LookupError(client_id)
    message = BillingMessage(
        client_id=client_id,
        month=month,
        tone=tone,
        channel=channel,
        sent_at=datetime.now(UTC),
        sent_by_id=actor.id,
    )
    session.add(message)
    await session.commit()
    return message
