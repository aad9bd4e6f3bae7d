"""``python -m app …``: the commands an operator runs."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from sqlalchemy import func, select

from app.config import load_settings
from app.db import alembic_ini_path, create_engine, session_maker


def _alembic_config() -> Config:
    cfg = Config(alembic_ini_path())
    cfg.attributes["configure_logging"] = False
    return cfg


def upgrade_database() -> None:
    command.upgrade(_alembic_config(), "head")


def _read_password(prompt: str) -> str:
    """From a prompt on a terminal, or one line of standard input otherwise."""
    if sys.stdin.isatty():
        return click.prompt(prompt, hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().rstrip("\n")


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@click.group()
def cli() -> None:
    """Saldo: the money side of a small service practice."""


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration the database lacks."""
    upgrade_database()
    click.echo("database is up to date")


@cli.group()
def users() -> None:
    """Logins."""


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "reception", "accountant"]), required=True)
@click.option("--name", "display_name", default=None, help="Name shown in the app.")
def users_create(username: str, role: str, display_name: str | None) -> None:
    """Create a login; the password comes from a prompt (or one line of standard input)."""
    from app.auth import services

    password = _read_password("Password")

    async def go() -> None:
        settings = load_settings()
        engine = create_engine(settings)
        try:
            async with session_maker(engine)() as session:
                await services.create_user(session, username, password, role, display_name)
        finally:
            await engine.dispose()

    try:
        _run(go())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {role} {username}")


@cli.group()
def i18n() -> None:
    """Translation catalogs (app/locale/<language>/LC_MESSAGES/messages.po)."""


@i18n.command("update")
def i18n_update() -> None:
    """Re-extract the source's strings into every catalog; list those still to translate."""
    from app.web import catalogs

    template = catalogs.extract()
    missing = catalogs.update(template)
    click.echo(f"{len(template)} messages in the source")
    for language, msgids in missing.items():
        click.echo(f"{language}: {len(msgids)} to translate")
        for msgid in msgids:
            click.echo(f"  {msgid!r}")
    if any(missing.values()):
        sys.exit(1)


@cli.command("hash-password")
def hash_password() -> None:
    """Print an argon2id hash for ADMIN_PASS_HASH."""
    from app.auth import services

    password = _read_password("Password")
    if problem := services.password_problem(password):
        raise click.ClickException(problem)
    click.echo(services.hash_password(password))


@cli.command("seed-demo")
@click.option("--clients", default=200, show_default=True)
@click.option("--seed", default=7, show_default=True, help="Same seed, same practice.")
def seed_demo(clients: int, seed: int) -> None:
    """Fill an empty database with a believable practice (staff, services, clients, 6 months)."""
    from app.demo import seed as seed_practice

    async def go() -> str:
        settings = load_settings()
        engine = create_engine(settings)
        try:
            return await seed_practice(session_maker(engine), n_clients=clients, seed=seed)
        finally:
            await engine.dispose()

    click.echo(_run(go()))


@cli.command("verify")
def verify() -> None:
    """Check stored credit and owed against the journal; non-zero exit on any difference."""
    from app.ledger.services import verify as verify_ledger

    async def go() -> list:
        settings = load_settings()
        engine = create_engine(settings)
        try:
            async with session_maker(engine)() as session:
                return await verify_ledger(session)
        finally:
            await engine.dispose()

    diffs = _run(go())
    for d in diffs:
        click.echo(
            f"client {d.client_id}: {d.what}: stored {d.stored}, computed {d.computed}", err=True
        )
    if diffs:
        raise SystemExit(1)
    click.echo("journal and balances agree")


@cli.command("close-month")
@click.argument("month", required=False)
def close_month(month: str | None) -> None:
    """Close MONTH (YYYY-MM; default: the previous month). Safe to run every day from cron."""
    from app.admin.services import load_settings as load_practice
    from app.statements import services
    from app.web import i18n

    async def go() -> str:
        settings = load_settings()
        engine = create_engine(settings)
        try:
            async with session_maker(engine)() as session:
                i18n.use((await load_practice(session)).formatting)
                if month is None:
                    period = await services.close_previous_month_if_open(session, i18n.today())
                    if period is None:
                        return "the previous month is already closed; nothing to do"
                else:
                    period = await services.close_month(session, month, None)
                return f"closed {period.month}: digest {period.digest}"
        finally:
            await engine.dispose()

    try:
        click.echo(_run(go()))
    except services_error() as exc:
        raise click.ClickException(str(exc)) from None


def services_error() -> type[Exception]:
    from app.statements.services import StatementError

    return StatementError


@cli.command("backup")
@click.argument("path", required=False, type=click.Path(file_okay=False, path_type=Path))
def backup(path: Path | None) -> None:
    """Write a consistent backup (and its .sha256) into PATH (default: BACKUP_DIR); rotate."""
    import dataclasses

    from app.backup import services

    settings = load_settings()
    if path is not None:
        settings = dataclasses.replace(settings, backup_dir=path.resolve())
    try:
        made = services.make_backup(settings)
    except services.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{made.path} ({made.size} bytes, schema {made.schema})")


@cli.command("restore")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace whatever the target database holds.")
def restore(path: Path, force: bool) -> None:
    """Restore a backup into the (empty) database of DATABASE_URL, migrate, and verify."""
    from app.backup import services

    try:
        report = _run(services.restore(load_settings(), path.resolve(), force=force))
    except services.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"restored {report.backup.name} (schema {report.backup.schema}); "
        f"database now at schema {report.schema_after}"
    )
    for d in report.differences:
        click.echo(
            f"client {d.client_id}: {d.what}: stored {d.stored}, computed {d.computed}", err=True
        )
    if report.differences:
        raise SystemExit(1)
    click.echo("journal and balances agree")


async def _first_admin() -> str | None:
    """On an installation with no users at all, create ``admin`` with a random password."""
    from app.auth import services
    from app.auth.models import User

    settings = load_settings()
    engine = create_engine(settings)
    try:
        async with session_maker(engine)() as session:
            if await session.scalar(select(func.count(User.id))):
                return None
            password = "-".join(secrets.token_urlsafe(4) for _ in range(3))
            await services.create_user(session, "admin", password, "admin", "Admin")
    finally:
        await engine.dispose()
    path = settings.data_dir / "first-admin.txt"
    path.write_text(f"username: admin\npassword: {password}\n")
    os.chmod(path, 0o600)
    return password


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port", default=lambda: int(os.environ.get("PORT", "8000")), show_default="8000 or $PORT"
)
@click.option("--workers", default=1, show_default=True)
@click.option("--demo", is_flag=True, help="Seed demo data when the database has no clients.")
@click.option("--proxy-headers", is_flag=True, help="Trust X-Forwarded-* (behind a proxy).")
def serve(host: str, port: int, workers: int, demo: bool, proxy_headers: bool) -> None:
    """Migrate, make sure someone can log in, and serve the app."""
    import uvicorn

    upgrade_database()
    settings = load_settings()
    password = None
    if not settings.admin_user:
        password = _run(_first_admin())
    if demo:
        from app.demo import seed as seed_practice

        async def go() -> str:
            engine = create_engine(settings)
            try:
                return await seed_practice(session_maker(engine), only_if_empty=True)
            finally:
                await engine.dispose()

        click.echo(_run(go()))
    click.echo(f"\n  Saldo is running at http://{host}:{port}\n")
    if password:
        first = Path(settings.data_dir) / "first-admin.txt"
        click.echo(
            f"  First login: admin / {password}\n"
            f"  (saved in {first}; change it under 'My password')\n"
        )
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=proxy_headers,
        forwarded_allow_ips="*" if proxy_headers else None,
        log_level="warning",
    )


def main() -> None:
    cli(prog_name="python -m app")
