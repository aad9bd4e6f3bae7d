"""Login throttling: kept in the database, so it holds across worker processes.

Runs on SQLite and PostgreSQL, in-process and against two real uvicorn workers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from argon2.profiles import RFC_9106_LOW_MEMORY
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit import AuditEvent
from app.auth import services
from app.auth.models import LoginAttempt, User
from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"  # what the make_user and login fixtures use
WRONG = "a wrong guess at it"
GENERIC = "Wrong username or password."
Csrf = Callable[[AsyncTestClient[Any]], Awaitable[str]]


@pytest.fixture
def client(client: AsyncTestClient[Litestar]) -> AsyncTestClient[Litestar]:
    """Redirects are part of what these tests check: never follow them."""
    client.follow_redirects = False
    return client


async def try_login(client: AsyncTestClient[Any], csrf: Csrf, username: str, password: str) -> Any:
    return await client.post(
        "/login",
        data={"username": username, "password": password, "_csrf_token": await csrf(client)},
    )


async def try_service(
    maker: async_sessionmaker[AsyncSession], username: str, password: str
) -> bool:
    async with maker() as db:
        try:
            await services.authenticate(db, username, password, "192.0.2.7")
        except services.AuthError:
            return False
        return True


async def shift_attempts(maker: async_sessionmaker[AsyncSession], by: timedelta) -> None:
    """Move every recorded attempt into the past, as if time had passed."""
    async with maker() as db:
        for attempt in await db.scalars(select(LoginAttempt)):
            attempt.attempted_at -= by
        await db.commit()


# --------------------------------------------------------------------------- in one process


async def test_five_failures_refuse_even_the_right_password_with_the_same_message(
    client: AsyncTestClient[Litestar], make_user: Any, csrf: Csrf, maker: Any
) -> None:
    user = await make_user("reception")
    for _ in range(5):
        failed = await try_login(client, csrf, user.username, WRONG)
        assert GENERIC in failed.text

    refused = await try_login(client, csrf, user.username, PASSWORD)

    assert refused.status_code == 200
    assert GENERIC in refused.text
    assert "saldo_session" not in refused.headers.get("set-cookie", "")
    async with maker() as db:
        actions = list(await db.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions[-6:] == ["login_failed"] * 5 + ["login_throttled"]


async def test_the_api_token_endpoint_is_throttled_too(
    client: AsyncTestClient[Litestar], make_user: Any, maker: Any
) -> None:
    user = await make_user("accountant")
    for _ in range(5):
        await try_service(maker, user.username, WRONG)

    response = await client.post(
        "/api/v1/auth/token", json={"username": user.username, "password": PASSWORD}
    )

    assert response.status_code == 401
    assert response.json() == {"detail": GENERIC}


async def test_throttling_is_per_username(make_user: Any, maker: Any) -> None:
    victim = await make_user("reception")
    bystander = await make_user("reception")
    for _ in range(5):
        assert not await try_service(maker, victim.username, WRONG)

    assert await try_service(maker, bystander.username, PASSWORD)
    assert not await try_service(maker, victim.username, PASSWORD)


async def test_usernames_are_throttled_whatever_their_case(make_user: Any, maker: Any) -> None:
    user = await make_user("reception")
    for variant in ("A", "B", "C", "D", "E"):
        await try_service(maker, f" {user.username.upper()} ", WRONG + variant)

    assert not await try_service(maker, user.username, PASSWORD)


async def test_the_refusal_lasts_15_minutes(make_user: Any, maker: Any) -> None:
    user = await make_user("reception")
    for _ in range(5):
        await try_service(maker, user.username, WRONG)

    await shift_attempts(maker, timedelta(minutes=14))
    assert not await try_service(maker, user.username, PASSWORD)

    await shift_attempts(maker, timedelta(minutes=2))
    assert await try_service(maker, user.username, PASSWORD)


async def test_failures_spread_over_more_than_15_minutes_do_not_throttle(
    make_user: Any, maker: Any
) -> None:
    user = await make_user("reception")
    for _ in range(4):
        await try_service(maker, user.username, WRONG)
    await shift_attempts(maker, timedelta(minutes=16))
    await try_service(maker, user.username, WRONG)

    assert await try_service(maker, user.username, PASSWORD)


async def test_a_successful_login_clears_earlier_failures(make_user: Any, maker: Any) -> None:
    user = await make_user("reception")
    for _ in range(4):
        await try_service(maker, user.username, WRONG)
    assert await try_service(maker, user.username, PASSWORD)

    assert not await try_service(maker, user.username, WRONG)
    assert await try_service(maker, user.username, PASSWORD)


async def test_unknown_usernames_are_throttled_alike(maker: Any) -> None:
    """Nothing tells an attacker which usernames exist: not the message, not the throttle."""
    for _ in range(5):
        await try_service(maker, "nobody", WRONG)
    async with maker() as db:
        with pytest.raises(services.AuthError) as refused:
            await services.authenticate(db, "nobody", WRONG, None)
        assert str(refused.value) == GENERIC
        actions = list(await db.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions[-1] == "login_throttled"


async def test_an_unknown_username_verifies_a_hash_like_a_known_one(
    make_user: Any, maker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await make_user("reception")
    verified: list[str] = []
    real_verify = services._verify

    def counting_verify(password_hash: str, password: str) -> bool:
        verified.append(password_hash)
        return real_verify(password_hash, password)

    monkeypatch.setattr(services, "_verify", counting_verify)

    await try_service(maker, user.username, WRONG)
    await try_service(maker, "no-such-user", WRONG)

    assert len(verified) == 2
    known, unknown = verified
    # Same algorithm and cost parameters: the same work either way.
    assert known.rsplit("$", 2)[0] == unknown.rsplit("$", 2)[0]
    assert unknown.startswith("$argon2id$")


async def test_an_unknown_username_takes_as_long_to_refuse_as_a_known_one(
    make_user: Any, maker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = PasswordHasher()  # the app's parameters, not the tests' cheap ones
    monkeypatch.setattr(services, "hasher", real)
    monkeypatch.setattr(services, "_DUMMY_HASH", real.hash("whatever"))
    user = await make_user("reception")

    async def timed(username: str) -> float:
        started = time.perf_counter()
        await try_service(maker, username, WRONG)
        return time.perf_counter() - started

    # Interleaved, and under the throttle limit: four of each, two usernames each time.
    known, unknown = [], []
    for round_ in range(4):
        known.append(await timed(user.username if round_ < 2 else user.username.upper()))
        unknown.append(await timed(f"ghost{round_}"))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2.0, (known, unknown)


# --------------------------------------------------------------------------- across two workers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Imported by uvicorn instead of app.main directly: the very same app, plus a
# header naming the worker process that answered, to see both workers at work.
PROBE = """
import os

from app.main import create_app as saldo_app


def create_app():
    app = saldo_app()
    pid = str(os.getpid()).encode()

    async def with_worker_pid(scope, receive, send):
        async def send_with_pid(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-worker-pid", pid)]
            await send(message)

        await app(scope, receive, send_with_pid if scope["type"] == "http" else send)

    return with_worker_pid
"""


@pytest.fixture
def two_workers(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The app under ``uvicorn --workers 2`` on this test's database; yields (base URL, log)."""
    port = free_port()
    (tmp_path / "saldo_worker_probe.py").write_text(PROBE)
    log = tmp_path / "uvicorn.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "DATABASE_URL": settings.database_url,
        "SALDO_DATA_DIR": str(settings.data_dir),
        "SECRET_KEY": settings.secret_key,
    }
    env.pop("SALDO_ENV", None)
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "saldo_worker_probe:create_app",  # app.main:create_app, see PROBE
                "--workers",
                "2",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"uvicorn exited:\n{log.read_text()}"
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200 and (
                    log.read_text().count("Application startup complete") >= 2
                ):
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"uvicorn did not start:\n{log.read_text()}"
            time.sleep(0.2)
        yield base, log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


async def http_login(base: str, username: str, password: str) -> httpx.Response:
    """One login from a browser of its own, on a connection of its own."""
    async with httpx.AsyncClient(base_url=base, follow_redirects=False, timeout=30) as browser:
        await browser.get("/login")
        return await browser.post(
            "/login",
            data={
                "username": username,
                "password": password,
                "_csrf_token": browser.cookies["saldo_csrf"],
            },
        )


async def test_throttling_holds_across_two_worker_processes(
    two_workers: tuple[str, Path], make_user: Any, maker: async_sessionmaker[AsyncSession]
) -> None:
    base, log = two_workers
    # The kernel decides which worker accepts each connection. Until the five
    # failures have been spread over both workers, try again on a fresh username.
    for attempt in range(8):
        user = await make_user("reception", f"desk{attempt}")
        failures = []
        for n in range(5):
            failures.append(await http_login(base, user.username, f"{WRONG} {n}"))
            # Let both workers go idle in between: a burst of connections is
            # usually accepted whole by whichever worker happens to be awake.
            await asyncio.sleep(0.05)
        assert all(GENERIC in r.text for r in failures)

        right = await http_login(base, user.username, PASSWORD)

        assert right.status_code == 200
        assert GENERIC in right.text
        assert "saldo_session" not in right.cookies
        if len({r.headers["x-worker-pid"] for r in failures}) == 2:
            break
    else:
        pytest.fail(f"every failure landed on one worker, 8 times over:\n{log.read_text()}")
    # Further attempts, whichever worker takes them, are refused as well.
    refusals = await asyncio.gather(*(http_login(base, user.username, PASSWORD) for _ in range(4)))
    assert all(GENERIC in r.text for r in refusals)
    other = await make_user("reception", "somebody-else")
    assert (await http_login(base, other.username, PASSWORD)).status_code == 303
    # The live server hashes with the real parameters (the tests' own are cheap), so
    # that login rehashed the password: argon2id, at least RFC 9106's low-memory profile.
    async with maker() as db:
        digest = await db.scalar(select(User.password_hash).where(User.id == other.id))
    parameters = extract_parameters(digest)
    assert parameters.type is Type.ID
    assert parameters.time_cost >= RFC_9106_LOW_MEMORY.time_cost
    assert parameters.memory_cost >= RFC_9106_LOW_MEMORY.memory_cost
