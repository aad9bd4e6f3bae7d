"""The accountant's CSV files for a month, produced row chunk by row chunk.

Each export reads its rows through a server-side cursor (``yield_per``) in a
database session of its own — the request's session is closed before a
streamed body runs — and turns every chunk into bytes before asking for the
next, so memory stays flat however many rows the month holds.

Columns are fixed identifiers (an accountant's formulas and imports rely on
them); amounts are raw numbers in the file's decimal format, with the
practice's ISO currency code in a column of its own; dates are ISO.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import anyio
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.models import Service, Staff
from app.auth.models import User
from app.clients.models import Client
from app.collecting.services import month_bounds, valid_month
from app.expenses.models import Expense
from app.exports.csvfmt import CsvEncoder, CsvFormat, amount, iso, percent, safe_text
from app.ledger.models import Charge, Entry, Payment
from app.reports.services import commission_rows

CHUNK_ROWS = 2000

HEADERS: dict[str, list[str]] = {
    "entries": [
        "date",
        "kind",
        "client_id",
        "client_name",
        "description",
        "amount",
        "credit_delta",
        "owed_delta",
        "currency",
        "charge_id",
        "payment_id",
        "user",
        "entry_id",
    ],
    "payments": [
        "received_on",
        "payment_id",
        "client_id",
        "client_name",
        "method",
        "amount",
        "currency",
        "reference",
        "reversed",
        "recorded_by",
    ],
    "charges": [
        "date",
        "charge_id",
        "client_id",
        "client_name",
        "service",
        "staff",
        "description",
        "amount",
        "paid",
        "open",
        "status",
        "due_date",
        "currency",
    ],
    "commissions": ["staff", "basis", "base_amount", "rate_percent", "commission", "currency"],
    "expenses": ["date", "category", "method", "amount", "currency", "note"],
}
EXPORTS = tuple(HEADERS)


@dataclass(frozen=True)
class Export:
    """One file to produce: which rows, which month, in which format."""

    what: str  # one of EXPORTS
    month: str  # YYYY-MM
    fmt: CsvFormat
    currency: str
    commission_basis: str = "received"

    def __post_init__(self) -> None:
        if self.what not in HEADERS:
            raise ValueError(f"exports are {', '.join(EXPORTS)}")
        if not valid_month(self.month):
            raise ValueError("months are written YYYY-MM")


Row = list[str]
Chunks = AsyncIterator[list[Row]]


def _number(value: int | None) -> str:
    return "" if value is None else str(value)


async def _chunks(
    session: AsyncSession, query: Select[Any], to_row: Callable[[Any], Row]
) -> Chunks:
    """The query's rows through a server-side cursor, ``CHUNK_ROWS`` at a time, as CSV rows.

    Plain column rows on the session's connection: no ORM loading to pay per row.
    """
    connection = await session.connection()
    result = await connection.stream(query.execution_options(yield_per=CHUNK_ROWS))
    async for partition in result.partitions():
        yield [to_row(r) for r in partition]


def _entries(session: AsyncSession, job: Export, first: date, nxt: date) -> Chunks:
    fmt, currency = job.fmt, job.currency
    query = (
        select(
            Entry.effective_date,
            Entry.kind,
            Entry.client_id,
            Client.name,
            Entry.description,
            Entry.amount_cents,
            Entry.credit_delta_cents,
            Entry.owed_delta_cents,
            Entry.charge_id,
            Entry.payment_id,
            User.username,
            Entry.id,
        )
        .join(Client, Client.id == Entry.client_id)
        .outerjoin(User, User.id == Entry.user_id)
        .where(Entry.effective_date >= first, Entry.effective_date < nxt)
        .order_by(Entry.effective_date, Entry.id)
    )

    def row(r: Any) -> Row:
        day, kind, client_id, name, text, cents, credit, owed, charge, payment, user, id_ = r
        return [
            iso(day),
            safe_text(kind),
            str(client_id),
            safe_text(name),
            safe_text(text),
            amount(cents, fmt),
            amount(credit, fmt),
            amount(owed, fmt),
            currency,
            _number(charge),
            _number(payment),
            safe_text(user),
            str(id_),
        ]

    return _chunks(session, query, row)


def _payments(session: AsyncSession, job: Export, first: date, nxt: date) -> Chunks:
    fmt, currency = job.fmt, job.currency
    query = (
        select(
            Payment.received_on,
            Payment.id,
            Payment.client_id,
            Client.name,
            Payment.method,
            Payment.amount_cents,
            Payment.reference,
            Payment.reversed_at,
            User.username,
        )
        .join(Client, Client.id == Payment.client_id)
        .outerjoin(User, User.id == Payment.created_by_id)
        .where(Payment.received_on >= first, Payment.received_on < nxt)
        .order_by(Payment.received_on, Payment.id)
    )

    def row(r: Any) -> Row:
        day, id_, client_id, name, method, cents, reference, reversed_at, user = r
        return [
            iso(day),
            str(id_),
            str(client_id),
            safe_text(name),
            safe_text(method),
            amount(cents, fmt),
            currency,
            safe_text(reference),
            "yes" if reversed_at is not None else "no",
            safe_text(user),
        ]

    return _chunks(session, query, row)


def _charges(session: AsyncSession, job: Export, first: date, nxt: date) -> Chunks:
    fmt, currency = job.fmt, job.currency
    query = (
        select(
            Charge.date,
            Charge.id,
            Charge.client_id,
            Client.name,
            Service.name,
            Staff.name,
            Charge.description,
            Charge.amount_cents,
            Charge.paid_cents,
            Charge.status,
            Charge.due_date,
        )
        .join(Client, Client.id == Charge.client_id)
        .outerjoin(Service, Service.id == Charge.service_id)
        .outerjoin(Staff, Staff.id == Charge.staff_id)
        .where(Charge.date >= first, Charge.date < nxt)
        .order_by(Charge.date, Charge.id)
    )

    def row(r: Any) -> Row:
        day, id_, client_id, name, service, staff, text, cents, paid, status, due = r
        return [
            iso(day),
            str(id_),
            str(client_id),
            safe_text(name),
            safe_text(service),
            safe_text(staff),
            safe_text(text),
            amount(cents, fmt),
            amount(paid, fmt),
            amount(0 if status == "void" else cents - paid, fmt),
            safe_text(status),
            iso(due),
            currency,
        ]

    return _chunks(session, query, row)


def _expenses(session: AsyncSession, job: Export, first: date, nxt: date) -> Chunks:
    fmt, currency = job.fmt, job.currency
    query = (
        select(
            Expense.spent_on, Expense.category, Expense.method, Expense.amount_cents, Expense.note
        )
        .where(Expense.spent_on >= first, Expense.spent_on < nxt)
        .order_by(Expense.spent_on, Expense.id)
    )

    def row(r: Any) -> Row:
        day, category, method, cents, note = r
        return [
            iso(day),
            safe_text(category),
            safe_text(method),
            amount(cents, fmt),
            currency,
            safe_text(note),
        ]

    return _chunks(session, query, row)


async def _commissions(session: AsyncSession, job: Export, first: date, nxt: date) -> Chunks:
    """One row per staff member and rate (a handful of rows: no cursor needed)."""
    rows = await commission_rows(session, first, nxt - timedelta(days=1), job.commission_basis)
    yield [
        [
            safe_text(r.staff_name),
            r.basis,
            amount(r.base_cents, job.fmt),
            percent(r.commission_bp, job.fmt),
            amount(r.commission_cents, job.fmt),
            job.currency,
        ]
        for r in rows
    ]


_ROWS: dict[str, Callable[[AsyncSession, Export, date, date], Chunks]] = {
    "entries": _entries,
    "payments": _payments,
    "charges": _charges,
    "commissions": _commissions,
    "expenses": _expenses,
}


async def stream_csv(
    maker: async_sessionmaker[AsyncSession], job: Export
) -> AsyncGenerator[bytes, None]:
    """The whole file as encoded chunks: the header row, then the rows a chunk at a time.

    Opens and closes its own read session, so it can run after the request's
    session is gone (a streamed response body).
    """
    encoder = CsvEncoder(job.fmt)
    yield encoder.encode([HEADERS[job.what]])
    first, nxt = month_bounds(job.month)
    session = maker()
    try:
        async for rows in _ROWS[job.what](session, job, first, nxt):
            yield encoder.encode(rows)
    finally:
        # A client that leaves mid-download gets this generator closed or
        # cancelled: the connection must still go back to the pool, so the
        # close is shielded from the cancellation.
        with anyio.CancelScope(shield=True):
            await session.close()
