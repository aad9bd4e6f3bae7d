"""Cross-cutting HTTP: request ids and access log, security headers, CSRF."""

from __future__ import annotations

import logging
import secrets
import time
from typing import TYPE_CHECKING

from litestar.datastructures import MutableScopeHeaders
from litestar.middleware.csrf import CSRFMiddleware

from app.db import request_id_var

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("saldo.access")

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; object-src 'none'; base-uri 'none'; form-action 'self'"
)


class RequestMiddleware:
    """One log line per request, an ``X-Request-ID``, and the security headers on every answer.

    Written as plain ASGI so that the headers reach redirects, errors and
    static files alike, and so it costs next to nothing per request.
    """

    def __init__(self, app: ASGIApp, production: bool) -> None:
        self.app = app
        self.production = production

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 64 else secrets.token_hex(8)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        path = scope["path"]

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableScopeHeaders.from_message(message)
                headers["X-Request-ID"] = request_id
                headers["Content-Security-Policy"] = CSP
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
                headers["X-Frame-Options"] = "DENY"
                if self.production:
                    headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
                if not path.startswith("/static/"):
                    # Pages, fragments and files carry client and money data.
                    headers["Cache-Control"] = "no-store"
                    headers.add("Vary", "HX-Request")
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            user = scope.get("user")
            access_log.info(
                "%s %s %s %d %.1fms user=%s",
                request_id,
                scope["method"],
                path,
                status,
                (time.perf_counter() - started) * 1000,
                user.username if user is not None else "-",
            )
            request_id_var.reset(token)


class SaldoCSRFMiddleware(CSRFMiddleware):
    """Litestar's double-submit CSRF check, skipped only for bearer-token API calls.

    A browser never attaches an ``Authorization`` header on its own, so a
    request that carries one cannot be forged cross-site; the auth middleware
    ignores the session cookie on such requests.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"authorization" and value[:7].lower() == b"bearer ":
                    await self.app(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)
