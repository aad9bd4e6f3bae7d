"""Login, logout, one's own password, and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotAuthorizedException
from litestar.params import Body
from litestar.response import Redirect, Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import services
from app.auth.models import User
from app.config import Settings

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


def client_ip(request: Request[Any, Any, Any]) -> str | None:
    return request.client.host if request.client else None


def safe_next(target: str | None) -> str:
    """Only local paths: never redirect a fresh login to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class LoginForm(Struct):
    username: str = ""
    password: str = ""
    next: str = "/"


class PasswordForm(Struct):
    current_password: str = ""
    new_password: str = ""
    confirm_password: str = ""


class AuthController(Controller):
    tags = ["auth"]

    @get("/login", opt={"public": True}, name="login")
    async def login_page(
        self, request: Request[Any, Any, Any], next: str = "/"
    ) -> Template | Redirect:
        if request.scope.get("user") is not None:
            return Redirect(path=safe_next(next), status_code=303)
        return Template("auth/login.html", context={"next": safe_next(next), "error": None})

    @post("/login", opt={"public": True}, status_code=303)
    async def login(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        settings: Settings,
        data: Annotated[LoginForm, FORM],
    ) -> Template | Redirect:
        try:
            user = await services.authenticate(
                db_session, data.username, data.password, client_ip(request)
            )
        except services.AuthError as exc:
            return Template(
                "auth/login.html",
                context={
                    "next": safe_next(data.next),
                    "error": str(exc),
                    "username": data.username,
                },
                status_code=401,
            )
        token = await services.start_session(
            db_session,
            user,
            client_ip(request),
            request.headers.get("user-agent"),
            request.cookies.get(settings.session_cookie),
        )
        from app.auth.middleware import session_cookie

        response = Redirect(path=safe_next(data.next), status_code=303)
        response.set_cookie(session_cookie(settings, token))
        # A new CSRF token for the new session: the next page mints it.
        response.delete_cookie(settings.csrf_cookie, path="/")
        return response

    @post("/logout", opt={"self_service": True}, status_code=303)
    async def logout(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, settings: Settings
    ) -> Redirect:
        token = request.scope.get("auth")
        if token:
            await services.end_session(db_session, token, request.scope["user"], client_ip(request))
        response = Redirect(path="/login", status_code=303)
        response.delete_cookie(settings.session_cookie, path="/")
        response.delete_cookie(settings.csrf_cookie, path="/")
        return response

    @get("/account/password", name="account_password")
    async def password_page(self) -> Template:
        return Template("auth/password.html", context={"errors": {}, "done": False})

    @post("/account/password", opt={"self_service": True}, status_code=200)
    async def change_password(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        settings: Settings,
        data: Annotated[PasswordForm, FORM],
    ) -> Template | Redirect:
        user: User = request.scope["user"]
        errors: dict[str, str] = {}
        if not services.check_password(user, data.current_password):
            errors["current_password"] = services._("Your current password is not right.")
        problem = services.password_problem(data.new_password, user.username)
        if problem:
            errors["new_password"] = problem
        elif data.new_password != data.confirm_password:
            errors["confirm_password"] = services._("The two new passwords differ.")
        if errors:
            return Template(
                "auth/password.html", context={"errors": errors, "done": False}, status_code=422
            )
        await services.change_password(
            db_session, user, data.new_password, actor=user, ip=client_ip(request)
        )
        # Every session ended, this one too: start a fresh one so the user stays in.
        token = await services.start_session(
            db_session,
            await db_session.get_one(User, user.id),
            client_ip(request),
            request.headers.get("user-agent"),
            None,
        )
        from app.auth.middleware import session_cookie

        response = Template("auth/password.html", context={"errors": {}, "done": True})
        response.cookies.append(session_cookie(settings, token))
        return response


class TokenRequest(Struct):
    username: str
    password: str
    name: str = "api"


class TokenAnswer(Struct):
    access_token: str
    token_type: str
    expires_at: datetime


class TokenController(Controller):
    path = "/api/v1/auth"
    tags = ["auth"]

    @post(
        "/token",
        opt={"public": True, "exclude_from_csrf": True},
        status_code=201,
        summary="Exchange a username and password for a bearer token (30 days).",
    )
    async def token(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, data: TokenRequest
    ) -> TokenAnswer:
        try:
            user = await services.authenticate(
                db_session, data.username, data.password, client_ip(request)
            )
        except services.AuthError as exc:
            raise NotAuthorizedException(str(exc)) from None
        token, row = await services.issue_token(db_session, user, data.name, client_ip(request))
        return TokenAnswer(access_token=token, token_type="bearer", expires_at=row.expires_at)
