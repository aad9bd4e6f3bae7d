"""What the practice spends, and the month's summary: received − commissions − expenses = net.

Expenses are money records like payments: recorded with an idempotency key,
refused in a closed month. The database allows only positive amounts, so a
mistake is corrected by deleting the expense — admin only, only while its
month is open, and audited with everything the expense said.

The summary counts money **received** (payments less reversals, by date), never amounts
billed; billed is reported beside it, labelled as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.services import PracticeSettings, load_settings
from app.audit import audit
from app.auth.models import User
from app.collecting.services import month_bounds, valid_month
from app.db import begin_write
from app.expenses.models import Expense
from app.ledger.services import Invalid, check_amount, check_method, ensure_month_open
from app.reports import services as reports
from app.reports.services import COMMISSION_BASES, commission_of  # noqa: F401 - re-exported
from app.web.i18n import _, decimal_string

CATEGORY_MAX = 80
NOTE_MAX = 1000


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


# --- the month's summary ------------------------------------------------------------------


async def month_summary(
    session: AsyncSession, month: str, basis: str | None = None
) -> dict[str, Any]:
    """The month's money: received (by method and by staff) − commissions − expenses = net.

    Received, billed and commissions follow the reports' one rule (``app.reports.services``):
    read from the journal by effective date, so a closed month's summary never
    changes. ``basis`` is the commission basis; by default the practice's
    ``commission_basis`` setting. Billed (charges of the month less the ones
    cancelled in it) is given apart: it is not money received. Integer cents.
    """
    first, nxt = _month_range(month)
    last = nxt - timedelta(days=1)
    if basis is None:
        basis = (await load_settings(session)).commission_basis
    got = await reports.received(session, first, last)
    commissions = await reports.commission_rows(session, first, last, basis)
    expenses = await month_expenses(session, month)
    commissions_total = sum(row.commission_cents for row in commissions)
    return {
        "month": month,
        "received_cents": got.total_cents,
        "received_by_method": {
            m: {"cents": t.amount_cents, "count": t.count} for m, t in got.by_method.items()
        },
        "received_by_staff": [
            {"staff_id": s.staff_id, "staff_name": s.staff_name, "cents": s.amount_cents}
            for s in got.by_staff
        ],
        "received_unassigned_cents": got.unassigned_cents,
        "commission_basis": basis,
        "commissions_cents": commissions_total,
        "commissions_by_staff": [
            {
                "staff_id": s.staff_id,
                "staff_name": s.staff_name,
                "base_cents": s.base_cents,
                "cents": s.commission_cents,
            }
            for s in reports.commissions_by_staff(commissions)
        ],
        "commission_rows": commissions,
        "expenses_cents": expenses.total_cents,
        "expenses_by_category": expenses.by_category,
        "net_cents": got.total_cents - commissions_total - expenses.total_cents,
        "billed_cents": await reports.billed_cents(session, first, last),
    }
