"""The money rules of DESIGN.md ("Money", "Balances", "The journal"), in one place.

Every method here that moves money:
- runs inside the caller's write transaction (``idempotency.run_once`` opens it
  and commits) and writes its journal ``Entry`` rows in that same transaction;
- changes a client's running ``credit_cents`` / ``owed_cents`` with one
  conditional UPDATE, so credit never goes below zero even when several
  worker processes charge the same client at once;
- refuses with ``Refused`` (409: a state conflict) or ``Invalid`` (422: bad
  input), before anything is flushed, so a refused request writes nothing
  (``register_charge`` and ``record_payment`` check for a closed month in
  their balance UPDATE, just after the journal INSERT whose lock the check
  needs; the refusal rolls every row back).

Amounts are integer cents. Entry signs: ``credit_delta`` and ``owed_delta``
are what the event did to the client; ``amount`` = credit_delta − owed_delta
is its effect on the balance (a charge is negative, a payment positive).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, bindparam, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app.admin.models import Service, Staff
from app.admin.services import PracticeSettings
from app.auth.models import User
from app.clients.models import Client
from app.db import HotRead, HotWrite
from app.ledger.models import PAYMENT_METHODS, Allocation, Charge, Entry, Payment, Refund
from app.statements.models import Period
from app.web.i18n import _, decimal_string, format_money, recorded
from app.web.i18n import today as local_today


class LedgerError(Exception):
    status_code = 409

    def __init__(self, message: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra


class Refused(LedgerError):
    """The request is well formed but the ledger's state does not allow it (409)."""


class Invalid(LedgerError):
    """The request's input is wrong (422); ``field`` names the form field."""

    status_code = 422


def _now() -> datetime:
    return datetime.now(UTC)


# The statements every money request sends, built once (building one costs the
# app more CPU than sending it).
_LOCK_JOURNAL = text("LOCK TABLE entries IN ROW EXCLUSIVE MODE")
_CLOSED_MONTH = select(Period.id).where(
    Period.month == bindparam("month"), Period.closed_at.is_not(None)
)
_CLIENT_FOR_UPDATE = (
    select(Client)
    .where(Client.id == bindparam("client_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


def _inserting(model: Any, *keys: str, returning: Any = None) -> HotWrite:
    """An INSERT of ``model`` with a bind for each of ``keys`` (every value given)."""
    statement = insert(model.__table__).values({key: bindparam(key) for key in keys})
    return HotWrite(statement if returning is None else statement.returning(returning))


_ENTRY_KEYS = (
    "client_id", "kind", "amount_cents", "credit_delta_cents", "owed_delta_cents",
    "effective_date", "description", "user_id", "idempotency_key", "created_at",
    "charge_id", "payment_id", "refund_id", "reverses_id",
)  # fmt: skip
_JOURNAL = _inserting(Entry, *_ENTRY_KEYS)
_ALLOCATE = _inserting(
    Allocation, "charge_id", "payment_id", "amount_cents", "created_by_id", "created_at"
)
_credit, _owed = bindparam("credit", type_=Integer), bindparam("owed", type_=Integer)
_MOVE = (
    update(Client)
    .where(
        Client.id == bindparam("client_id"),
        Client.credit_cents + _credit >= 0,
        Client.owed_cents + _owed >= 0,
    )
    .values(
        credit_cents=Client.credit_cents + _credit,
        owed_cents=Client.owed_cents + _owed,
        updated_at=bindparam("updated_at"),
    )
)
_MOVE_CLIENT = HotWrite(_MOVE)
# The same move, made only while the month is open: registering a charge checks
# its month here, after the journal INSERT holds the lock (see ``register_charge``),
# rather than in a SELECT of its own.
_MOVE_CLIENT_IF_OPEN = HotWrite(_MOVE.where(~_CLOSED_MONTH.exists()))
_LOCK_CLIENT = HotRead(
    select(Client.id).where(Client.id == bindparam("client_id")).with_for_update()
)
_cents = bindparam("cents", type_=Integer)
_PAY_CHARGE = HotWrite(
    update(Charge)
    .where(
        Charge.id == bindparam("charge_id"),
        or_(Charge.status == "open", Charge.status == "partial"),
        Charge.paid_cents + _cents <= Charge.amount_cents,
    )
    .values(
        paid_cents=Charge.paid_cents + _cents,
        status=bindparam("status"),
        status_changed_by_id=bindparam("actor"),
        status_changed_at=bindparam("at"),
        updated_at=bindparam("at"),
    )
)


# --- shared checks --------------------------------------------------------------------------


def month_of(day: date) -> str:
    """The month a day belongs to, as periods name it: ``2026-01``."""
    return f"{day.year:04d}-{day.month:02d}"


def check_amount(amount_cents: int, practice: PracticeSettings, field: str = "amount") -> None:
    if amount_cents <= 0:
        raise Invalid(_("The amount must be greater than zero."), field)
    if amount_cents > practice.max_amount_cents:
        raise Invalid(
            _(
                "The amount is above the maximum of %(max)s.",
                max=format_money(practice.max_amount_cents),
            ),
            field,
        )


def check_method(method: str, field: str = "method") -> None:
    if method not in PAYMENT_METHODS:
        raise Invalid(_("Choose how the money was paid."), field)


async def ensure_month_open(session: AsyncSession, day: date) -> None:
    """Refuse any entry dated in a closed month.

    On PostgreSQL the journal is first locked in ROW EXCLUSIVE mode, which a
    month being closed (SHARE mode) waits for and blocks: no entry can slip
    into a month between this check and the close.
    """
    if session.bind.dialect.name == "postgresql":
        await session.execute(_LOCK_JOURNAL)
    await _check_month_open(session, day)


async def _check_month_open(session: AsyncSession, day: date) -> None:
    """``ensure_month_open`` without the lock: for a caller that already holds it."""
    month = month_of(day)
    closed = await session.scalar(_CLOSED_MONTH, {"month": month})
    if closed is not None:
        raise Refused(
            _(
                "%(month)s is closed: nothing dated in it can change. Use a date in an open month.",
                month=month,
            ),
            "date",
        )


async def _client_for_update(session: AsyncSession, client_id: int) -> Client:
    client = await session.scalar(_CLIENT_FOR_UPDATE, {"client_id": client_id})
    if client is None:
        raise Invalid(_("Choose a client."), "client_id")
    return client


async def _move_client(
    session: AsyncSession,
    client_id: int,
    credit_delta: int,
    owed_delta: int,
    *,
    if_open: date | None = None,
) -> None:
    """Apply net deltas to a client's credit and owed in one atomic, conditional UPDATE.

    The WHERE clause makes "credit never negative" hold under concurrency on
    both databases: a second request that would overdraw finds no row to update.
    With ``if_open``, the same UPDATE also finds no row when that day's month is
    closed, for a caller whose journal INSERT already holds the journal's lock.
    """
    params = {
        "client_id": client_id,
        "credit": credit_delta,
        "owed": owed_delta,
        "updated_at": _now(),
    }
    if if_open is None:
        moved = await _MOVE_CLIENT.rowcount(session, params)
    else:
        params["month"] = month_of(if_open)
        moved = await _MOVE_CLIENT_IF_OPEN.rowcount(session, params)
    if moved != 1:
        if if_open is not None:
            await _check_month_open(session, if_open)  # which of the two it was
        raise Refused(_("Not enough credit for this."), "amount")


def _entry_row(
    client_id: int,
    kind: str,
    day: date,
    actor: User,
    *,
    credit_delta: int = 0,
    owed_delta: int = 0,
    description: str = "",
    key: str | None = None,
    **links: Any,
) -> dict[str, Any]:
    """A journal line's column values; every row has every link, so rows go in one INSERT."""
    return {
        "client_id": client_id,
        "kind": kind,
        "amount_cents": credit_delta - owed_delta,
        "credit_delta_cents": credit_delta,
        "owed_delta_cents": owed_delta,
        "effective_date": day,
        "description": description[:300],
        "user_id": actor.id,
        "idempotency_key": key,
        "created_at": _now(),
        **_NO_LINKS,
        **links,
    }


_NO_LINKS = {"charge_id": None, "payment_id": None, "refund_id": None, "reverses_id": None}


def _entry(*args: Any, **kwargs: Any) -> Entry:
    return Entry(**_entry_row(*args, **kwargs))


def _allocation_row(
    charge_id: int, payment_id: int | None, cents: int, actor: User, at: datetime
) -> dict[str, Any]:
    """An allocation's column values (payment_id None: paid from credit), for ``_ALLOCATE``."""
    return {
        "charge_id": charge_id,
        "payment_id": payment_id,
        "amount_cents": cents,
        "created_by_id": actor.id,
        "created_at": at,
    }


def _values(row: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: getattr(row, key) for key in keys}


def _status(amount_cents: int, paid_cents: int) -> str:
    if paid_cents == 0:
        return "open"
    return "paid" if paid_cents >= amount_cents else "partial"


# --- results --------------------------------------------------------------------------------


def charge_json(charge: Charge) -> dict[str, Any]:
    return {
        "id": charge.id,
        "client_id": charge.client_id,
        "amount": decimal_string(charge.amount_cents),
        "date": charge.date.isoformat(),
        "due_date": charge.due_date.isoformat(),
        "status": charge.status,
        "paid_amount": decimal_string(charge.paid_cents),
        "open_amount": decimal_string(charge.open_cents),
        "description": charge.description,
        "service_id": charge.service_id,
        "staff_id": charge.staff_id,
    }


@dataclass
class PaymentResult:
    payment: Payment
    allocations: list[tuple[int, int]] = field(default_factory=list)  # (charge_id, cents)
    credit_added_cents: int = 0

    def json(self) -> dict[str, Any]:
        return {
            "id": self.payment.id,
            "client_id": self.payment.client_id,
            "amount": decimal_string(self.payment.amount_cents),
            "method": self.payment.method,
            "received_on": self.payment.received_on.isoformat(),
            "allocations": [
                {"charge_id": cid, "amount": decimal_string(cents)}
                for cid, cents in self.allocations
            ],
            "credit_added": decimal_string(self.credit_added_cents),
        }


# --- charges --------------------------------------------------------------------------------


@dataclass
class ChargeInput:
    client_id: int
    amount_cents: int
    day: date
    service_id: int | None = None
    staff_id: int | None = None
    description: str = ""
    due_date: date | None = None
    pay_from_credit: bool = False
    pay_now_method: str | None = None
    reference: str | None = None

    def content(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in self.__dict__.items()}


# What registering a charge reads, in one round trip: the client, locked as
# ``_CLIENT_FOR_UPDATE`` locks it, the service's name and commission, the staff
# member's commission. A None name or staff commission means no such row.
_CLIENT_AND_CATALOG = HotRead(
    select(
        Client.id,
        Client.name,
        Client.active,
        Client.credit_cents,
        select(Service.name).where(Service.id == bindparam("service_id")).scalar_subquery(),
        select(Service.commission_bp)
        .where(Service.id == bindparam("service_id"))
        .scalar_subquery(),
        select(Staff.commission_bp).where(Staff.id == bindparam("staff_id")).scalar_subquery(),
    )
    .where(Client.id == bindparam("client_id"))
    .with_for_update(of=Client)
)
_CHARGE_KEYS = (
    "client_id", "date", "service_id", "staff_id", "description", "amount_cents", "paid_cents",
    "due_date", "status", "commission_bp", "created_by_id", "created_at", "updated_at",
)  # fmt: skip
_INSERT_CHARGE = _inserting(Charge, *_CHARGE_KEYS, returning=Charge.id)
_PAYMENT_KEYS = (
    "client_id", "amount_cents", "method", "received_on", "reference", "created_by_id",
    "created_at",
)  # fmt: skip
_INSERT_PAYMENT = _inserting(Payment, *_PAYMENT_KEYS, returning=Payment.id)


async def register_charge(
    session: AsyncSession,
    actor: User,
    practice: PracticeSettings,
    data: ChargeInput,
    key: str | None = None,
) -> tuple[Charge, PaymentResult | None]:
    """Register a session/service owed by a client, and settle it if asked.

    - ``pay_now_method``: a payment of the full amount is recorded and allocated to it;
    - ``pay_from_credit``: the client's credit pays it; refused when credit is short;
    - neither: the charge stays open until paid.
    Refuses: unknown client/service/staff, an archived client, a bad amount,
    both settle options at once, a date in a closed month.
    """
    check_amount(data.amount_cents, practice)
    if data.pay_from_credit and data.pay_now_method:
        raise Invalid(_("Choose either pay now or use credit, not both."), "settle")
    if data.pay_now_method:
        check_method(data.pay_now_method, "pay_now_method")
    due = data.due_date or data.day + timedelta(days=practice.due_days)
    if due < data.day:
        raise Invalid(_("The due date cannot be before the session date."), "due_date")
    # The client, locked, with the catalog's facts in the same round trip.
    params = {"client_id": data.client_id, "service_id": data.service_id, "staff_id": data.staff_id}
    found = await _CLIENT_AND_CATALOG.first(session, params)
    if found is None:
        raise Invalid(_("Choose a client."), "client_id")
    client = found
    service_name, service_bp, staff_bp = found[4:]
    if not client.active:
        raise Invalid(_("This client is archived. Restore the client first."), "client_id")
    if data.pay_from_credit and client.credit_cents < data.amount_cents:
        raise Refused(
            _(
                "Not enough credit: %(name)s has %(credit)s and this costs %(amount)s. "
                "Nothing was recorded.",
                name=client.name,
                credit=format_money(client.credit_cents),
                amount=format_money(data.amount_cents),
            ),
            "settle",
        )

    description = data.description.strip()
    commission_bp = 0
    if data.service_id is not None or data.staff_id is not None:
        if data.service_id is not None and service_name is None:
            raise Invalid(_("Unknown service."), "service_id")
        if data.staff_id is not None and staff_bp is None:
            raise Invalid(_("Unknown staff member."), "staff_id")
        description = description or service_name or ""
        if staff_bp is not None:
            # The service's own commission, when it has one, wins over the staff member's.
            commission_bp = staff_bp if service_bp is None else service_bp
    description = description or recorded("Session")

    settled = data.pay_from_credit or data.pay_now_method is not None
    at = _now()
    # Rows written by INSERT … RETURNING id rather than flushed ORM objects (the
    # unit of work cost more CPU than the rest of the request); the objects
    # returned are built from the same values, outside the session.
    charge = Charge(
        client_id=client.id,
        date=data.day,
        service_id=data.service_id,
        staff_id=data.staff_id,
        description=description[:300],
        amount_cents=data.amount_cents,
        # Settled at once: written paid, rather than inserted open and updated.
        paid_cents=data.amount_cents if settled else 0,
        due_date=due,
        status="paid" if settled else "open",
        commission_bp=commission_bp,
        created_by_id=actor.id,
        created_at=at,
        updated_at=at,
    )
    charge.id = await _INSERT_CHARGE.scalar(session, _values(charge, _CHARGE_KEYS))
    payment = None
    if data.pay_now_method:
        payment = Payment(
            client_id=client.id,
            amount_cents=data.amount_cents,
            method=data.pay_now_method,
            received_on=data.day,
            reference=data.reference,
            created_by_id=actor.id,
            created_at=at,
        )
        payment.id = await _INSERT_PAYMENT.scalar(session, _values(payment, _PAYMENT_KEYS))
    entries = [
        _entry_row(
            client.id,
            "charge",
            data.day,
            actor,
            owed_delta=data.amount_cents,
            description=description,
            key=key,
            charge_id=charge.id,
        )
    ]
    credit_delta, owed_delta = 0, data.amount_cents
    payment_result = None
    if data.pay_from_credit:
        entries.append(
            _entry_row(
                client.id,
                "credit_applied",
                data.day,
                actor,
                credit_delta=-data.amount_cents,
                owed_delta=-data.amount_cents,
                description=recorded("Paid from credit"),
                key=key,
                charge_id=charge.id,
            )
        )
        credit_delta, owed_delta = -data.amount_cents, 0
    elif payment is not None:
        entries += [
            _payment_entry_row(payment, actor, key),
            _entry_row(
                client.id,
                "payment_applied",
                data.day,
                actor,
                credit_delta=-data.amount_cents,
                owed_delta=-data.amount_cents,
                description=description,
                key=key,
                payment_id=payment.id,
                charge_id=charge.id,
            ),
        ]
        owed_delta = 0
        payment_result = PaymentResult(payment, [(charge.id, data.amount_cents)], 0)
    await _JOURNAL.many(session, entries)  # one round trip
    if settled:
        paid_by = payment.id if payment is not None else None
        allocation = _allocation_row(charge.id, paid_by, data.amount_cents, actor, at)
        await _ALLOCATE.rowcount(session, allocation)
    # The month is checked by this UPDATE, after the journal INSERT took the
    # journal's ROW EXCLUSIVE lock (which a month being closed waits for and
    # blocks, see ``ensure_month_open``): no LOCK or SELECT statement of its own.
    # A refusal rolls everything back.
    await _move_client(session, client.id, credit_delta, owed_delta, if_open=data.day)
    return charge, payment_result


def _payment_entry_row(payment: Payment, actor: User, key: str | None) -> dict[str, Any]:
    """The journal line of money received: all of it is credit until allocated."""
    return _entry_row(
        payment.client_id,
        "payment",
        payment.received_on,
        actor,
        credit_delta=payment.amount_cents,
        description=_payment_description(payment),
        key=key,
        payment_id=payment.id,
    )


def _payment_description(payment: Payment) -> str:
    methods = {
        "cash": recorded("Cash"),
        "card": recorded("Card"),
        "transfer": recorded("Bank transfer"),
        "pix": recorded("Pix"),
        "other": recorded("Other"),
    }
    text = recorded("Payment (%(method)s)", method=methods.get(payment.method, payment.method))
    if payment.reference:
        text += f" · {payment.reference}"
    return text


# --- payments -------------------------------------------------------------------------------


@dataclass
class PaymentInput:
    client_id: int
    amount_cents: int
    method: str
    received_on: date
    reference: str | None = None
    charge_ids: list[int] | None = None
    remainder_to_credit: bool = False

    def content(self) -> dict[str, Any]:
        out = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in self.__dict__.items()}
        out["charge_ids"] = sorted(self.charge_ids) if self.charge_ids else None
        return out


async def record_payment(
    session: AsyncSession,
    actor: User,
    practice: PracticeSettings,
    data: PaymentInput,
    key: str | None = None,
) -> PaymentResult:
    """Money received from a client.

    Without ``charge_ids`` it is a top-up: all of it becomes credit. With
    ``charge_ids`` it is allocated to those charges, oldest first; paying more
    than they owe is refused (with the amount owed) unless
    ``remainder_to_credit``, which keeps the rest as credit. Charges already
    paid or void among them are skipped; if none is left to pay, it is refused.
    """
    check_amount(data.amount_cents, practice)
    check_method(data.method)
    client = await _LOCK_CLIENT.first(session, {"client_id": data.client_id})
    if client is None:
        raise Invalid(_("Choose a client."), "client_id")

    charges: list[Charge] = []
    if data.charge_ids:
        charges = list(
            await session.scalars(
                select(Charge)
                .where(Charge.id.in_(set(data.charge_ids)), Charge.client_id == client.id)
                .order_by(Charge.date, Charge.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        )
        if len(charges) != len(set(data.charge_ids)):
            raise Invalid(_("Some of the chosen charges are not this client's."), "charge_ids")
        charges = [c for c in charges if c.status in ("open", "partial")]
        if not charges:
            raise Refused(_("The chosen charges are already paid or void."), "charge_ids")
        owed = sum(c.open_cents for c in charges)
        if data.amount_cents > owed and not data.remainder_to_credit:
            raise Refused(
                _(
                    "This is more than the chosen charges owe (%(owed)s). "
                    "Lower the amount or keep the rest as credit.",
                    owed=format_money(owed),
                ),
                "amount",
                owed=decimal_string(owed),
            )

    # Written as register_charge writes (INSERT … RETURNING id, then the journal and
    # allocations in one round trip each), and the month checked by the balance move.
    payment = Payment(
        client_id=client.id,
        amount_cents=data.amount_cents,
        method=data.method,
        received_on=data.received_on,
        reference=(data.reference or "").strip()[:200] or None,
        created_by_id=actor.id,
        created_at=_now(),
    )
    payment.id = await _INSERT_PAYMENT.scalar(session, _values(payment, _PAYMENT_KEYS))
    applied, allocations, entries = await _allocate(
        session, actor, charges, data.amount_cents, data.received_on, key, payment.id
    )
    await _JOURNAL.many(session, [_payment_entry_row(payment, actor, key), *entries])
    if allocations:
        await _ALLOCATE.many(session, allocations)
    allocated = sum(part for _charge, part in applied)
    result = PaymentResult(payment, applied, data.amount_cents - allocated)
    await _move_client(
        session, client.id, data.amount_cents - allocated, -allocated, if_open=data.received_on
    )
    return result


async def _allocate(
    session: AsyncSession,
    actor: User,
    charges: list[Charge],
    cents: int,
    day: date,
    key: str | None,
    payment_id: int | None,
) -> tuple[list[tuple[int, int]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Apply up to ``cents`` of a payment (or of credit, payment_id None) to ``charges``, in order.

    Writes each charge's paid amount and status. Returns what went where
    ((charge_id, cents) pairs), and the allocations' and journal entries' rows
    for the caller to insert with the rest (it also moves the client's totals).
    """
    applied: list[tuple[int, int]] = []
    allocations: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for charge in charges:
        if cents == 0:
            break
        part = min(cents, charge.open_cents)
        cents -= part
        paid = charge.paid_cents + part
        status, at = _status(charge.amount_cents, paid), _now()
        params = {
            "charge_id": charge.id,
            "cents": part,
            "status": status,
            "actor": actor.id,
            "at": at,
        }
        if await _PAY_CHARGE.rowcount(session, params) != 1:
            raise Refused(_("This charge was already paid."), "charge_ids")
        # What the UPDATE wrote, as loaded: not a change for the session to flush again.
        set_committed_value(charge, "paid_cents", paid)
        set_committed_value(charge, "status", status)
        applied.append((charge.id, part))
        allocations.append(_allocation_row(charge.id, payment_id, part, actor, at))
        entries.append(
            _entry_row(
                charge.client_id,
                "payment_applied" if payment_id else "credit_applied",
                day,
                actor,
                credit_delta=-part,
                owed_delta=-part,
                description=charge.description,
                key=key,
                payment_id=payment_id,
                charge_id=charge.id,
            )
        )
    return applied, allocations, entries


# --- collecting: batches, undoing, voids, refunds, credit ----------------------------------


@dataclass
class BatchResult:
    payments: list[PaymentResult] = field(default_factory=list)
    skipped: list[Charge] = field(default_factory=list)  # already paid or void

    def json(self) -> dict[str, Any]:
        return {
            "payments": [p.json() for p in self.payments],
            "skipped": [c.id for c in self.skipped],
        }


async def _lock_charges(session: AsyncSession, charge_ids: list[int]) -> list[Charge]:
    rows = list(
        await session.scalars(
            select(Charge)
            .where(Charge.id.in_(set(charge_ids)))
            .order_by(Charge.client_id, Charge.date, Charge.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    if len(rows) != len(set(charge_ids)):
        raise Invalid(_("Some of the chosen charges do not exist."), "charge_ids")
    return rows


async def pay_charges(
    session: AsyncSession,
    actor: User,
    practice: PracticeSettings,
    charge_ids: list[int],
    method: str,
    day: date,
    key: str | None = None,
) -> BatchResult:
    """Confirm payment of the chosen charges in full: one payment per client, atomically.

    Charges already paid or void are skipped and reported, never paid twice.
    Refuses an empty choice and a choice where nothing is left to pay.
    """
    if not charge_ids:
        raise Invalid(_("Tick at least one charge."), "charge_ids")
    check_method(method)
    result = BatchResult()
    by_client: dict[int, list[Charge]] = {}
    for charge in await _lock_charges(session, charge_ids):
        if charge.status in ("open", "partial"):
            by_client.setdefault(charge.client_id, []).append(charge)
        else:
            result.skipped.append(charge)
    if not by_client:
        raise Refused(_("All the chosen charges are already paid or void."), "charge_ids")
    for client_id, charges in by_client.items():
        data = PaymentInput(
            client_id=client_id,
            amount_cents=sum(c.open_cents for c in charges),
            method=method,
            received_on=day,
            charge_ids=[c.id for c in charges],
        )
        result.payments.append(await record_payment(session, actor, practice, data, key))
    return result


async def apply_credit(
    session: AsyncSession,
    actor: User,
    client_id: int,
    charge_ids: list[int] | None = None,
    key: str | None = None,
) -> list[tuple[int, int]]:
    """Use the client's credit to pay open charges (the chosen ones, or all), oldest first.

    Refuses when the client has no credit or nothing is open.
    """
    client = await _client_for_update(session, client_id)
    day = today_for_entries()
    await ensure_month_open(session, day)
    query = select(Charge).where(
        Charge.client_id == client.id, Charge.status.in_(("open", "partial"))
    )
    if charge_ids:
        query = query.where(Charge.id.in_(set(charge_ids)))
    charges = list(
        await session.scalars(
            query.order_by(Charge.date, Charge.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    if not charges:
        raise Refused(_("Nothing is open to pay."), "charge_ids")
    if client.credit_cents <= 0:
        raise Refused(_("%(name)s has no credit to use.", name=client.name), "charge_ids")
    applied, allocations, entries = await _allocate(
        session, actor, charges, client.credit_cents, day, key, payment_id=None
    )
    if entries:
        await _JOURNAL.many(session, entries)
        await _ALLOCATE.many(session, allocations)
    used = sum(part for _charge, part in applied)
    await _move_client(session, client.id, -used, -used)
    return applied


def today_for_entries() -> date:
    """Voids, refunds and reversals take effect on the day they are recorded."""
    return local_today()


async def reopen_charge(
    session: AsyncSession, actor: User, charge_id: int, key: str | None = None
) -> list[str]:
    """Put a paid or partly paid charge back to open, with reversing records only.

    Each allocation to it is undone by an opposite allocation. A payment that
    paid only this charge (as "mark paid" records it) is reversed too, so the
    money it claimed was received no longer counts; money from a payment that
    also paid something else, or from credit, goes back to the client's credit.
    Returns notes for the person who asked. Refuses a charge that is open or void.
    """
    charge = (await _lock_charges(session, [charge_id]))[0]
    if charge.status not in ("paid", "partial"):
        raise Refused(_("This charge is not paid."), "charge_id")
    day = today_for_entries()
    await ensure_month_open(session, day)
    per_payment = (
        await session.execute(
            select(Allocation.payment_id, func.sum(Allocation.amount_cents))
            .where(Allocation.charge_id == charge.id)
            .group_by(Allocation.payment_id)
        )
    ).all()
    notes: list[str] = []
    credit_delta = owed_delta = 0
    for payment_id, cents in per_payment:
        if not cents:
            continue
        session.add(
            Allocation(
                charge_id=charge.id,
                payment_id=payment_id,
                amount_cents=-cents,
                created_by_id=actor.id,
                created_at=_now(),
            )
        )
        session.add(
            _entry(
                charge.client_id,
                "unallocated",
                day,
                actor,
                credit_delta=cents,
                owed_delta=cents,
                description=charge.description,
                key=key,
                payment_id=payment_id,
                charge_id=charge.id,
            )
        )
        credit_delta += cents
        owed_delta += cents
        payment = await session.get(Payment, payment_id) if payment_id else None
        elsewhere = 0
        if payment is not None:
            elsewhere = await session.scalar(
                select(func.coalesce(func.sum(Allocation.amount_cents), 0)).where(
                    Allocation.payment_id == payment.id, Allocation.charge_id != charge.id
                )
            )
        if (
            payment is not None
            and payment.reversed_at is None
            and not elsewhere
            and payment.amount_cents == cents
        ):
            payment.reversed_at, payment.reversed_by_id = _now(), actor.id
            session.add(
                _entry(
                    charge.client_id,
                    "payment_reversed",
                    day,
                    actor,
                    credit_delta=-payment.amount_cents,
                    description=recorded(
                        "Payment reversed: %(what)s", what=_payment_description(payment)
                    ),
                    key=key,
                    payment_id=payment.id,
                )
            )
            credit_delta -= payment.amount_cents
            notes.append(_("The payment of %(amount)s was reversed.", amount=format_money(cents)))
        else:
            notes.append(
                _("%(amount)s went back to the client's credit.", amount=format_money(cents))
            )
    await session.execute(
        update(Charge)
        .where(Charge.id == charge.id)
        .values(
            paid_cents=0, status="open", status_changed_by_id=actor.id, status_changed_at=_now()
        )
        .execution_options(synchronize_session=False)
    )
    charge.paid_cents, charge.status = 0, "open"
    await _move_client(session, charge.client_id, credit_delta, owed_delta)
    return notes


async def void_charge(
    session: AsyncSession, actor: User, charge_id: int, reason: str, key: str | None = None
) -> Charge:
    """Cancel a charge with a reason: a reversing entry takes its amount off what is owed.

    Refuses without a reason, when already void, and while payments are
    allocated to it (reopen it first, which reverses them).
    """
    reason = (reason or "").strip()
    if not reason:
        raise Invalid(_("Say why the charge is cancelled."), "reason")
    charge = (await _lock_charges(session, [charge_id]))[0]
    if charge.status == "void":
        raise Refused(_("This charge is already void."), "charge_id")
    if charge.paid_cents > 0:
        raise Refused(
            _("Payments are allocated to this charge. Put it back to open first, then void it."),
            "charge_id",
        )
    day = today_for_entries()
    await ensure_month_open(session, day)
    session.add(
        _entry(
            charge.client_id,
            "void",
            day,
            actor,
            owed_delta=-charge.amount_cents,
            description=recorded(
                "Cancelled: %(what)s — %(why)s", what=charge.description, why=reason
            ),
            key=key,
            charge_id=charge.id,
        )
    )
    await _move_client(session, charge.client_id, 0, -charge.amount_cents)
    charge.status, charge.void_reason = "void", reason[:1000]
    charge.status_changed_by_id, charge.status_changed_at = actor.id, _now()
    await session.flush()
    return charge


async def refund_credit(
    session: AsyncSession,
    actor: User,
    practice: PracticeSettings,
    client_id: int,
    amount_cents: int,
    method: str,
    reason: str | None = None,
    key: str | None = None,
) -> Refund:
    """Hand credit back to the client. Refuses more than the credit the client holds."""
    check_amount(amount_cents, practice)
    check_method(method)
    client = await _client_for_update(session, client_id)
    day = today_for_entries()
    await ensure_month_open(session, day)
    if client.credit_cents < amount_cents:
        raise Refused(
            _(
                "%(name)s has only %(credit)s of credit.",
                name=client.name,
                credit=format_money(client.credit_cents),
            ),
            "amount",
        )
    refund = Refund(
        client_id=client.id,
        amount_cents=amount_cents,
        method=method,
        refunded_on=day,
        reason=(reason or "").strip() or None,
        created_by_id=actor.id,
        created_at=_now(),
    )
    session.add(refund)
    await session.flush()
    session.add(
        _entry(
            client.id,
            "refund",
            day,
            actor,
            credit_delta=-amount_cents,
            description=recorded("Refund") + (f" · {refund.reason}" if refund.reason else ""),
            key=key,
            refund_id=refund.id,
        )
    )
    await _move_client(session, client.id, -amount_cents, 0)
    return refund


# --- reading --------------------------------------------------------------------------------


async def get_charge(session: AsyncSession, charge_id: int) -> Charge | None:
    return await session.get(Charge, charge_id)


async def list_charges(
    session: AsyncSession,
    *,
    client_id: int | None = None,
    month: str | None = None,
    status: str | None = None,
    overdue: bool | None = None,
    today: date | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Charge], int]:
    """Charges filtered as the API and the open-charges list need; oldest first."""
    conditions = []
    if client_id is not None:
        conditions.append(Charge.client_id == client_id)
    if month:
        first = date.fromisoformat(month + "-01")
        nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
        conditions.append(and_(Charge.date >= first, Charge.date < nxt))
    if status:
        conditions.append(Charge.status == status)
    if overdue is not None and today is not None:
        is_overdue = and_(Charge.status.in_(("open", "partial")), Charge.due_date < today)
        conditions.append(is_overdue if overdue else ~is_overdue)
    query = select(Charge).where(*conditions)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(query.order_by(Charge.date, Charge.id).limit(limit).offset(offset))
    return list(rows), total


# --- the journal check ----------------------------------------------------------------------


@dataclass
class Difference:
    client_id: int
    what: str
    stored: int
    computed: int


async def verify(session: AsyncSession) -> list[Difference]:
    """Recompute every client's credit and owed three ways and list each disagreement.

    1. the journal: sum of credit/owed deltas of its entries;
    2. the records: payments − allocations − refunds (credit), open parts of charges (owed);
    3. each charge's paid amount against the sum of its allocations.
    """
    diffs: list[Difference] = []
    journal = {
        cid: (credit or 0, owed or 0)
        for cid, credit, owed in await session.execute(
            select(
                Entry.client_id,
                func.sum(Entry.credit_delta_cents),
                func.sum(Entry.owed_delta_cents),
            ).group_by(Entry.client_id)
        )
    }
    paid_in = dict(
        (
            await session.execute(
                select(Payment.client_id, func.sum(Payment.amount_cents))
                .where(Payment.reversed_at.is_(None))
                .group_by(Payment.client_id)
            )
        ).all()
    )
    refunded = dict(
        (
            await session.execute(
                select(Refund.client_id, func.sum(Refund.amount_cents)).group_by(Refund.client_id)
            )
        ).all()
    )
    allocated = dict(
        (
            await session.execute(
                select(Charge.client_id, func.sum(Allocation.amount_cents))
                .join(Charge, Charge.id == Allocation.charge_id)
                .group_by(Charge.client_id)
            )
        ).all()
    )
    open_parts = dict(
        (
            await session.execute(
                select(Charge.client_id, func.sum(Charge.amount_cents - Charge.paid_cents))
                .where(Charge.status != "void")
                .group_by(Charge.client_id)
            )
        ).all()
    )
    clients = await session.execute(select(Client.id, Client.credit_cents, Client.owed_cents))
    for cid, credit, owed in clients:
        j_credit, j_owed = journal.get(cid, (0, 0))
        r_credit = (paid_in.get(cid) or 0) - (allocated.get(cid) or 0) - (refunded.get(cid) or 0)
        r_owed = open_parts.get(cid) or 0
        for what, computed, stored in (
            ("credit (journal)", j_credit, credit),
            ("owed (journal)", j_owed, owed),
            ("credit (payments - allocations - refunds)", r_credit, credit),
            ("owed (open charges)", r_owed, owed),
        ):
            if computed != stored:
                diffs.append(Difference(cid, what, stored, computed))
    bad_charges = await session.execute(
        select(
            Charge.client_id,
            Charge.id,
            Charge.paid_cents,
            func.coalesce(func.sum(Allocation.amount_cents), 0),
        )
        .outerjoin(Allocation, Allocation.charge_id == Charge.id)
        .group_by(Charge.id, Charge.client_id, Charge.paid_cents)
        .having(Charge.paid_cents != func.coalesce(func.sum(Allocation.amount_cents), 0))
    )
    for cid, charge_id, paid, alloc in bad_charges:
        diffs.append(Difference(cid, f"charge {charge_id} paid vs allocations", paid, alloc))
    return diffs
