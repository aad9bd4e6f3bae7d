"""Login, logout, one's own account (password, API tokens), and the API token endpoint."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotAuthorizedException, NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body
from litestar.response import Redirect, Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import services
from app.auth.middleware import expired_cookie, session_cookie
from app.auth.models import User
from app.config import Settings
from app.web.errors import is_htmx
from app.web.i18n import LANGUAGE_NAMES, _

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


def client_ip(request: Request[Any, Any, Any]) -> str | None:
    return request.client.host if request.client else None


def current_user(request: Request[Any, Any, Any]) -> User:
    """The logged-in user (the guard has already refused anonymous requests)."""
    return request.scope["user"]


def safe_next(target: str | None) -> str:
    """Only local paths: never redirect a fresh login to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def session_lifetime(settings: Settings) -> timedelta:
    return timedelta(hours=settings.session_absolute_hours)


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
    include_in_schema = False

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
                # 200, not 401: a form to try again, not an HTTP authentication challenge.
                status_code=200,
            )
        token = await services.start_session(
            db_session,
            user,
            client_ip(request),
            request.headers.get("user-agent"),
            request.cookies.get(settings.session_cookie),
            max_age=session_lifetime(settings),
        )
        response = Redirect(path=safe_next(data.next), status_code=303)
        response.set_cookie(session_cookie(settings, token))
        # A new CSRF token for the new session: the next page mints it.
        response.set_cookie(expired_cookie(settings, settings.csrf_cookie))
        return response

    @post("/logout", opt={"self_service": True}, status_code=303)
    async def logout(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, settings: Settings
    ) -> Redirect:
        token = request.scope.get("auth")
        if token:
            await services.end_session(db_session, token, current_user(request), client_ip(request))
        response = Redirect(path="/login", status_code=303)
        response.set_cookie(expired_cookie(settings, settings.session_cookie))
        response.set_cookie(expired_cookie(settings, settings.csrf_cookie))
        return response

    @get("/account/password", name="account_password")
    async def account_page(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, changed: bool = False
    ) -> Template:
        return await self._account(request, db_session, errors={}, done=changed)

    async def _account(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        *,
        errors: dict[str, str],
        done: bool,
        status_code: int = 200,
    ) -> Template:
        tokens = await services.list_tokens(db_session, current_user(request).id)
        return Template(
            "auth/password.html",
            context={
                "errors": errors,
                "done": done,
                "tokens": tokens,
                "now": services.now(),
                "language_names": LANGUAGE_NAMES,
                "installation_language": request.state.practice.language,
            },
            status_code=status_code,
        )

    @post("/account/password", opt={"self_service": True}, status_code=303)
    async def change_password(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        settings: Settings,
        data: Annotated[PasswordForm, FORM],
    ) -> Template | Redirect:
        user = current_user(request)
        errors: dict[str, str] = {}
        if not await services.verify_password(user.password_hash, data.current_password):
            errors["current_password"] = _("Your current password is not right.")
        if problem := services.password_problem(data.new_password, user.username):
            errors["new_password"] = problem
        elif data.new_password != data.confirm_password:
            errors["confirm_password"] = _("The two new passwords differ.")
        if errors:
            return await self._account(
                request, db_session, errors=errors, done=False, status_code=422
            )
        user = await services.change_password(
            db_session, user, data.new_password, actor=user, ip=client_ip(request)
        )
        # Every session ended, this one too: start a fresh one so the user stays in.
        token = await services.start_session(
            db_session,
            user,
            client_ip(request),
            request.headers.get("user-agent"),
            None,
            max_age=session_lifetime(settings),
        )
        response = Redirect(path="/account/password?changed=true", status_code=303)
        response.set_cookie(session_cookie(settings, token))
        return response

    @post("/account/language", opt={"self_service": True}, status_code=303)
    async def change_language(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        data: Annotated[LanguageForm, FORM],
    ) -> Template | Redirect:
        """One's own UI language ("" follows the installation's); the accountant's too."""
        try:
            await services.set_language(db_session, current_user(request), data.language or None)
        except ValueError as exc:
            return await self._account(
                request, db_session, errors={"language": str(exc)}, done=False, status_code=422
            )
        return Redirect(path="/account/password", status_code=303)

    @post("/account/tokens/{token_id:int}/revoke", opt={"self_service": True}, status_code=200)
    async def revoke_own_token(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, token_id: int
    ) -> Template | Redirect:
        """Anyone, the read-only accountant too, may revoke their own API tokens."""
        user = current_user(request)
        token = await services.revoke_token(
            db_session, token_id, user, client_ip(request), owner_id=user.id
        )
        if token is None:
            raise NotFoundException()
        if not is_htmx(request):
            return Redirect(path="/account/password", status_code=303)
        return Template(
            "admin/_user_token_row.html",
            context={
                "token": token,
                "now": services.now(),
                "revoke_url": f"/account/tokens/{token.id}/revoke",
                "show_owner": False,
            },
        )


class LanguageForm(Struct):
    language: str = ""


class TokenRequest(Struct):
    username: str
    password: str
    name: str = "api"


class TokenAnswer(Struct):
    access_token: str
    token_type: str
    expires_at: datetime


class ApiError(Struct):
    detail: str


def _credentials_refused(
    _request: Request[Any, Any, Any], exc: NotAuthorizedException
) -> Response[ApiError]:
    """The refusal says why (the one generic login message), not "your session has ended"."""
    return Response(
        ApiError(detail=str(exc.detail)), status_code=401, headers={"WWW-Authenticate": "Bearer"}
    )


class TokenController(Controller):
    path = "/api/v1/auth"
    tags = ["auth"]

    @post(
        "/token",
        # No session cookie is read or set here: a forged cross-site request
        # gains nothing, so the endpoint needs no CSRF token.
        opt={"public": True, "exclude_from_csrf": True},
        status_code=201,
        summary="Exchange a username and password for a bearer token (30 days).",
        responses={
            401: ResponseSpec(data_container=ApiError, description="Wrong username or password.")
        },
        exception_handlers={NotAuthorizedException: _credentials_refused},
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
