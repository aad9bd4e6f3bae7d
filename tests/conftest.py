"""Fixtures every test shares: a fresh, migrated database per test, the app, a client, users.

Each test that asks for ``db_url`` (directly or through ``settings``, ``app``,
``client``, ``maker``…) runs twice, as ``[sqlite]`` and ``[postgresql]``.

- SQLite: one file is migrated per session and copied into each test's tmp dir.
- PostgreSQL: a throwaway cluster is started for the session (server binaries
  found on PATH, in /usr/local/bin or /usr/lib/postgresql/*/bin), or the server
  named by ``SALDO_TEST_PG_URL`` is used. One database is migrated as a template
  and each test gets ``CREATE DATABASE … TEMPLATE`` of it.

Without PostgreSQL the ``[postgresql]`` variants are skipped, loudly; with
``CI=true`` they fail instead. To run a test on one backend only:
``@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)``.

Fixtures: ``db_url``, ``empty_db_url``, ``settings``, ``settings_for(url, **changes)``,
``app``, ``client``, ``client_for(app)``, ``maker``, ``make_user(role, username=None,
password=..., *, display_name=None)``, ``login(client, role_or_username="admin",
password=...)``, ``csrf(client)``; session-wide: ``postgres``, ``sqlite_template``.
Passwords default to ``DEFAULT_PASSWORD``; in-process argon2id uses its cheapest
parameters (see ``fast_password_hashing``). A test hanging for SALDO_TEST_TIMEOUT
seconds (300) ends the run with every thread's traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import faulthandler
import glob
import itertools
import json
import os
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

import anyio
import httpx
import pytest
from alembic import command
from alembic.config import Config
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.testing.transport import TestClientTransport
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import services as auth_services
from app.auth.models import User
from app.clients.models import Client
from app.clients.services import search_fields
from app.config import Settings, load_settings, normalise_database_url
from app.db import alembic_ini_path, create_engine, session_maker
from app.main import create_app

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PASSWORD = "correct horse battery"
ROLES = ("admin", "reception", "accountant")
IN_CI = os.environ.get("CI", "").strip().lower() == "true"
CHROMIUM = Path("/usr/bin/chromium")
NO_POSTGRES = "[no-postgresql]"
NO_CHROMIUM = "[no-chromium]"
NO_PGBOUNCER = "[no-pgbouncer]"
# Environment that would leak the developer's own installation into a test's settings.
SALDO_ENV_VARS = (
    "DATABASE_URL",
    "SECRET_KEY",
    "SALDO_DATA_DIR",
    "SALDO_ENV",
    "ADMIN_USER",
    "ADMIN_PASS_HASH",
    "SLOW_QUERY_MS",
    "SESSION_IDLE_MINUTES",
    "SESSION_ABSOLUTE_HOURS",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USER",
    "SMTP_PASSWORD",
    "SMTP_FROM",
    "SMTP_STARTTLS",
    "DB_POOL_SIZE",
    "DB_POOLER",
    "BACKUP_DIR",
    "BACKUP_KEEP",
)

T = TypeVar("T")

try:  # pytest's own copy of the terminal's stderr (fd 2 itself is captured)
    from _pytest.faulthandler import fault_handler_stderr_fd_key
except ImportError:  # pragma: no cover - a future pytest
    fault_handler_stderr_fd_key = None


# --------------------------------------------------------------------------- helpers


def unavailable(reason: str) -> NoReturn:
    """Skip (loudly) a test that needs something this machine lacks; under CI=true, fail it."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: missing tools fail the run)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait up to 60 s for the app started as ``process`` to answer ``url``/health."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the app did not answer /health within 60 s:\n{log.read_text()}")


@contextmanager
def uvicorn_workers(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """The app under ``uvicorn --workers 2``, with ``env`` over ours: (its base URL, its log).

    Stopped on leaving; the log (``tmp_path/server.log``) stays for the caller to read.
    """
    port = free_port()
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--workers"]
    options = ["2", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, *options],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base, process, log)
        yield base, log
    finally:
        process.terminate()
        process.wait(timeout=20)


def run_in_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a thread of its own: it may call ``asyncio.run`` (alembic's env.py does)."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="saldo-test-helper")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def migrate(database_url: str, revision: str = "head", *, down: bool = False) -> None:
    """Bring the database at ``database_url`` to ``revision`` (the newest by default, as
    ``db upgrade`` does); with ``down``, take it back to that revision."""
    cfg = Config(alembic_ini_path())
    cfg.attributes["database_url"] = database_url
    cfg.attributes["configure_logging"] = False
    run_in_thread(lambda: (command.downgrade if down else command.upgrade)(cfg, revision))


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def cookie_value(client: AsyncTestClient[Any], name: str) -> str | None:
    for cookie in client.cookies.jar:
        if cookie.name == name:
            return cookie.value
    return None


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing() -> Iterator[None]:
    """argon2id with its cheapest parameters in-process: a login costs ~1 ms, not ~0.3 s.

    Still argon2id, and hashes made with the app's real parameters (the CLI, a
    live server, ``hash-password``) still verify. A test of the real parameters
    can read ``PasswordHasher()`` itself.
    """
    fast = PasswordHasher(time_cost=1, memory_cost=256, parallelism=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth_services, "hasher", fast)
        patch.setattr(auth_services, "_DUMMY_HASH", fast.hash(uuid.uuid4().hex), raising=False)
        yield


# --------------------------------------------------------------------------- PostgreSQL


def _pg_version(initdb: str) -> int:
    part = Path(initdb).parts[-3]
    return int(part) if part.isdigit() else 0


def find_postgres_bin() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None."""
    candidates = [shutil.which("initdb"), "/usr/local/bin/initdb"]
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_pg_version, reverse=True
    )
    for candidate in candidates:
        if not candidate or not os.access(candidate, os.X_OK):
            continue
        bindir = Path(candidate).resolve().parent
        if (bindir / "pg_ctl").exists() and (bindir / "postgres").exists():
            return bindir
    return None


class BackgroundLoop:
    """An event loop in its own thread, for admin SQL the tests' own loop must not see."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="saldo-test-pg-admin", daemon=True
        )
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def _cluster_parent() -> str | None:
    """Where the throwaway cluster lives: in memory when there is room.

    Even with fsync=off, CREATE DATABASE takes ~0.4 s on a disk and ~20 ms on
    tmpfs: the per-test databases make that difference count.
    """
    if explicit := os.environ.get("SALDO_TEST_PG_DIR"):
        return explicit
    shm = "/dev/shm"
    try:
        stat = os.statvfs(shm)
    except OSError:
        return None
    room = stat.f_bavail * stat.f_frsize
    return shm if room >= 1 << 30 and os.access(shm, os.W_OK) else None


_WATCHDOG = """
import json, os, shutil, subprocess, sys, time
parent, root, stop = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
while os.path.exists(root):
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        if os.path.exists(os.path.join(root, "data", "postmaster.pid")):
            subprocess.run(stop, capture_output=True, timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)
        break
    except PermissionError:
        pass
    time.sleep(1)
"""


def as_postgres_user(*args: str | Path) -> list[str]:
    """``args`` as a command that runs as the ``postgres`` user when we are root.

    PostgreSQL refuses to run as root, and so does PgBouncer.
    """
    cmd = [str(a) for a in args]
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(cmd)]


class LocalCluster:
    """A throwaway PostgreSQL cluster in a temp dir, tuned for speed, not durability."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="saldo-pg-", dir=_cluster_parent()))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.as_root = os.geteuid() == 0

    def _command(self, *args: str | Path) -> list[str]:
        return as_postgres_user(*args)

    def _run(self, *args: str | Path) -> None:
        cmd = self._command(*args)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            output = f"{done.stdout}\n{done.stderr}\n{log}"
            raise RuntimeError(f"{shlex.join(cmd)} failed ({done.returncode}):\n{output}")

    def _watch(self) -> None:
        """Stop and delete the cluster when pytest dies without tearing down (kill, crash).

        The postmaster is a daemon: without this it would outlive a killed run.
        """
        stop = self._command(self.bindir / "pg_ctl", "-D", self.data, "-m", "immediate", "stop")
        subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(self.root), json.dumps(stop)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # survives a kill of pytest's process group
        )

    def start(self) -> str:
        self._watch()
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            self.bindir / "initdb",
            "-D",
            self.data,
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        for attempt in range(3):
            self.port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories={self.root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200"
            )
            try:
                self._run(
                    self.bindir / "pg_ctl",
                    "-D",
                    self.data,
                    "-l",
                    self.log,
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                )
                break
            except RuntimeError:
                if attempt == 2:  # the free port was taken in between, twice over
                    raise
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class PostgresServer:
    """Creates and drops the per-test databases on one server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(normalise_database_url(admin_url))
        self.loop = BackgroundLoop()
        self.conn: Any = None
        self.template = f"saldo_template_{uuid.uuid4().hex[:8]}"

    def url(self, database: str) -> str:
        return self.admin_url.set(database=database).render_as_string(hide_password=False)

    async def _connect(self) -> None:
        import asyncpg

        dsn = self.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.conn = await asyncpg.connect(dsn)

    async def _execute(self, sql: str) -> None:
        if self.conn is None or self.conn.is_closed():
            await self._connect()
        await self.conn.execute(sql)

    def execute(self, sql: str) -> None:
        self.loop.run(self._execute(sql))

    def prepare_template(self) -> None:
        self.execute(f'CREATE DATABASE "{self.template}"')
        migrate(self.url(self.template))

    def create_database(self, empty: bool = False) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        template = "template0" if empty else self.template
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        try:
            self.drop_database(self.template)
            if self.conn is not None:
                self.loop.run(self.conn.close())
        finally:
            self.loop.close()


def postgres_status() -> str:
    if url := os.environ.get("SALDO_TEST_PG_URL"):
        return f"SALDO_TEST_PG_URL ({make_url(normalise_database_url(url)).host})"
    if bindir := find_postgres_bin():
        return f"throwaway cluster from {bindir}"
    action = "FAIL (CI=true)" if IN_CI else "be SKIPPED"
    return f"NOT FOUND — every [postgresql] test will {action}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The PostgreSQL server of this session, with a migrated template database."""
    cluster = None
    if url := os.environ.get("SALDO_TEST_PG_URL"):
        admin_url = url
    else:
        bindir = find_postgres_bin()
        if bindir is None:
            unavailable(
                f"{NO_POSTGRES} PostgreSQL server binaries not found (initdb, pg_ctl): "
                "install Debian's postgresql or set SALDO_TEST_PG_URL"
            )
        cluster = LocalCluster(bindir)
        try:
            admin_url = cluster.start()
        except BaseException:
            cluster.stop()
            raise
    server = PostgresServer(admin_url)
    try:
        server.prepare_template()
        yield server
    finally:
        try:
            server.close()
        finally:
            if cluster is not None:
                cluster.stop()


# --------------------------------------------------------------------------- SQLite


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "saldo.db"
    migrate(sqlite_url(path))
    # Everything in the main file, no -wal/-shm beside it: a plain copy is then complete.
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    return path


# --------------------------------------------------------------------------- databases


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The SQLAlchemy URL of a fresh, fully migrated, empty database for this test."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "saldo.db"
        shutil.copyfile(template, path)
        yield sqlite_url(path)
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database that exists but has never been migrated (no tables at all)."""
    if request.param == "sqlite":
        path = tmp_path / "empty.db"
        sqlite3.connect(path).close()
        yield sqlite_url(path)
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.create_database(empty=True)
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


# --------------------------------------------------------------------------- the app


class InLoopTransport(TestClientTransport[Any]):
    """Litestar's test transport, but the app runs on the test's own event loop.

    Litestar's ``AsyncTestClient`` runs the app through a blocking portal: in a
    thread with an event loop of its own, while the test's loop waits. An
    asyncpg pool shared between the app and the test (``maker``) then crosses
    event loops, which asyncpg refuses (or worse). Here requests are awaited on
    the caller's loop, so concurrent requests (``asyncio.gather``) really overlap.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scope: Any = self.parse_request(request=request)
        if scope["type"] == "websocket":
            return self.handle_request(request)
        scope.update(
            method=request.method, http_version="1.1", extensions={"http.response.template": {}}
        )
        await request.aread()
        raw_kwargs: dict[str, Any] = {"stream": BytesIO()}
        context: Any = {
            "response_complete": anyio.Event(),
            "request_complete": False,
            "raw_kwargs": raw_kwargs,
            "response_started": False,
            "template": None,
            "context": None,
        }
        try:
            await self.client.app(
                scope,
                self.create_receive(request=request, context=context),
                self.create_send(request=request, context=context),
            )
        except BaseException:
            if self.raise_server_exceptions:
                raise
            return httpx.Response(500, request=request)
        if not context["response_started"]:
            assert not self.raise_server_exceptions, "the app sent no response"
            return httpx.Response(500, request=request)
        body = raw_kwargs.pop("stream").read()
        response = httpx.Response(**raw_kwargs, content=body, request=request)
        response.template = context["template"]  # type: ignore[attr-defined]
        response.context = context["context"]  # type: ignore[attr-defined]
        return response


class InLoopTestClient(AsyncTestClient[Litestar]):
    """An ``AsyncTestClient`` whose app, start-up and shut-down run on the test's event loop.

    ``async with`` runs the app's start-up (schema check, first admin) and shut-down.
    Like Litestar's client it follows redirects unless told ``follow_redirects=False``.
    """

    def __init__(self, app: Litestar, **kwargs: Any) -> None:
        super().__init__(app=app, **kwargs)
        portal_transport: Any = self._transport
        self._transport = InLoopTransport(
            client=self,
            raise_server_exceptions=portal_transport.raise_server_exceptions,
            root_path=portal_transport.root_path,
        )

    async def __aenter__(self) -> InLoopTestClient:
        # The lifespan runs in a task of its own: anyio's task groups inside it
        # must be exited by the task that entered them, and pytest-asyncio sets a
        # fixture up and tears it down in different tasks.
        started, self._stop = asyncio.Event(), asyncio.Event()

        async def lifespan() -> None:
            async with self.app.lifespan():
                started.set()
                await self._stop.wait()

        self._lifespan_task = asyncio.create_task(lifespan(), name="saldo-test-lifespan")
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({self._lifespan_task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not started.is_set():
            waiter.cancel()
            raise _single(self._lifespan_task.exception())
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self._stop.set()
        try:
            await self._lifespan_task
        except BaseException as exc:
            raise _single(exc) from None


def _single(exc: BaseException | None) -> BaseException:
    """The one error inside (nested) one-error exception groups, as the app raised it."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    assert exc is not None
    return exc


@pytest.fixture
def settings_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """``settings_for(url, **changes)``: settings for any database URL; data dir = tmp_path.

    The developer's own SALDO/DATABASE/SMTP environment is cleared for the test,
    and SALDO_DATA_DIR points at tmp_path, so nothing is written under ./data.
    """
    for name in SALDO_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    secret = f"test-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("SALDO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SECRET_KEY", secret)

    def build(database_url: str, **changes: Any) -> Settings:
        monkeypatch.setenv("DATABASE_URL", database_url)
        values: dict[str, Any] = {
            "database_url": database_url,
            "data_dir": tmp_path,
            "secret_key": secret,
            "production": False,
            "admin_user": None,
            "admin_pass_hash": None,
            **changes,
        }
        return dataclasses.replace(load_settings(), **values)

    return build


@pytest.fixture
def settings(db_url: str, settings_for: Callable[..., Settings]) -> Settings:
    """Settings for this test's fresh database (``db_url``); the data dir is tmp_path."""
    return settings_for(db_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Litestar]:
    application = create_app(settings)
    yield application
    # Also when no client started it: a PostgreSQL database cannot be dropped while in use.
    await application.state.engine.dispose()


@pytest.fixture
def client_for() -> Callable[[Litestar], InLoopTestClient]:
    """``async with client_for(app) as client:`` for an app a test built itself."""
    return InLoopTestClient


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[InLoopTestClient]:
    """A test client with the app started (the schema check ran), not logged in."""
    async with InLoopTestClient(app) as test_client:
        yield test_client


@pytest.fixture
async def maker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session maker for service-level tests and checks, on the test's database.

    Its engine is built like the app's (``create_engine(settings)``: the same
    SQLite pragmas and BEGIN IMMEDIATE rule) but is its own, so a service test
    needs no app at all; with ``client`` both see the same database.
    """
    engine = create_engine(settings)
    yield session_maker(engine)
    await engine.dispose()


class MakeUser(Protocol):
    async def __call__(
        self,
        role: str,
        username: str | None = None,
        password: str = DEFAULT_PASSWORD,
        *,
        display_name: str | None = None,
    ) -> User: ...


class Login(Protocol):
    async def __call__(
        self,
        client: AsyncTestClient[Any],
        role_or_username: str = "admin",
        password: str = DEFAULT_PASSWORD,
    ) -> User: ...


@pytest.fixture
def make_user(maker: async_sessionmaker[AsyncSession]) -> MakeUser:
    """``await make_user("reception")`` creates ``reception1`` (display name "Reception 1")."""
    counter = itertools.count(1)

    async def make(
        role: str,
        username: str | None = None,
        password: str = DEFAULT_PASSWORD,
        *,
        display_name: str | None = None,
    ) -> User:
        n = next(counter)
        async with maker() as session:
            return await auth_services.create_user(
                session,
                username or f"{role}{n}",
                password,
                role,
                display_name or f"{role.capitalize()} {n}",
            )

    return make


@pytest.fixture
def make_client(maker: async_sessionmaker[AsyncSession]) -> Callable[..., Awaitable[int]]:
    """``await make_client("Ana Souza")``: an active client inserted directly; returns its id."""

    async def make(
        name: str = "Ana Souza", email: str | None = None, phone_digits: str | None = None
    ) -> int:
        async with maker() as session:
            name_key, search_text = search_fields(name, phone_digits, email)
            client = Client(
                name=name,
                name_key=name_key,
                search_text=search_text,
                active=True,
                phone_digits=phone_digits,
                email=email,
            )
            session.add(client)
            await session.commit()
            return client.id

    return make


@pytest.fixture
def csrf() -> Callable[[AsyncTestClient[Any]], Awaitable[str]]:
    """``await csrf(client)``: the client's CSRF token, for ``x-csrftoken`` or ``_csrf_token``."""

    async def token(client: AsyncTestClient[Any]) -> str:
        name = client.app.state.settings.csrf_cookie
        for path in ("/", "/login"):
            if (value := cookie_value(client, name)) is not None:
                return value
            await client.get(path)
        value = cookie_value(client, name)
        assert value is not None, f"no {name} cookie after GET / and GET /login"
        return value

    return token


@pytest.fixture
def login(
    make_user: MakeUser,
    maker: async_sessionmaker[AsyncSession],
    csrf: Callable[[AsyncTestClient[Any]], Awaitable[str]],
) -> Login:
    """``await login(client, "reception")`` creates a reception user and logs the client in.

    A name that is not a role logs in that existing user.
    """

    async def do(
        client: AsyncTestClient[Any],
        role_or_username: str = "admin",
        password: str = DEFAULT_PASSWORD,
    ) -> User:
        if role_or_username in ROLES:
            user = await make_user(role_or_username, password=password)
        else:
            async with maker() as session:
                found = await session.scalar(
                    select(User).where(User.username == role_or_username.strip().lower())
                )
            assert found is not None, f"no user {role_or_username!r}"
            user = found
        await client.get("/login")
        response = await client.post(
            "/login",
            data={
                "username": user.username,
                "password": password,
                "_csrf_token": await csrf(client),
            },
            follow_redirects=False,
        )
        assert response.status_code == 303, (response.status_code, response.text[:500])
        return user

    return do


# --------------------------------------------------------------------------- reporting

# A test that hangs fails the run (with every thread's traceback) instead of
# stalling CI: seconds per test, 0 to disable.
TEST_TIMEOUT = float(os.environ.get("SALDO_TEST_TIMEOUT", "300"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    if TEST_TIMEOUT > 0:
        stderr: Any = sys.__stderr__
        if fault_handler_stderr_fd_key is not None:
            stderr = item.config.stash.get(fault_handler_stderr_fd_key, stderr)
        faulthandler.dump_traceback_later(TEST_TIMEOUT, exit=True, file=stderr)
    try:
        return (yield)
    finally:
        if TEST_TIMEOUT > 0:
            faulthandler.cancel_dump_traceback_later()


def find_pgbouncer() -> str | None:
    """Debian's PgBouncer (``apt-get install pgbouncer``), for tests/integration/test_pooler.py."""
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    missing = "NOT FOUND — {} tests will " + ("FAIL (CI=true)" if IN_CI else "be SKIPPED")
    chromium = str(CHROMIUM) if CHROMIUM.exists() else missing.format("e2e")
    pgbouncer = find_pgbouncer() or missing.format("pooler")
    return [
        f"saldo postgresql: {postgres_status()}",
        f"saldo chromium: {chromium}",
        f"saldo pgbouncer: {pgbouncer}",
    ]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for marker, what in (
        (NO_POSTGRES, "PostgreSQL"),
        (NO_CHROMIUM, "browser (e2e)"),
        (NO_PGBOUNCER, "PgBouncer (pooler)"),
    ):
        skipped = [
            report
            for report in terminalreporter.stats.get("skipped", [])
            if marker in str(getattr(report, "longrepr", ""))
        ]
        if skipped:
            terminalreporter.write_sep(
                "!",
                f"{len(skipped)} {what} tests were SKIPPED: this run did not test {what}",
                red=True,
                bold=True,
            )
