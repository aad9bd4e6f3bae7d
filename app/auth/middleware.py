"""Find the user behind a request: a session cookie, or a bearer token on the API."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from advanced_alchemy.extensions.litestar._utils import set_aa_scope_state
from advanced_alchemy.extensions.litestar.plugins.init.config.common import SESSION_SCOPE_KEY
from litestar.datastructures import Cookie

from app.admin.services import SETTINGS_STAMP, SettingsCache
from app.auth import services
from app.auth.guards import SAFE_METHODS

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, Scope, Send
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from app.config import Settings


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope["headers"]:
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == name:
                    return v or None
    return None


class AuthMiddleware:
    """Sets ``scope["user"]`` (None when anonymous). Refusing is the guard's job."""

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        maker: async_sessionmaker[AsyncSession],
        read_maker: async_sessionmaker[AsyncSession],
    ) -> None:
        self.app = app
        self.maker = maker
        self.read_maker = read_maker  # for GET and HEAD: see app.db.read_session_maker
        self.cookie = settings.session_cookie
        self.idle = timedelta(minutes=settings.session_idle_minutes)
        self.absolute = timedelta(hours=settings.session_absolute_hours)
        # The practice settings' stamp comes along with the login session.
        self.lookup = services.session_lookup(*SETTINGS_STAMP)
        self.practice = SettingsCache()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            scope.setdefault("user", None)  # type: ignore[typeddict-unknown-key]
            await self.app(scope, receive, send)
            return
        user = None
        bearer = None
        for key, value in scope["headers"]:
            if key == b"authorization" and value[:7].lower() == b"bearer ":
                bearer = value[7:].decode("latin-1").strip()
        session_token = None if bearer else _cookie(scope, self.cookie)
        state = scope.setdefault("state", {})
        db = self.read_maker() if scope["method"] in SAFE_METHODS else self.maker()
        stamp = None
        try:
            if bearer:
                user = await services.token_user(db, bearer)
            elif session_token:
                user, stamp = await services.session_user(
                    db, session_token, self.idle, self.absolute, self.lookup
                )
            if user is not None and bearer:
                # Detached, as if read in a session of its own: a handler's rollback
                # must not expire the user the templates and guards still read.
                db.expunge(user)
            if scope["path"] != "/health":
                # Every page needs the practice's settings: this same session reads
                # them when they changed since this process last did.
                state["practice"] = await self.practice.get(db, stamp)
            scope["user"] = user  # type: ignore[typeddict-unknown-key]
            scope["auth"] = session_token if user is not None else None  # type: ignore[typeddict-unknown-key]
            state["via_token"] = bool(bearer)
            # The handler's ``db_session`` is this same session: one connection and
            # one transaction per request instead of one for us and one for it.
            set_aa_scope_state(scope, SESSION_SCOPE_KEY, db)
            await self.app(scope, receive, send)
        finally:
            await db.close()


def session_cookie(settings: Settings, token: str) -> Cookie:
    """The session cookie: HttpOnly, SameSite=Lax; Secure and ``__Host-`` in production."""
    return Cookie(
        key=settings.session_cookie,
        value=token,
        path="/",
        httponly=True,
        secure=settings.production,
        samesite="lax",
        max_age=settings.session_absolute_hours * 3600,
    )


def expired_cookie(settings: Settings, name: str) -> Cookie:
    """A Set-Cookie that removes ``name`` in the browser.

    It repeats the attributes the cookie was set with: a browser ignores a
    ``__Host-`` cookie (deletion included) that is not marked Secure.
    """
    return Cookie(
        key=name,
        value="",
        path="/",
        httponly=True,
        secure=settings.production,
        samesite="lax",
        max_age=0,
        expires=0,
    )
