"""THE ROUTE × ROLE MATRIX: every route the app registers, called as every kind of caller.

``EXPECTED`` below says, for each (method, path), what anonymous, reception,
accountant and admin callers get. The test walks ``app.routes``, so a route
added without an entry here FAILS with a message naming it: decide who may
call it, add the line, and make the route's guard options (``opt``) agree.

Outcomes:

- ``A`` allowed: the guard lets the request through (the handler may still
  answer 404 or 422 to the test's empty request; it must not crash);
- ``L`` login: not logged in — JSON 401 on ``/api``, a 303 to ``/login`` elsewhere;
- ``F`` forbidden: 403.

Path parameters are filled with the id of a row that exists (``PARAMS``).
Every request carries a valid CSRF token, so what is checked here is the
guard; CSRF refusals have their own tests. Litestar answers ``OPTIONS`` for
every path by itself (an ``Allow`` header, no data); that is checked for all
paths at once in the last test. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

from litestar import Litestar
from litestar.middleware.csrf import generate_csrf_token
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.models import Service, Staff
from app.auth import services as auth
from app.auth.models import User
from app.clients.models import Client
from app.expenses.models import Expense
from app.imports.models import ImportFile
from app.ledger.models import Charge, Payment
from app.statements.models import DocumentJob

A, L, F = "allowed", "login", "forbidden"
CALLERS = ("anonymous", "reception", "accountant", "admin")

PUBLIC = (A, A, A, A)  # the login page, /health, static files
LOGGED_IN = (L, A, A, A)  # reading anything; one's own password, tokens, logout
STAFF = (L, A, F, A)  # the daily work that changes things: not the read-only accountant
ADMIN_ONLY = (L, F, F, A)  # users, settings, catalog, month close and reopen

EXPECTED: dict[tuple[str, str], tuple[str, str, str, str]] = {
    # --- logging in, one's own account, API tokens
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): LOGGED_IN,
    ("GET", "/account/password"): LOGGED_IN,
    ("POST", "/account/password"): LOGGED_IN,
    ("POST", "/account/language"): LOGGED_IN,
    ("POST", "/account/tokens/{token_id:int}/revoke"): LOGGED_IN,
    ("POST", "/api/v1/auth/token"): PUBLIC,
    # --- users, audit log, settings
    ("GET", "/admin/users"): ADMIN_ONLY,
    ("POST", "/admin/users"): ADMIN_ONLY,
    ("POST", "/admin/users/{user_id:int}/role"): ADMIN_ONLY,
    ("POST", "/admin/users/{user_id:int}/disable"): ADMIN_ONLY,
    ("POST", "/admin/users/{user_id:int}/enable"): ADMIN_ONLY,
    ("POST", "/admin/users/{user_id:int}/password"): ADMIN_ONLY,
    ("POST", "/admin/users/tokens/{token_id:int}/revoke"): ADMIN_ONLY,
    ("GET", "/admin/audit"): ADMIN_ONLY,
    ("GET", "/admin/settings"): ADMIN_ONLY,
    ("POST", "/admin/settings"): ADMIN_ONLY,
    ("POST", "/admin/settings/logo"): ADMIN_ONLY,
    ("GET", "/admin/backups"): ADMIN_ONLY,
    ("POST", "/admin/backups"): ADMIN_ONLY,
    ("GET", "/admin/backups/{name:str}"): ADMIN_ONLY,
    # --- catalog: staff and services
    ("GET", "/admin/services"): ADMIN_ONLY,
    ("POST", "/admin/services"): ADMIN_ONLY,
    ("GET", "/admin/services/{service_id:int}/edit"): ADMIN_ONLY,
    ("POST", "/admin/services/{service_id:int}/edit"): ADMIN_ONLY,
    ("POST", "/admin/services/{service_id:int}/activate"): ADMIN_ONLY,
    ("POST", "/admin/services/{service_id:int}/deactivate"): ADMIN_ONLY,
    ("GET", "/admin/staff"): ADMIN_ONLY,
    ("POST", "/admin/staff"): ADMIN_ONLY,
    ("GET", "/admin/staff/{staff_id:int}/edit"): ADMIN_ONLY,
    ("POST", "/admin/staff/{staff_id:int}/edit"): ADMIN_ONLY,
    ("POST", "/admin/staff/{staff_id:int}/activate"): ADMIN_ONLY,
    ("POST", "/admin/staff/{staff_id:int}/deactivate"): ADMIN_ONLY,
    ("GET", "/api/v1/services"): LOGGED_IN,
    ("POST", "/api/v1/services"): ADMIN_ONLY,
    ("GET", "/api/v1/services/{service_id:int}"): LOGGED_IN,
    ("GET", "/api/v1/staff"): LOGGED_IN,
    ("POST", "/api/v1/staff"): ADMIN_ONLY,
    ("GET", "/api/v1/staff/{staff_id:int}"): LOGGED_IN,
    # --- clients
    ("GET", "/clients"): LOGGED_IN,
    ("POST", "/clients"): STAFF,
    ("GET", "/clients/new"): LOGGED_IN,
    ("GET", "/clients/{client_id:int}"): LOGGED_IN,
    ("GET", "/clients/{client_id:int}/edit"): LOGGED_IN,
    ("POST", "/clients/{client_id:int}/edit"): STAFF,
    ("POST", "/clients/{client_id:int}/archive"): STAFF,
    ("POST", "/clients/{client_id:int}/unarchive"): STAFF,
    ("POST", "/clients/{client_id:int}/delete"): ADMIN_ONLY,
    ("GET", "/clients/{client_id:int}/data.zip"): ADMIN_ONLY,
    ("GET", "/clients/{client_id:int}/anonymise"): ADMIN_ONLY,
    ("POST", "/clients/{client_id:int}/anonymise"): ADMIN_ONLY,
    ("GET", "/api/v1/clients"): LOGGED_IN,
    ("POST", "/api/v1/clients"): STAFF,
    ("GET", "/api/v1/clients/{client_id:int}"): LOGGED_IN,
    ("PATCH", "/api/v1/clients/{client_id:int}"): STAFF,
    ("POST", "/api/v1/clients/{client_id:int}/archive"): STAFF,
    ("POST", "/api/v1/clients/{client_id:int}/unarchive"): STAFF,
    # --- charges, payments, credit, refunds
    ("GET", "/"): LOGGED_IN,
    ("GET", "/charges"): LOGGED_IN,
    ("GET", "/charges/new"): LOGGED_IN,
    ("POST", "/charges/new"): STAFF,
    ("GET", "/charges/{charge_id:int}"): LOGGED_IN,
    ("POST", "/charges/{charge_id:int}/toggle"): STAFF,
    ("POST", "/charges/{charge_id:int}/void"): STAFF,
    ("POST", "/charges/batch"): STAFF,
    ("GET", "/payments/new"): LOGGED_IN,
    ("POST", "/payments"): STAFF,
    ("GET", "/payments/{payment_id:int}/receipt"): LOGGED_IN,
    ("GET", "/ledger/client-box"): LOGGED_IN,
    ("GET", "/ledger/pick-client"): LOGGED_IN,
    ("GET", "/clients/{client_id:int}/refund"): LOGGED_IN,
    ("POST", "/clients/{client_id:int}/refund"): STAFF,
    ("POST", "/clients/{client_id:int}/apply-credit"): STAFF,
    ("GET", "/api/v1/charges"): LOGGED_IN,
    ("POST", "/api/v1/charges"): STAFF,
    ("GET", "/api/v1/charges/{charge_id:int}"): LOGGED_IN,
    ("POST", "/api/v1/charges/{charge_id:int}/void"): STAFF,
    ("POST", "/api/v1/payments"): STAFF,
    ("POST", "/api/v1/clients/{client_id:int}/refunds"): STAFF,
    # --- collecting, statements, periods
    ("GET", "/collect"): LOGGED_IN,
    ("POST", "/collect/{month:str}/sent"): STAFF,
    ("GET", "/api/v1/reports/unpaid"): LOGGED_IN,
    ("GET", "/api/v1/clients/{client_id:int}/statement"): LOGGED_IN,
    ("GET", "/periods"): LOGGED_IN,
    ("POST", "/periods/close"): ADMIN_ONLY,
    ("POST", "/periods/{month:str}/reopen"): ADMIN_ONLY,
    ("GET", "/api/v1/periods"): LOGGED_IN,
    ("POST", "/api/v1/periods/{month:str}/close"): ADMIN_ONLY,
    # --- statements and documents
    ("GET", "/clients/{client_id:int}/statement"): LOGGED_IN,
    ("GET", "/clients/{client_id:int}/statement.pdf"): LOGGED_IN,
    ("GET", "/clients/{client_id:int}/statement.csv"): LOGGED_IN,
    ("POST", "/clients/{client_id:int}/statement/email"): STAFF,
    ("GET", "/statements"): LOGGED_IN,
    ("GET", "/statements/clients"): LOGGED_IN,  # the month page's list of clients, when opened
    ("POST", "/statements/bulk"): LOGGED_IN,  # a ZIP of statements: reading, for the accountant too
    ("POST", "/statements/email"): ADMIN_ONLY,
    ("GET", "/statements/jobs/{job_id:int}"): LOGGED_IN,
    ("GET", "/statements/jobs/{job_id:int}/progress"): LOGGED_IN,
    ("GET", "/statements/jobs/{job_id:int}/download"): LOGGED_IN,
    # --- expenses and exports (the accountant's downloads; not reception's business)
    ("GET", "/expenses"): LOGGED_IN,
    ("POST", "/expenses"): STAFF,
    ("POST", "/expenses/{expense_id:int}/delete"): ADMIN_ONLY,
    ("GET", "/expenses/summary"): (L, F, A, A),
    ("POST", "/expenses/summary/basis"): ADMIN_ONLY,
    ("GET", "/exports"): (L, F, A, A),
    ("GET", "/exports/{file_name:str}"): (L, F, A, A),
    # --- the owner's reports (the day's cash-up is reception's too)
    ("GET", "/reports"): (L, F, A, A),
    ("GET", "/reports/received"): (L, F, A, A),
    ("GET", "/reports/billed"): (L, F, A, A),
    ("GET", "/reports/aging"): (L, F, A, A),
    ("GET", "/reports/debtors"): (L, F, A, A),
    ("GET", "/reports/daily"): LOGGED_IN,
    ("GET", "/reports/commissions"): (L, F, A, A),
    ("GET", "/reports/commissions/{staff_id:int}"): (L, F, A, A),
    ("GET", "/reports/{file_name:str}"): (L, F, A, A),
    ("GET", "/api/v1/reports/dashboard"): (L, F, A, A),
    ("GET", "/api/v1/reports/received"): (L, F, A, A),
    ("GET", "/api/v1/reports/billed-vs-received"): (L, F, A, A),
    ("GET", "/api/v1/reports/aging"): (L, F, A, A),
    ("GET", "/api/v1/reports/debtors"): (L, F, A, A),
    ("GET", "/api/v1/reports/daily"): LOGGED_IN,
    ("GET", "/api/v1/reports/commissions"): (L, F, A, A),
    # --- importing a spreadsheet (the owner migrating)
    ("GET", "/imports"): ADMIN_ONLY,
    ("POST", "/imports"): ADMIN_ONLY,
    ("GET", "/imports/{import_id:int}"): ADMIN_ONLY,
    ("POST", "/imports/{import_id:int}/dry-run"): ADMIN_ONLY,
    ("POST", "/imports/{import_id:int}/apply"): ADMIN_ONLY,
    # --- operations, static files and the API docs
    ("GET", "/health"): PUBLIC,
    ("GET", "/static/{file_path:path}"): PUBLIC,
    ("HEAD", "/static/{file_path:path}"): PUBLIC,
    ("GET", "/schema"): LOGGED_IN,
    ("GET", "/schema/openapi.json"): LOGGED_IN,
    ("GET", "/schema/scalar"): LOGGED_IN,
    ("GET", "/schema/{path:str}"): LOGGED_IN,
}


async def _client_id(db: AsyncSession, _rows: dict[str, int]) -> int:
    client = Client(name="Ana Souza", name_key="ana souza", search_text="ana souza")
    db.add(client)
    await db.flush()
    return client.id


async def _service_id(db: AsyncSession, _rows: dict[str, int]) -> int:
    service = Service(name="Session", price_cents=15000)
    db.add(service)
    await db.flush()
    return service.id


async def _staff_id(db: AsyncSession, _rows: dict[str, int]) -> int:
    staff = Staff(name="Dr. Lima", commission_bp=4000)
    db.add(staff)
    await db.flush()
    return staff.id


async def _charge_id(db: AsyncSession, rows: dict[str, int]) -> int:
    day = date(2026, 1, 15)
    charge = Charge(
        client_id=rows["client_id"], date=day, due_date=day, amount_cents=15000, status="open"
    )
    db.add(charge)
    await db.flush()
    return charge.id


async def _payment_id(db: AsyncSession, rows: dict[str, int]) -> int:
    payment = Payment(
        client_id=rows["client_id"],
        amount_cents=5000,
        method="cash",
        received_on=date(2026, 1, 20),
        created_at=datetime.now(UTC),
    )
    db.add(payment)
    await db.flush()
    return payment.id


async def _expense_id(db: AsyncSession, _rows: dict[str, int]) -> int:
    expense = Expense(
        spent_on=date(2026, 1, 5),
        amount_cents=9000,
        method="transfer",
        category="Rent",
        created_at=datetime.now(UTC),
    )
    db.add(expense)
    await db.flush()
    return expense.id


async def _job_id(db: AsyncSession, _rows: dict[str, int]) -> int:
    job = DocumentJob(kind="zip", month="2026-01", status="done", created_at=datetime.now(UTC))
    db.add(job)
    await db.flush()
    return job.id


async def _import_id(db: AsyncSession, _rows: dict[str, int]) -> int:
    content = b"name;phone\nAna Souza;\n"
    upload = ImportFile(
        filename="clients.csv",
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        content=content,
        created_at=datetime.now(UTC),
    )
    db.add(upload)
    await db.flush()
    return upload.id


async def _user_id(db: AsyncSession, _rows: dict[str, int]) -> int:
    target = User(
        username="target",
        display_name="Target",
        role="reception",
        password_hash=auth.hash_password("target password"),
        active=True,
        auth_epoch=0,
    )
    db.add(target)
    await db.flush()
    return target.id


async def _token_id(db: AsyncSession, rows: dict[str, int]) -> int:
    target = await db.get_one(User, rows["user_id"])
    _token, row = await auth.issue_token(db, target, "script", None)
    return row.id


# Path parameter -> a factory making a row that exists (in this order), or a fixed value.
PARAMS: dict[str, Callable[[AsyncSession, dict[str, int]], Awaitable[int]] | str] = {
    "client_id": _client_id,
    "service_id": _service_id,
    "staff_id": _staff_id,
    "charge_id": _charge_id,
    "payment_id": _payment_id,
    "user_id": _user_id,
    "token_id": _token_id,
    "expense_id": _expense_id,
    "job_id": _job_id,
    "import_id": _import_id,
    "file_name": "entries.csv",
    "name": "saldo-20260101T030000Z-schema0003.sqlite3",
    "month": "2026-01",
    "file_path": "css/app.css",
    "path": "openapi.yaml",
}


async def existing_rows(maker: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    values: dict[str, str] = {}
    rows: dict[str, int] = {}
    async with maker() as db:
        for name, make in PARAMS.items():
            if isinstance(make, str):
                values[name] = make
            else:
                rows[name] = await make(db, rows)
                values[name] = str(rows[name])
        await db.commit()
    return values


def fill(path: str, values: dict[str, str]) -> str:
    """``/clients/{client_id:int}`` -> ``/clients/17``."""
    parts = []
    for part in path.split("/"):
        if part.startswith("{"):
            name = part[1:-1].split(":")[0]
            assert name in values, (
                f"{path}: add a way to make an existing {name!r} to PARAMS in {__name__}"
            )
            part = values[name]
        parts.append(part)
    return "/".join(parts)


def registered_routes(app: Litestar) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for method in route.route_handler_map
        if method != "OPTIONS"
    }


def outcome(path: str, response: Any) -> str:
    # The guard's redirect carries ?next=; logging out sends to plain /login.
    if response.status_code == 401 or (
        response.status_code in (302, 303)
        and response.headers.get("location", "").startswith("/login?next=")
    ):
        return L
    if response.status_code == 403:
        return F
    if response.status_code >= 500:
        return f"crashed ({response.status_code})"
    return A


async def call(client: AsyncTestClient[Any], method: str, path: str, csrf_token: str) -> Any:
    headers = {"x-csrftoken": csrf_token}
    if method in ("GET", "HEAD"):
        return await client.request(method, path, headers=headers)
    if path.startswith("/api/"):
        return await client.request(method, path, json={}, headers=headers)
    return await client.request(method, path, data={"_csrf_token": csrf_token}, headers=headers)


async def test_every_route_answers_every_role_as_the_table_says(
    app: Litestar,
    client_for: Any,
    make_user: Any,
    maker: async_sessionmaker[AsyncSession],
) -> None:
    routes = registered_routes(app)
    missing = sorted(routes - EXPECTED.keys(), key=lambda r: (r[1], r[0]))
    assert not missing, (
        "Routes without an entry in EXPECTED (tests/integration/test_security_routes.py). "
        "Add a line for each, saying who may call it, and make the route's guard agree:\n"
        + "\n".join(f'    ("{method}", "{path}"): ?,' for method, path in missing)
    )
    stale = sorted(EXPECTED.keys() - routes)
    assert not stale, f"EXPECTED lists routes the app no longer has; remove them: {stale}"

    values = await existing_rows(maker)
    users = {role: await make_user(role) for role in CALLERS[1:]}
    settings = app.state.settings
    csrf_token = generate_csrf_token(settings.secret_key)
    mismatches = []
    async with client_for(app) as client:
        client.follow_redirects = False
        for method, template in sorted(routes, key=lambda r: (r[1], r[0])):
            path = fill(template, values)
            for caller, expected in zip(CALLERS, EXPECTED[method, template], strict=True):
                client.cookies.clear()
                client.cookies.set(settings.csrf_cookie, csrf_token, domain="testserver.local")
                if caller != "anonymous":
                    # A fresh session per request: some routes (logout) end it.
                    async with maker() as db:
                        session = await auth.start_session(db, users[caller], None, None, None)
                    client.cookies.set(settings.session_cookie, session, domain="testserver.local")
                response = await call(client, method, path, csrf_token)
                got = outcome(path, response)
                if got != expected:
                    mismatches.append(
                        f"{method} {path} as {caller}: expected {expected}, got {got} "
                        f"({response.status_code} {response.text[:120]!r})"
                    )
    assert not mismatches, "\n".join(mismatches)


async def test_options_answers_only_allow_and_needs_a_login_like_the_rest(
    app: Litestar, client_for: Any, make_user: Any, maker: async_sessionmaker[AsyncSession]
) -> None:
    """Litestar's own OPTIONS handlers take their options from the router or controller only:
    a login is needed even on /login; static files are public as a whole."""
    someone = await make_user("admin")
    async with maker() as db:
        session = await auth.start_session(db, someone, None, None, None)
    settings = app.state.settings
    async with client_for(app) as anonymous, client_for(app) as logged_in:
        anonymous.follow_redirects = logged_in.follow_redirects = False
        logged_in.cookies.set(settings.session_cookie, session, domain="testserver.local")
        for route in app.routes:
            if not isinstance(route, HTTPRoute):
                continue
            path = re.sub(r"\{[^}]+\}", "1", route.path)
            answer = await logged_in.options(path)
            assert answer.status_code == 204, (path, answer.status_code)
            assert answer.content == b"" and "allow" in answer.headers
            refused = await anonymous.options(path)
            options_handler = route.route_handler_map["OPTIONS"][0]
            expected = A if options_handler.opt.get("public") else L  # static files
            assert outcome(path, refused) == expected, (path, refused.status_code)
