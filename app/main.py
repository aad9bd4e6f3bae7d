"""create_app(): the one place that wires plugins, middleware and routes."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar
from litestar.config.csrf import CSRFConfig
from litestar.di import Provide
from litestar.logging.config import LoggingConfig
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar_htmx import HTMXPlugin
from sqlalchemy.ext.asyncio import AsyncEngine

from app import startup
from app.admin.catalog_controllers import CatalogApiController, CatalogController
from app.admin.controllers import AuditController, SettingsController, UsersController
from app.admin.services import load_settings as load_practice_settings
from app.auth.controllers import AuthController, TokenController
from app.auth.guards import authorize
from app.auth.middleware import AuthMiddleware
from app.backup.controllers import BackupController
from app.clients.controllers import ClientApiController, ClientController
from app.clients.privacy_controllers import ClientPrivacyController
from app.collecting.controllers import CollectingApi, CollectingPages
from app.config import Settings, load_settings
from app.db import alchemy_config, create_engine, read_session_maker, session_maker
from app.expenses.controllers import ExpensePages
from app.exports.controllers import ExportController
from app.imports.controllers import ImportPages
from app.ledger.controllers import LedgerApi, LedgerPages
from app.reports.controllers import ReportApi, ReportPages, dashboard
from app.statements.controllers import PeriodPages, StatementApi
from app.statements.document_controllers import StatementDocuments
from app.web import i18n
from app.web.errors import exception_handlers
from app.web.health import health
from app.web.middleware import RequestMiddleware, SaldoCSRFMiddleware
from app.web.templating import template_config

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def _route_handlers() -> list[Any]:
    """Every domain's routes. Each new domain adds its controllers here."""
    return [
        AuthController,
        TokenController,
        UsersController,
        AuditController,
        SettingsController,
        BackupController,
        health,
        dashboard,
        ReportPages,
        ReportApi,
        ClientController,
        ClientApiController,
        ClientPrivacyController,
        CatalogController,
        CatalogApiController,
        LedgerPages,
        LedgerApi,
        CollectingPages,
        CollectingApi,
        ExpensePages,
        ExportController,
        ImportPages,
        PeriodPages,
        StatementApi,
        StatementDocuments,
        create_static_files_router(
            path="/static", directories=[STATIC_DIR], opt={"public": True}, include_in_schema=False
        ),
    ]


def configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    logging.getLogger("saldo").setLevel(logging.INFO)
    # WeasyPrint logs each of a PDF's seven rendering steps at INFO: noise in the
    # server's log, seven lines per statement downloaded.
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)


def create_app(settings: Settings | None = None) -> Litestar:
    configure_logging()
    settings = settings or load_settings()
    engine = create_engine(settings)
    maker = session_maker(engine)

    async def check_schema() -> None:
        await startup.require_migrated(engine)
        await startup.ensure_first_admin(settings, maker)
        startup.warn_missing_harfbuzz()

    async def set_formatting(scope: Scope) -> None:
        """The installation's money/date locale and the user's language, for this request."""
        practice = scope.get("state", {}).get("practice")  # read by AuthMiddleware
        if practice is None:
            async with maker() as session:
                practice = await load_practice_settings(session)
        user = scope.get("user")
        fmt = practice.formatting
        if user is not None and user.language in i18n.LANGUAGES:
            fmt = dataclasses.replace(fmt, language=user.language)
        i18n.use(fmt)
        scope.setdefault("state", {})["practice"] = practice  # request.state.practice

    def formatting(app: ASGIApp) -> ASGIApp:
        # A middleware (after the user is known, before the guards) rather than a
        # before_request hook, so that refusals and error pages speak the user's language too.
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and not (
                scope["path"].startswith("/static/") or scope["path"] == "/health"
            ):
                await set_formatting(scope)
            await app(scope, receive, send)

        return middleware

    async def dispose_engine() -> None:
        await engine.dispose()

    csrf = CSRFConfig(
        secret=settings.secret_key,
        cookie_name=settings.csrf_cookie,
        cookie_secure=settings.production,
        cookie_httponly=True,
        cookie_samesite="lax",
        header_name="x-csrftoken",
    )
    app = Litestar(
        route_handlers=_route_handlers(),
        plugins=[SQLAlchemyPlugin(config=alchemy_config(settings, engine)), HTMXPlugin()],
        middleware=[
            DefineMiddleware(
                AuthMiddleware,
                settings=settings,
                maker=maker,
                read_maker=read_session_maker(engine),
            ),
            formatting,
            DefineMiddleware(SaldoCSRFMiddleware, config=csrf),
        ],
        guards=[authorize],
        dependencies={
            "settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
            "session_maker": Provide(lambda: maker, use_cache=True, sync_to_thread=False),
        },
        template_config=template_config(),
        exception_handlers=exception_handlers,
        # The heap is frozen last, once start-up has built what the worker keeps.
        on_startup=[check_schema, startup.freeze_heap],
        on_shutdown=[dispose_engine, startup.unfreeze_heap],
        openapi_config=OpenAPIConfig(
            title="Saldo API",
            version="1",
            path="/schema",
            render_plugins=[ScalarRenderPlugin()],
        ),
        debug=False,
        # Keep our own log format and let pytest capture logs: don't replace root handlers.
        logging_config=LoggingConfig(configure_root_logger=False, log_exceptions="never"),
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_maker = maker
    # Outside the router, so that even a 404 for an unknown path gets a request
    # id, an access-log line and the security headers.
    app.asgi_handler = RequestMiddleware(app.asgi_handler, production=settings.production)
    return app


def engine_of(app: Litestar) -> AsyncEngine:
    return app.state.engine
