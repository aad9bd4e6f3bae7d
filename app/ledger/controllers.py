"""Reception's money screens (register a session, take a payment or top-up, receipt) and the API.

Controllers parse, call one service inside ``idempotency.run_once``, and
render. The money rules live in ``app.ledger.services``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.response import Redirect, Template
from msgspec import Struct
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.catalog import active_services, active_staff
from app.admin.services import PracticeSettings
from app.auth.guards import STAFF
from app.auth.models import User
from app.clients.models import Client
from app.clients.services import ClientService
from app.ledger import idempotency, services
from app.ledger.models import PAYMENT_METHODS, Allocation, Charge, Payment
from app.web import i18n
from app.web.i18n import AmountError, _, parse_amount, parse_decimal_amount, today


def _practice(request: Request[Any, Any, Any]) -> PracticeSettings:
    return request.state.practice


def _user(request: Request[Any, Any, Any]) -> User:
    return request.scope["user"]


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _date_or(value: str | None, default: date, field: str, errors: dict[str, str]) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[field] = _("Enter a date like 2026-03-31.")
        return default


@dataclass
class MoneyForm:
    """What every money form shares: the client, the amount typed the locale's way, a date."""

    values: dict[str, Any]
    errors: dict[str, str]
    client_id: int | None
    amount_cents: int
    day: date


async def read_money_form(
    request: Request[Any, Any, Any], date_field: str
) -> tuple[Any, MoneyForm]:
    form = await request.form()
    errors: dict[str, str] = {}
    client_id = _int_or_none(form.get("client_id"))
    if client_id is None:
        errors["client_id"] = _("Choose a client.")
    amount_cents = 0
    try:
        amount_cents = parse_amount(
            form.get("amount", ""), max_cents=_practice(request).max_amount_cents
        )
    except AmountError as exc:
        errors["amount"] = str(exc)
    day = _date_or(form.get(date_field), today(), date_field, errors)
    values = {k: form.get(k, "") for k in form}
    return form, MoneyForm(values, errors, client_id, amount_cents, day)


async def _client_box(session: AsyncSession, client_id: int | None) -> Client | None:
    if client_id is None:
        return None
    return await session.get(Client, client_id)


def method_labels() -> dict[str, str]:
    return {
        "cash": _("Cash"),
        "card": _("Card"),
        "transfer": _("Bank transfer"),
        "pix": _("Pix"),
        "other": _("Other"),
    }


class LedgerPages(Controller):
    """HTML screens. Reception and admin write; the guard keeps the accountant to reading."""

    tags = ["ledger"]

    # --- choosing a client (shared by both forms) -----------------------------------------

    @get("/ledger/pick-client", name="pick_client")
    async def pick_client(self, db_session: AsyncSession, q: str = "") -> Template:
        """Search results as big buttons; tapping one loads the client box."""
        rows: list[Any] = []
        if q.strip():
            rows = (await ClientService(db_session).search(q, limit=8, summary=True)).items
        return Template("ledger/_pick_results.html", context={"rows": rows, "q": q})

    @get("/ledger/client-box", name="client_box")
    async def client_box(self, db_session: AsyncSession, client_id: int | None = None) -> Template:
        """The chosen client with balance and credit, shown before any amount is confirmed.

        Without a client, the search box to choose one.
        """
        client = await _client_box(db_session, client_id)
        if client_id is not None and client is None:
            raise NotFoundException()
        return Template("ledger/_client_box.html", context={"client": client, "errors": {}})

    # --- register a session ----------------------------------------------------------------

    @get("/charges/new", name="charge_new")
    async def new_charge(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        client_id: int | None = None,
    ) -> Template:
        client = await _client_box(db_session, client_id)
        return await self._charge_form(request, db_session, client, {}, {})

    async def _charge_form(
        self,
        request: Request[Any, Any, Any],
        session: AsyncSession,
        client: Client | None,
        values: dict[str, Any],
        errors: dict[str, str],
        status_code: int = 200,
    ) -> Template:
        service_rows, staff_rows = await active_services(session), await active_staff(session)
        values = {
            "date": today().isoformat(),
            "method": "cash",
            "idempotency_key": str(uuid.uuid4()),
            **values,
        }
        return Template(
            "ledger/charge_new.html",
            context={
                "client": client,
                "services": service_rows,
                "staff": staff_rows,
                "values": values,
                "errors": errors,
                "methods": method_labels(),
            },
            status_code=status_code,
        )

    @post("/charges/new", opt={"roles": STAFF}, status_code=303)
    async def create_charge(
        self, request: Request[Any, Any, Any], db_session: AsyncSession
    ) -> Template | Redirect:
        form, m = await read_money_form(request, "date")
        values, errors, client_id, amount_cents, day = (
            m.values,
            m.errors,
            m.client_id,
            m.amount_cents,
            m.day,
        )
        practice = _practice(request)
        settle = form.get("settle", "open")
        method = form.get("method") or "cash"
        data = services.ChargeInput(
            client_id=client_id or 0,
            amount_cents=amount_cents,
            day=day,
            service_id=_int_or_none(form.get("service_id")),
            staff_id=_int_or_none(form.get("staff_id")),
            description=form.get("description", ""),
            pay_from_credit=settle == "credit",
            pay_now_method=method if settle == "pay_now" else None,
        )
        if errors:
            client = await _client_box(db_session, client_id)
            return await self._charge_form(request, db_session, client, values, errors, 422)
        try:
            answer = await _register_charge(
                db_session, _user(request), practice, data, form.get("idempotency_key")
            )
        except (services.LedgerError, idempotency.KeyReused) as exc:
            field = getattr(exc, "field", None) or "form"
            client = await _client_box(db_session, client_id)
            status = getattr(exc, "status_code", 422)
            return await self._charge_form(
                request, db_session, client, values, {field: str(exc)}, status
            )
        if answer.body.get("payment_id"):
            return Redirect(f"/payments/{answer.body['payment_id']}/receipt", status_code=303)
        return Redirect(f"/charges/{answer.body['id']}", status_code=303)

    @get("/charges/{charge_id:int}", name="charge_detail")
    async def charge_detail(self, db_session: AsyncSession, charge_id: int) -> Template:
        charge = await db_session.get(Charge, charge_id)
        if charge is None:
            raise NotFoundException()
        client = await db_session.get_one(Client, charge.client_id)
        return Template("ledger/charge_detail.html", context={"charge": charge, "client": client})

    # --- payments and top-ups --------------------------------------------------------------

    @get("/payments/new", name="payment_new")
    async def new_payment(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        client_id: int | None = None,
    ) -> Template:
        client = await _client_box(db_session, client_id)
        return self._payment_form(client, {}, {})

    def _payment_form(
        self,
        client: Client | None,
        values: dict[str, Any],
        errors: dict[str, str],
        status_code: int = 200,
    ) -> Template:
        values = {
            "received_on": today().isoformat(),
            "method": "cash",
            "idempotency_key": str(uuid.uuid4()),
            **values,
        }
        return Template(
            "ledger/payment_new.html",
            context={
                "client": client,
                "values": values,
                "errors": errors,
                "methods": method_labels(),
            },
            status_code=status_code,
        )

    @post("/payments", opt={"roles": STAFF}, status_code=303)
    async def create_payment(
        self, request: Request[Any, Any, Any], db_session: AsyncSession
    ) -> Template | Redirect:
        form, m = await read_money_form(request, "received_on")
        values, errors, client_id, amount_cents, received_on = (
            m.values,
            m.errors,
            m.client_id,
            m.amount_cents,
            m.day,
        )
        practice = _practice(request)
        charge_ids = [i for i in (_int_or_none(v) for v in form.getall("charge_ids", [])) if i]
        data = services.PaymentInput(
            client_id=client_id or 0,
            amount_cents=amount_cents,
            method=form.get("method") or "cash",
            received_on=received_on,
            reference=form.get("reference") or None,
            charge_ids=charge_ids or None,
            remainder_to_credit=form.get("remainder_to_credit") == "1",
        )
        if errors:
            return self._payment_form(await _client_box(db_session, client_id), values, errors, 422)
        try:
            answer = await _record_payment(
                db_session, _user(request), practice, data, form.get("idempotency_key")
            )
        except (services.LedgerError, idempotency.KeyReused) as exc:
            field = getattr(exc, "field", None) or "form"
            client = await _client_box(db_session, client_id)
            return self._payment_form(
                client, values, {field: str(exc)}, getattr(exc, "status_code", 422)
            )
        return Redirect(f"/payments/{answer.body['id']}/receipt", status_code=303)

    @get("/payments/{payment_id:int}/receipt", name="receipt")
    async def receipt(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        payment_id: int,
        size: str = "a4",
    ) -> Template:
        # A receipt is handed to the client: it is in the practice's language, as statements are.
        i18n.use(_practice(request).formatting)
        payment = await db_session.get(Payment, payment_id)
        if payment is None:
            raise NotFoundException()
        client = await db_session.get_one(Client, payment.client_id)
        allocations = (
            await db_session.execute(
                select(Allocation.amount_cents, Charge.description, Charge.date)
                .join(Charge, Charge.id == Allocation.charge_id)
                .where(Allocation.payment_id == payment.id)
                .order_by(Charge.date, Charge.id)
            )
        ).all()
        applied = sum(a.amount_cents for a in allocations)
        return Template(
            "ledger/receipt.html",
            context={
                "payment": payment,
                "client": client,
                "allocations": allocations,
                "credit_added_cents": payment.amount_cents - applied,
                "size": "80mm" if size == "80mm" else "a4",
                "methods": method_labels(),
            },
        )


async def _register_charge(
    session: AsyncSession,
    user: User,
    practice: PracticeSettings,
    data: services.ChargeInput,
    key: str | None,
) -> idempotency.Answer:
    async def work() -> idempotency.Answer:
        charge, paid = await services.register_charge(session, user, practice, data, key)
        body = services.charge_json(charge)
        if paid is not None:
            body["payment_id"] = paid.payment.id
        return idempotency.Answer(201, body)

    return await idempotency.run_once(
        session, user.id, key, idempotency.fingerprint("charge", data.content()), work
    )


async def _record_payment(
    session: AsyncSession,
    user: User,
    practice: PracticeSettings,
    data: services.PaymentInput,
    key: str | None,
) -> idempotency.Answer:
    async def work() -> idempotency.Answer:
        result = await services.record_payment(session, user, practice, data, key)
        return idempotency.Answer(201, result.json())

    return await idempotency.run_once(
        session, user.id, key, idempotency.fingerprint("payment", data.content()), work
    )


# --- JSON API --------------------------------------------------------------------------------


class ChargeBody(Struct, forbid_unknown_fields=True):
    client_id: int
    amount: str
    date: date | None = None
    service_id: int | None = None
    staff_id: int | None = None
    description: str | None = None
    due_date: date | None = None
    pay_from_credit: bool = False
    pay_now_method: str | None = None


class PaymentBody(Struct, forbid_unknown_fields=True):
    client_id: int
    amount: str
    method: str
    received_on: date | None = None
    reference: str | None = None
    charge_ids: list[int] | None = None
    remainder_to_credit: bool = False


def _api_amount(value: str, practice: PracticeSettings) -> int:
    try:
        return parse_decimal_amount(value, max_cents=practice.max_amount_cents)
    except AmountError as exc:
        raise ValidationException(str(exc), extra={"amount": str(exc)}) from None


def _answer(answer: idempotency.Answer) -> Response[Any]:
    return Response(answer.body, status_code=answer.status_code)


def _refusal(exc: Exception) -> Response[Any]:
    if isinstance(exc, idempotency.KeyReused):
        return Response({"detail": str(exc)}, status_code=422)
    assert isinstance(exc, services.LedgerError)
    detail: dict[str, Any] = {"detail": exc.message}
    if exc.field:
        detail["field"] = exc.field
    detail.update(exc.extra)
    return Response(detail, status_code=exc.status_code)


class LedgerApi(Controller):
    path = "/api/v1"
    tags = ["ledger"]

    @post("/charges", opt={"roles": STAFF}, status_code=201, summary="Register a charge")
    async def create_charge(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, data: ChargeBody
    ) -> Response[Any]:
        """Register a charge; settle it at once with `pay_now_method` or `pay_from_credit`.

        Honours the `Idempotency-Key` header: a replay returns the first answer.
        """
        practice = _practice(request)
        if data.pay_now_method is not None and data.pay_now_method not in PAYMENT_METHODS:
            raise ValidationException(
                _("Unknown payment method."), extra={"pay_now_method": "unknown"}
            )
        body = services.ChargeInput(
            client_id=data.client_id,
            amount_cents=_api_amount(data.amount, practice),
            day=data.date or today(),
            service_id=data.service_id,
            staff_id=data.staff_id,
            description=data.description or "",
            due_date=data.due_date,
            pay_from_credit=data.pay_from_credit,
            pay_now_method=data.pay_now_method,
        )
        try:
            answer = await _register_charge(
                db_session, _user(request), practice, body, request.headers.get("idempotency-key")
            )
        except (services.LedgerError, idempotency.KeyReused) as exc:
            return _refusal(exc)
        return _answer(answer)

    @get("/charges", summary="List charges")
    async def list_charges(
        self,
        db_session: AsyncSession,
        client_id: int | None = None,
        month: str | None = None,
        status: str | None = None,
        overdue: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        if month is not None and (len(month) != 7 or month[4] != "-"):
            raise ValidationException(
                _("The month is written YYYY-MM."), extra={"month": "YYYY-MM"}
            )
        rows, total = await services.list_charges(
            db_session,
            client_id=client_id,
            month=month,
            status=status,
            overdue=overdue,
            today=today(),
            limit=max(1, min(limit, 500)),
            offset=max(0, offset),
        )
        return {"items": [services.charge_json(c) for c in rows], "total": total}

    @get("/charges/{charge_id:int}", summary="One charge")
    async def get_charge(self, db_session: AsyncSession, charge_id: int) -> dict[str, Any]:
        charge = await services.get_charge(db_session, charge_id)
        if charge is None:
            raise NotFoundException()
        return services.charge_json(charge)

    @post("/payments", opt={"roles": STAFF}, status_code=201, summary="Record a payment or top-up")
    async def create_payment(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, data: PaymentBody
    ) -> Response[Any]:
        """Without `charge_ids` the payment is a top-up (credit). Honours `Idempotency-Key`."""
        practice = _practice(request)
        body = services.PaymentInput(
            client_id=data.client_id,
            amount_cents=_api_amount(data.amount, practice),
            method=data.method,
            received_on=data.received_on or today(),
            reference=data.reference,
            charge_ids=data.charge_ids,
            remainder_to_credit=data.remainder_to_credit,
        )
        try:
            answer = await _record_payment(
                db_session, _user(request), practice, body, request.headers.get("idempotency-key")
            )
        except (services.LedgerError, idempotency.KeyReused) as exc:
            return _refusal(exc)
        return _answer(answer)
