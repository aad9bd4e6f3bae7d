"""The foundation an operator and every other feature stand on: health, start-up, database rules,
request ids, logs, errors and the command line. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import gc
import json
import logging
import os
import re
import shlex
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import (
    String,
    TypeDecorator,
    bindparam,
    func,
    insert,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import db as db_module
from app import startup
from app.auth import services as auth_services
from app.auth.models import User
from app.clients.models import Client
from app.config import Settings
from app.db import (
    HotRead,
    HotWrite,
    begin_write,
    create_engine,
    read_session_maker,
    request_id_var,
    session_maker,
)
from app.ledger.models import Allocation, Charge, Entry
from app.main import create_app
from tests.conftest import free_port, wait_for_health

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PASSWORD = "correct horse battery"  # what the make_user and login fixtures use
only_sqlite = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
only_postgresql = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _cli(*args: str, stdin: str, settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "SALDO_DATA_DIR": str(settings.data_dir),
        "SECRET_KEY": settings.secret_key,
    }
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


# --------------------------------------------------------------------------- health


async def test_health_says_ok_when_the_database_answers(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "ok", "database": "ok"}


def _replace_with_a_directory(path: Path) -> None:
    """A directory where the database file was: SQLite can no longer open it."""
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    path.mkdir()


async def test_health_says_503_when_the_database_goes_away(
    db_url: str, app: Litestar, client: AsyncTestClient[Litestar], request: pytest.FixtureRequest
) -> None:
    assert (await client.get("/health")).status_code == 200

    await app.state.engine.dispose()
    if db_url.startswith("sqlite"):
        _replace_with_a_directory(Path(db_url.split(":///", 1)[1]))
    else:
        server = request.getfixturevalue("postgres")
        server.drop_database(db_url.rsplit("/", 1)[1])
    response = await client.get("/health")

    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "unavailable", "database": "unreachable"}


# --------------------------------------------------------------------------- start-up


async def test_app_refuses_to_start_on_an_unmigrated_database(
    empty_db_url: str, settings_for: Any, client_for: Any
) -> None:
    app = create_app(settings_for(empty_db_url))
    try:
        with pytest.raises(startup.NotMigrated) as raised:
            async with client_for(app):
                pass
    finally:
        await app.state.engine.dispose()

    assert "python -m app db upgrade" in str(raised.value)


async def test_a_migrated_database_passes_the_start_up_check(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        await startup.require_migrated(engine)
        assert await startup.current_revision(engine) == startup.head_revision()
    finally:
        await engine.dispose()


@pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
def test_server_exits_with_the_fix_when_the_database_is_unmigrated(
    empty_db_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": empty_db_url,
        "SALDO_DATA_DIR": str(tmp_path),
        "SECRET_KEY": "test-secret",
    }
    done = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )

    assert done.returncode != 0
    assert "python -m app db upgrade" in done.stdout + done.stderr


def _image_server_command(port: int) -> list[str]:
    """The uvicorn command the Docker image runs (its CMD), on 127.0.0.1:``port``, one worker."""
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M)[1])
    script = cmd[-1].split("exec ", 1)[1]
    script = script.replace("${PORT:-8000}", str(port)).replace("${WEB_CONCURRENCY:-1}", "1")
    argv = shlex.split(script.replace("0.0.0.0", "127.0.0.1"))  # noqa: S104 (replaced, not bound)
    assert argv[0] == "uvicorn", argv
    return [sys.executable, "-m", *argv]


@only_sqlite
def test_the_images_server_logs_each_request_once_without_its_query(
    db_url: str, tmp_path: Path
) -> None:
    # What reception types into the search box is a client's name: it stays out of the log.
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "SALDO_DATA_DIR": str(tmp_path),
        "SECRET_KEY": "test-secret",
    }
    log = tmp_path / "server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            _image_server_command(port), env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_health(base, process, log)
        answer = httpx.get(base + "/clients?q=Zuleica+Brandao", timeout=5)
        assert answer.status_code in (302, 303, 401)
    finally:
        process.terminate()
        process.wait(timeout=10)
    text = log.read_text()
    assert "Zuleica" not in text, text
    assert len(re.findall(r"GET /clients\b", text)) == 1, text
    assert re.search(r"saldo\.access \w+ GET /clients \d{3} ", text), text


async def test_start_up_takes_what_it_built_out_of_the_collectors_walks(
    app: Litestar, client_for: Any
) -> None:
    # A full collection walking the whole app stopped a loaded worker for 150 ms.
    async with client_for(app):
        assert gc.get_freeze_count() > 0
        assert not any(thing is app for thing in gc.get_objects())
    # Given back at shutdown: the next app built in this process can be collected.
    assert gc.get_freeze_count() == 0
    assert any(thing is app for thing in gc.get_objects())


async def test_admin_from_the_environment_is_created_at_start_and_can_log_in(
    settings: Settings, csrf: Any, client_for: Any
) -> None:
    configured = dataclasses.replace(
        settings,
        admin_user="owner",
        admin_pass_hash=auth_services.hash_password(DEFAULT_PASSWORD),
    )
    app = create_app(configured)
    try:
        async with client_for(app) as client:
            await client.get("/login")
            response = await client.post(
                "/login",
                data={
                    "username": "owner",
                    "password": DEFAULT_PASSWORD,
                    "_csrf_token": await csrf(client),
                },
                follow_redirects=False,
            )
            assert response.status_code == 303
            async with app.state.session_maker() as session:
                owner = await session.scalar(select(User).where(User.username == "owner"))
            assert owner is not None and owner.role == "admin"
    finally:
        await app.state.engine.dispose()


# --------------------------------------------------------------------------- SQLite rules


@only_sqlite
async def test_sqlite_connections_use_wal_foreign_keys_busy_timeout_and_full_sync(
    maker: async_sessionmaker[AsyncSession],
) -> None:
    async with maker() as session:
        pragmas = {
            name: await session.scalar(text(f"PRAGMA {name}"))
            for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
        }

    assert pragmas["journal_mode"] == "wal"
    assert pragmas["foreign_keys"] == 1
    assert pragmas["busy_timeout"] >= 1000
    assert pragmas["synchronous"] == 2  # FULL


def _try_write_lock(database_url: str) -> bool:
    """Whether another connection could take SQLite's write lock right now."""
    other = sqlite3.connect(database_url.split(":///", 1)[1], timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return False
    finally:
        other.close()


@only_sqlite
async def test_begin_write_holds_the_sqlite_write_lock_from_the_start(
    db_url: str, maker: async_sessionmaker[AsyncSession]
) -> None:
    async with maker() as session:
        await begin_write(session)
        assert not _try_write_lock(db_url), "BEGIN IMMEDIATE should hold the write lock"
        await session.rollback()
    assert _try_write_lock(db_url)


@only_sqlite
async def test_a_sqlite_connection_given_back_inside_a_transaction_is_rolled_back(
    db_url: str, maker: async_sessionmaker[AsyncSession], make_user: Any
) -> None:
    """The pool's own reset: it rolls back what SQLAlchemy did not end, and only that."""
    user = await make_user("reception", "ana")
    async with maker.kw["bind"].connect() as conn:
        # Behind SQLAlchemy's back: it has begun nothing on this connection.
        driver = (await conn.get_raw_connection()).driver_connection
        await driver.execute("BEGIN IMMEDIATE")
        await driver.execute("UPDATE users SET display_name = 'Lost' WHERE id = ?", (user.id,))
    assert not driver.in_transaction
    assert _try_write_lock(db_url)
    assert await _display_name(maker, user.id) == user.display_name


@only_sqlite
async def test_a_begin_that_finds_sqlite_locked_raises_sqlalchemys_error(
    db_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our BEGIN goes straight to aiosqlite; its error still comes out as SQLAlchemy's."""
    monkeypatch.setattr(db_module, "SQLITE_BUSY_TIMEOUT_MS", 50)
    engine = create_engine(settings)
    async with engine.connect():  # connected before the lock: the BEGIN is what waits
        pass
    other = sqlite3.connect(db_url.split(":///", 1)[1], isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        async with session_maker(engine)() as session:
            with pytest.raises(OperationalError, match="locked"):
                await begin_write(session)
    finally:
        other.execute("ROLLBACK")
        other.close()
        await engine.dispose()


@only_sqlite
async def test_a_sqlite_request_goes_to_the_drivers_thread_once_each_for_begin_and_rollback(
    maker: async_sessionmaker[AsyncSession], make_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiosqlite runs every call on its own thread; each trip costs the request CPU."""
    import aiosqlite

    await make_user("reception", "ana")
    trips: list[str] = []
    execute = aiosqlite.Connection._execute

    async def counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(fn.__name__)
        return await execute(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    async with maker() as session:
        await session.connection()  # the pool's connection is open already: no trip for it
        await session.rollback()
        trips.clear()
        await HotRead(_HOT).all(session, {"name": "ana"})
    assert trips == ["execute", "_execute_fetchall", "rollback"], trips


@only_sqlite
async def test_sqlite_writers_take_turns_and_every_way_out_passes_the_turn_on(
    maker: async_sessionmaker[AsyncSession],
) -> None:
    """Writers queue in front of SQLite's lock (``SqliteWriters``): the next one
    goes as soon as the one before commits, rolls back, is just closed or loses
    its connection (a turn never given back would hold every later writer for
    SQLite's timeout)."""
    for finish in ("commit", "rollback", "close", "invalidate"):
        first, second = maker(), maker()
        await begin_write(first)
        waiting = asyncio.create_task(begin_write(second))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        if finish == "invalidate":
            await (await first.connection()).invalidate()
        else:
            await getattr(first, finish)()
        await asyncio.wait_for(waiting, 5)
        await second.close()
        await first.close()


@only_sqlite
async def test_a_sqlite_writer_waits_for_another_process_turn_before_asking_for_the_lock(
    db_url: str, maker: async_sessionmaker[AsyncSession]
) -> None:
    """Across processes writers take turns on an flock of ``<database>-writers``: one
    waits there, woken when the turn is free, not in SQLite's sleeping busy handler.
    One that stops waiting (its request went away) leaves the queue working."""
    path = db_url.split(":///", 1)[1]
    other_process = os.open(f"{path}-writers", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(other_process, fcntl.LOCK_EX)
        gone = asyncio.create_task(begin_write(maker()))
        await asyncio.sleep(0.2)
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
        async with maker() as session:
            waiting = asyncio.create_task(begin_write(session))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            assert _try_write_lock(db_url), "a writer waiting its turn holds no SQLite lock"
            fcntl.flock(other_process, fcntl.LOCK_UN)
            await asyncio.wait_for(waiting, 5)
            assert not _try_write_lock(db_url)
            await session.rollback()
        async with maker() as session:
            await asyncio.wait_for(begin_write(session), 5)
            await session.rollback()
    finally:
        os.close(other_process)


@only_sqlite
async def test_a_plain_read_leaves_the_sqlite_write_lock_free(
    db_url: str, maker: async_sessionmaker[AsyncSession]
) -> None:
    async with maker() as session:
        await session.scalar(select(User.id))
        assert session.in_transaction()
        assert _try_write_lock(db_url)


@only_postgresql
async def test_a_read_only_request_has_no_transaction_until_begin_write(
    settings: Settings,
) -> None:
    xact = text("SELECT pg_current_xact_id()::text")
    engine = create_engine(settings)
    try:
        async with read_session_maker(engine)() as session:
            # Autocommit: each statement is a transaction of its own.
            assert await session.scalar(xact) != await session.scalar(xact)
            await begin_write(session)
            assert await session.scalar(xact) == await session.scalar(xact)
            await session.rollback()
        # The connection went back to the pool with its usual isolation.
        async with session_maker(engine)() as session:
            assert await session.scalar(xact) == await session.scalar(xact)
    finally:
        await engine.dispose()


async def test_foreign_keys_are_enforced(maker: async_sessionmaker[AsyncSession]) -> None:
    async with maker() as session:
        session.add(_entry(client_id=999_999))
        with pytest.raises(DBAPIError):
            await session.commit()


# --------------------------------------------------------------------------- append-only journal


def _now() -> datetime:
    return datetime.now(UTC)


def _entry(client_id: int) -> Entry:
    return Entry(
        client_id=client_id,
        kind="payment",
        amount_cents=1000,
        credit_delta_cents=1000,
        owed_delta_cents=0,
        effective_date=date(2026, 1, 5),
        description="test",
        created_at=_now(),
    )


async def _journal_rows(maker: async_sessionmaker[AsyncSession]) -> None:
    """One client with one charge, one entry and one allocation (from credit)."""
    async with maker() as session:
        client = Client(name="Ana", name_key="ana", search_text="ana")
        session.add(client)
        await session.flush()
        charge = Charge(
            client_id=client.id,
            date=date(2026, 1, 5),
            description="Session",
            amount_cents=1000,
            paid_cents=0,
            due_date=date(2026, 1, 5),
            status="open",
            commission_bp=0,
        )
        session.add(charge)
        session.add(_entry(client.id))
        await session.flush()
        session.add(Allocation(charge_id=charge.id, amount_cents=1000, created_at=_now()))
        await session.commit()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE entries SET description = 'edited'",
        "DELETE FROM entries",
        "UPDATE allocations SET amount_cents = 1",
        "DELETE FROM allocations",
    ],
)
async def test_the_journal_and_allocations_refuse_update_and_delete(
    statement: str, maker: async_sessionmaker[AsyncSession]
) -> None:
    await _journal_rows(maker)

    async with maker() as session:
        with pytest.raises(DBAPIError, match="append-only"):
            await session.execute(text(statement))
        await session.rollback()

    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(Entry)) == 1
        assert await session.scalar(select(func.count()).select_from(Allocation)) == 1


# --------------------------------------------------------------------------- hot reads


class _Shout(TypeDecorator[str]):
    """Upper-cases what it reads and what it binds: shows whether a type's processors ran."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return value and value.upper()

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return value and value.upper()


_HOT = (
    select(
        User.id,
        type_coerce(User.username, _Shout).label("loud"),
        User.created_at,
        (User.auth_epoch + 1).label("next_epoch"),
    )
    .where(User.username == bindparam("name"))
    .order_by(User.id)
)


async def test_a_hot_read_answers_as_sqlalchemy_does(
    maker: async_sessionmaker[AsyncSession], make_user: Any
) -> None:
    user = await make_user("reception", "ana")
    read = HotRead(_HOT)
    async with maker() as session:
        rows = await read.all(session, {"name": "ana"})
        expected = (await session.execute(_HOT, {"name": "ana"})).all()
        nobody = await read.first(session, {"name": "nobody"})

    assert [tuple(row) for row in rows] == [tuple(row) for row in expected]
    (row,) = rows
    assert (row.id, row.loud, row.next_epoch) == (user.id, "ANA", user.auth_epoch + 1)
    assert row.created_at.tzinfo is not None
    assert nobody is None


async def test_a_hot_read_binds_through_the_types_processors(
    maker: async_sessionmaker[AsyncSession], make_user: Any
) -> None:
    user = await make_user("reception", "ana")
    shout = bindparam("name", type_=_Shout)
    read = HotRead(select(User.id).where(func.upper(User.username) == shout))
    async with maker() as session:
        assert await read.scalar(session, {"name": "ana"}) == user.id


_RENAME = HotWrite(
    update(User)
    .where(User.id == bindparam("user_id"))
    .values(display_name=bindparam("name"), updated_at=func.now())
)
_ADD_USER = HotWrite(
    insert(User.__table__)
    .values(
        username=bindparam("username"),
        display_name=bindparam("username"),
        role="reception",
        password_hash="x",
        active=True,
        auth_epoch=1,
        language="en",
        created_at=bindparam("at"),
        updated_at=bindparam("at"),
    )
    .returning(User.id)
)


async def _display_name(maker: async_sessionmaker[AsyncSession], user_id: int) -> str | None:
    async with maker() as session:
        return await session.scalar(select(User.display_name).where(User.id == user_id))


async def test_hot_writes_are_kept_and_discarded_with_the_sessions_transaction(
    maker: async_sessionmaker[AsyncSession], make_user: Any
) -> None:
    user = await make_user("reception", "ana")
    async with maker() as session:
        await begin_write(session)
        assert await _RENAME.rowcount(session, {"user_id": user.id, "name": "Ana Lima"}) == 1
        await session.rollback()
    async with maker() as session:
        await begin_write(session)
        at = datetime.now(UTC)
        new_id = await _ADD_USER.scalar(session, {"username": "bia", "at": at})
        assert await _RENAME.rowcount(session, {"user_id": -1, "name": "nobody"}) == 0
        await session.commit()

    assert await _display_name(maker, user.id) == user.display_name
    assert await _display_name(maker, new_id) == "bia"


async def test_hot_writes_after_a_commit_are_in_the_next_transaction(
    maker: async_sessionmaker[AsyncSession], make_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection is looked up once per transaction, not once per session."""
    user = await make_user("reception", "ana")
    lookups = 0
    connection = AsyncSession.connection

    async def counted(self: AsyncSession, *args: Any, **kwargs: Any) -> Any:
        nonlocal lookups
        lookups += 1
        return await connection(self, *args, **kwargs)

    monkeypatch.setattr(AsyncSession, "connection", counted)
    async with maker() as session:
        await begin_write(session)
        before = lookups
        await _RENAME.rowcount(session, {"user_id": user.id, "name": "Kept"})
        await _RENAME.rowcount(session, {"user_id": user.id, "name": "Kept"})
        assert lookups - before <= 1
        await session.commit()
        await begin_write(session)
        await _RENAME.rowcount(session, {"user_id": user.id, "name": "Discarded"})
        await session.rollback()
        await _RENAME.rowcount(session, {"user_id": user.id, "name": "Discarded too"})
        await session.rollback()

    assert await _display_name(maker, user.id) == "Kept"


async def test_a_hot_write_flushes_what_the_session_holds_first(
    maker: async_sessionmaker[AsyncSession], make_user: Any
) -> None:
    """As SQLAlchemy's own execution would (autoflush): the pending row is there to update."""
    user = await make_user("reception", "ana")
    async with maker() as session:
        await begin_write(session)
        (await session.get_one(User, user.id)).display_name = "Pending"
        assert await _RENAME.rowcount(session, {"user_id": user.id, "name": "Written"}) == 1
        await session.commit()
    assert await _display_name(maker, user.id) == "Written"


@only_postgresql
async def test_a_hot_write_refuses_to_leave_a_python_side_default_out(
    maker: async_sessionmaker[AsyncSession],
) -> None:
    """users.updated_at's default is SQLAlchemy's to compute: the statement must name it."""
    rename = HotWrite(update(User).values(display_name=bindparam("name")))
    async with maker() as session:
        await begin_write(session)
        with pytest.raises(ValueError, match="updated_at"):
            await rename.rowcount(session, {"name": "x"})


async def test_a_refused_hot_write_raises_sqlalchemys_error_and_writes_nothing(
    maker: async_sessionmaker[AsyncSession], make_user: Any
) -> None:
    await make_user("reception", "ana")
    async with maker() as session:
        await begin_write(session)
        await _ADD_USER.scalar(session, {"username": "bia", "at": datetime.now(UTC)})
        with pytest.raises(IntegrityError):
            await _ADD_USER.scalar(session, {"username": "ana", "at": datetime.now(UTC)})
        await session.rollback()
    async with maker() as session:
        assert await session.scalar(select(func.count()).where(User.username == "bia")) == 0


@only_postgresql
async def test_a_hot_read_on_a_lost_connection_fails_once_and_the_pool_drops_it(
    maker: async_sessionmaker[AsyncSession], make_user: Any
) -> None:
    await make_user("reception", "ana")
    read = HotRead(_HOT)
    async with maker() as session:
        driver = (await (await session.connection()).get_raw_connection()).driver_connection
        async with maker() as other:
            await other.execute(text(f"SELECT pg_terminate_backend({driver.get_server_pid()})"))
        with pytest.raises(DBAPIError) as lost:
            await read.all(session, {"name": "ana"})
        assert lost.value.connection_invalidated
        await session.rollback()
        assert (await read.first(session, {"name": "ana"})).loud == "ANA"

    async with maker() as session:
        assert (await read.first(session, {"name": "ana"})).loud == "ANA"


async def test_a_slow_hot_read_is_logged_with_the_request_id(
    settings: Settings, make_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await make_user("reception", "ana")
    engine = create_engine(dataclasses.replace(settings, slow_query_ms=0))
    token = request_id_var.set("hot-7")
    try:
        with caplog.at_level(logging.WARNING, logger="saldo.sql"):
            async with session_maker(engine)() as session:
                await HotRead(_HOT).all(session, {"name": "ana"})
    finally:
        request_id_var.reset(token)
        await engine.dispose()

    slow = [r.getMessage() for r in caplog.records if r.name == "saldo.sql"]
    assert any("request_id=hot-7" in line and "FROM users" in line for line in slow), slow


# --------------------------------------------------------------------------- requests and logs


async def test_every_answer_carries_a_new_request_id(client: AsyncTestClient[Litestar]) -> None:
    first = await client.get("/health")
    second = await client.get("/health")

    assert re.fullmatch(r"[0-9a-f]{16}", first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_a_request_id_from_the_proxy_is_echoed_back(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "edge-7f3a"})

    assert response.headers["x-request-id"] == "edge-7f3a"


async def test_access_log_names_method_path_status_and_user(
    client: AsyncTestClient[Litestar], login: Any, caplog: pytest.LogCaptureFixture
) -> None:
    user = await login(client, "reception")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="saldo.access"):
        await client.get("/", headers={"X-Request-ID": "story-1"})
        await client.get("/no-such-page")

    lines = [r.getMessage() for r in caplog.records if r.name == "saldo.access"]
    dashboard = next(line for line in lines if line.startswith("story-1 "))
    assert " GET / 200 " in dashboard
    assert f"user={user.username}" in dashboard
    assert any(" GET /no-such-page 404 " in line for line in lines)


async def test_slow_queries_are_logged_with_the_request_id(
    settings: Settings, caplog: pytest.LogCaptureFixture, client_for: Any
) -> None:
    app = create_app(dataclasses.replace(settings, slow_query_ms=0))
    # Building the app reconfigures the root logger (Litestar's default logging
    # config), which drops pytest's capture handler: listen on the logger itself.
    sql_log = logging.getLogger("saldo.sql")
    sql_log.addHandler(caplog.handler)
    try:
        async with client_for(app) as client:
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="saldo.sql"):
                await client.get("/health", headers={"X-Request-ID": "slow-42"})
    finally:
        sql_log.removeHandler(caplog.handler)
        await app.state.engine.dispose()

    slow = [r.getMessage() for r in caplog.records if r.name == "saldo.sql"]
    assert any("request_id=slow-42" in line and "SELECT 1" in line for line in slow), slow


async def test_an_unknown_page_is_a_friendly_html_404(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/no-such-page")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text
    assert "404" in response.text


async def test_dashboard_greets_the_logged_in_user_by_name(
    client: AsyncTestClient[Litestar], login: Any
) -> None:
    user = await login(client, "admin")

    response = await client.get("/")

    assert response.status_code == 200
    assert "Dashboard" in response.text
    assert user.display_name in response.text


async def test_logged_out_visitor_is_sent_to_the_login_page(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


# --------------------------------------------------------------------------- command line


async def test_users_create_reads_the_password_from_standard_input(
    settings: Settings, maker: async_sessionmaker[AsyncSession]
) -> None:
    done = _cli(
        "users",
        "create",
        "Bea",
        "--role",
        "reception",
        "--name",
        "Bea Reception",
        stdin="a quiet tuesday morning\n",
        settings=settings,
    )

    assert done.returncode == 0, done.stderr
    async with maker() as session:
        bea = await session.scalar(select(User).where(User.username == "bea"))
    assert bea is not None
    assert bea.role == "reception"
    assert bea.display_name == "Bea Reception"
    assert auth_services.check_password(bea, "a quiet tuesday morning")


async def test_users_create_refuses_a_weak_password(
    settings: Settings, maker: async_sessionmaker[AsyncSession]
) -> None:
    done = _cli("users", "create", "carl", "--role", "admin", stdin="short\n", settings=settings)

    assert done.returncode != 0
    async with maker() as session:
        assert await session.scalar(select(User).where(User.username == "carl")) is None
