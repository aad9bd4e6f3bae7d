"""Settings an operator gives through the environment, and the commands that need no database."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner

from app.cli import cli
from app.config import DEFAULT_DATABASE_URL, load_settings, normalise_database_url
from app.startup import head_revision

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No SALDO/DATABASE settings from the developer's shell; work inside tmp_path."""
    for name in (
        "DATABASE_URL",
        "SECRET_KEY",
        "SALDO_DATA_DIR",
        "SALDO_ENV",
        "SLOW_QUERY_MS",
        "DB_POOLER",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SALDO_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


# --------------------------------------------------------------------------- database URL


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "postgres://saldo:pw@db.internal:5432/saldo",
            "postgresql+asyncpg://saldo:pw@db.internal:5432/saldo",
        ),
        (
            "postgresql://saldo:pw@db.internal/saldo",
            "postgresql+asyncpg://saldo:pw@db.internal/saldo",
        ),
        ("postgresql+psycopg2://saldo@db/saldo", "postgresql+asyncpg://saldo@db/saldo"),
        ("postgresql+asyncpg://saldo@db/saldo", "postgresql+asyncpg://saldo@db/saldo"),
        ("sqlite:///./data/saldo.db", "sqlite+aiosqlite:///./data/saldo.db"),
        ("sqlite+aiosqlite:////srv/saldo.db", "sqlite+aiosqlite:////srv/saldo.db"),
    ],
)
def test_database_urls_from_hosting_providers_are_normalised(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


def test_a_render_style_database_url_reaches_the_settings_as_asyncpg(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://saldo:pw@dpg-123.internal/saldo")

    assert load_settings().database_url == "postgresql+asyncpg://saldo:pw@dpg-123.internal/saldo"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, ""),
        ("", ""),
        ("session", ""),
        ("Transaction", "transaction"),
        (" transaction ", "transaction"),
    ],
)
def test_db_pooler_names_a_transaction_mode_pooler(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, given: str | None, expected: str
) -> None:
    if given is not None:
        monkeypatch.setenv("DB_POOLER", given)

    assert load_settings().db_pooler == expected


def test_an_unknown_db_pooler_stops_the_start_with_what_to_set(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_POOLER", "pgbouncer")

    with pytest.raises(ValueError, match=r'DB_POOLER is "pgbouncer".*"transaction"'):
        load_settings()


async def test_db_pooler_with_sqlite_is_named_as_ignored(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from app.db import create_engine

    monkeypatch.setenv("DB_POOLER", "transaction")
    with caplog.at_level(logging.WARNING, logger="saldo.sql"):
        await create_engine(load_settings()).dispose()
    assert "DB_POOLER is for PostgreSQL behind a pooler: SQLite ignores it" in caplog.text

    caplog.clear()
    monkeypatch.delenv("DB_POOLER")
    with caplog.at_level(logging.WARNING, logger="saldo.sql"):
        await create_engine(load_settings()).dispose()
    assert "DB_POOLER" not in caplog.text


def test_without_database_url_saldo_uses_sqlite_under_data(clean_env: Path) -> None:
    settings = load_settings()

    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.is_sqlite
    assert (clean_env / "data").is_dir()


# --------------------------------------------------------------------------- secret key


def test_secret_key_is_generated_once_into_the_data_dir_readable_only_by_its_owner(
    clean_env: Path,
) -> None:
    first = load_settings().secret_key
    key_file = clean_env / "data" / "secret_key"

    assert len(first) >= 32
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_settings().secret_key == first, "a restart must keep sessions valid"


def test_secret_key_from_the_environment_wins_and_nothing_is_written(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")

    assert load_settings().secret_key == "from-the-environment"
    assert not (clean_env / "data" / "secret_key").exists()


# --------------------------------------------------------------------------- production


def test_production_cookies_are_host_bound(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALDO_ENV", "production")
    settings = load_settings()

    assert settings.production
    assert settings.session_cookie.startswith("__Host-")
    assert settings.csrf_cookie.startswith("__Host-")


def test_the_start_up_check_knows_the_newest_migration() -> None:
    assert head_revision()


# --------------------------------------------------------------------------- command line


def test_hash_password_reads_standard_input_and_prints_an_argon2id_hash(clean_env: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "hash-password"],
        input="a quiet tuesday morning\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip()
    assert printed.startswith("$argon2id$")
    assert PasswordHasher().verify(printed, "a quiet tuesday morning")


def test_hash_password_refuses_a_weak_password_and_prints_no_hash() -> None:
    result = CliRunner().invoke(cli, ["hash-password"], input="password\n")

    assert result.exit_code != 0
    assert "$argon2" not in result.output
