"""Passwords, browser sessions, API tokens and login throttling.

Everything that must hold across worker processes (sessions, tokens, failed
attempts) lives in the database; nothing here keeps state in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import ColumnElement, bindparam, delete, func, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import instance_dict

from app.audit import audit
from app.auth.models import ROLES, ApiToken, AuthSession, LoginAttempt, User
from app.db import HotRead, begin_write
from app.web.i18n import LANGUAGES, _

hasher = PasswordHasher()  # argon2id with the library's current defaults
# Verified against when the username is unknown, so both cases take as long.
_DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))

THROTTLE_FAILURES = 5
THROTTLE_WINDOW = timedelta(minutes=15)
TOKEN_LIFETIME = timedelta(days=30)
# A session's last_seen_at is written at most this often, not on every request.
TOUCH_EVERY = timedelta(seconds=60)
PASSWORD_MIN, PASSWORD_MAX = 10, 128

_COMMON = frozenset(
    line.strip().lower()
    for line in (Path(__file__).with_name("common_passwords.txt")).read_text().splitlines()
    if line.strip() and not line.startswith("#")
)


def now() -> datetime:
    return datetime.now(UTC)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    """An argon2id hash (the CLI's ``hash-password``); services use ``hash_password_async``."""
    return hasher.hash(password)


def password_problem(password: str, username: str = "") -> str | None:
    """Why a new password is refused, or None. Length and commonness only, no composition rules."""
    if len(password) < PASSWORD_MIN:
        return _("Use at least %(n)d characters.", n=PASSWORD_MIN)
    if len(password) > PASSWORD_MAX:
        return _("Use at most %(n)d characters.", n=PASSWORD_MAX)
    lowered = password.lower()
    if lowered in _COMMON or len(set(lowered)) <= 2 or (username and username.lower() in lowered):
        return _("This password is too common or easy to guess; choose another.")
    return None


class AuthError(Exception):
    """A refused login. The message is the same whatever the reason."""


@dataclass
class LoginResult:
    user: User
    session_token: str


def _normalise_username(username: str) -> str:
    return username.strip().lower()[:64]


async def _throttled(session: AsyncSession, username: str, at: datetime) -> bool:
    """True when 5 failures within 15 minutes happened, the last of them less than 15 minutes ago.

    Failures before the user's last successful login do not count.
    """
    last_success = await session.scalar(
        select(func.max(LoginAttempt.attempted_at)).where(
            LoginAttempt.username == username,
            LoginAttempt.succeeded.is_(True),
            LoginAttempt.attempted_at > at - 2 * THROTTLE_WINDOW,
        )
    )
    since = at - 2 * THROTTLE_WINDOW
    if last_success is not None and last_success > since:
        since = last_success
    failures = list(
        await session.scalars(
            select(LoginAttempt.attempted_at)
            .where(
                LoginAttempt.username == username,
                LoginAttempt.succeeded.is_(False),
                LoginAttempt.attempted_at > since,
            )
            .order_by(LoginAttempt.attempted_at)
        )
    )
    n = THROTTLE_FAILURES
    for i in range(n - 1, len(failures)):
        if (
            failures[i] - failures[i - n + 1] <= THROTTLE_WINDOW
            and at - failures[i] < THROTTLE_WINDOW
        ):
            return True
    return False


def _verify(password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password[: PASSWORD_MAX * 4])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str, password: str) -> bool:
    """argon2 verification off the event loop: it takes tens of milliseconds by design."""
    return await asyncio.to_thread(_verify, password_hash, password)


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hasher.hash, password)


async def authenticate(session: AsyncSession, username: str, password: str, ip: str | None) -> User:
    """Check a username and password, throttled per username; records the attempt.

    Refuses (``AuthError``, one generic message) an unknown user, a wrong
    password, a disabled user, and any attempt while the username is throttled
    (5 failures within 15 minutes refuse it for 15 minutes, the right password
    included). An unknown username is checked against a dummy hash, so it takes
    as long to refuse as a known one. Commits the attempt record either way.

    The slow hash check runs before the write transaction (which on SQLite
    holds the database's write lock); the throttle decision is taken inside
    it, with the user's row locked, so attempts on one username are decided
    one at a time across every worker.
    """
    name = _normalise_username(username)
    stored = await session.scalar(select(User.password_hash).where(User.username == name))
    ok = await verify_password(stored or _DUMMY_HASH, password)
    new_hash = None
    if ok and stored is not None and hasher.check_needs_rehash(stored):
        new_hash = await hash_password_async(password)
    at = now()
    await begin_write(session)
    user = await session.scalar(
        select(User)
        .where(User.username == name)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    throttled = await _throttled(session, name, at)
    ok = (
        ok
        and user is not None
        and user.active
        and user.password_hash == stored  # not changed while we were checking
        and not throttled
    )
    if not throttled:
        session.add(LoginAttempt(username=name, attempted_at=at, succeeded=ok, ip=ip))
    audit(
        session,
        "login" if ok else ("login_throttled" if throttled else "login_failed"),
        user_id=user.id if user else None,
        username=name,
        ip=ip,
    )
    if ok and user is not None and new_hash is not None:
        user.password_hash = new_hash
    await session.commit()
    if not ok or user is None:
        raise AuthError(_("Wrong username or password."))
    return user


async def start_session(
    session: AsyncSession,
    user: User,
    ip: str | None,
    user_agent: str | None,
    old_token: str | None,
    *,
    max_age: timedelta = timedelta(days=1),
) -> str:
    """A brand-new session for the user; the one the browser brought (if any) ends.

    The id is always minted here, so a cookie planted before login never survives it.
    Sessions of this user older than ``max_age`` (the absolute lifetime) are
    deleted on the way: they can no longer be used anyway.
    """
    await begin_write(session)
    at = now()
    if old_token:
        await session.execute(
            delete(AuthSession).where(AuthSession.token_hash == token_hash(old_token))
        )
    await session.execute(
        delete(AuthSession).where(
            AuthSession.user_id == user.id, AuthSession.created_at < at - max_age
        )
    )
    token = secrets.token_urlsafe(32)
    session.add(
        AuthSession(
            token_hash=token_hash(token),
            user_id=user.id,
            auth_epoch=user.auth_epoch,
            created_at=at,
            last_seen_at=at,
            ip=ip,
            user_agent=(user_agent or "")[:255],
        )
    )
    await session.commit()
    return token


async def end_session(session: AsyncSession, token: str, user: User, ip: str | None) -> None:
    await begin_write(session)
    await session.execute(delete(AuthSession).where(AuthSession.token_hash == token_hash(token)))
    audit(session, "logout", user_id=user.id, username=user.username, ip=ip)
    await session.commit()


# The user's columns, by attribute name: the login lookup reads them as plain
# values and makes the user itself (see session_user).
_USER_ATTRS = tuple((attr.key, attr.columns[0]) for attr in sa_inspect(User).column_attrs)

# Built once: building a statement costs the app more CPU than sending it.
_SESSION_USER = (
    select(
        *(column for _key, column in _USER_ATTRS),
        AuthSession.id,
        AuthSession.auth_epoch,
        AuthSession.created_at,
        AuthSession.last_seen_at,
    )
    .join(AuthSession, AuthSession.user_id == User.id)
    .where(AuthSession.token_hash == bindparam("token_hash"))
)


def session_lookup(*also: ColumnElement[Any]) -> HotRead:
    """The read ``session_user`` does, with ``also`` in the same round trip.

    Every request does it, so it is a HotRead: sent on the driver's connection.
    """
    return HotRead(_SESSION_USER.add_columns(*also))


_SESSION_LOOKUP = session_lookup()


_USER_KEYS = tuple(key for key, _column in _USER_ATTRS)
_USER_CLASS = sa_inspect(User).class_manager


def _detached_user(values: Any) -> User:
    """A User from its column values, as if loaded and then expunged from a session.

    Built the way SQLAlchemy's loading builds one (no ``__init__``, no change
    history to record and commit): 7 µs instead of 34, on every request.
    """
    user = _USER_CLASS.new_instance()
    instance_dict(user).update(zip(_USER_KEYS, values, strict=True))
    make_transient_to_detached(user)
    return user


async def session_user(
    session: AsyncSession,
    token: str,
    idle: timedelta,
    absolute: timedelta,
    lookup: HotRead = _SESSION_LOOKUP,
) -> tuple[User | None, tuple[Any, ...] | None]:
    """The user behind a session cookie (None when unknown, idle, too old or revoked).

    The user is detached: a handler's rollback must not expire what the
    templates and guards still read. Also the values of the extra columns of
    ``lookup`` (see ``session_lookup``), or None when the session is unknown.
    """
    at = now()
    row = await lookup.first(session, {"token_hash": token_hash(token)})
    if row is None:
        return None, None
    n = len(_USER_ATTRS)
    row_id, auth_epoch, created_at, last_seen_at, *also = row[n:]
    user = _detached_user(row[:n])
    if (
        not user.active
        or auth_epoch != user.auth_epoch
        or at - last_seen_at > idle
        or at - created_at > absolute
    ):
        return None, tuple(also)
    if at - last_seen_at > TOUCH_EVERY:
        # A fresh write transaction: upgrading this read one could fail on SQLite.
        await begin_write(session)
        await session.execute(
            update(AuthSession).where(AuthSession.id == row_id).values(last_seen_at=at)
        )
        await session.commit()
    return user, tuple(also)


async def token_user(session: AsyncSession, token: str) -> User | None:
    at = now()
    row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if row is None:
        return None
    user = row.user
    if (
        row.revoked_at is not None
        or row.expires_at <= at
        or not user.active
        or row.auth_epoch != user.auth_epoch
    ):
        return None
    if row.last_used_at is None or at - row.last_used_at > TOUCH_EVERY:
        row_id = row.id
        await begin_write(session)
        await session.execute(update(ApiToken).where(ApiToken.id == row_id).values(last_used_at=at))
        await session.commit()
    return user


async def issue_token(
    session: AsyncSession, user: User, name: str, ip: str | None
) -> tuple[str, ApiToken]:
    """A random bearer token for the API; only its hash is kept. Valid for 30 days."""
    await begin_write(session)
    token = secrets.token_urlsafe(32)
    at = now()
    row = ApiToken(
        token_hash=token_hash(token),
        user_id=user.id,
        name=name[:120],
        auth_epoch=user.auth_epoch,
        created_at=at,
        expires_at=at + TOKEN_LIFETIME,
    )
    session.add(row)
    audit(session, "token_created", user_id=user.id, username=user.username, ip=ip, name=name)
    await session.commit()
    return token, row


async def revoke_token(
    session: AsyncSession,
    token_id: int,
    actor: User,
    ip: str | None,
    *,
    owner_id: int | None = None,
) -> ApiToken | None:
    """Revoke a token at once; returns it, or None when there is no such token.

    With ``owner_id`` only that user's own tokens can be revoked (self-service);
    a token that is already revoked is returned unchanged and audited once only.
    """
    await begin_write(session)
    row = await session.get(ApiToken, token_id)
    if row is None or (owner_id is not None and row.user_id != owner_id):
        await session.rollback()
        return None
    if row.revoked_at is None:
        row.revoked_at = now()
        audit(
            session,
            "token_revoked",
            user_id=actor.id,
            username=actor.username,
            ip=ip,
            token_id=token_id,
            owner=row.user.username,
            name=row.name,
        )
    await session.commit()
    return row


async def list_tokens(session: AsyncSession, user_id: int | None = None) -> list[ApiToken]:
    """API tokens, newest first; all of them or one user's."""
    query = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return list(await session.scalars(query))


async def end_all_sessions(session: AsyncSession, user: User) -> None:
    """Every session and token of the user stops working (caller commits)."""
    user.auth_epoch += 1
    await session.execute(delete(AuthSession).where(AuthSession.user_id == user.id))


async def create_user(
    session: AsyncSession,
    username: str,
    password: str,
    role: str,
    display_name: str | None = None,
    *,
    actor: User | None = None,
    ip: str | None = None,
    password_hash: str | None = None,
) -> User:
    """Create a login. Refuses an unknown role, a taken username and a weak password."""
    name = _normalise_username(username)
    if not name or not name.replace(".", "").replace("_", "").replace("-", "").isalnum():
        raise ValueError(_("Use letters, digits, dots, dashes or underscores for the username."))
    if role not in ROLES:
        raise ValueError(_("Unknown role."))
    if password_hash is None:
        if problem := password_problem(password, name):
            raise ValueError(problem)
        password_hash = await hash_password_async(password)
    await begin_write(session)
    if await session.scalar(select(User.id).where(User.username == name)) is not None:
        await session.rollback()
        raise ValueError(_("That username is taken."))
    user = User(
        username=name,
        display_name=(display_name or name).strip()[:120],
        role=role,
        password_hash=password_hash,
        active=True,
        auth_epoch=0,
    )
    session.add(user)
    await session.flush()
    audit(
        session,
        "user_created",
        user_id=actor.id if actor else None,
        username=actor.username if actor else "",
        ip=ip,
        target=name,
        role=role,
    )
    await session.commit()
    return user


async def change_password(
    session: AsyncSession, user: User, new_password: str, *, actor: User, ip: str | None
) -> User:
    """Set a new password; all of the user's sessions and tokens end.

    Used for one's own password and for an admin's reset of someone else's.
    Refuses (``ValueError``) a password that ``password_problem`` refuses.
    """
    if problem := password_problem(new_password, user.username):
        raise ValueError(problem)
    new_hash = await hash_password_async(new_password)
    await begin_write(session)
    user = await session.get_one(User, user.id, populate_existing=True)
    user.password_hash = new_hash
    await end_all_sessions(session, user)
    audit(
        session,
        "password_changed" if actor.id == user.id else "password_reset",
        user_id=actor.id,
        username=actor.username,
        ip=ip,
        target=user.username,
    )
    await session.commit()
    return user


async def set_language(session: AsyncSession, user: User, language: str | None) -> User:
    """The user's own UI language; None follows the installation's. Refuses unknown ones."""
    if language is not None and language not in LANGUAGES:
        raise ValueError(_("Unknown language."))
    await begin_write(session)
    user = await session.get_one(User, user.id, populate_existing=True)
    user.language = language
    await session.commit()
    return user


class UserChangeRefused(ValueError):
    """A change to a login that would break a rule (for example: no active admin left)."""


async def list_users(session: AsyncSession) -> list[User]:
    """Every login, active ones first, by username."""
    return list(await session.scalars(select(User).order_by(User.active.desc(), User.username)))


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def _lock_for_change(session: AsyncSession, user_id: int) -> tuple[User, list[int]]:
    """Lock the active admins, then the user to change; returns the user and the admins' ids.

    Always in the same order (admins by id, then the target), so two admins
    changing each other at the same moment wait for one another instead of
    deadlocking, and the second sees what the first did.
    """
    admin_ids = list(
        await session.scalars(
            select(User.id)
            .where(User.role == "admin", User.active.is_(True))
            .order_by(User.id)
            .with_for_update()
        )
    )
    user = await session.scalar(
        select(User)
        .where(User.id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if user is None:
        await session.rollback()
        raise LookupError(user_id)
    return user, admin_ids


async def _refuse_losing_last_admin(
    session: AsyncSession, user: User, admin_ids: list[int]
) -> None:
    if admin_ids == [user.id]:
        message = _(
            "%(name)s is the last active admin. Make another user an admin first.",
            name=user.username,
        )
        await session.rollback()  # expires ``user``: read what the message needs first
        raise UserChangeRefused(message)


async def set_role(
    session: AsyncSession, user_id: int, role: str, *, actor: User, ip: str | None
) -> User:
    """Give a user another role.

    Refuses an unknown role and demoting the last active admin. Raises
    ``LookupError`` when the user does not exist.
    """
    if role not in ROLES:
        raise ValueError(_("Unknown role."))
    await begin_write(session)
    user, admin_ids = await _lock_for_change(session, user_id)
    if user.role == role:
        await session.commit()  # nothing to change; commit keeps ``user`` loaded
        return user
    if user.role == "admin" and user.active:
        await _refuse_losing_last_admin(session, user, admin_ids)
    audit(
        session,
        "role_changed",
        user_id=actor.id,
        username=actor.username,
        ip=ip,
        target=user.username,
        old=user.role,
        new=role,
    )
    user.role = role
    await session.commit()
    return user


async def set_active(
    session: AsyncSession, user_id: int, active: bool, *, actor: User, ip: str | None
) -> User:
    """Disable or re-enable a login. Disabling ends all its sessions and tokens at once.

    Refuses disabling one's own login and disabling the last active admin.
    Raises ``LookupError`` when the user does not exist.
    """
    await begin_write(session)
    user, admin_ids = await _lock_for_change(session, user_id)
    if user.active == active:
        await session.commit()  # nothing to change; commit keeps ``user`` loaded
        return user
    if not active:
        if user.id == actor.id:
            await session.rollback()
            raise UserChangeRefused(
                _("You cannot disable your own login. Ask another admin to do it.")
            )
        if user.role == "admin":
            await _refuse_losing_last_admin(session, user, admin_ids)
        await end_all_sessions(session, user)
    user.active = active
    audit(
        session,
        "user_enabled" if active else "user_disabled",
        user_id=actor.id,
        username=actor.username,
        ip=ip,
        target=user.username,
    )
    await session.commit()
    return user


async def reset_password(
    session: AsyncSession, user_id: int, new_password: str, *, actor: User, ip: str | None
) -> User:
    """An admin sets a new password for someone; that user's sessions and tokens end.

    Refuses a weak password (``ValueError``); ``LookupError`` when the user does not exist.
    """
    user = await session.get(User, user_id)
    if user is None:
        raise LookupError(user_id)
    return await change_password(session, user, new_password, actor=actor, ip=ip)


def check_password(user: User, password: str) -> bool:
    """Whether ``password`` is the user's current one; blocks (see ``verify_password``)."""
    return _verify(user.password_hash, password)
