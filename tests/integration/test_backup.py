"""Own your data: backups while the app runs, and the restore drill on both databases.

The drill: a practice seeded through the real services with closed months →
``python -m app backup`` → ``restore`` into a fresh empty database → every
client's balance, every statement and every month's digest are identical.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.services import load_settings as load_practice
from app.audit import AuditEvent
from app.auth.models import User
from app.backup import services as backups
from app.cli import cli
from app.clients.models import Client
from app.config import Settings
from app.db import create_engine, session_maker
from app.demo import seed
from app.ledger import services as ledger
from app.ledger.models import Entry
from app.statements import services as statements
from app.statements.models import Period, PeriodStatement
from app.web import i18n

ROOT = Path(__file__).resolve().parents[2]
SAME_KIND = pytest.mark.parametrize(
    ("db_url", "empty_db_url"),
    [("sqlite", "sqlite"), ("postgresql", "postgresql")],
    indirect=True,
)


async def seed_practice(maker: async_sessionmaker[AsyncSession], clients: int = 12) -> None:
    """Demo clients with six months of sessions and payments, every finished month closed."""
    await seed(maker, n_clients=clients, seed=3)
    async with maker() as session:
        i18n.use((await load_practice(session)).formatting)
        first = await session.scalar(select(func.min(Entry.effective_date)))
    month, this_month = first.strftime("%Y-%m"), i18n.today().strftime("%Y-%m")
    while month < this_month:
        async with maker() as session:
            await statements.close_month(session, month, None)
        month = (date.fromisoformat(month + "-01") + timedelta(days=32)).strftime("%Y-%m")


async def books(maker: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """Everything the drill compares: balances, full statements, periods and their snapshots."""
    async with maker() as session:
        clients = {
            c.id: (c.name, c.credit_cents, c.owed_cents, c.credit_cents - c.owed_cents)
            for c in await session.scalars(select(Client).order_by(Client.id))
        }
        everything = (date(2000, 1, 1), i18n.today())
        statement_json = {
            cid: (await statements.statement(session, cid, *everything)).json() for cid in clients
        }
        periods = {
            p.month: (p.digest, p.previous_digest, p.totals, p.closed_at is not None)
            for p in await session.scalars(select(Period).order_by(Period.month))
        }
        snapshots = sorted(
            (s.period_id, s.client_id, s.opening_cents, s.closing_cents, s.data)
            for s in await session.scalars(select(PeriodStatement))
        )
        entries = await session.scalar(select(func.count(Entry.id)))
        differences = await ledger.verify(session)
    return {
        "clients": clients,
        "statements": statement_json,
        "periods": periods,
        "snapshots": snapshots,
        "entries": entries,
        "differences": differences,
    }


async def cli_run(*args: str) -> Any:
    """``python -m app ARGS`` in-process (in a thread: restore runs its own event loop)."""
    result = await asyncio.to_thread(CliRunner().invoke, cli, list(args))
    return result


def only_backup(settings: Settings) -> backups.Backup:
    found = backups.list_backups(settings.backup_dir)
    assert len(found) == 1, found
    return found[0]


async def is_empty(settings: Settings) -> bool:
    return not await backups._user_tables(settings)


# --------------------------------------------------------------------------- the drill


@SAME_KIND
async def test_backup_then_restore_into_a_fresh_database_gives_identical_books(
    maker: async_sessionmaker[AsyncSession],
    settings: Settings,
    empty_db_url: str,
    settings_for: Callable[..., Settings],
) -> None:
    await seed_practice(maker)
    before = await books(maker)
    assert len(before["periods"]) >= 5 and all(p[0] for p in before["periods"].values())
    assert before["entries"] > 100 and before["differences"] == []

    made = await cli_run("backup")
    assert made.exit_code == 0, made.output
    backup = only_backup(settings)
    assert backup.checksum_ok and backup.schema == backups.head_revision()
    assert backup.path.stat().st_mode & 0o077 == 0  # the owner's only

    target = settings_for(empty_db_url)  # DATABASE_URL now names the empty database
    restored = await cli_run("restore", str(backup.path))
    assert restored.exit_code == 0, restored.output
    assert "journal and balances agree" in restored.output

    engine = create_engine(target)
    try:
        after = await books(session_maker(engine))
        assert after == before
        # The restored database is live: ids continue where the original stopped.
        async with session_maker(engine)() as session:
            actor = await session.scalar(select(User).order_by(User.id))
            practice = await load_practice(session)
            client_id = next(iter(before["clients"]))
            await ledger.record_payment(
                session,
                actor,
                practice,
                ledger.PaymentInput(client_id, 1234, "cash", i18n.today()),
            )
            await session.commit()
        async with session_maker(engine)() as session:
            assert await ledger.verify(session) == []
            assert await session.scalar(select(func.count(Entry.id))) == before["entries"] + 1
    finally:
        await engine.dispose()


@SAME_KIND
async def test_a_backup_taken_while_payments_are_being_recorded_restores_consistently(
    maker: async_sessionmaker[AsyncSession],
    settings: Settings,
    empty_db_url: str,
    settings_for: Callable[..., Settings],
    make_client: Callable[..., Any],
    make_user: Any,
) -> None:
    actor = await make_user("reception")
    client_ids = [await make_client(f"Client {n}") for n in range(4)]
    async with maker() as session:
        practice = await load_practice(session)
    writing = True

    async def keep_paying() -> int:
        n = 0
        while writing:
            async with maker() as session:
                await ledger.record_payment(
                    session,
                    actor,
                    practice,
                    ledger.PaymentInput(client_ids[n % 4], 100 + n, "pix", date.today()),
                )
                await session.commit()
            n += 1
            await asyncio.sleep(0)
        return n

    payer = asyncio.create_task(keep_paying())
    await asyncio.sleep(0.2)
    backup = await backups.make_backup_async(settings)  # the loop keeps serving meanwhile
    writing = False
    paid = await payer
    assert paid > 5

    report = await backups.restore(settings_for(empty_db_url), backup.path)
    assert report.differences == []
    engine = create_engine(settings_for(empty_db_url))
    try:
        async with session_maker(engine)() as session:
            restored = await session.scalar(select(func.count(Entry.id)))
    finally:
        await engine.dispose()
    assert 0 < restored <= paid


async def test_the_real_command_line_writes_a_backup_and_its_checksum(
    settings: Settings, tmp_path: Path
) -> None:
    out_dir = tmp_path / "elsewhere"
    env = {**os.environ, "DATABASE_URL": settings.database_url, "SALDO_DATA_DIR": str(tmp_path)}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app", "backup", str(out_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (backup,) = backups.list_backups(out_dir)
    assert backup.checksum_ok and str(backup.path) in done.stdout
    suffix = ".sqlite3" if settings.is_sqlite else ".pgdump"
    assert backup.name.endswith(f"-schema{backups.head_revision()}{suffix}")
    # The checksum file is in sha256sum's own format.
    check = await asyncio.to_thread(
        subprocess.run,
        ["sha256sum", "-c", backup.name + ".sha256"],
        cwd=out_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0 and ": OK" in check.stdout


# --------------------------------------------------------------------------- refusals


async def test_restore_refuses_a_database_that_has_data_unless_forced(
    maker: async_sessionmaker[AsyncSession], settings: Settings, make_client: Callable[..., Any]
) -> None:
    await make_client("Ana Souza")
    backup = backups.make_backup(settings)
    await make_client("Bruno Lima")  # after the backup: a restore must drop it

    refused = await cli_run("restore", str(backup.path))
    assert refused.exit_code != 0 and "not empty" in refused.output
    async with maker() as session:
        assert await session.scalar(select(func.count(Client.id))) == 2

    forced = await cli_run("restore", "--force", str(backup.path))
    assert forced.exit_code == 0, forced.output
    engine = create_engine(settings)
    try:
        async with session_maker(engine)() as session:
            assert list(await session.scalars(select(Client.name))) == ["Ana Souza"]
    finally:
        await engine.dispose()


@SAME_KIND
async def test_restore_refuses_a_damaged_backup_and_touches_nothing(
    settings: Settings, empty_db_url: str, settings_for: Callable[..., Settings]
) -> None:
    backup = backups.make_backup(settings)
    with backup.path.open("r+b") as f:
        f.seek(backup.size // 2)
        byte = f.read(1)
        f.seek(backup.size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    target = settings_for(empty_db_url)
    result = await cli_run("restore", str(backup.path))
    assert result.exit_code != 0 and "Checksum mismatch" in result.output
    assert await is_empty(target)


async def test_restore_refuses_unknown_files_missing_checksums_and_newer_schemas(
    settings: Settings, tmp_path: Path
) -> None:
    backup = backups.make_backup(settings)
    stranger = tmp_path / "dump.sql"
    stranger.write_text("SELECT 1;")
    with pytest.raises(backups.BackupError, match="is not a Saldo backup"):
        await backups.restore(settings, stranger)

    alone = tmp_path / backup.name
    alone.write_bytes(backup.path.read_bytes())
    with pytest.raises(backups.BackupError, match=r"\.sha256 is missing"):
        await backups.restore(settings, alone)

    future = tmp_path / backup.name.replace(f"schema{backup.schema}", "schema9999")
    future.write_bytes(backup.path.read_bytes())
    checksum = backups.sha256_of(future)
    future.with_name(future.name + ".sha256").write_text(f"{checksum}  {future.name}\n")
    with pytest.raises(backups.BackupError, match="does not know"):
        await backups.restore(settings, future, force=True)


@pytest.mark.parametrize(("db_url", "empty_db_url"), [("sqlite", "postgresql")], indirect=True)
async def test_restore_refuses_a_backup_of_the_other_kind_of_database(
    settings: Settings, empty_db_url: str, settings_for: Callable[..., Settings]
) -> None:
    backup = backups.make_backup(settings)
    target = settings_for(empty_db_url)
    with pytest.raises(backups.BackupError, match="same kind of database"):
        await backups.restore(target, backup.path)
    assert await is_empty(target)


# --------------------------------------------------------------------------- rotation


async def test_only_the_newest_backups_are_kept(settings: Settings) -> None:
    keep_two = dataclasses.replace(settings, backup_keep=2)
    made = [backups.make_backup(keep_two).name for _ in range(3)]
    assert len(set(made)) == 3
    kept = [b.name for b in backups.list_backups(settings.backup_dir)]
    assert kept == [made[2], made[1]]
    left = sorted(p.name for p in settings.backup_dir.iterdir())
    assert left == sorted([".lock", *kept, *(f"{name}.sha256" for name in kept)])


def test_rotation_ignores_files_that_are_not_backups(tmp_path: Path) -> None:
    names = [f"saldo-2026010{d}T030000Z-schema0003.sqlite3" for d in range(1, 6)]
    for name in [*names, "notes.txt", "saldo-latest.sqlite3"]:
        (tmp_path / name).write_text("x")
    deleted = backups.rotate(tmp_path, 3)
    assert sorted(deleted) == names[:2]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*names[2:], "notes.txt", "saldo-latest.sqlite3"]
    )


def test_postgresql_password_goes_to_the_environment_not_the_command_line() -> None:
    env = backups.libpq_environment(
        "postgresql+asyncpg://saldo:s3cr%40t@db.internal:6432/books?ssl=require"
    )
    assert env == {
        "PGHOST": "db.internal",
        "PGPORT": "6432",
        "PGUSER": "saldo",
        "PGPASSWORD": "s3cr@t",
        "PGDATABASE": "books",
        "PGSSLMODE": "require",
    }


# --------------------------------------------------------------------------- the admin page


async def test_admin_backs_up_from_the_page_and_downloads_the_file(
    client: Any, login: Any, csrf: Any, maker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    await login(client, "admin")
    page = await client.get("/admin/backups")
    assert page.status_code == 200 and "No backups on this machine yet" in page.text
    assert 'href="/admin/backups"' in page.text  # linked from the admin menu

    made = await client.post(
        "/admin/backups", data={"_csrf_token": await csrf(client)}, follow_redirects=False
    )
    assert made.status_code == 303
    backup = only_backup(settings)
    page = await client.get(made.headers["location"])
    assert backup.name in page.text and "written" in page.text
    assert f'href="/admin/backups/{backup.name}"' in page.text

    download = await client.get(f"/admin/backups/{backup.name}")
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment")
    assert backup.name in download.headers["content-disposition"]
    assert download.content == backup.path.read_bytes()
    sums = await client.get(f"/admin/backups/{backup.name}.sha256")
    assert sums.status_code == 200 and sums.text.split()[1] == backup.name

    async with maker() as session:
        actions = list(
            await session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.action.like("backup_%"))
                .order_by(AuditEvent.id)
            )
        )
    assert actions == ["backup_created", "backup_downloaded", "backup_downloaded"]


@pytest.mark.parametrize(
    "name",
    [
        "..%2Fsaldo.db",
        "..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        "secret_key",
        ".saldo-1-1.partial",
        "saldo-20260101T030000Z-schema0003.sqlite3",  # well formed, but not there
        "saldo-20260101T030000Z-schema0003.sqlite3%2F..%2F..%2Fsaldo.db",
    ],
)
async def test_a_download_reaches_only_listed_backups(
    client: Any, login: Any, settings: Settings, name: str
) -> None:
    backups.make_backup(settings)
    (settings.data_dir / "backups" / "secret_key").write_text("not for download")
    await login(client, "admin")
    response = await client.get(f"/admin/backups/{name}")
    assert response.status_code == 404
    assert b"SQLite format" not in response.content and b"not for download" not in response.content


async def test_the_page_says_why_a_backup_could_not_be_made(
    client: Any, login: Any, csrf: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(_settings: Settings) -> backups.Backup:
        raise backups.BackupError("pg_dump was not found")

    monkeypatch.setattr(backups, "make_backup", fail)
    await login(client, "admin")
    response = await client.post("/admin/backups", data={"_csrf_token": await csrf(client)})
    assert response.status_code == 422
    assert "No backup was made: pg_dump was not found" in response.text


async def test_the_page_flags_a_backup_whose_checksum_no_longer_holds(
    client: Any, login: Any, settings: Settings
) -> None:
    good = backups.make_backup(settings)
    damaged = backups.make_backup(settings)
    with damaged.path.open("ab") as f:
        f.write(b"\0")
    await login(client, "admin")
    page = await client.get("/admin/backups")
    rows = page.text.split('<tr data-backup="')[1:]
    flagged = {row.split('"')[0]: "Does not match" in row for row in rows}
    assert flagged == {good.name: False, damaged.name: True}


def test_backups_go_under_the_data_dir_unless_backup_dir_says_otherwise(
    settings_for: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defaults = settings_for("sqlite+aiosqlite:///" + str(tmp_path / "saldo.db"))
    assert defaults.backup_dir == tmp_path / "backups" and defaults.backup_keep == 14
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path / "offsite"))
    monkeypatch.setenv("BACKUP_KEEP", "0")  # the backup just made is always kept
    chosen = settings_for("sqlite+aiosqlite:///" + str(tmp_path / "saldo.db"))
    assert chosen.backup_dir == tmp_path / "offsite" and chosen.backup_keep == 1
