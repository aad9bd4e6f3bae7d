"""Errors as each kind of caller needs them.

The API gets JSON ``{"detail": ...}``; HTMX requests get a toast retargeted
into ``#toasts`` (or a client redirect to the login page); plain browser
requests get an HTML page, or a redirect to the login page when logged out.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from advanced_alchemy.exceptions import NotFoundError as RepositoryNotFound
from advanced_alchemy.exceptions import RepositoryError
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar_htmx import ClientRedirect

from app.web.i18n import _

log = logging.getLogger("saldo.errors")


def is_api(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith("/api/")


def htmx_headers(request: Request[Any, Any, Any]) -> dict[bytes, bytes]:
    """The request's ``hx-*`` headers, read from the raw scope.

    Asked on every search keystroke, where building Litestar's ``Headers`` cost more.
    """
    return {k: v for k, v in request.scope["headers"] if k[:3] == b"hx-"}


def sent_by_htmx(hx: dict[bytes, bytes]) -> bool:
    """Whether ``htmx_headers`` say HTMX sent the request (a history restore wants a page)."""
    return hx.get(b"hx-request") == b"true" and hx.get(b"hx-history-restore-request") != b"true"


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return sent_by_htmx(htmx_headers(request))


def _messages(status: int) -> tuple[str, str]:
    return {
        401: (_("Please log in"), _("Your session has ended. Log in again to continue.")),
        403: (_("Not allowed"), _("You do not have permission to do this.")),
        404: (_("Not found"), _("We could not find what you were looking for.")),
        405: (_("Not allowed"), _("This action is not available here.")),
    }.get(status, (_("Something went wrong"), _("Please try again in a moment.")))


def _csrf_failed(exc: Exception) -> bool:
    return isinstance(exc, PermissionDeniedException) and "CSRF" in str(exc.detail)


def error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, RepositoryNotFound):
        exc = NotFoundException()
    status = exc.status_code if isinstance(exc, HTTPException) else HTTP_500_INTERNAL_SERVER_ERROR
    if isinstance(exc, ValidationException):
        status = 422
    if status >= 500:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    title, message = _messages(status)
    if _csrf_failed(exc):
        message = _("This form has expired. Reload the page and try again.")
    elif isinstance(exc, HTTPException) and status in (403, 409, 422) and exc.detail:
        message = _(str(exc.detail))

    if is_api(request):
        detail: Any = (
            message
            if status != 422
            else (exc.extra if isinstance(exc, ValidationException) and exc.extra else message)
        )
        if status == 401:
            return Response(
                {"detail": message}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return Response({"detail": detail}, status_code=status)

    next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if status == 401:
        target = "/login?next=" + quote(next_path, safe="/")
        if is_htmx(request):
            return ClientRedirect(redirect_to=target)
        return Redirect(path=target, status_code=303)

    if is_htmx(request):
        return Template(
            template_name="_toast.html",
            context={"level": "error", "message": message},
            status_code=status,
            headers={"HX-Retarget": "#toasts", "HX-Reswap": "beforeend"},
        )
    return Template(
        template_name="errors/page.html",
        context={"status": status, "title": title, "message": message},
        status_code=status,
    )


exception_handlers: dict[type[Exception] | int, Any] = {
    HTTPException: error_response,
    RepositoryError: error_response,
    Exception: error_response,
}
