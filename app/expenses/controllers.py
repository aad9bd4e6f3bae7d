"""Expenses of a month (list, record, delete) and the month's summary page.

Admin and reception record expenses; only an admin deletes one; the
accountant reads. The summary (received − commissions − expenses = net) is
for the admin and the accountant.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from litestar import Controller, Request, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.services import SettingsError, save_settings
from app.auth.controllers import client_ip
from app.auth.guards import ADMIN, STAFF
from app.collecting.services import month_bounds, month_name, previous_month, valid_month
from app.expenses import services
from app.ledger import idempotency
from app.ledger.controllers import _practice, _user, method_labels
from app.ledger.services import LedgerError, month_of
from app.web import i18n
from app.web.i18n import AmountError, _, parse_amount, today

READERS = ("admin", "accountant")


def _month_or_current(month: str | None) -> str:
    return month if valid_month(month) else month_of(today())


def _month_nav(month: str) -> dict[str, str]:
    first, nxt = month_bounds(month)
    return {
        "month": month,
        "month_label": month_name(month, i18n.current().language),
        "prev_month": previous_month(first),
        "next_month": nxt.strftime("%Y-%m"),
    }


def _parse_form(form: Any, max_cents: int) -> tuple[services.ExpenseInput | None, dict[str, str]]:
    """The expense form as typed, read into an ``ExpenseInput``, or the errors per field."""
    errors: dict[str, str] = {}
    amount_cents = 0
    try:
        amount_cents = parse_amount(form.get("amount", ""), max_cents=max_cents)
    except AmountError as exc:
        errors["amount"] = str(exc)
    spent_on = today()
    try:
        spent_on = date.fromisoformat(form.get("spent_on") or today().isoformat())
    except ValueError:
        errors["spent_on"] = _("Enter a date like 2026-03-31.")
    if errors:
        return None, errors
    return (
        services.ExpenseInput(
            spent_on=spent_on,
            amount_cents=amount_cents,
            method=form.get("method") or "",
            category=form.get("category") or "",
            note=form.get("note") or None,
        ),
        {},
    )


class ExpensePages(Controller):
    tags = ["expenses"]

    async def _page(
        self,
        request: Request[Any, Any, Any],
        session: AsyncSession,
        month: str,
        values: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        expenses = await services.month_expenses(session, month)
        # A refused form keeps its key (a refused request stored nothing under it).
        values = {
            "spent_on": today().isoformat(),
            "method": _practice(request).default_payment_method,
            "idempotency_key": str(uuid.uuid4()),
            **(values or {}),
        }
        return Template(
            "expenses/page.html",
            context={
                **_month_nav(month),
                "expenses": expenses,
                "categories": await services.categories(session),
                "values": values,
                "errors": errors or {},
                "methods": method_labels(),
            },
            status_code=status_code,
        )

    @get("/expenses", name="expenses")
    async def expenses(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, month: str | None = None
    ) -> Template:
        """The month's expenses with totals per category (default: this month), and the form."""
        return await self._page(request, db_session, _month_or_current(month))

    @post("/expenses", opt={"roles": STAFF}, status_code=303)
    async def record(
        self, request: Request[Any, Any, Any], db_session: AsyncSession
    ) -> Template | Redirect:
        form = await request.form()
        values = {k: form.get(k, "") for k in form}
        practice = _practice(request)
        month = _month_or_current(form.get("month"))
        data, errors = _parse_form(form, practice.max_amount_cents)
        if data is None:
            return await self._page(request, db_session, month, values, errors, 422)
        user = _user(request)
        key = form.get("idempotency_key")

        async def work() -> idempotency.Answer:
            expense = await services.record_expense(db_session, user, practice, data)
            return idempotency.Answer(201, services.expense_json(expense))

        try:
            answer = await idempotency.run_once(
                db_session, user.id, key, idempotency.fingerprint("expense", data.content()), work
            )
        except (LedgerError, idempotency.KeyReused) as exc:
            field = getattr(exc, "field", None) or "form"
            field = "spent_on" if field == "date" else field
            status = getattr(exc, "status_code", 422)
            return await self._page(request, db_session, month, values, {field: str(exc)}, status)
        recorded_month = answer.body["date"][:7]
        return Redirect(
            f"/expenses?month={recorded_month}#expense-{answer.body['id']}", status_code=303
        )

    @post("/expenses/{expense_id:int}/delete", opt={"roles": ADMIN}, status_code=303)
    async def delete(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, expense_id: int
    ) -> Template | Redirect:
        """Delete an expense recorded by mistake (admin, open month only, audited)."""
        try:
            expense = await services.delete_expense(
                db_session, _user(request), expense_id, client_ip(request)
            )
        except LookupError:
            raise NotFoundException() from None
        except LedgerError as exc:
            form = await request.form()
            month = _month_or_current(form.get("month"))
            return await self._page(
                request, db_session, month, errors={"form": str(exc)}, status_code=exc.status_code
            )
        return Redirect(f"/expenses?month={month_of(expense.spent_on)}", status_code=303)

    # --- the month's summary -------------------------------------------------------------------

    @get("/expenses/summary", name="month_summary", opt={"roles": READERS})
    async def summary(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        month: str | None = None,
        basis: str | None = None,
    ) -> Template:
        """Received by method and by staff − commissions − expenses = net (default: this month).

        ``basis`` shows commissions on another basis than the practice's setting.
        """
        month = _month_or_current(month)
        practice = _practice(request)
        if basis not in services.COMMISSION_BASES:
            basis = practice.commission_basis
        summary = await services.month_summary(db_session, month, basis)
        return Template(
            "expenses/summary.html",
            context={
                **_month_nav(month),
                "s": summary,
                "basis": basis,
                "default_basis": practice.commission_basis,
                "methods": method_labels(),
                "rate": i18n.format_rate,
            },
        )

    @post("/expenses/summary/basis", opt={"roles": ADMIN}, status_code=303)
    async def set_basis(
        self, request: Request[Any, Any, Any], db_session: AsyncSession
    ) -> Redirect:
        """Make a commission basis the practice's default (a setting, audited)."""
        form = await request.form()
        basis = form.get("basis", "")
        month = _month_or_current(form.get("month"))
        try:
            await save_settings(
                db_session, {"commission_basis": basis}, _user(request), client_ip(request)
            )
        except SettingsError as exc:
            raise ValidationException(" ".join(exc.errors.values())) from None
        return Redirect(f"/expenses/summary?month={month}&basis={basis}", status_code=303)
