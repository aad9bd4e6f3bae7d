"""PostgreSQL behind a pooler in transaction mode (PgBouncer), with ``DB_POOLER=transaction``.

Hosting providers hand out "pooled" connection strings that lead to such a
pooler: each transaction gets whichever server connection is free. Here a
real PgBouncer (Debian's ``pgbouncer``) in transaction mode, with two server
connections, sits in front of the test cluster; the app runs under uvicorn
with two workers behind it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from app.auth.services import hash_password
from app.backup import services as backups
from app.clients.models import Client
from app.db import create_engine, session_maker
from app.ledger import services as ledger
from tests.conftest import (
    NO_PGBOUNCER,
    PostgresServer,
    as_postgres_user,
    find_pgbouncer,
    free_port,
    migrate,
    unavailable,
    uvicorn_workers,
)

ADMIN_PASSWORD = "pooler test password"


@pytest.fixture(scope="module")
def pgbouncer(postgres: PostgresServer) -> Iterator[str]:
    """A PgBouncer in transaction mode in front of the test cluster: its URL, without a database."""
    binary = find_pgbouncer()
    if binary is None:
        unavailable(f"{NO_PGBOUNCER} PgBouncer not found: apt-get install pgbouncer")
    server = postgres.admin_url
    # Not under pytest's tmp dir: that is private to root, and PgBouncer runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="saldo-pgbouncer-"))
    port = free_port()
    password = f" password={server.password}" if server.password else ""
    (root / "users.txt").write_text(f'"{server.username}" ""\n')
    (root / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={server.host} port={server.port or 5432} user={server.username}{password}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {root / "users.txt"}
pool_mode = transaction
default_pool_size = 2
max_client_conn = 400
ignore_startup_parameters = extra_float_digits
"""
    )
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    log = (root / "pgbouncer.log").open("w")
    process = subprocess.Popen(
        as_postgres_user(binary, root / "pgbouncer.ini"), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = (root / "pgbouncer.log").read_text()
                    raise RuntimeError(f"PgBouncer did not start:\n{output}") from None
                time.sleep(0.1)
        yield server.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pooled_db(postgres: PostgresServer, pgbouncer: str) -> Iterator[tuple[str, str]]:
    """A fresh, empty database: (its URL through the pooler, its URL direct)."""
    name = postgres.create_database(empty=True)
    try:
        yield make_url(pgbouncer).set(database=name).render_as_string(False), postgres.url(name)
    finally:
        postgres.drop_database(name)


async def test_without_db_pooler_statements_go_missing_behind_the_pooler(pooled_db, settings_for):
    # What a practice hits without the setting: a statement asyncpg prepared and kept
    # on one server connection is asked for on the other one.
    through_pooler, _direct = pooled_db
    engine = create_engine(settings_for(through_pooler))
    try:
        async with engine.connect() as first, engine.connect() as second:
            with pytest.raises(DBAPIError, match="prepared statement"):
                for _ in range(4):
                    await first.execute(text("SELECT 1"))
                    await first.commit()
                    await second.execute(text("SELECT 2"))  # holds a server connection
                    await first.execute(text("SELECT 1"))
                    await first.commit()
                    await second.commit()
    finally:
        await engine.dispose()


async def test_with_db_pooler_the_same_statements_run(pooled_db, settings_for):
    through_pooler, _direct = pooled_db
    engine = create_engine(settings_for(through_pooler, db_pooler="transaction"))
    try:
        async with engine.connect() as first, engine.connect() as second:
            for _ in range(4):
                assert (await first.execute(text("SELECT 1"))).scalar() == 1
                await first.commit()
                assert (await second.execute(text("SELECT 2"))).scalar() == 2
                assert (await first.execute(text("SELECT 1"))).scalar() == 1
                await first.commit()
                await second.commit()
    finally:
        await engine.dispose()


@pytest.fixture
def app_behind_pooler(
    pooled_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str, str]]:
    """The app under uvicorn, 2 workers, migrated and served through the pooler.

    Gives its base URL, and the database's URL through the pooler and direct.
    """
    through_pooler, direct = pooled_db
    monkeypatch.setenv("DB_POOLER", "transaction")
    migrate(through_pooler)
    env = {
        "DATABASE_URL": through_pooler,
        "DB_POOLER": "transaction",
        "SALDO_DATA_DIR": str(tmp_path),
        "SECRET_KEY": "pooler-secret",
        "ADMIN_USER": "admin",
        "ADMIN_PASS_HASH": hash_password(ADMIN_PASSWORD),
    }
    with uvicorn_workers(tmp_path, env) as (base, log):
        yield base, through_pooler, direct
    output = log.read_text()
    assert "prepared statement" not in output, output[-3000:]


async def test_the_app_serves_and_records_money_behind_a_transaction_pooler(
    app_behind_pooler, settings_for
):
    base, through_pooler, direct = app_behind_pooler
    limits = httpx.Limits(max_connections=48, max_keepalive_connections=48)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        token = await http.post(
            "/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert token.status_code == 201, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        created = await http.post(
            "/api/v1/clients", json={"name": "Pooled Patrícia"}, headers=headers
        )
        assert created.status_code == 201, created.text
        client_id = created.json()["id"]
        topup = await http.post(
            "/api/v1/payments",
            json={"client_id": client_id, "amount": "300.00", "method": "cash"},
            headers={**headers, "Idempotency-Key": "pooled-topup"},
        )
        assert topup.status_code == 201, topup.text

        async def charge(i: int) -> httpx.Response:
            return await http.post(
                "/api/v1/charges",
                json={"client_id": client_id, "amount": "10.00", "pay_from_credit": True},
                headers={**headers, "Idempotency-Key": f"pooled-charge-{i % 40}"},
            )

        async def search() -> httpx.Response:
            return await http.get("/api/v1/clients", params={"search": "patri"}, headers=headers)

        # Reads (autocommit) and money writes (transactions) interleaved on two server
        # connections; 80 charge requests carry 40 keys, each sent twice.
        answers = await asyncio.gather(
            *(charge(i) for i in range(80)), *(search() for _ in range(80))
        )
        # pg_dump through the pooler too (it changes session settings outside its
        # transaction): the app answers as before afterwards.
        settings = settings_for(through_pooler, db_pooler="transaction")
        backup = await backups.make_backup_async(settings)
        assert backups.check_backup(backup.path).kind == "postgresql"
        after = await asyncio.gather(*(search() for _ in range(20)))
    charges, searches = answers[:80], [*answers[80:], *after]
    assert Counter(r.status_code for r in searches) == {200: 100}
    assert {r.json()["items"][0]["id"] for r in searches} == {client_id}
    statuses = Counter(r.status_code for r in charges)
    # 300.00 of credit pays 30 of the 40 distinct charges; a repeated key answers as its first.
    assert statuses == {201: 60, 409: 20}, statuses

    engine = create_engine(settings_for(direct))
    try:
        async with session_maker(engine)() as session:
            client = await session.get(Client, client_id)
            assert (client.credit_cents, client.owed_cents) == (0, 0)
            assert await ledger.verify(session) == []
    finally:
        await engine.dispose()
