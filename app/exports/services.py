"""The accountant's CSV files for a month, streamed a chunk at a time.

Each export reads its rows in a database session of its own — the request's
session is closed before a streamed body runs — and hands the file on in
chunks, so memory stays flat however many rows the month holds.

Columns are fixed identifiers (an accountant's formulas and imports rely on
them); amounts are raw numbers in the file's decimal format, with the
practice's ISO currency code in a column of its own; dates are ISO.

Two ways to write the same bytes. On PostgreSQL the database writes the file
itself: ``COPY (SELECT …) TO STDOUT (FORMAT csv)``, each cell formatted in
SQL, and the worker only passes bytes along (a year of entries is a million
rows; Python formatting every cell could not keep up). Elsewhere (SQLite) the
rows come through a server-side cursor and ``csvfmt`` formats them. Every
column is described once, in ``LAYOUTS``, with the kind of cell it holds;
``_python_cells`` and ``_sql_cell`` write each kind alike, and a test holds the
two outputs byte for byte equal.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import anyio
from sqlalchemy import (
    Numeric,
    Select,
    Text,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.admin.models import Service, Staff
from app.auth.models import User
from app.clients.models import Client
from app.collecting.services import month_bounds, valid_month
from app.expenses.models import Expense
from app.exports.csvfmt import (
    FORMULA_START,
    CsvEncoder,
    CsvFormat,
    amount,
    amounts,
    isos,
    numbers,
    percent,
    safe_text,
    safe_texts,
)
from app.ledger.models import Charge, Entry, Payment
from app.reports.services import commission_rows

CHUNK_ROWS = 2000
# COPY chunks waiting for the response to take them: a client reading slowly
# holds the database back instead of filling the worker's memory.
COPY_QUEUE_CHUNKS = 8

Chunks = AsyncIterator[Iterable[Sequence[str]]]

# The kinds of cell a file holds, each written the same way by Python and by SQL.
DATE, TEXT, AMOUNT, NUMBER, FLAG, CURRENCY = "date", "text", "amount", "number", "flag", "currency"


@dataclass(frozen=True)
class Column:
    """One column of a file: its header, what it reads and how its cells are written.

    ``value`` is ``None`` for the currency column: the practice's code, not a database value.
    """

    header: str
    cell: str
    value: Any = None


@dataclass(frozen=True)
class Layout:
    """A file's columns, the query that reads its rows and their order (oldest first)."""

    columns: tuple[Column, ...]
    rows: Callable[[list[Any], date, date], Select[Any]]
    order: tuple[Any, ...]

    @property
    def values(self) -> list[Any]:
        return [c.value for c in self.columns if c.value is not None]


def _entry_rows(cells: list[Any], first: date, nxt: date) -> Select[Any]:
    return (
        select(*cells)
        .select_from(Entry)
        .join(Client, Client.id == Entry.client_id)
        .outerjoin(User, User.id == Entry.user_id)
        .where(Entry.effective_date >= first, Entry.effective_date < nxt)
    )


def _payment_rows(cells: list[Any], first: date, nxt: date) -> Select[Any]:
    return (
        select(*cells)
        .select_from(Payment)
        .join(Client, Client.id == Payment.client_id)
        .outerjoin(User, User.id == Payment.created_by_id)
        .where(Payment.received_on >= first, Payment.received_on < nxt)
    )


def _charge_rows(cells: list[Any], first: date, nxt: date) -> Select[Any]:
    return (
        select(*cells)
        .select_from(Charge)
        .join(Client, Client.id == Charge.client_id)
        .outerjoin(Service, Service.id == Charge.service_id)
        .outerjoin(Staff, Staff.id == Charge.staff_id)
        .where(Charge.date >= first, Charge.date < nxt)
    )


def _expense_rows(cells: list[Any], first: date, nxt: date) -> Select[Any]:
    return (
        select(*cells).select_from(Expense).where(Expense.spent_on >= first, Expense.spent_on < nxt)
    )


LAYOUTS: dict[str, Layout] = {
    "entries": Layout(
        (
            Column("date", DATE, Entry.effective_date),
            Column("kind", TEXT, Entry.kind),
            Column("client_id", NUMBER, Entry.client_id),
            Column("client_name", TEXT, Client.name),
            Column("description", TEXT, Entry.description),
            Column("amount", AMOUNT, Entry.amount_cents),
            Column("credit_delta", AMOUNT, Entry.credit_delta_cents),
            Column("owed_delta", AMOUNT, Entry.owed_delta_cents),
            Column("currency", CURRENCY),
            Column("charge_id", NUMBER, Entry.charge_id),
            Column("payment_id", NUMBER, Entry.payment_id),
            Column("user", TEXT, User.username),
            Column("entry_id", NUMBER, Entry.id),
        ),
        _entry_rows,
        (Entry.effective_date, Entry.id),
    ),
    "payments": Layout(
        (
            Column("received_on", DATE, Payment.received_on),
            Column("payment_id", NUMBER, Payment.id),
            Column("client_id", NUMBER, Payment.client_id),
            Column("client_name", TEXT, Client.name),
            Column("method", TEXT, Payment.method),
            Column("amount", AMOUNT, Payment.amount_cents),
            Column("currency", CURRENCY),
            Column("reference", TEXT, Payment.reference),
            Column("reversed", FLAG, Payment.reversed_at),
            Column("recorded_by", TEXT, User.username),
        ),
        _payment_rows,
        (Payment.received_on, Payment.id),
    ),
    "charges": Layout(
        (
            Column("date", DATE, Charge.date),
            Column("charge_id", NUMBER, Charge.id),
            Column("client_id", NUMBER, Charge.client_id),
            Column("client_name", TEXT, Client.name),
            Column("service", TEXT, Service.name),
            Column("staff", TEXT, Staff.name),
            Column("description", TEXT, Charge.description),
            Column("amount", AMOUNT, Charge.amount_cents),
            Column("paid", AMOUNT, Charge.paid_cents),
            # What is still owed; a void charge owes nothing (``Charge.open_cents``).
            Column(
                "open",
                AMOUNT,
                case((Charge.status == "void", 0), else_=Charge.amount_cents - Charge.paid_cents),
            ),
            Column("status", TEXT, Charge.status),
            Column("due_date", DATE, Charge.due_date),
            Column("currency", CURRENCY),
        ),
        _charge_rows,
        (Charge.date, Charge.id),
    ),
    "expenses": Layout(
        (
            Column("date", DATE, Expense.spent_on),
            Column("category", TEXT, Expense.category),
            Column("method", TEXT, Expense.method),
            Column("amount", AMOUNT, Expense.amount_cents),
            Column("currency", CURRENCY),
            Column("note", TEXT, Expense.note),
        ),
        _expense_rows,
        (Expense.spent_on, Expense.id),
    ),
}


COMMISSION_HEADERS = ["staff", "basis", "base_amount", "rate_percent", "commission", "currency"]
HEADERS: dict[str, list[str]] = {
    **{what: [c.header for c in layout.columns] for what, layout in LAYOUTS.items()},
    "commissions": COMMISSION_HEADERS,
}
EXPORTS = ("entries", "payments", "charges", "commissions", "expenses")


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


# --- Python: the rows through a cursor, formatted by csvfmt --------------------------------


def _flags(values: Sequence[object]) -> list[str]:
    return ["no" if v is None else "yes" for v in values]


def _python_cells(
    layout: Layout, fmt: CsvFormat, currency: str
) -> Callable[[Sequence[Sequence[Any]]], Iterable[Sequence[str]]]:
    """A function from a chunk of database rows (``layout.values``) to the file's rows.

    Column by column: one comprehension per column instead of a call per cell.
    """
    writers: dict[str, Callable[[Any], list[str]]] = {
        DATE: isos,
        TEXT: safe_texts,
        AMOUNT: lambda values: amounts(values, fmt),
        NUMBER: numbers,
        FLAG: _flags,
    }
    cells = [writers[c.cell] for c in layout.columns if c.value is not None]
    at = [i for i, c in enumerate(layout.columns) if c.cell == CURRENCY]

    def rows(chunk: Sequence[Sequence[Any]]) -> Iterable[Sequence[str]]:
        if not chunk:
            return []
        by_column = zip(*chunk, strict=True)
        columns = [write(values) for write, values in zip(cells, by_column, strict=True)]
        for i in at:
            columns.insert(i, [currency] * len(chunk))
        return zip(*columns, strict=True)

    return rows


async def _python_chunks(
    connection: AsyncConnection, layout: Layout, job: Export, first: date, nxt: date
) -> Chunks:
    """The rows through a server-side cursor, ``CHUNK_ROWS`` at a time, as CSV rows.

    Plain column tuples on the session's connection: no ORM loading to pay per row.
    """
    query = layout.rows(layout.values, first, nxt).order_by(*layout.order)
    to_rows = _python_cells(layout, job.fmt, job.currency)
    result = await connection.stream(query.execution_options(yield_per=CHUNK_ROWS))
    async for partition in result.partitions():
        yield to_rows(partition)


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


# --- PostgreSQL: COPY writes the file ---------------------------------------------------------


def _sql(constant: str) -> Any:
    """One of this module's constants as an SQL string literal (never a user's value)."""
    return literal_column("'" + constant.replace("'", "''") + "'", Text)


def _sql_cell(cell: str, value: Any, fmt: CsvFormat, currency: str, iso_dates: bool) -> Any:
    """The cell as ``csvfmt`` writes it, in SQL; an empty cell is NULL.

    COPY writes integers, numerics and (with ``DateStyle`` ISO) dates as
    ``csvfmt`` does, so those go out as they are. COPY quotes an empty string
    (``""``) to tell it from NULL, which the csv module writes bare: so every
    empty text is made NULL.
    """
    if cell == CURRENCY:
        return literal(currency, Text) if currency else null()
    if cell == NUMBER:
        return value
    if cell == DATE:
        return value if iso_dates else func.to_char(value, _sql("YYYY-MM-DD"))
    if cell == FLAG:
        return case((value.is_(None), _sql("no")), else_=_sql("yes"))
    if cell == AMOUNT:
        # cents × 0.01 is an exact numeric with two decimals: -0.05, 0.00, 1234.50.
        number = value * literal_column("0.01", Numeric)
        if fmt.decimal == ".":
            return number
        return func.replace(cast(number, Text), _sql("."), _sql(fmt.decimal))
    # ascii() is the first character's code (0 for an empty text): an integer test
    # per cell, cheaper than comparing strings.
    formula = func.ascii(value).in_([literal_column(str(ord(c))) for c in FORMULA_START])
    return case((formula, _sql("'") + value), else_=func.nullif(value, _sql("")))


def _copy_query(layout: Layout, job: Export, first: date, nxt: date, iso_dates: bool) -> Any:
    """The file's SELECT for COPY: the rows read and sorted first, the cells formatted after.

    Formatting in an outer query keeps PostgreSQL from sorting the wide, formatted
    rows (a subquery with its own ORDER BY is not merged into the outer one).
    """
    values = [v.label(f"v{i}") for i, v in enumerate(layout.values)]
    keys = [k.label(f"k{i}") for i, k in enumerate(layout.order)]
    rows = layout.rows([*values, *keys], first, nxt).order_by(*layout.order).subquery("file")
    found = iter(rows.c[f"v{i}"] for i in range(len(values)))
    cells = [
        _sql_cell(
            c.cell, None if c.value is None else next(found), job.fmt, job.currency, iso_dates
        )
        for c in layout.columns
    ]
    return select(*cells).order_by(*(rows.c[f"k{i}"] for i in range(len(keys))))


def _can_copy(connection: AsyncConnection) -> bool:
    return connection.dialect.name == "postgresql" and connection.dialect.driver == "asyncpg"


class _RowEnds:
    """COPY ends rows with ``\\n``; the csv module, and Excel, with ``\\r\\n``.

    A line break inside a quoted cell stays as it is (the csv module leaves it
    too): only breaks outside quotes are rows' ends. COPY doubles the quotes in a
    cell, so counting quotes tells inside from outside, also across chunks.
    """

    def __init__(self) -> None:
        self._quoted = False

    def __call__(self, data: bytes | bytearray) -> bytes:
        """The chunk with its rows ended by ``\\r\\n`` (asyncpg hands over a ``bytearray``)."""
        if not self._quoted and b'"' not in data:
            return bytes(data.replace(b"\n", b"\r\n"))
        parts = bytes(data).split(b'"')
        for i in range(1 if self._quoted else 0, len(parts), 2):
            parts[i] = parts[i].replace(b"\n", b"\r\n")
        if len(parts) % 2 == 0:  # an odd number of quotes: the chunk ends in the other state
            self._quoted = not self._quoted
        return b'"'.join(parts)


def _recoder(fmt: CsvFormat) -> Callable[[bytes], bytes] | None:
    """COPY writes UTF-8; ``latin-1`` files get ``?`` for what latin-1 cannot hold, as
    ``CsvEncoder`` does. ``None`` when the bytes are right as they are."""
    if codecs.lookup(fmt.encoding).name in ("utf-8", "utf-8-sig"):
        return None
    decoder = codecs.getincrementaldecoder("utf-8")()
    encoding = fmt.encoding
    return lambda data: decoder.decode(data).encode(encoding, errors="replace")


async def _copy_chunks(
    connection: AsyncConnection, layout: Layout, job: Export, first: date, nxt: date
) -> AsyncIterator[bytes]:
    """The file's rows as PostgreSQL writes them, a chunk at a time as they arrive.

    The COPY runs in a task of its own that hands each chunk over a small queue;
    asyncpg reads no further from the server while the queue is full. Leaving
    early cancels the COPY (asyncpg tells the server to stop).
    """
    fmt = job.fmt
    raw = (await connection.get_raw_connection()).driver_connection
    iso_dates = raw.get_settings().DateStyle.startswith("ISO")
    query = _copy_query(layout, job, first, nxt, iso_dates)
    compiled = query.compile(dialect=connection.dialect)
    args = [compiled.params[name] for name in compiled.positiontup or ()]
    queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue(COPY_QUEUE_CHUNKS)

    async def copy() -> None:
        try:
            await raw.copy_from_query(
                str(compiled), *args, output=queue.put, format="csv", delimiter=fmt.delimiter
            )
        except Exception as exc:  # raised again on the reader's side
            await queue.put(exc)
        else:
            await queue.put(None)

    row_ends, recode = _RowEnds(), _recoder(fmt)
    task = asyncio.create_task(copy())
    try:
        while (chunk := await queue.get()) is not None:
            if isinstance(chunk, Exception):
                raise chunk
            chunk = row_ends(chunk)
            yield recode(chunk) if recode else chunk
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- the file --------------------------------------------------------------------------------


async def stream_csv(
    maker: async_sessionmaker[AsyncSession], job: Export, *, use_copy: bool | None = None
) -> AsyncGenerator[bytes, None]:
    """The whole file as encoded chunks: the header row, then the rows a chunk at a time.

    Opens and closes its own read session, so it can run after the request's
    session is gone (a streamed response body). ``use_copy``: PostgreSQL's COPY
    writes the rows (``None``: wherever the database can).
    """
    encoder = CsvEncoder(job.fmt)
    yield encoder.encode([HEADERS[job.what]])
    first, nxt = month_bounds(job.month)
    session = maker()
    try:
        if job.what == "commissions":
            async for rows in _commissions(session, job, first, nxt):
                yield encoder.encode(rows)
            return
        layout = LAYOUTS[job.what]
        connection = await session.connection()
        if use_copy is None:
            use_copy = _can_copy(connection)
        if use_copy:
            async for chunk in _copy_chunks(connection, layout, job, first, nxt):
                yield chunk
        else:
            async for rows in _python_chunks(connection, layout, job, first, nxt):
                yield encoder.encode(rows)
    finally:
        # A client that leaves mid-download gets this generator closed or
        # cancelled: the connection must still go back to the pool, so the
        # close is shielded from the cancellation.
        with anyio.CancelScope(shield=True):
            await session.close()
