"""What the app checks and prepares when it starts."""

from __future__ import annotations

import ctypes.util
import gc
import logging

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.auth import services as auth
from app.auth.models import User
from app.config import Settings
from app.db import alembic_ini_path

log = logging.getLogger("saldo.startup")


class NotMigrated(RuntimeError):
    pass


def head_revision() -> str | None:
    return ScriptDirectory.from_config(Config(alembic_ini_path())).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        try:
            return await conn.scalar(text("SELECT version_num FROM alembic_version"))
        except DBAPIError:
            return None


async def require_migrated(engine: AsyncEngine) -> None:
    """Refuse to serve a database that is not at the newest migration."""
    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise NotMigrated(
            f"The database is at migration {current or 'none'} but this version of Saldo needs "
            f"{head}. Run: python -m app db upgrade"
        )


async def ensure_first_admin(settings: Settings, maker: async_sessionmaker[AsyncSession]) -> None:
    """Create ADMIN_USER (with ADMIN_PASS_HASH) as an admin when that user does not exist."""
    if not (settings.admin_user and settings.admin_pass_hash):
        return
    async with maker() as session:
        exists = await session.scalar(
            select(User.id).where(User.username == settings.admin_user.strip().lower())
        )
        if exists is None:
            try:
                await auth.create_user(
                    session,
                    settings.admin_user,
                    "",
                    "admin",
                    password_hash=settings.admin_pass_hash,
                )
                log.info("created admin user %s from ADMIN_USER", settings.admin_user)
            except (ValueError, IntegrityError):  # another worker created it first
                pass


def harfbuzz_subset_available() -> bool:
    return ctypes.util.find_library("harfbuzz-subset") is not None


def warn_missing_harfbuzz() -> None:
    if not harfbuzz_subset_available():
        log.warning(
            "libharfbuzz-subset is missing: PDF statements render about 4x slower. "
            "Install Debian's libharfbuzz-subset0."
        )


def freeze_heap() -> None:
    """Take what start-up built out of the cyclic garbage collector's walks.

    Modules, classes, routes and the app itself live as long as the worker; in
    the oldest generation, every full collection walked all of them. Under a
    search load one came about every 3 s and stopped the worker for 140-190 ms,
    which was the search's p99; frozen, a full collection walks only what was
    made since, 7-11 ms (docs/BENCHMARKS.md, 2026-12-04, before midnight).
    No collection first: start-up leaves a few hundred objects of garbage, not
    worth a full walk on every start (the test suite starts the app hundreds of times).
    """
    gc.freeze()


def unfreeze_heap() -> None:
    """Give the frozen objects back to the collector at shutdown.

    A process that builds apps one after another (the test suite) can then
    still collect the old ones.
    """
    gc.unfreeze()
