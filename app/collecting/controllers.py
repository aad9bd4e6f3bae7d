"""Open charges (inline toggles, batch confirmation, voids), refunds, and the month review."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.response import Redirect, Template
from msgspec import Struct
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Staff
from app.auth.guards import STAFF
from app.clients.models import Client
from app.collecting import services as collecting
from app.ledger import idempotency
from app.ledger import services as ledger
from app.ledger.controllers import _practice, _refusal, _user, method_labels
from app.web import i18n
from app.web.i18n import (
    AmountError,
    _,
    decimal_string,
    ngettext,
    parse_amount,
    parse_decimal_amount,
    today,
)

PAGE_SIZE = 50


def _filters(
    month: str | None,
    client_id: int | None,
    staff_id: int | None,
    status: str | None,
    overdue: bool,
) -> collecting.ChargeFilter:
    return collecting.ChargeFilter(
        month=month if collecting.valid_month(month) else None,
        client_id=client_id,
        staff_id=staff_id,
        status=status or "unpaid",
        overdue=overdue,
    )


def _key() -> str:
    return str(uuid.uuid4())


async def _run(
    session: AsyncSession,
    request: Request[Any, Any, Any],
    key: str | None,
    op: str,
    content: dict[str, Any],
    work: Any,
) -> idempotency.Answer:
    user = _user(request)
    return await idempotency.run_once(
        session, user.id, key, idempotency.fingerprint(op, content), work
    )


# Each debtor's card carries three messages: a page of them is plenty to work through.
REVIEW_PAGE = 50


class CollectingPages(Controller):
    tags = ["collecting"]

    @get("/charges", name="charges")
    async def charges(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        month: str | None = None,
        client_id: int | None = None,
        staff_id: int | None = None,
        status: str | None = None,
        overdue: bool = False,
        page: int = 1,
    ) -> Template:
        """The open-charges list; an HTMX filter change swaps only the table."""
        filters = _filters(month, client_id, staff_id, status, overdue)
        page = max(page, 1)
        rows, total, still_open = await collecting.open_charges(
            db_session, filters, today(), PAGE_SIZE, (page - 1) * PAGE_SIZE
        )
        staff = list(await db_session.scalars(select(Staff).order_by(Staff.name)))
        client = await db_session.get(Client, client_id) if client_id else None
        context = {
            "rows": rows,
            "total": total,
            "still_open_cents": still_open,
            "filters": filters,
            "staff": staff,
            "client": client,
            "page": page,
            "pages": max(1, -(-total // PAGE_SIZE)),
            "methods": method_labels(),
            "today": today(),
            "new_key": _key,
        }
        if request.headers.get("hx-target") == "charges-table":
            return Template("collecting/_charges_table.html", context=context)
        return Template("collecting/charges.html", context=context)

    async def _row(
        self, session: AsyncSession, charge_id: int, status_code: int = 200, **extra: Any
    ) -> Template:
        row = await collecting.charge_row(session, charge_id, today())
        if row is None:
            raise NotFoundException()
        return Template(
            "collecting/_charge_row.html",
            context={"r": row, "methods": method_labels(), "new_key": _key, **extra},
            status_code=status_code,
        )

    @post("/charges/{charge_id:int}/toggle", opt={"roles": STAFF}, status_code=200)
    async def toggle(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, charge_id: int
    ) -> Template:
        """Mark paid (today, the default method) or back to open; swaps only this row."""
        form = await request.form()
        practice = _practice(request)
        charge = await ledger.get_charge(db_session, charge_id)
        if charge is None:
            raise NotFoundException()
        target = form.get("to", "paid" if charge.status in collecting.UNPAID else "open")
        user = _user(request)
        key = form.get("idempotency_key")
        note = None

        async def work() -> idempotency.Answer:
            if target == "paid":
                result = await ledger.pay_charges(
                    db_session,
                    user,
                    practice,
                    [charge_id],
                    practice.default_payment_method,
                    today(),
                    key,
                )
                return idempotency.Answer(200, result.json())
            notes = await ledger.reopen_charge(db_session, user, charge_id, key)
            return idempotency.Answer(200, {"notes": notes})

        try:
            answer = await _run(
                db_session, request, key, f"toggle-{target}", {"charge_id": charge_id}, work
            )
            note = " ".join(answer.body.get("notes", [])) or None
        except (ledger.LedgerError, idempotency.KeyReused) as exc:
            return await self._row(db_session, charge_id, 200, error=str(exc))
        return await self._row(db_session, charge_id, note=note)

    @post("/charges/{charge_id:int}/void", opt={"roles": STAFF}, status_code=200)
    async def void(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, charge_id: int
    ) -> Template:
        form = await request.form()
        reason = form.get("reason", "")
        key = form.get("idempotency_key")
        user = _user(request)

        async def work() -> idempotency.Answer:
            charge = await ledger.void_charge(db_session, user, charge_id, reason, key)
            return idempotency.Answer(200, ledger.charge_json(charge))

        try:
            await _run(
                db_session, request, key, "void", {"charge_id": charge_id, "reason": reason}, work
            )
        except (ledger.LedgerError, idempotency.KeyReused) as exc:
            return await self._row(db_session, charge_id, 200, error=str(exc))
        return await self._row(db_session, charge_id)

    @post("/charges/batch", opt={"roles": STAFF}, status_code=200)
    async def batch(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        """Confirm payment of the ticked charges with a date and a method."""
        form = await request.form()
        practice = _practice(request)
        ids = sorted({int(v) for v in form.getall("ids", []) if str(v).isdigit()})
        method = form.get("method") or practice.default_payment_method
        errors: dict[str, str] = {}
        try:
            day = date.fromisoformat(form.get("date") or today().isoformat())
        except ValueError:
            errors["date"] = _("Enter a date like 2026-03-31.")
            day = today()
        key = form.get("idempotency_key")
        user = _user(request)
        result_body: dict[str, Any] = {"payments": [], "skipped": []}
        if not errors:

            async def work() -> idempotency.Answer:
                result = await ledger.pay_charges(db_session, user, practice, ids, method, day, key)
                return idempotency.Answer(200, result.json())

            try:
                answer = await _run(
                    db_session,
                    request,
                    key,
                    "batch",
                    {"ids": ids, "method": method, "date": day.isoformat()},
                    work,
                )
                result_body = answer.body
            except (ledger.LedgerError, idempotency.KeyReused) as exc:
                errors[getattr(exc, "field", None) or "form"] = str(exc)
        if errors:
            return Template(
                "_toast.html",
                context={"level": "error", "message": " ".join(errors.values())},
                status_code=422,
            )
        paid = sum(len(p["allocations"]) for p in result_body["payments"])
        message = ngettext("%(num)d charge marked paid.", "%(num)d charges marked paid.", paid)
        if result_body["skipped"]:
            message += " " + ngettext(
                "%(num)d was already paid or void and was skipped.",
                "%(num)d were already paid or void and were skipped.",
                len(result_body["skipped"]),
            )
        # The toast says what happened; the table reloads itself on "charges-changed".
        return Template(
            "_toast.html",
            context={"level": "ok", "message": message},
            headers={"HX-Trigger": "charges-changed"},
        )

    # --- credit: use it, or hand it back --------------------------------------------------

    @post("/clients/{client_id:int}/apply-credit", opt={"roles": STAFF}, status_code=303)
    async def use_credit(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, client_id: int
    ) -> Template | Redirect:
        """Use the client's credit on their open charges, oldest first."""
        form = await request.form()
        key = form.get("idempotency_key")
        user = _user(request)

        async def work() -> idempotency.Answer:
            applied = await ledger.apply_credit(db_session, user, client_id, None, key)
            return idempotency.Answer(200, {"applied": applied})

        try:
            await _run(db_session, request, key, "apply-credit", {"client_id": client_id}, work)
        except (ledger.LedgerError, idempotency.KeyReused) as exc:
            return Template(
                "collecting/notice.html",
                context={"message": str(exc), "back": f"/clients/{client_id}"},
                status_code=getattr(exc, "status_code", 422),
            )
        return Redirect(f"/clients/{client_id}", status_code=303)

    @get("/clients/{client_id:int}/refund", name="refund_new")
    async def refund_form(self, db_session: AsyncSession, client_id: int) -> Template:
        client = await db_session.get(Client, client_id)
        if client is None:
            raise NotFoundException()
        return Template(
            "collecting/refund.html",
            context={
                "client": client,
                "values": {"idempotency_key": _key(), "method": "cash"},
                "errors": {},
                "methods": method_labels(),
            },
        )

    @post("/clients/{client_id:int}/refund", opt={"roles": STAFF}, status_code=303)
    async def refund(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, client_id: int
    ) -> Template | Redirect:
        form = await request.form()
        practice = _practice(request)
        values = {k: form.get(k, "") for k in form}
        errors: dict[str, str] = {}
        status = 422
        amount = 0
        try:
            amount = parse_amount(form.get("amount", ""), max_cents=practice.max_amount_cents)
        except AmountError as exc:
            errors["amount"] = str(exc)
        method = form.get("method") or "cash"
        reason = form.get("reason") or None
        key = form.get("idempotency_key")
        user = _user(request)
        if not errors:

            async def work() -> idempotency.Answer:
                r = await ledger.refund_credit(
                    db_session, user, practice, client_id, amount, method, reason, key
                )
                return idempotency.Answer(
                    201, {"id": r.id, "amount": decimal_string(r.amount_cents)}
                )

            try:
                await _run(
                    db_session,
                    request,
                    key,
                    "refund",
                    {"client_id": client_id, "amount": amount, "method": method, "reason": reason},
                    work,
                )
                return Redirect(f"/clients/{client_id}", status_code=303)
            except (ledger.LedgerError, idempotency.KeyReused) as exc:
                errors[getattr(exc, "field", None) or "form"] = str(exc)
                status = getattr(exc, "status_code", 422)
        client = await db_session.get(Client, client_id)
        if client is None:
            raise NotFoundException()
        return Template(
            "collecting/refund.html",
            context={
                "client": client,
                "values": values,
                "errors": errors,
                "methods": method_labels(),
            },
            status_code=status,
        )

    # --- the month review ------------------------------------------------------------------

    @get("/collect", name="collect")
    async def collect(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        month: str | None = None,
        page: int = 1,
    ) -> Template:
        """Who still owes for a month (default: the previous one) and a message for each,
        those who owe most first, a page of them at a time."""
        if not collecting.valid_month(month):
            month = collecting.previous_month(today())
        practice = _practice(request)
        page = max(page, 1)
        review = await collecting.month_review(
            db_session, month, practice, today(), REVIEW_PAGE, (page - 1) * REVIEW_PAGE
        )
        fmt = practice.formatting
        return Template(
            "collecting/collect.html",
            context={
                "month": month,
                "month_label": collecting.month_name(month, i18n.current().language),
                "prev_month": collecting.previous_month(collecting.month_bounds(month)[0]),
                "next_month": collecting.month_bounds(month)[1].strftime("%Y-%m"),
                "debtors": review.debtors,
                "count": review.count,
                "total_cents": review.total_cents,
                "page": page,
                "pages": max(1, -(-review.count // REVIEW_PAGE)),
                "whatsapp": collecting.whatsapp_link,
                "mailto": collecting.mailto_link,
                "subject": _(
                    "%(practice)s · %(month)s",
                    practice=practice.practice_name,
                    month=collecting.month_name(month, fmt.language),
                ),
            },
        )

    @post("/collect/{month:str}/sent", opt={"roles": STAFF}, status_code=200)
    async def sent(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, month: str
    ) -> Template:
        form = await request.form()
        try:
            client_id = int(form.get("client_id", ""))
            message = await collecting.mark_sent(
                db_session,
                _user(request),
                client_id,
                month,
                form.get("tone", ""),
                form.get("channel", ""),
            )
        except (ValueError, LookupError):
            raise ValidationException(_("Unknown tone, channel or month.")) from None
        return Template(
            "collecting/_sent.html",
            context={"sent": message, "client_id": client_id, "month": month},
        )


# --- JSON API --------------------------------------------------------------------------------


class VoidBody(Struct):
    reason: str


class RefundBody(Struct):
    amount: str
    method: str
    reason: str | None = None


class CollectingApi(Controller):
    path = "/api/v1"
    tags = ["collecting"]

    @get("/reports/unpaid", summary="Clients with open charges in a month (default: previous)")
    async def unpaid(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, month: str | None = None
    ) -> dict[str, Any]:
        if month is not None and not collecting.valid_month(month):
            raise ValidationException(
                _("The month is written YYYY-MM."), extra={"month": "YYYY-MM"}
            )
        month = month or collecting.previous_month(today())
        practice = _practice(request)
        debtors = await collecting.unpaid_for_month(db_session, month, practice, today())
        return {
            "month": month,
            "clients": [
                {
                    "client_id": d.client_id,
                    "client_name": d.client_name,
                    "count": d.count,
                    "total": decimal_string(d.total_cents),
                    "dates": [x.isoformat() for x in d.dates],
                    "oldest_due_date": d.oldest_due.isoformat(),
                    "message": d.messages[d.payer.suggested_tone],
                }
                for d in debtors
            ],
            "total": decimal_string(sum(d.total_cents for d in debtors)),
        }

    @post(
        "/charges/{charge_id:int}/void",
        opt={"roles": STAFF},
        status_code=200,
        summary="Void a charge",
    )
    async def void(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        charge_id: int,
        data: VoidBody,
    ) -> Response[Any]:
        user = _user(request)
        key = request.headers.get("idempotency-key")
        if await ledger.get_charge(db_session, charge_id) is None:
            raise NotFoundException()

        async def work() -> idempotency.Answer:
            charge = await ledger.void_charge(db_session, user, charge_id, data.reason, key)
            return idempotency.Answer(200, ledger.charge_json(charge))

        try:
            answer = await _run(
                db_session,
                request,
                key,
                "void",
                {"charge_id": charge_id, "reason": data.reason},
                work,
            )
        except (ledger.LedgerError, idempotency.KeyReused) as exc:
            return _refusal(exc)
        return Response(answer.body, status_code=answer.status_code)

    @post(
        "/clients/{client_id:int}/refunds",
        opt={"roles": STAFF},
        status_code=201,
        summary="Refund credit",
    )
    async def refund(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        client_id: int,
        data: RefundBody,
    ) -> Response[Any]:
        practice = _practice(request)
        try:
            amount = parse_decimal_amount(data.amount, max_cents=practice.max_amount_cents)
        except AmountError as exc:
            raise ValidationException(str(exc), extra={"amount": str(exc)}) from None
        if await db_session.get(Client, client_id) is None:
            raise NotFoundException()
        user = _user(request)
        key = request.headers.get("idempotency-key")

        async def work() -> idempotency.Answer:
            r = await ledger.refund_credit(
                db_session, user, practice, client_id, amount, data.method, data.reason, key
            )
            return idempotency.Answer(
                201,
                {
                    "id": r.id,
                    "client_id": client_id,
                    "amount": decimal_string(r.amount_cents),
                    "method": r.method,
                    "refunded_on": r.refunded_on.isoformat(),
                },
            )

        try:
            answer = await _run(
                db_session,
                request,
                key,
                "refund",
                {
                    "client_id": client_id,
                    "amount": amount,
                    "method": data.method,
                    "reason": data.reason,
                },
                work,
            )
        except (ledger.LedgerError, idempotency.KeyReused) as exc:
            return _refusal(exc)
        return Response(answer.body, status_code=answer.status_code)
