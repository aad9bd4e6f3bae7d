"""Who may call what. One guard on the whole app reads each route's ``opt``:

- ``public=True``: anyone (login page, /health, static files);
- ``roles=(...)``: only these roles, for every method;
- otherwise every logged-in role may read (GET), and unsafe methods are
  refused to the read-only accountant unless ``self_service=True`` (own
  password, logout).

A route added without thinking still needs a login, and the accountant still
cannot change anything through it.
"""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from app.auth.models import User
from app.web.i18n import _

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ADMIN = ("admin",)
STAFF = ("admin", "reception")  # the roles that work with money day to day


async def authorize(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    # async: Litestar runs a plain ``def`` guard in a worker thread, a hop on every request.
    opt = handler.opt
    if opt.get("public"):
        return
    user: User | None = connection.scope.get("user")
    if user is None:
        raise NotAuthorizedException(_("Log in to continue."))
    roles = opt.get("roles")
    if roles is not None and user.role not in roles:
        raise PermissionDeniedException(_("Your role does not allow this."))
    if (
        connection.scope.get("method", "GET") not in SAFE_METHODS
        and user.role == "accountant"
        and not opt.get("self_service")
    ):
        raise PermissionDeniedException(_("The accountant role is read-only."))
