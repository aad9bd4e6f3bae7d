"""The owner's figures: received, billed, aging, debtors, the day's cash-up, commissions.

Every figure of a past period is read from the journal (``entries``) by its
effective date, so a closed month reports the same numbers forever: a payment
reversed in March takes the money off March, not off the February it was
received in; a charge voided in March is billed in February and cancelled in
March. Received is money **received** (payments, less reversals), never
amounts billed; refunds of credit are shown apart. All amounts are integer cents.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Service, Staff
from app.auth.models import User
from app.clients.models import Client
from app.collecting.services import month_bounds
from app.ledger.models import PAYMENT_METHODS, Charge, Entry, Payment, Refund
from app.ledger.services import month_of
from app.statements.models import Period
from app.statements.services import AGING_BUCKETS, aging_bucket
from app.web.i18n import decimal_string

COMMISSION_BASES = ("received", "billed")
RECEIVED_KINDS = ("payment", "payment_reversed")
# Journal kinds that move money onto (or back off) a charge: what "received" commissions count.
APPLIED_KINDS = ("payment_applied", "credit_applied", "unallocated")
OPEN_STATUSES = ("open", "partial")


def _between(start: date, end: date) -> Any:
    return and_(Entry.effective_date >= start, Entry.effective_date <= end)


def month_end(month: str) -> date:
    return month_bounds(month)[1] - timedelta(days=1)


def months_back(last: str, count: int) -> list[str]:
    """``count`` months ending with ``last``, oldest first."""
    first, _next = month_bounds(last)
    months = [last]
    for _i in range(count - 1):
        first = (first - timedelta(days=1)).replace(day=1)
        months.append(month_of(first))
    return months[::-1]


# --- received -------------------------------------------------------------------------------


@dataclass
class MethodTotal:
    amount_cents: int = 0
    count: int = 0


@dataclass
class DayReceived:
    day: date
    by_method_cents: dict[str, int]
    total_cents: int


@dataclass
class StaffReceived:
    staff_id: int
    staff_name: str
    amount_cents: int


@dataclass
class Received:
    """Money received in [start, end]: by day, by method and by staff."""

    start: date
    end: date
    total_cents: int = 0
    by_method: dict[str, MethodTotal] = field(default_factory=dict)
    by_day: list[DayReceived] = field(default_factory=list)
    by_staff: list[StaffReceived] = field(default_factory=list)
    unassigned_cents: int = 0
    refunded_cents: int = 0


async def received(
    session: AsyncSession, start: date, end: date, by_staff: bool = True
) -> Received:
    """Payments received in [start, end], less payments reversed in it, by their journal date.

    A payment's money belongs to a staff member through what it paid of their
    charges (net of allocations undone in the period); the rest — top-ups kept
    as credit, sessions without staff — is ``unassigned`` (``by_staff=False``
    leaves that split out: it reads every allocation of the period). The count
    of a method is its payments less its reversals. Credit refunded in the
    period is given apart: it is not a negative receipt.
    """
    result = Received(start, end, by_method={m: MethodTotal() for m in PAYMENT_METHODS})
    # A payment's journal entry is dated the day it was received, so the payments
    # table answers for them (no join per entry); reversals come from the journal.
    paid = select(
        Payment.received_on, Payment.method, func.sum(Payment.amount_cents), func.count()
    ).where(Payment.received_on >= start, Payment.received_on <= end)
    reversed_ = (
        select(Entry.effective_date, Payment.method, func.sum(Entry.amount_cents), -func.count())
        .join(Payment, Payment.id == Entry.payment_id)
        .where(Entry.kind == "payment_reversed", _between(start, end))
    )
    rows = [
        *await session.execute(paid.group_by(Payment.received_on, Payment.method)),
        *await session.execute(reversed_.group_by(Entry.effective_date, Payment.method)),
    ]
    rows.sort(key=lambda row: row[0])
    days: dict[date, DayReceived] = {}
    for day, method, cents, count in rows:
        cents, count = int(cents), int(count)
        item = days.setdefault(day, DayReceived(day, dict.fromkeys(PAYMENT_METHODS, 0), 0))
        item.by_method_cents[method] += cents
        item.total_cents += cents
        result.by_method[method].amount_cents += cents
        result.by_method[method].count += count
    result.by_day = list(days.values())
    result.total_cents = sum(m.amount_cents for m in result.by_method.values())
    result.refunded_cents = -int(
        await session.scalar(
            select(func.coalesce(func.sum(Entry.amount_cents), 0)).where(
                Entry.kind == "refund", _between(start, end)
            )
        )
        or 0
    )
    if not by_staff:
        return result

    staff_rows = await session.execute(
        select(Staff.id, Staff.name, func.sum(-Entry.owed_delta_cents))
        .select_from(Entry)
        .join(Charge, Charge.id == Entry.charge_id)
        .join(Staff, Staff.id == Charge.staff_id)
        .where(
            Entry.kind.in_(("payment_applied", "unallocated")),
            Entry.payment_id.is_not(None),
            _between(start, end),
        )
        .group_by(Staff.id, Staff.name)
        .order_by(Staff.name, Staff.id)
    )
    result.by_staff = [StaffReceived(i, n, int(c)) for i, n, c in staff_rows if c]
    result.unassigned_cents = result.total_cents - sum(s.amount_cents for s in result.by_staff)
    return result


# --- billed vs received by month ------------------------------------------------------------


@dataclass
class MonthFigures:
    month: str
    billed_cents: int  # charges dated in the month, less charges cancelled in it
    cancelled_cents: int  # of which: voids recorded in the month
    received_cents: int

    @property
    def difference_cents(self) -> int:
        return self.received_cents - self.billed_cents


async def _closed_sums(session: AsyncSession, months: list[str]) -> dict[str, dict[str, int]]:
    """Closed months' journal sums by kind, as frozen in their period at closing (cents).

    A closed month accepts no entry, so what was summed then is what the journal
    holds now: reading it back saves summing the month again.
    """
    rows = await session.execute(
        select(Period.month, Period.totals).where(
            Period.month.in_(months), Period.closed_at.is_not(None)
        )
    )
    sums: dict[str, dict[str, int]] = {}
    for month, totals in rows:
        by_kind = json.loads(totals).get("by_kind")
        if by_kind is not None:
            sums[month] = {k: int(Decimal(v["amount"]) * 100) for k, v in by_kind.items()}
    return sums


async def _sums_by_month(
    session: AsyncSession, months: list[str], kinds: tuple[str, ...]
) -> dict[str, dict[str, int]]:
    """The journal's sums per month and kind: closed months from their period, the rest live."""
    sums = await _closed_sums(session, months)
    open_months = [m for m in months if m not in sums]
    if open_months:
        start, end = month_bounds(open_months[0])[0], month_end(open_months[-1])
        # Per day in SQL (from ix_entries_kind_date alone) and per month here: portable.
        rows = await session.execute(
            select(Entry.effective_date, Entry.kind, func.sum(Entry.amount_cents))
            .where(Entry.kind.in_(kinds), _between(start, end))
            .group_by(Entry.effective_date, Entry.kind)
        )
        for day, kind, cents in rows:
            month = month_of(day)
            if month in open_months:
                by_kind = sums.setdefault(month, {})
                by_kind[kind] = by_kind.get(kind, 0) + int(cents)
    return sums


async def billed_vs_received(session: AsyncSession, months: list[str]) -> list[MonthFigures]:
    """Per month: billed (charges less voids recorded in it) and received, from the journal."""
    sums = await _sums_by_month(session, months, ("charge", "void", *RECEIVED_KINDS))
    figures = []
    for month in months:
        by_kind = sums.get(month, {})
        charged = -by_kind.get("charge", 0)
        cancelled = by_kind.get("void", 0)
        got = by_kind.get("payment", 0) + by_kind.get("payment_reversed", 0)
        figures.append(MonthFigures(month, charged - cancelled, cancelled, got))
    return figures


async def received_by_month(session: AsyncSession, months: list[str]) -> list[tuple[str, int]]:
    """Money received per month (payments less reversals): the dashboard's twelve bars."""
    closed = await _closed_sums(session, months)
    got = {m: sum(closed[m].get(k, 0) for k in RECEIVED_KINDS) for m in closed}
    open_months = [m for m in months if m not in closed]
    if open_months:
        start, end = month_bounds(open_months[0])[0], month_end(open_months[-1])
        # One sum per day, kinds together: a third of the work of grouping by kind too.
        rows = await session.execute(
            select(Entry.effective_date, func.sum(Entry.amount_cents))
            .where(Entry.kind.in_(RECEIVED_KINDS), _between(start, end))
            .group_by(Entry.effective_date)
        )
        for day, cents in rows:
            month = month_of(day)
            if month in open_months:
                got[month] = got.get(month, 0) + int(cents)
    return [(m, got.get(m, 0)) for m in months]


async def billed_cents(session: AsyncSession, start: date, end: date) -> int:
    """Charges dated in [start, end], less the charges cancelled (voided) in it."""
    total = await session.scalar(
        select(func.coalesce(func.sum(Entry.owed_delta_cents), 0)).where(
            Entry.kind.in_(("charge", "void")), _between(start, end)
        )
    )
    return int(total or 0)


# --- aging and debtors ----------------------------------------------------------------------


@dataclass
class AgingClient:
    client_id: int
    client_name: str
    buckets_cents: dict[str, int]
    total_cents: int
    oldest_due: date


@dataclass
class Aging:
    as_of: date
    buckets_cents: dict[str, int]
    total_cents: int
    clients: list[AgingClient]


async def aging(session: AsyncSession, as_of: date, today: date) -> Aging:
    """What was still owed at the end of ``as_of``, by days past the due date (0–30 … 90+).

    Charges not yet due count as 0–30, as on statements. A charge owed at the
    end of a past day what it owes now less what its journal moved after that
    day (payments, credit, voids, reopenings): so only the entries since then
    are read, not the whole history.
    """
    open_now = await session.execute(
        select(Charge.id, Charge.client_id, Client.name, Charge.due_date,
               Charge.amount_cents - Charge.paid_cents)
        .join(Client, Client.id == Charge.client_id)
        .where(Charge.status.in_(OPEN_STATUSES), Charge.date <= as_of)
    )  # fmt: skip
    owed: dict[int, list[Any]] = {row[0]: list(row[1:]) for row in open_now}
    if as_of < today:
        moved_since = await session.execute(
            select(Charge.id, Charge.client_id, Client.name, Charge.due_date,
                   func.sum(Entry.owed_delta_cents))
            .select_from(Entry)
            .join(Charge, Charge.id == Entry.charge_id)
            .join(Client, Client.id == Charge.client_id)
            .where(Entry.effective_date > as_of, Charge.date <= as_of)
            .group_by(Charge.id, Charge.client_id, Client.name, Charge.due_date)
        )  # fmt: skip
        for charge_id, client_id, name, due, cents in moved_since:
            item = owed.setdefault(charge_id, [client_id, name, due, 0])
            item[3] -= int(cents)
    buckets = dict.fromkeys(AGING_BUCKETS, 0)
    per_client: dict[int, AgingClient] = {}
    for client_id, name, due, cents in owed.values():
        if cents <= 0:
            continue
        bucket = aging_bucket(max(0, (as_of - due).days))
        buckets[bucket] += cents
        item = per_client.setdefault(
            client_id, AgingClient(client_id, name, dict.fromkeys(AGING_BUCKETS, 0), 0, due)
        )
        item.buckets_cents[bucket] += cents
        item.total_cents += cents
        item.oldest_due = min(item.oldest_due, due)
    clients = sorted(per_client.values(), key=lambda c: (-c.total_cents, c.client_name))
    return Aging(as_of, buckets, sum(buckets.values()), clients)


@dataclass
class Debtor:
    client_id: int
    client_name: str
    phone: str | None
    owed_cents: int
    credit_cents: int
    overdue_cents: int
    open_count: int
    oldest_due: date | None
    last_payment_on: date | None


async def top_debtors(session: AsyncSession, today: date, limit: int = 20) -> list[Debtor]:
    """The clients who owe the most now, with what of it is overdue and their last payment."""
    clients = (
        await session.execute(
            select(Client.id, Client.name, Client.phone, Client.owed_cents, Client.credit_cents)
            .where(Client.owed_cents > 0)
            .order_by(Client.owed_cents.desc(), Client.name_key, Client.id)
            .limit(limit)
        )
    ).all()
    ids = [row[0] for row in clients]
    if not ids:
        return []
    open_cents = Charge.amount_cents - Charge.paid_cents
    charges = {
        client_id: (int(overdue or 0), int(count), oldest)
        for client_id, overdue, count, oldest in await session.execute(
            select(
                Charge.client_id,
                func.sum(case((Charge.due_date < today, open_cents), else_=0)),
                func.count(Charge.id),
                func.min(Charge.due_date),
            )
            .where(Charge.client_id.in_(ids), Charge.status.in_(OPEN_STATUSES))
            .group_by(Charge.client_id)
        )
    }
    last_paid = dict(
        (
            await session.execute(
                select(Payment.client_id, func.max(Payment.received_on))
                .where(Payment.client_id.in_(ids), Payment.reversed_at.is_(None))
                .group_by(Payment.client_id)
            )
        ).all()
    )
    return [
        Debtor(
            client_id,
            name,
            phone,
            int(owed),
            int(credit),
            *charges.get(client_id, (0, 0, None)),
            last_paid.get(client_id),
        )
        for client_id, name, phone, owed, credit in clients
    ]


@dataclass
class CreditHolder:
    client_id: int
    client_name: str
    credit_cents: int
    owed_cents: int


async def credit_holders(session: AsyncSession, limit: int = 50) -> list[CreditHolder]:
    """The clients holding the most prepaid credit now: money the practice still owes in service."""
    rows = await session.execute(
        select(Client.id, Client.name, Client.credit_cents, Client.owed_cents)
        .where(Client.credit_cents > 0)
        .order_by(Client.credit_cents.desc(), Client.name_key, Client.id)
        .limit(limit)
    )
    return [CreditHolder(*row) for row in rows]


# --- the day's cash-up ----------------------------------------------------------------------


@dataclass
class DailyLine:
    entry_id: int
    kind: str  # payment, payment_reversed or refund
    client_id: int
    client_name: str
    method: str
    reference: str | None
    amount_cents: int  # signed: money in is positive
    recorded_by: str | None


@dataclass
class Daily:
    day: date
    lines: list[DailyLine]
    by_method_cents: dict[str, int]  # money in less money handed back, per method
    received_cents: int
    refunded_cents: int

    @property
    def net_cents(self) -> int:
        return self.received_cents - self.refunded_cents


async def daily_collections(session: AsyncSession, day: date) -> Daily:
    """Every payment, reversal and refund of one day, and what each method should hold.

    What reception counts at the end of the day: the cash drawer holds the
    cash line of ``by_method_cents``.
    """
    method = func.coalesce(Payment.method, Refund.method)
    rows = await session.execute(
        select(
            Entry.id,
            Entry.kind,
            Entry.client_id,
            Client.name,
            method,
            Payment.reference,
            Entry.amount_cents,
            User.display_name,
        )
        .join(Client, Client.id == Entry.client_id)
        .outerjoin(Payment, Payment.id == Entry.payment_id)
        .outerjoin(Refund, Refund.id == Entry.refund_id)
        .outerjoin(User, User.id == Entry.user_id)
        .where(
            Entry.effective_date == day,
            or_(Entry.kind.in_(RECEIVED_KINDS), Entry.kind == "refund"),
        )
        .order_by(Entry.id)
    )
    lines = [DailyLine(*row) for row in rows]
    by_method = dict.fromkeys(PAYMENT_METHODS, 0)
    for line in lines:
        by_method[line.method] += line.amount_cents
    got = sum(x.amount_cents for x in lines if x.kind != "refund")
    refunded = -sum(x.amount_cents for x in lines if x.kind == "refund")
    return Daily(day, lines, by_method, got, refunded)


@dataclass
class DaySession:
    charge_id: int
    client_id: int
    client_name: str
    description: str
    staff_name: str | None
    amount_cents: int
    status: str


async def sessions_of_day(session: AsyncSession, day: date) -> list[DaySession]:
    """The sessions (charges) dated on ``day``, in the order they were registered."""
    rows = await session.execute(
        select(
            Charge.id,
            Charge.client_id,
            Client.name,
            Charge.description,
            Staff.name,
            Charge.amount_cents,
            Charge.status,
        )
        .join(Client, Client.id == Charge.client_id)
        .outerjoin(Staff, Staff.id == Charge.staff_id)
        .where(Charge.date == day)
        .order_by(Charge.id)
    )
    return [DaySession(*row) for row in rows]


# --- commissions ----------------------------------------------------------------------------


def commission_of(base_cents: int, commission_bp: int) -> int:
    """``base × rate``, rounded half-up to the cent (away from zero for a claw-back)."""
    exact = Decimal(base_cents) * commission_bp / 10000
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class CommissionRow:
    """One staff member's commission at one rate (a rate is copied onto each charge)."""

    staff_id: int
    staff_name: str
    basis: str
    base_cents: int
    commission_bp: int
    commission_cents: int


def _commission_base(basis: str) -> tuple[Any, tuple[str, ...]]:
    """What a commission is computed on, as an expression over the journal, and its kinds.

    ``received``: what was paid of the staff's charges — from payments or from
    prepaid credit — net of payments undone. ``billed``: their charges, less
    the ones cancelled. Both signed so that a correction in a later period
    lowers that period's base.
    """
    if basis not in COMMISSION_BASES:
        raise ValueError(f"basis is one of {COMMISSION_BASES}")
    if basis == "received":
        return func.sum(-Entry.owed_delta_cents), APPLIED_KINDS
    return func.sum(Entry.owed_delta_cents), ("charge", "void")


async def commission_rows(
    session: AsyncSession, start: date, end: date, basis: str
) -> list[CommissionRow]:
    """Each staff member's commission for [start, end], one row per rate, by staff name.

    The rate is the one copied onto each charge when it was registered (the
    service's override, else the staff's own rate), so changing a rate later
    does not rewrite history. Each row is rounded once.
    """
    base, kinds = _commission_base(basis)
    grouped = await session.execute(
        select(Staff.id, Staff.name, Charge.commission_bp, base)
        .select_from(Entry)
        .join(Charge, Charge.id == Entry.charge_id)
        .join(Staff, Staff.id == Charge.staff_id)
        .where(Entry.kind.in_(kinds), _between(start, end))
        .group_by(Staff.id, Staff.name, Charge.commission_bp)
        .order_by(Staff.name, Staff.id, Charge.commission_bp)
    )
    return [
        CommissionRow(i, name, basis, int(cents), bp, commission_of(int(cents), bp))
        for i, name, bp, cents in grouped
        if cents
    ]


@dataclass
class StaffCommission:
    staff_id: int
    staff_name: str
    base_cents: int
    commission_cents: int
    rows: list[CommissionRow]


def commissions_by_staff(rows: list[CommissionRow]) -> list[StaffCommission]:
    """The rows summed per staff member, in the rows' order."""
    totals: dict[int, StaffCommission] = {}
    for row in rows:
        item = totals.setdefault(
            row.staff_id, StaffCommission(row.staff_id, row.staff_name, 0, 0, [])
        )
        item.base_cents += row.base_cents
        item.commission_cents += row.commission_cents
        item.rows.append(row)
    return list(totals.values())


@dataclass
class CommissionLine:
    charge_id: int
    day: date
    client_name: str
    description: str
    service_name: str | None
    charge_cents: int
    base_cents: int
    commission_bp: int


async def commission_detail(
    session: AsyncSession, staff_id: int, start: date, end: date, basis: str
) -> list[CommissionLine]:
    """The charges behind one staff member's commission for [start, end], by date."""
    base, kinds = _commission_base(basis)
    rows = await session.execute(
        select(
            Charge.id,
            Charge.date,
            Client.name,
            Charge.description,
            Service.name,
            Charge.amount_cents,
            base,
            Charge.commission_bp,
        )
        .select_from(Entry)
        .join(Charge, Charge.id == Entry.charge_id)
        .join(Client, Client.id == Charge.client_id)
        .outerjoin(Service, Service.id == Charge.service_id)
        .where(Charge.staff_id == staff_id, Entry.kind.in_(kinds), _between(start, end))
        .group_by(
            Charge.id,
            Charge.date,
            Client.name,
            Charge.description,
            Service.name,
            Charge.amount_cents,
            Charge.commission_bp,
        )
        .order_by(Charge.date, Charge.id)
    )
    return [CommissionLine(*row[:6], int(row[6]), row[7]) for row in rows if row[6]]


# --- the dashboard --------------------------------------------------------------------------


@dataclass
class Activity:
    entry_id: int
    when: Any
    day: date
    kind: str
    client_id: int
    client_name: str
    description: str
    amount_cents: int
    credit_delta_cents: int
    owed_delta_cents: int
    user_name: str | None


@dataclass
class Dashboard:
    today: date
    month: str
    previous_month: str
    received_today_cents: int
    sessions_today: int
    received_month_cents: int
    received_previous_cents: int
    received_previous_to_date_cents: int  # last month up to the same day
    owed_cents: int
    overdue_cents: int
    overdue_count: int
    credit_cents: int
    clients_in_credit: int
    sessions_month: int
    clients_to_collect: int
    to_collect_cents: int
    activity: list[Activity]


async def _received_between(session: AsyncSession, start: date, end: date) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(Entry.amount_cents), 0)).where(
            Entry.kind.in_(RECEIVED_KINDS), _between(start, end)
        )
    )
    return int(total or 0)


async def _sessions_between(session: AsyncSession, start: date, end: date) -> int:
    count = await session.scalar(
        select(func.count(Charge.id)).where(
            Charge.date >= start, Charge.date <= end, Charge.status != "void"
        )
    )
    return int(count or 0)


async def recent_activity(session: AsyncSession, limit: int = 10) -> list[Activity]:
    """The newest money events of the journal, newest first (moves within a client left out)."""
    rows = await session.execute(
        select(
            Entry.id,
            Entry.created_at,
            Entry.effective_date,
            Entry.kind,
            Entry.client_id,
            Client.name,
            Entry.description,
            Entry.amount_cents,
            Entry.credit_delta_cents,
            Entry.owed_delta_cents,
            User.display_name,
        )
        .join(Client, Client.id == Entry.client_id)
        .outerjoin(User, User.id == Entry.user_id)
        .where(Entry.kind.not_in(APPLIED_KINDS))
        .order_by(Entry.id.desc())
        .limit(limit)
    )
    return [Activity(*row) for row in rows]


async def dashboard(session: AsyncSession, today: date, activity: int = 10) -> Dashboard:
    """This month against last month, what is owed and held, and the newest activity."""
    month = month_of(today)
    first, _next = month_bounds(month)
    previous_first = (first - timedelta(days=1)).replace(day=1)
    previous_end = first - timedelta(days=1)
    same_day = min(today.day, previous_end.day)
    owed, credit, in_credit = (
        await session.execute(
            select(
                func.coalesce(func.sum(Client.owed_cents), 0),
                func.coalesce(func.sum(Client.credit_cents), 0),
                func.count(case((Client.credit_cents > 0, 1))),
            )
        )
    ).one()
    open_cents = Charge.amount_cents - Charge.paid_cents
    overdue, overdue_count = (
        await session.execute(
            select(func.coalesce(func.sum(open_cents), 0), func.count(Charge.id)).where(
                Charge.status.in_(OPEN_STATUSES), Charge.due_date < today
            )
        )
    ).one()
    collect_count, collect_cents = (
        await session.execute(
            select(
                func.count(func.distinct(Charge.client_id)),
                func.coalesce(func.sum(open_cents), 0),
            ).where(
                Charge.status.in_(OPEN_STATUSES),
                Charge.date >= previous_first,
                Charge.date < first,
            )
        )
    ).one()
    return Dashboard(
        today=today,
        month=month,
        previous_month=month_of(previous_first),
        received_today_cents=await _received_between(session, today, today),
        sessions_today=await _sessions_between(session, today, today),
        received_month_cents=await _received_between(session, first, today),
        received_previous_cents=await _received_between(session, previous_first, previous_end),
        received_previous_to_date_cents=await _received_between(
            session, previous_first, previous_first.replace(day=same_day)
        ),
        owed_cents=int(owed),
        overdue_cents=int(overdue),
        overdue_count=int(overdue_count),
        credit_cents=int(credit),
        clients_in_credit=int(in_credit),
        sessions_month=await _sessions_between(session, first, month_end(month)),
        clients_to_collect=int(collect_count),
        to_collect_cents=int(collect_cents),
        activity=await recent_activity(session, activity),
    )


def as_json(value: Any) -> Any:
    """A report as the API gives it: dates ISO, and every ``*_cents`` field (an amount or a
    mapping of amounts) a decimal string named without the suffix: ``total_cents`` → ``total``.
    """
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = key.removesuffix("_cents")
            if name != key and isinstance(item, dict):
                out[name] = {k: decimal_string(v) for k, v in item.items()}
            elif name != key and isinstance(item, int):
                out[name] = decimal_string(item)
            else:
                out[key] = as_json(item)
        return out
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value
