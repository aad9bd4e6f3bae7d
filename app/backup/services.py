"""Backups of the whole database, and restoring one into an empty database.

A backup is one file in ``BACKUP_DIR`` named
``saldo-<YYYYmmddTHHMMSSZ>-schema<revision>.<sqlite3|pgdump>`` with a
``<name>.sha256`` beside it in ``sha256sum`` format (``sha256sum -c`` checks it).

- SQLite: a copy through SQLite's online backup API, taken in one step, so it
  is one consistent snapshot even while the app writes (WAL mode).
- PostgreSQL: ``pg_dump --format=custom`` (one snapshot too), the connection
  taken from DATABASE_URL; the password travels in ``PGPASSWORD``, never on
  a command line.

The data file is renamed into place only after its checksum file is written,
so a listed backup is complete. The newest ``BACKUP_KEEP`` backups are kept.
Restoring checks the checksum and the schema revision before touching the
target, then migrates forward and runs the ledger's ``verify``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import glob
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import audit
from app.auth.models import User
from app.config import Settings
from app.db import alembic_ini_path, create_engine, session_maker
from app.ledger.services import Difference, verify
from app.web.i18n import _

NAME = re.compile(r"saldo-(\d{8}T\d{6}Z)-schema([0-9A-Za-z_]{1,32})\.(sqlite3|pgdump)")
STAMP = "%Y%m%dT%H%M%SZ"
CHUNK = 1 << 20


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Backup:
    name: str
    path: Path
    size: int
    made_at: datetime
    schema: str
    kind: str  # sqlite | postgresql
    checksum_ok: bool


@dataclass(frozen=True)
class RestoreReport:
    backup: Backup
    schema_after: str
    differences: list[Difference]  # what verify found; empty when the journal agrees


# --------------------------------------------------------------------------- files


def parse_name(name: str) -> tuple[datetime, str, str] | None:
    """(made at, schema revision, kind) of a backup file name, or None for any other name."""
    match = NAME.fullmatch(name)
    if match is None:
        return None
    try:
        made_at = datetime.strptime(match[1], STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None
    return made_at, match[2], "sqlite" if match[3] == "sqlite3" else "postgresql"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def checksum_problem(path: Path) -> str | None:
    """Why ``path`` does not match the ``.sha256`` beside it, or None when it does."""
    sums = _checksum_path(path)
    if not sums.is_file():
        return _("%(file)s is missing: the backup cannot be checked.", file=sums.name)
    try:
        expected, _sep, named = sums.read_text().strip().partition("  ")
    except (OSError, UnicodeDecodeError):
        return _("%(file)s cannot be read.", file=sums.name)
    if named.lstrip("*") != path.name or not re.fullmatch(r"[0-9a-f]{64}", expected):
        return _("%(file)s does not describe %(name)s.", file=sums.name, name=path.name)
    if sha256_of(path) != expected:
        return _(
            "Checksum mismatch: %(name)s is damaged or was changed after the backup.",
            name=path.name,
        )
    return None


# Checksums of unchanged files are not recomputed on every visit of the page.
_checked: dict[tuple[str, int, int], bool] = {}


def _checksum_ok(path: Path, stat: os.stat_result) -> bool:
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _checked:
        _checked[key] = checksum_problem(path) is None
    return _checked[key]


def list_backups(directory: Path, *, check: bool = True) -> list[Backup]:
    """The backups in ``directory``, newest first. Files with other names are ignored."""
    found = []
    if not directory.is_dir():
        return found
    for path in directory.iterdir():
        parsed = parse_name(path.name)
        if parsed is None or not path.is_file():
            continue
        stat = path.stat()
        made_at, schema, kind = parsed
        found.append(
            Backup(
                name=path.name,
                path=path,
                size=stat.st_size,
                made_at=made_at,
                schema=schema,
                kind=kind,
                checksum_ok=_checksum_ok(path, stat) if check else False,
            )
        )
    return sorted(found, key=lambda b: b.name, reverse=True)


async def list_backups_async(directory: Path) -> list[Backup]:
    """``list_backups`` in a worker thread: checking a large file's checksum takes a while."""
    return await asyncio.to_thread(list_backups, directory)


def checksum_file(backup: Backup) -> Path:
    return _checksum_path(backup.path)


def find_backup(directory: Path, name: str) -> Backup | None:
    """The backup called exactly ``name`` in ``directory``; None for any other name.

    The name must be one of the listed backups' names, so nothing outside the
    directory (``..``, ``/``, a symlink's target name) can be reached through it.
    """
    if parse_name(name) is None:
        return None
    return next((b for b in list_backups(directory, check=False) if b.name == name), None)


def rotate(directory: Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` backups (and their checksums); the names deleted."""
    deleted = []
    for old in list_backups(directory, check=False)[max(1, keep) :]:
        _checksum_path(old.path).unlink(missing_ok=True)
        old.path.unlink(missing_ok=True)
        deleted.append(old.name)
    return deleted


# --------------------------------------------------------------------------- schema


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(Config(alembic_ini_path()))


def head_revision() -> str:
    head = _script().get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    return {rev.revision for rev in _script().walk_revisions()}


def upgrade(database_url: str) -> None:
    """Migrate the database at ``database_url`` to the newest revision (blocking)."""
    cfg = Config(alembic_ini_path())
    cfg.attributes["database_url"] = database_url
    cfg.attributes["configure_logging"] = False
    command.upgrade(cfg, "head")


# --------------------------------------------------------------------------- PostgreSQL tools


def _tool_version(path: str) -> tuple[int, ...]:
    try:
        # The tool's own path, found above; no user input reaches the arguments.
        out = subprocess.run(  # noqa: S603
            [path, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    return tuple(int(part) for part in match.groups() if part) if match else ()


@cache
def pg_tool(name: str) -> str:
    """The newest ``pg_dump``/``pg_restore`` on PATH or in /usr/lib/postgresql/*/bin.

    A newer client reads older servers; an older one refuses newer servers.
    """
    candidates = [shutil.which(name), *glob.glob(f"/usr/lib/postgresql/*/bin/{name}")]
    versions = {
        path: _tool_version(path) for path in candidates if path and os.access(path, os.X_OK)
    }
    versions = {path: v for path, v in versions.items() if v}
    if not versions:
        raise BackupError(
            _(
                "%(tool)s was not found: install the PostgreSQL client tools "
                "(Debian/Ubuntu: apt-get install postgresql-client).",
                tool=name,
            )
        )
    return max(versions, key=lambda path: versions[path])


def libpq_environment(database_url: str) -> dict[str, str]:
    """The libpq variables (PGHOST, PGUSER, PGPASSWORD…) for a SQLAlchemy PostgreSQL URL."""
    url: URL = make_url(database_url)
    env = {
        key: str(value)
        for key, value in (
            ("PGHOST", url.host),
            ("PGPORT", url.port),
            ("PGUSER", url.username),
            ("PGPASSWORD", url.password),
            ("PGDATABASE", url.database),
        )
        if value
    }
    query = {
        key: value if isinstance(value, str) else value[-1] for key, value in url.query.items()
    }
    if host := query.get("host"):  # a Unix socket directory
        env["PGHOST"] = host
    if port := query.get("port"):
        env["PGPORT"] = port
    if sslmode := query.get("sslmode") or query.get("ssl"):
        env["PGSSLMODE"] = {"true": "require", "false": "disable"}.get(sslmode, sslmode)
    return env


def _pg_run(args: list[str], database_url: str, *, timeout: float | None = None) -> str:
    env = {**os.environ, **libpq_environment(database_url)}
    tool = Path(args[0]).name
    try:
        # Arguments are the tool, fixed options and file paths this module names.
        done = subprocess.run(  # noqa: S603
            args, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise BackupError(_("%(tool)s took too long and was stopped.", tool=tool)) from None
    if done.returncode != 0:
        detail = done.stderr.strip() or done.stdout.strip()
        raise BackupError(_("%(tool)s failed: %(detail)s", tool=tool, detail=detail))
    return done.stdout


def _dump_schema(dump: Path) -> str | None:
    """The alembic revision stored in a custom-format dump (its ``alembic_version`` row)."""
    out = _pg_run(
        [pg_tool("pg_restore"), "--data-only", "--table=alembic_version", "--file=-", str(dump)],
        "postgresql://",
    )
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("COPY ") and "alembic_version" in line and i + 1 < len(lines):
            value = lines[i + 1].strip()
            return None if value == "\\." else value
    return None


# --------------------------------------------------------------------------- making a backup


def _sqlite_path(database_url: str) -> Path:
    database = make_url(database_url).database
    if not database or database == ":memory:":
        raise BackupError(_("An in-memory SQLite database cannot be backed up."))
    return Path(database)


def _sqlite_schema(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        return None
    return row[0] if row else None


def _backup_sqlite(database_url: str, partial: Path) -> str | None:
    source_path = _sqlite_path(database_url)
    if not source_path.is_file():
        raise BackupError(_("The database file %(path)s does not exist.", path=str(source_path)))
    # Read-write, like the app's own connections: it may have to recover a WAL
    # left by a crash before it can read (it writes nothing else).
    source = sqlite3.connect(source_path, timeout=30)
    target = sqlite3.connect(partial)
    try:
        # pages=-1 (the default): all pages in one step, under one read
        # transaction, so the copy is one consistent snapshot of the database.
        source.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        if (problem := target.execute("PRAGMA quick_check").fetchone()[0]) != "ok":
            raise BackupError(_("The copy failed SQLite's check: %(problem)s", problem=problem))
        return _sqlite_schema(target)
    finally:
        target.close()
        source.close()


def _backup_postgresql(database_url: str, partial: Path) -> str | None:
    _pg_run(
        [pg_tool("pg_dump"), "--format=custom", "--no-password", f"--file={partial}"],
        database_url,
    )
    return _dump_schema(partial)


def _free_name(directory: Path, schema: str, kind: str) -> Path:
    """A file name for a backup made now; waits for the next second when this one is taken."""
    suffix = "sqlite3" if kind == "sqlite" else "pgdump"
    while True:
        stamp = datetime.now(UTC).strftime(STAMP)
        path = directory / f"saldo-{stamp}-schema{schema}.{suffix}"
        if not path.exists():
            return path
        time.sleep(0.2)


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """One backup at a time in ``directory``, across this machine's processes and threads.

    Two at once would only compete for the disk, and could pick the same name.
    """
    with (directory / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def make_backup(settings: Settings) -> Backup:
    """Write a consistent backup of the database into BACKUP_DIR, then rotate (blocking).

    Refuses (``BackupError``) a database without a schema revision, a missing
    SQLite file or missing PostgreSQL tools; nothing is left behind then.
    """
    directory = settings.backup_dir
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    kind = "sqlite" if settings.is_sqlite else "postgresql"
    with _exclusive(directory):
        for stale in directory.glob(".saldo-*.partial"):  # left by a backup that was killed
            stale.unlink(missing_ok=True)
        partial = directory / f".saldo-{os.getpid()}-{threading.get_ident()}.partial"
        partial_sums = partial.with_suffix(".sha256.partial")
        try:
            # A backup holds every client's data and the password hashes: owner only.
            os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            if kind == "sqlite":
                schema = _backup_sqlite(settings.database_url, partial)
            else:
                schema = _backup_postgresql(settings.database_url, partial)
            if not schema:
                raise BackupError(
                    _("The database has no schema revision: run python -m app db upgrade first.")
                )
            path = _free_name(directory, schema, kind)
            partial_sums.write_text(f"{sha256_of(partial)}  {path.name}\n")
            partial_sums.replace(_checksum_path(path))
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
            partial_sums.unlink(missing_ok=True)
        rotate(directory, settings.backup_keep)
    parsed = parse_name(path.name)
    assert parsed is not None  # _free_name made the name
    return Backup(path.name, path, path.stat().st_size, *parsed, checksum_ok=True)


async def make_backup_async(settings: Settings) -> Backup:
    """``make_backup`` in a worker thread: the event loop keeps serving while it runs."""
    return await asyncio.to_thread(make_backup, settings)


async def record_backup(session: AsyncSession, backup: Backup, actor: User, ip: str | None) -> None:
    audit(
        session,
        "backup_created",
        user_id=actor.id,
        username=actor.username,
        ip=ip,
        name=backup.name,
        size=backup.size,
    )
    await session.commit()


async def record_download(
    session: AsyncSession, file_name: str, actor: User, ip: str | None
) -> None:
    audit(
        session,
        "backup_downloaded",
        user_id=actor.id,
        username=actor.username,
        ip=ip,
        name=file_name,
    )
    await session.commit()


# --------------------------------------------------------------------------- restoring


def check_backup(path: Path) -> Backup:
    """The backup at ``path`` when it can be restored by this code; ``BackupError`` otherwise.

    Refuses a file that is not named like a backup, whose checksum does not
    match, or whose schema revision this code does not know (a newer Saldo).
    """
    parsed = parse_name(path.name)
    if parsed is None:
        raise BackupError(
            _(
                "%(name)s is not a Saldo backup "
                "(expected saldo-<time>-schema<revision>.sqlite3 or .pgdump).",
                name=path.name,
            )
        )
    if not path.is_file():
        raise BackupError(_("%(path)s does not exist.", path=str(path)))
    if problem := checksum_problem(path):
        raise BackupError(problem)
    made_at, schema, kind = parsed
    if schema not in known_revisions():
        raise BackupError(
            _(
                "%(name)s has schema %(schema)s, which this version of Saldo does not know "
                "(it knows up to %(head)s): restore it with a newer Saldo.",
                name=path.name,
                schema=schema,
                head=head_revision(),
            )
        )
    stat = path.stat()
    return Backup(path.name, path, stat.st_size, made_at, schema, kind, checksum_ok=True)


async def _user_tables(settings: Settings) -> list[str]:
    if settings.is_sqlite and not _sqlite_path(settings.database_url).exists():
        return []
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            if settings.is_sqlite:
                sql = (
                    "SELECT name FROM sqlite_master "
                    "WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                )
            else:
                sql = (
                    "SELECT tablename FROM pg_tables "
                    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
                )
            return sorted(await conn.scalars(text(sql)))
    finally:
        await engine.dispose()


async def _clear_postgresql(settings: Settings) -> None:
    """Drop everything in the public schema (``--force``), leaving it empty as created."""
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


def _load_sqlite(backup: Path, database_url: str) -> None:
    target_path = _sqlite_path(database_url)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    target = sqlite3.connect(target_path, timeout=30)
    try:
        source.backup(target)
        target.execute("PRAGMA journal_mode=WAL")
    finally:
        target.close()
        source.close()


def _load_postgresql(backup: Path, database_url: str) -> None:
    _pg_run(
        [
            pg_tool("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            "--no-password",
            f"--dbname={make_url(database_url).database}",
            str(backup),
        ],
        database_url,
    )


async def restore(settings: Settings, path: Path, *, force: bool = False) -> RestoreReport:
    """Restore the backup at ``path`` into the database of ``settings``, migrate, verify.

    Refuses (``BackupError``, nothing changed) a backup ``check_backup`` refuses,
    a SQLite backup for a PostgreSQL database or the reverse, and a target
    database that already has tables, unless ``force`` (which replaces them).
    The report's ``differences`` are what ``verify`` found after the restore.
    """
    backup = await asyncio.to_thread(check_backup, path)
    target_kind = "sqlite" if settings.is_sqlite else "postgresql"
    if backup.kind != target_kind:
        raise BackupError(
            _(
                "%(name)s is a %(kind)s backup but DATABASE_URL names a %(target)s database: "
                "restore into the same kind of database it came from.",
                name=backup.name,
                kind=backup.kind,
                target=target_kind,
            )
        )
    if (tables := await _user_tables(settings)) and not force:
        shown = ", ".join(tables[:5]) + (" …" if len(tables) > 5 else "")
        raise BackupError(
            _(
                "The target database is not empty (%(count)s tables: %(tables)s). Restore into "
                "an empty database, or pass --force to replace everything in it.",
                count=len(tables),
                tables=shown,
            )
        )
    if target_kind == "sqlite":
        await asyncio.to_thread(_load_sqlite, backup.path, settings.database_url)
    else:
        if tables:
            await _clear_postgresql(settings)
        await asyncio.to_thread(_load_postgresql, backup.path, settings.database_url)
    # alembic's env.py runs its own event loop: in a thread of its own.
    await asyncio.to_thread(upgrade, settings.database_url)
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            schema_after = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        async with session_maker(engine)() as session:
            differences = await verify(session)
    finally:
        await engine.dispose()
    return RestoreReport(backup=backup, schema_after=str(schema_after), differences=differences)
