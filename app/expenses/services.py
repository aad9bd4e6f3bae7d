"""What the practice spends, and the month's summary: received − commissions − expenses = net.

Expenses are money records like payments: recorded with an idempotency key,
refused in a closed month. The database allows only positive amounts, so a
mistake is corrected by deleting the expense — admin only, only while its
month is open, and audited with everything the expense said.

The summary counts money **received** (payments not reversed), never amounts
billed; billed is reported beside it, labelled as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Staff
from app.admin.services import PracticeSettings, load_settings
from app.audit import audit
from app.auth.models import User
from app.collecting.services import month_bounds, valid_month
from app.db import begin_write
from app.expenses.models import Expense
from app.ledger.models import PAYMENT_METHODS, Allocation, Charge, Payment
from app.ledger.services import Invalid, check_amount, check_method, ensure_month_open
from app.web.i18n import _, decimal_string

COMMISSION_BASES = ("received", "billed")
CATEGORY_MAX = 80
NOTE_MAX = 1000


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _month_range(month: str) -> tuple[date, date]:
    if not valid_month(month):
        raise ValueError("months are written YYYY-MM")
    return month_bounds(month)


# --- recording and deleting -----------------------------------------------------------------


@dataclass(frozen=True)
class ExpenseInput:
    spent_on: date
    amount_cents: int
    method: str
    category: str
    note: str | None = None

    def content(self) -> dict[str, Any]:
        """What the request asks for, for its idempotency fingerprint."""
        return {
            "spent_on": self.spent_on.isoformat(),
            "amount_cents": self.amount_cents,
            "method": self.method,
            "category": self.category,
            "note": self.note,
        }


def _clean_category(text: str) -> str:
    return " ".join((text or "").split())


async def record_expense(
    session: AsyncSession, actor: User, practice: PracticeSettings, data: ExpenseInput
) -> Expense:
    """Record an expense, inside the caller's write transaction (``idempotency.run_once``).

    Refuses (``Invalid``, 422) a zero, negative or above-maximum amount, an
    unknown method, a missing or too long category, a too long note; and
    (``Refused``, 409) a date in a closed month. A category typed with other
    capitals than an existing one takes the existing spelling, so the
    month's totals per category do not split.
    """
    check_amount(data.amount_cents, practice)
    check_method(data.method)
    category = _clean_category(data.category)
    if not category:
        raise Invalid(_("Say what the expense was for, like Rent or Supplies."), "category")
    if len(category) > CATEGORY_MAX:
        raise Invalid(_("Use at most %(n)d characters.", n=CATEGORY_MAX), "category")
    note = (data.note or "").strip() or None
    if note is not None and len(note) > NOTE_MAX:
        raise Invalid(_("Use at most %(n)d characters.", n=NOTE_MAX), "note")
    await ensure_month_open(session, data.spent_on)
    existing = await session.scalar(
        select(Expense.category)
        .where(func.lower(Expense.category) == category.lower())
        .order_by(Expense.id)
        .limit(1)
    )
    expense = Expense(
        spent_on=data.spent_on,
        amount_cents=data.amount_cents,
        method=data.method,
        category=existing or category,
        note=note,
        created_by_id=actor.id,
        created_at=datetime.now(UTC),
    )
    session.add(expense)
    await session.flush()
    return expense


def expense_json(expense: Expense) -> dict[str, Any]:
    return {
        "id": expense.id,
        "date": expense.spent_on.isoformat(),
        "amount": decimal_string(expense.amount_cents),
        "method": expense.method,
        "category": expense.category,
        "note": expense.note,
    }


async def delete_expense(
    session: AsyncSession, actor: User, expense_id: int, ip: str | None = None
) -> Expense:
    """Delete an expense recorded by mistake; the audit log keeps what it said.

    Admin only (the route says so). Refuses (``Refused``, 409) an expense in a
    closed month; raises ``LookupError`` when there is no such expense.
    Begins and commits its own write transaction.
    """
    await begin_write(session)
    try:
        expense = await session.scalar(
            select(Expense).where(Expense.id == expense_id).with_for_update()
        )
        if expense is None:
            raise LookupError(expense_id)
        await ensure_month_open(session, expense.spent_on)
        audit(
            session,
            "expense_deleted",
            user_id=actor.id,
            username=actor.username,
            ip=ip,
            expense=expense_json(expense),
        )
        await session.delete(expense)
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    return expense


# --- reading --------------------------------------------------------------------------------


@dataclass
class MonthExpenses:
    month: str
    rows: list[Expense]
    by_category: list[tuple[str, int]]  # (category, cents), largest first
    total_cents: int


async def month_expenses(session: AsyncSession, month: str) -> MonthExpenses:
    """The month's expenses, newest first, with totals per category."""
    first, nxt = _month_range(month)
    in_month = (Expense.spent_on >= first, Expense.spent_on < nxt)
    rows = list(
        await session.scalars(
            select(Expense).where(*in_month).order_by(Expense.spent_on.desc(), Expense.id.desc())
        )
    )
    totals = (
        await session.execute(
            select(Expense.category, func.sum(Expense.amount_cents))
            .where(*in_month)
            .group_by(Expense.category)
        )
    ).all()
    by_category = sorted(((c, int(t)) for c, t in totals), key=lambda ct: (-ct[1], ct[0]))
    return MonthExpenses(
        month=month,
        rows=rows,
        by_category=by_category,
        total_cents=sum(t for _c, t in by_category),
    )


async def categories(session: AsyncSession, limit: int = 100) -> list[str]:
    """Categories used before, most used first: the suggestions of the form."""
    rows = await session.execute(
        select(Expense.category, func.count(Expense.id))
        .group_by(Expense.category)
        .order_by(func.count(Expense.id).desc(), Expense.category)
        .limit(limit)
    )
    return [category for category, _n in rows]


# --- commissions and the month's summary ----------------------------------------------------


@dataclass(frozen=True)
class CommissionRow:
    """One staff member's commission at one rate (a rate is copied onto each charge)."""

    staff_id: int
    staff_name: str
    basis: str
    base_cents: int
    commission_bp: int
    commission_cents: int


def commission_of(base_cents: int, commission_bp: int) -> int:
    """``base × rate``, rounded half-up to the cent."""
    exact = Decimal(base_cents) * commission_bp / 10000
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _received_in(first: date, nxt: date) -> tuple[Any, ...]:
    """Payments received in [first, nxt) that still count as money received."""
    return (
        Payment.received_on >= first,
        Payment.received_on < nxt,
        Payment.reversed_at.is_(None),
    )


async def commission_rows(session: AsyncSession, month: str, basis: str) -> list[CommissionRow]:
    """Each staff member's commission for the month, one row per rate, by staff name.

    ``received``: the base is the money of payments received in the month
    (not reversed) allocated to the staff member's charges, net of undone
    allocations. ``billed``: the base is the amount of their charges dated in
    the month, void ones excluded. Either way the rate is the one copied onto
    each charge when it was registered; each row is rounded once.
    """
    if basis not in COMMISSION_BASES:
        raise ValueError(f"basis is one of {COMMISSION_BASES}")
    first, nxt = _month_range(month)
    if basis == "received":
        base = func.sum(Allocation.amount_cents)
        query = (
            select(Staff.id, Staff.name, Charge.commission_bp, base)
            .select_from(Allocation)
            .join(Payment, Payment.id == Allocation.payment_id)
            .join(Charge, Charge.id == Allocation.charge_id)
            .join(Staff, Staff.id == Charge.staff_id)
            .where(*_received_in(first, nxt))
        )
    else:
        base = func.sum(Charge.amount_cents)
        query = (
            select(Staff.id, Staff.name, Charge.commission_bp, base)
            .join(Staff, Staff.id == Charge.staff_id)
            .where(Charge.date >= first, Charge.date < nxt, Charge.status != "void")
        )
    grouped = await session.execute(
        query.group_by(Staff.id, Staff.name, Charge.commission_bp).order_by(
            Staff.name, Staff.id, Charge.commission_bp
        )
    )
    return [
        CommissionRow(
            staff_id=staff_id,
            staff_name=name,
            basis=basis,
            base_cents=int(cents),
            commission_bp=bp,
            commission_cents=commission_of(int(cents), bp),
        )
        for staff_id, name, bp, cents in grouped
        if cents
    ]


async def month_summary(
    session: AsyncSession, month: str, basis: str | None = None
) -> dict[str, Any]:
    """The month's money: received (by method and by staff) − commissions − expenses = net.

    Received is payments received in the month that were not reversed. A
    payment's money belongs to a staff member through its allocations to
    their charges; what is not allocated to a charge with staff (top-ups kept
    as credit, charges without staff) is ``unassigned``. ``basis`` is the
    commission basis; by default the practice's ``commission_basis`` setting.
    Billed (charges dated in the month, not void) is given apart: it is not
    money received. All amounts are integer cents.
    """
    first, nxt = _month_range(month)
    if basis is None:
        basis = (await load_settings(session)).commission_basis
    by_method_rows = await session.execute(
        select(Payment.method, func.sum(Payment.amount_cents), func.count(Payment.id))
        .where(*_received_in(first, nxt))
        .group_by(Payment.method)
    )
    by_method = {m: {"cents": 0, "count": 0} for m in PAYMENT_METHODS}
    for method, cents, count in by_method_rows:
        by_method[method] = {"cents": int(cents), "count": int(count)}
    received = sum(v["cents"] for v in by_method.values())

    received_rows = await commission_rows(session, month, "received")
    by_staff: dict[int, dict[str, Any]] = {}
    for row in received_rows:
        item = by_staff.setdefault(
            row.staff_id, {"staff_id": row.staff_id, "staff_name": row.staff_name, "cents": 0}
        )
        item["cents"] += row.base_cents
    assigned = sum(item["cents"] for item in by_staff.values())

    commissions = (
        received_rows if basis == "received" else await commission_rows(session, month, basis)
    )
    commissions_by_staff: dict[int, dict[str, Any]] = {}
    for row in commissions:
        item = commissions_by_staff.setdefault(
            row.staff_id,
            {"staff_id": row.staff_id, "staff_name": row.staff_name, "base_cents": 0, "cents": 0},
        )
        item["base_cents"] += row.base_cents
        item["cents"] += row.commission_cents
    commissions_total = sum(row.commission_cents for row in commissions)

    expenses = await month_expenses(session, month)
    billed = await session.scalar(
        select(func.coalesce(func.sum(Charge.amount_cents), 0)).where(
            Charge.date >= first, Charge.date < nxt, Charge.status != "void"
        )
    )
    return {
        "month": month,
        "received_cents": received,
        "received_by_method": by_method,
        "received_by_staff": list(by_staff.values()),
        "received_unassigned_cents": received - assigned,
        "commission_basis": basis,
        "commissions_cents": commissions_total,
        "commissions_by_staff": list(commissions_by_staff.values()),
        "commission_rows": commissions,
        "expenses_cents": expenses.total_cents,
        "expenses_by_category": expenses.by_category,
        "net_cents": received - commissions_total - expenses.total_cents,
        "billed_cents": int(billed or 0),
    }
