"""Settings from the environment, read once at start.

What the owner changes from the UI (practice name, currency, locale, templates)
lives in the database instead: see ``app.admin.services.SettingsService``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/saldo.db"


def normalise_database_url(url: str) -> str:
    """Accept the URL forms hosting providers hand out (``postgres://``, ``postgresql://``)."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def _secret_key(data_dir: Path) -> str:
    """SECRET_KEY from the environment, or one generated once into ``data/``."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # O_EXCL: when several workers start at once, the first one's key wins.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def db_pooler() -> str:
    """DB_POOLER: "transaction" when PostgreSQL is reached through a pooler in
    transaction mode (PgBouncer, or a provider's "pooled" connection string)."""
    value = os.environ.get("DB_POOLER", "").strip().lower()
    if value in ("", "none", "session"):
        return ""
    if value != "transaction":
        raise ValueError(f'DB_POOLER is "{value}": leave it unset, or set it to "transaction"')
    return value


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: str
    data_dir: Path
    production: bool
    admin_user: str | None
    admin_pass_hash: str | None
    slow_query_ms: int
    session_idle_minutes: int
    session_absolute_hours: int
    smtp_host: str | None
    smtp_port: int
    smtp_user: str | None
    smtp_password: str | None
    smtp_from: str | None
    smtp_starttls: bool
    db_pool_size: int
    db_pooler: str  # "" or "transaction": see app.db.connect_args
    backup_dir: Path
    backup_keep: int
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def session_cookie(self) -> str:
        # The __Host- prefix pins the cookie to this host, path / and HTTPS.
        return "__Host-saldo_session" if self.production else "saldo_session"

    @property
    def csrf_cookie(self) -> str:
        return "__Host-saldo_csrf" if self.production else "saldo_csrf"


def load_settings() -> Settings:
    data_dir = Path(os.environ.get("SALDO_DATA_DIR", "./data")).resolve()
    url = normalise_database_url(os.environ.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL)
    if url.startswith("sqlite") and ":memory:" not in url:
        db_path = Path(url.split(":///", 1)[1])
        db_path.parent.mkdir(parents=True, exist_ok=True)
    return Settings(
        database_url=url,
        secret_key=_secret_key(data_dir),
        data_dir=data_dir,
        production=os.environ.get("SALDO_ENV", "").lower() == "production",
        admin_user=os.environ.get("ADMIN_USER") or None,
        admin_pass_hash=os.environ.get("ADMIN_PASS_HASH") or None,
        slow_query_ms=_int("SLOW_QUERY_MS", 200),
        session_idle_minutes=_int("SESSION_IDLE_MINUTES", 30),
        session_absolute_hours=_int("SESSION_ABSOLUTE_HOURS", 12),
        smtp_host=os.environ.get("SMTP_HOST") or None,
        smtp_port=_int("SMTP_PORT", 587),
        smtp_user=os.environ.get("SMTP_USER") or None,
        smtp_password=os.environ.get("SMTP_PASSWORD") or None,
        smtp_from=os.environ.get("SMTP_FROM") or None,
        smtp_starttls=os.environ.get("SMTP_STARTTLS", "true").lower() != "false",
        db_pool_size=_int("DB_POOL_SIZE", 20),
        db_pooler=db_pooler(),
        backup_dir=Path(os.environ.get("BACKUP_DIR") or data_dir / "backups").resolve(),
        # At least the backup just made is kept.
        backup_keep=max(1, _int("BACKUP_KEEP", 14)),
    )
