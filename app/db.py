"""Engine, sessions and the database rules both backends must honour.

SQLite is the embedded default and PostgreSQL the production database; the
same code runs on both. On SQLite a write transaction starts with
``BEGIN IMMEDIATE`` (see ``begin_write``) so two processes never both read and
then try to upgrade to a write lock, which is how "database is locked" happens.
"""

from __future__ import annotations

import asyncio
import contextvars
import fcntl
import logging
import os
import time
import weakref
from collections import namedtuple
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from advanced_alchemy.base import (
    AdvancedDeclarativeBase,
    BasicAttributes,
    CommonTableAttributes,
    orm_registry,
)
from advanced_alchemy.extensions.litestar import (
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
)
from advanced_alchemy.mixins import AuditColumns
from sqlalchemy import BigInteger, Executable, Identity, Integer, event
from sqlalchemy.ext.asyncio import (
    AsyncAttrs,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Mapped, declared_attr, mapped_column
from sqlalchemy.util import await_only

from app.config import ROOT, Settings

log = logging.getLogger("saldo.sql")
metadata = orm_registry.metadata

# The request id of the request being served, for slow-query warnings.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

SQLITE_BUSY_TIMEOUT_MS = 30_000


class IdentityPrimaryKey:
    """An identity column: the database numbers rows itself, also for bulk COPY/INSERT."""

    @declared_attr
    def id(cls) -> Mapped[int]:
        return mapped_column(
            BigInteger().with_variant(Integer(), "sqlite"),
            Identity(),
            primary_key=True,
            sort_order=-100,
        )


class Base(
    CommonTableAttributes, BasicAttributes, IdentityPrimaryKey, AdvancedDeclarativeBase, AsyncAttrs
):
    __abstract__ = True


class AuditBase(Base, AuditColumns):
    """Base with created_at / updated_at."""

    __abstract__ = True


def _install_sqlite_rules(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in (
            "journal_mode=WAL",
            "foreign_keys=ON",
            f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
            "synchronous=FULL",
            # 32 MB of page cache: a 50,000-client search scan stays in memory.
            "cache_size=-32000",
        ):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get("saldo_write") else "DEFERRED"
        sql = f"BEGIN {mode}"
        # Straight on aiosqlite: one trip to its thread, where SQLAlchemy's cursor
        # takes three (open, execute, close), on every request.
        try:
            await_only(conn.connection.driver_connection.execute(sql))
        except Exception as error:
            conn._handle_dbapi_exception(error, sql, (), None, None)

    # SQLAlchemy rolls a session's transaction back when it closes it, then the pool
    # rolled back again on check-in: a second trip to aiosqlite's thread on every
    # request. The pool resets with no trip (see create_engine): it rolls back only
    # a connection still inside a transaction, which SQLite itself tells us (a flag
    # sqlite3 lets any thread read; the driver never opens one on its own,
    # isolation_level None).
    @event.listens_for(engine.sync_engine.pool, "reset")
    def _reset(dbapi_conn: Any, _record: Any, state: Any) -> None:
        if state.asyncio_safe and dbapi_conn.driver_connection.in_transaction:
            dbapi_conn.rollback()

    # A writer leaves the queue when its connection goes back to the pool, which a
    # session does at commit, rollback and close, after the COMMIT went through,
    # and the pool does for a connection thrown away too: the next writer never
    # finds SQLite's lock still held (leaving at the "commit" event, just before
    # the COMMIT, measured 3-14% fewer POSTs a second).
    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _leave(_dbapi: Any, record: Any) -> None:
        writers = record.info.pop(_QUEUED, None)
        if writers is not None:
            writers.leave()

    database = engine.url.database
    path = Path(database) if database and database != ":memory:" else None
    _sqlite_writers[engine.sync_engine.dialect] = SqliteWriters(path)


class SqliteWriters:
    """The queue of writers in front of a SQLite database's lock (see ``begin_write``).

    A writer that finds SQLite's lock taken sleeps in SQLite's busy handler and
    tries again (1, 2, 5 … 100 ms a try): under load the lock sat idle between
    sleepers while one process took it again and again, and a money POST could
    wait seconds (p99 3 s at 32 connections). Writers of a process queue on an
    asyncio lock, the processes on an flock of ``<database>-writers``: a waiter
    wakes the moment the writer before it is done. Only the order of asking
    changes; SQLite's own lock still guards the data, so a writer that stops
    waiting here (SQLite's busy timeout, or cancelled) is safe, just unordered.
    """

    def __init__(self, path: Path | None) -> None:
        self.local = asyncio.Lock()
        self.path = path
        self.fd: int | None = None

    async def enter(self) -> bool:
        """Wait for this writer's turn; False when it stopped waiting (see above)."""
        timeout = SQLITE_BUSY_TIMEOUT_MS / 1000
        try:
            await asyncio.wait_for(self.local.acquire(), timeout)
        except TimeoutError:
            return False
        if self.path is None:
            return True
        if self.fd is None:
            self.fd = os.open(f"{self.path}-writers", os.O_RDWR | os.O_CREAT, 0o600)
            weakref.finalize(self, os.close, self.fd)
        fd = self.fd
        turn = asyncio.get_running_loop().run_in_executor(None, fcntl.flock, fd, fcntl.LOCK_EX)
        try:
            await asyncio.wait_for(asyncio.shield(turn), timeout)
        except BaseException as exc:
            # The flock may still be granted after this writer has gone: hand it back then.
            turn.add_done_callback(lambda f: f.exception() or fcntl.flock(fd, fcntl.LOCK_UN))
            self.local.release()
            if isinstance(exc, TimeoutError):
                return False
            raise
        return True

    def leave(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        self.local.release()


_QUEUED = "saldo_writers"
# One queue per engine, found through its dialect (shared by the engine's option copies).
_sqlite_writers: weakref.WeakKeyDictionary[Any, SqliteWriters] = weakref.WeakKeyDictionary()


def _warn_if_slow(conn_info: dict[str, Any], started: float, statement: str) -> None:
    elapsed_ms = (time.perf_counter() - started) * 1000
    if elapsed_ms >= conn_info.get("saldo_slow_ms", float("inf")):
        log.warning(
            "slow query %.0f ms request_id=%s sql=%s",
            elapsed_ms,
            request_id_var.get(),
            " ".join(statement.split())[:500],
        )


def _install_slow_query_log(engine: AsyncEngine, threshold_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _threshold(_dbapi_conn: Any, record: Any) -> None:
        record.info["saldo_slow_ms"] = threshold_ms  # HotRead reads it too

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _start(conn: Any, _c: Any, _s: Any, _p: Any, _ctx: Any, _many: Any) -> None:
        conn.info.setdefault("saldo_t0", []).append(time.perf_counter())

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _end(conn: Any, _c: Any, statement: str, _p: Any, _ctx: Any, _many: Any) -> None:
        _warn_if_slow(conn.info, conn.info["saldo_t0"].pop(), statement)


class HotRead:
    """A read done on every request or keystroke, sent on the driver's own connection.

    SQLAlchemy's execution of even a prebuilt statement (execution context,
    result metadata, row objects) took more of the app's CPU than the driver's
    own call (``bench/cpu.py --ab-hot-read``: a search 3.1 -> 2.2 ms of app CPU
    on a slow machine). So the statement is compiled once per dialect, binds go
    through the column types' bind processors, and rows come straight from
    asyncpg or aiosqlite through the types' result processors, as named tuples
    with attribute access like SQLAlchemy's rows. It runs inside the session's
    transaction: on SQLite, checking out the connection sends our BEGIN (see
    ``_install_sqlite_rules``); SQLAlchemy's asyncpg adapter sends BEGIN just
    before its own first statement, so here it is begun when SQLAlchemy has
    sent nothing yet. A read session on PostgreSQL (see ``read_session_maker``)
    is in autocommit: there each statement runs on its own.
    """

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _compile(self, dialect: Any) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        defaults = [*compiled.insert_prefetch, *compiled.update_prefetch]
        if defaults:
            # Python-side defaults are SQLAlchemy's to compute: name them in the statement.
            raise ValueError(f"HotRead: give {[c.key for c in defaults]} a value of their own")
        order = tuple(compiled.positiontup or ())
        binds = []
        # Values written in the statement (``x >= 0``) are binds that carry their value.
        fixed = {
            name: bind.effective_value
            for name, bind in compiled.binds.items()
            if not bind.required and bind.callable is None
        }
        for i, name in enumerate(order):
            bind = compiled.binds[name]
            if bind.expanding:
                raise ValueError(f"HotRead: bind {name!r} is a list (IN): not supported")
            if (process := bind.type._cached_bind_processor(dialect)) is not None:
                binds.append((i, process))
        columns = list(self.statement.exported_columns)  # a SELECT's, or what RETURNING gives
        row = namedtuple("HotRow", [c.key for c in columns], rename=True)  # type: ignore[misc]
        processors = [
            (i, process)
            for i, c in enumerate(columns)
            if (process := c.type._cached_result_processor(dialect, None)) is not None
        ]
        return _Compiled(compiled.string, order, fixed, binds, row, processors)

    async def _sent(self, session: AsyncSession, params: Any, call: str) -> Any:
        """Sent on the driver: ``call`` is "fetch" (the rows), "execute" (the rowcount) or
        "executemany" (``params`` a list). Timed; errors are raised as SQLAlchemy's."""
        dialect = session.bind.dialect
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = self._compile(dialect)
        conn, adapter = await _connection(session)
        args = (
            [compiled.args(p) for p in params] if call == "executemany" else compiled.args(params)
        )
        started = time.perf_counter()
        try:
            if dialect.name == "sqlite":
                answer = await _on_aiosqlite(adapter.driver_connection, call, compiled.sql, args)
            else:
                if adapter._transaction is None and not adapter.autocommit:
                    # SQLAlchemy's asyncpg adapter sends BEGIN just before its first
                    # statement: a statement sent around it would run (and commit) alone.
                    async with adapter._execute_mutex:
                        if adapter._transaction is None:
                            await adapter._start_transaction()
                answer = await _on_asyncpg(adapter.driver_connection, call, compiled.sql, args)
        except Exception as error:
            await _raise_as_sqlalchemy(conn, adapter, error, compiled.sql, params)
        _warn_if_slow(conn.info, started, compiled.sql)
        return answer

    async def all(self, session: AsyncSession, params: dict[str, Any]) -> list[Any]:
        records = await self._sent(session, params, "fetch")
        compiled = self._compiled[session.bind.dialect.name]
        # tuple.__new__ is what namedtuple's _make calls, less its Python frame and
        # length check (the statement fixes the length): a search makes 21 rows.
        make, row, convert = tuple.__new__, compiled.row, compiled.convert
        return [make(row, convert(record)) for record in records]

    async def first(self, session: AsyncSession, params: dict[str, Any]) -> Any:
        rows = await self.all(session, params)
        return rows[0] if rows else None

    async def scalar(self, session: AsyncSession, params: dict[str, Any]) -> Any:
        row = await self.first(session, params)
        return None if row is None else row[0]


_HOT_CONNECTION = "saldo_hot_connection"


async def _connection(session: AsyncSession) -> tuple[Any, Any]:
    """The session's connection and its driver's adapter, found once per transaction.

    ``session.connection()`` and ``get_raw_connection()`` cost about 50 µs of CPU
    a call (greenlet hops) even when the session already holds the connection,
    and a money POST sends nine hot statements in one transaction. They are kept
    with the transaction they belong to: after a commit or rollback the next
    call checks out and begins anew (on SQLite, that sends our BEGIN).
    """
    sync = session.sync_session
    kept = sync.info.get(_HOT_CONNECTION)
    if kept is not None:
        transaction, conn, adapter = kept
        if (
            transaction is sync.get_transaction()
            and transaction.is_active
            and not conn.sync_connection.invalidated
        ):
            return conn, adapter
    conn = await session.connection()
    adapter = (await conn.get_raw_connection()).dbapi_connection
    sync.info[_HOT_CONNECTION] = (sync.get_transaction(), conn, adapter)
    return conn, adapter


async def _on_asyncpg(driver: Any, call: str, sql: str, args: list[Any]) -> Any:
    if call == "executemany":
        return await driver.executemany(sql, args)
    if call == "execute":
        status = await driver.execute(sql, *args)  # "UPDATE 1", "INSERT 0 1" …
        return int(status.rsplit(" ", 1)[-1])
    return await driver.fetch(sql, *args)


async def _on_aiosqlite(driver: Any, call: str, sql: str, args: list[Any]) -> Any:
    if call == "executemany":
        return await driver.executemany(sql, args)
    if call == "execute":
        return (await driver.execute(sql, args)).rowcount
    return await driver.execute_fetchall(sql, args)


class HotWrite(HotRead):
    """An INSERT, UPDATE or DELETE every money request sends: see HotRead.

    Sent inside the session's write transaction (``begin_write`` first), so the
    session's commit or rollback keeps or discards it with the rest. Objects
    the session holds unflushed are flushed first, as SQLAlchemy's own
    execution would (autoflush). With RETURNING, ``all``/``first``/``scalar``
    give its rows. SQLAlchemy's session does not see what this changes, as with
    any bulk statement (``synchronize_session=False``).
    """

    async def _flushed(self, session: AsyncSession) -> None:
        if session.new or session.dirty or session.deleted:
            await session.flush()

    async def all(self, session: AsyncSession, params: dict[str, Any]) -> list[Any]:
        await self._flushed(session)
        return await super().all(session, params)

    async def rowcount(self, session: AsyncSession, params: dict[str, Any]) -> int:
        """Run it; the number of rows it touched."""
        await self._flushed(session)
        return await self._sent(session, params, "execute")

    async def many(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        """Run it once a row, the rows sent together (one round trip on asyncpg)."""
        await self._flushed(session)
        await self._sent(session, rows, "executemany")


@dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...]  # the binds' names, in the order of $1, $2 …
    fixed: dict[str, Any]  # the values of binds the statement itself gives
    binds: list[tuple[int, Any]]  # (position, bind processor) where the type has one
    row: Any  # a namedtuple of the result's columns (none for a write without RETURNING)
    processors: list[tuple[int, Any]]  # (column, result processor) where the type has one

    def args(self, params: dict[str, Any]) -> list[Any]:
        values = [params[name] if name in params else self.fixed[name] for name in self.order]
        for i, process in self.binds:
            values[i] = process(values[i])
        return values

    def convert(self, record: Any) -> Any:
        if not self.processors:
            return record
        values = list(record)
        for i, process in self.processors:
            values[i] = process(values[i])
        return values


async def _raise_as_sqlalchemy(
    conn: Any, adapter: Any, error: Exception, sql: str, params: Any
) -> NoReturn:
    """Raise a driver's error as SQLAlchemy would: wrapped, the connection invalidated if lost."""
    try:
        adapter._handle_exception(error)  # asyncpg's error as the DB-API's (IntegrityError …)
    except Exception as translated:
        error = translated

    def handle(sync_conn: Any) -> NoReturn:
        sync_conn._handle_dbapi_exception(error, sql, params, None, None)

    await conn.run_sync(handle)
    raise error  # pragma: no cover  (handle always raises)


def create_engine(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        if settings.db_pooler:
            log.warning("DB_POOLER is for PostgreSQL behind a pooler: SQLite ignores it")
        engine = create_async_engine(
            settings.database_url, pool_size=5, max_overflow=10, pool_reset_on_return=None
        )
        _install_sqlite_rules(engine)
    else:
        engine = create_async_engine(
            settings.database_url,
            # The pool keeps what a busy worker uses at once: an overflow connection
            # is closed when it is given back, and under steady load that meant a new
            # PostgreSQL backend several times a second (and 40% of the CPU).
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size // 2,
            pool_pre_ping=False,
            connect_args=connect_args(settings.db_pooler),
        )
    _install_slow_query_log(engine, settings.slow_query_ms)
    return engine


def connect_args(pooler: str) -> dict[str, Any]:
    """asyncpg's options for PostgreSQL behind a pooler in transaction mode (DB_POOLER).

    Such a pooler hands each transaction, and each statement outside one,
    whichever server connection is free: a statement prepared and kept on one
    is missing on the next, and two processes' statement names meet on one.
    So nothing is kept, and every statement is prepared unnamed: asyncpg then
    sends its Parse again with the Bind and Execute, in the one exchange the
    pooler gives to one server connection (a named one, closed later, let the
    pooler move between the prepare and the execute).
    """
    if pooler != "transaction":
        return {}
    return {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": lambda: "",
    }


def alchemy_config(settings: Settings, engine: AsyncEngine) -> SQLAlchemyAsyncConfig:
    return SQLAlchemyAsyncConfig(
        engine_instance=engine,
        session_config=AsyncSessionConfig(expire_on_commit=False),
        engine_config=EngineConfig(),
        # Services commit explicitly; anything uncommitted is rolled back.
        before_send_handler=None,
        create_all=False,
    )


def session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def read_session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for requests that only read (GET, HEAD): on PostgreSQL in autocommit.

    Under READ COMMITTED every statement already reads what is committed at
    that moment, so a read-only request loses nothing without a transaction
    and saves two round trips (BEGIN, ROLLBACK). Should such a request write
    after all, ``begin_write`` gives it a real transaction. SQLite keeps its
    read transaction: there it is what keeps a page's reads consistent.
    """
    if engine.dialect.name == "sqlite":
        return session_maker(engine)
    return session_maker(engine.execution_options(isolation_level="AUTOCOMMIT"))


def _autocommit(session: AsyncSession) -> bool:
    return session.bind.sync_engine.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


async def begin_write(session: AsyncSession) -> None:
    """Start the write transaction of a service method.

    On SQLite, ends any read transaction the request already had, then begins
    one that holds the write lock from its first statement (BEGIN IMMEDIATE).
    On PostgreSQL every statement reads what is committed at that moment (READ
    COMMITTED), so the request's read transaction simply goes on as the write
    one: no COMMIT and BEGIN in between (a read-only request's autocommit
    session, see ``read_session_maker``, begins one here). Either way, reads
    done before this call must be repeated inside it when they matter.
    """
    if session.bind.dialect.name != "sqlite":
        if not _autocommit(session):
            await session.connection()
            return
        if session.in_transaction():
            await session.commit()  # nothing to commit: gives back the autocommit connection
        await session.connection(execution_options={"isolation_level": "READ COMMITTED"})
        return
    if session.in_transaction():
        await session.commit()
    writers = _sqlite_writers.get(session.bind.sync_engine.dialect)
    queued = await writers.enter() if writers else False
    try:
        conn = await session.connection(execution_options={"saldo_write": True})
    except BaseException:
        if queued:
            writers.leave()
        raise
    if queued:
        conn.info[_QUEUED] = writers


@asynccontextmanager
async def write_session(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for work outside a request (CLI, start-up): write, commit or roll back."""
    async with maker() as session:
        await begin_write(session)
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


def alembic_ini_path() -> str:
    return str(ROOT / "alembic.ini")


def import_models() -> None:
    """Import every domain's models so that the metadata knows all tables."""
    import app.admin.models
    import app.audit
    import app.auth.models
    import app.clients.models
    import app.collecting.models
    import app.expenses.models
    import app.imports.models
    import app.ledger.models
    import app.statements.models  # noqa: F401
