"""The app with proposed fixes applied in memory, to measure them before anyone edits the app.

    SALDO_BENCH_VARIANT=async_guard,one_auth_session python bench/run.py search --variant …

``create_app`` here is a drop-in uvicorn factory (``variants:create_app``). Each
variant named in ``SALDO_BENCH_VARIANT`` patches one thing the way the
proposed fix in docs/BENCHMARKS.md would change it; nothing on disk changes.
A variant is an experiment, not the fix: the lead applies the real change.

- ``async_guard``: the app-wide guard as ``async def``. Litestar runs a plain
  ``def`` guard through ``sync_to_thread`` — a thread-pool hop on every request.
- ``one_auth_session``: the practice settings are read in the auth
  middleware's session instead of a session of their own (one transaction and
  one pool checkout less per request).
- ``quiet_access_log``: no per-request access-log line (its cost, for scale).
- ``statement_by_client``: the statement's open-charges query also filters the
  journal by ``Entry.client_id`` (entries of a charge are its client's), so it
  reads the client's entries through ``ix_entries_client_date`` instead of
  scanning the whole journal (there is no index on ``entries.charge_id``).
  Reaches the statement page and API, PDFs, the ZIP job and month close.
- ``review_page``: the month review computes payer history and billing
  messages for the first 50 debtors only (a page), and payer history reads
  only those clients' allocations instead of grouping every allocation.

- ``fast_money``: ``format_money`` and ``format_day`` without Babel's per-call
  work: the currency's prefix, suffix and separators (and the date pattern)
  are worked out once per locale from Babel's own output, then cents are
  formatted with integer arithmetic. Checked against Babel at start.

- ``bulk_close``: month close builds every client's statement from three
  set-wise queries (openings, the month's lines, open charges at the end)
  instead of three queries per client; the statements — and so the digest —
  are the same.

- ``cached_login``: an upper bound on skipping the login lookup: each
  process keeps the first answer for each session cookie, never invalidated.
- ``plain_fragment``: an upper bound on the search fragment's template: its
  rows written by an f-string (escaped, no money formatting, no translations)
  instead of Jinja through Litestar's ``Template`` response.
- ``gc_log``: a diagnosis, not a fix: every garbage collection that stops a
  worker for 5 ms or more is logged (``saldo.gc``) in the app's log.
- ``asgi_search``: an upper bound on a hand-written keystroke: the search
  fragment answered by plain ASGI code inside Saldo's request middleware
  (request id, access log, security headers), with the same login lookup,
  settings, service and read, its rows written by f-strings with
  ``markupsafe.escape`` instead of Jinja, and none of Litestar's routing,
  guard, parameters or response. ``asgi_search_jinja``: the same, rendering
  the app's own ``clients/_results.html`` (the same bytes as the app's).

``python bench/variants.py close-month YYYY-MM`` runs the CLI with the
variants of ``SALDO_BENCH_VARIANT`` applied.
"""

from __future__ import annotations

import contextvars
import logging
import os
from typing import Any

from litestar import Litestar


def _async_guard() -> None:
    import app.main
    from app.auth import guards

    sync_guard = guards.authorize

    async def authorize(connection: Any, handler: Any) -> None:
        sync_guard(connection, handler)

    app.main.authorize = authorize


_practice: contextvars.ContextVar[Any] = contextvars.ContextVar("bench_practice", default=None)


def _one_auth_session() -> None:
    import app.main
    from app.admin.services import load_settings
    from app.auth import middleware, services

    async def call(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            scope.setdefault("user", None)
            await self.app(scope, receive, send)
            return
        user = bearer = None
        for key, value in scope["headers"]:
            if key == b"authorization" and value[:7].lower() == b"bearer ":
                bearer = value[7:].decode("latin-1").strip()
        session_token = None if bearer else middleware._cookie(scope, self.cookie)
        async with self.maker() as db:
            if bearer:
                user = await services.token_user(db, bearer)
            elif session_token:
                user = await services.session_user(db, session_token, self.idle, self.absolute)
            # The same session (one transaction, one connection) reads the settings.
            token = _practice.set(await load_settings(db))
        scope["user"] = user
        scope["auth"] = session_token if user is not None else None
        scope.setdefault("state", {})["via_token"] = bool(bearer)
        try:
            await self.app(scope, receive, send)
        finally:
            _practice.reset(token)

    middleware.AuthMiddleware.__call__ = call
    original = app.main.load_practice_settings

    async def settings_read_by_middleware(session: Any) -> Any:
        # set_formatting opens a session for this; unused, it checks out no connection.
        return _practice.get() or await original(session)

    app.main.load_practice_settings = settings_read_by_middleware


def _statement_by_client() -> None:
    import app.statements.document_controllers
    import app.statements.documents
    import app.statements.mail
    from app.statements import services

    original = services.statement

    async def statement(session: Any, client_id: int, start: Any, end: Any) -> Any:
        from sqlalchemy import func, select

        from app.ledger.models import Charge, Entry

        result = await _without_open_charges(original, session, client_id, start, end)
        open_rows = await session.execute(
            select(
                Charge.id,
                Charge.date,
                Charge.due_date,
                Charge.description,
                Charge.amount_cents,
                func.sum(Entry.owed_delta_cents),
            )
            .join(Entry, Entry.charge_id == Charge.id)
            .where(
                Charge.client_id == client_id,
                Entry.client_id == client_id,  # the fix: the client's entries only
                Charge.date <= end,
                Entry.effective_date <= end,
            )
            .group_by(
                Charge.id, Charge.date, Charge.due_date, Charge.description, Charge.amount_cents
            )
            .having(func.sum(Entry.owed_delta_cents) > 0)
            .order_by(Charge.date, Charge.id)
        )
        for charge_id, day, due, description, amount, open_cents in open_rows:
            days = max(0, (end - due).days)
            result.open_charges.append(
                services.OpenCharge(charge_id, day, due, description, amount, int(open_cents), days)
            )
            result.aging_cents[services.aging_bucket(days)] += int(open_cents)
        return result

    for module in (
        services,
        app.statements.documents,
        app.statements.mail,
        app.statements.document_controllers,
    ):
        module.statement = statement


async def _without_open_charges(
    original: Any, session: Any, client_id: int, start: Any, end: Any
) -> Any:
    """The original statement with its open-charges query answered by nothing."""
    real_execute = session.execute

    async def execute(query: Any, *args: Any, **kwargs: Any) -> Any:
        if "sum(entries.owed_delta_cents)" in str(query):
            return []
        return await real_execute(query, *args, **kwargs)

    session.execute = execute
    try:
        return await original(session, client_id, start, end)
    finally:
        del session.execute


def _review_page() -> None:
    from sqlalchemy import and_, case, func, select

    from app.collecting import services as collecting
    from app.ledger.models import Allocation, Charge, Payment

    async def payer_history(session: Any, client_ids: list[int], today: Any) -> Any:
        paid_on = (
            select(Allocation.charge_id, func.max(Payment.received_on).label("paid_on"))
            .join(Payment, Payment.id == Allocation.payment_id)
            .join(Charge, Charge.id == Allocation.charge_id)
            .where(Allocation.amount_cents > 0, Charge.client_id.in_(client_ids))
            .group_by(Allocation.charge_id)
            .subquery()
        )
        unpaid = collecting.UNPAID
        rows = await session.execute(
            select(
                Charge.client_id,
                func.count(Charge.id),
                func.sum(case((Charge.status == "paid", 1), else_=0)),
                func.sum(
                    case(
                        (and_(Charge.status == "paid", paid_on.c.paid_on > Charge.due_date), 1),
                        else_=0,
                    )
                ),
                func.sum(
                    case((and_(Charge.status.in_(unpaid), Charge.due_date < today), 1), else_=0)
                ),
            )
            .outerjoin(paid_on, paid_on.c.charge_id == Charge.id)
            .where(Charge.client_id.in_(client_ids), Charge.status != "void")
            .group_by(Charge.client_id)
        )
        return {
            cid: collecting.Payer(
                charges=n or 0, paid=paid or 0, paid_late=late or 0, overdue=overdue or 0
            )
            for cid, n, paid, late, overdue in rows
        }

    original_messages = collecting.billing_message
    original_history = payer_history
    page: dict[str, set[int]] = {}

    async def unpaid_for_month(session: Any, month: str, practice: Any, today: Any) -> Any:
        # Sort every debtor by what they owe, then do the expensive part for one page.
        collecting.payer_history = _empty_history
        collecting.billing_message = lambda *a: ""
        try:
            debtors = await _original_unpaid(session, month, practice, today)
        finally:
            collecting.payer_history = original_history
            collecting.billing_message = original_messages
        first = debtors[:50]
        page["ids"] = {d.client_id for d in first}
        for cid, payer in (await payer_history(session, list(page["ids"]), today)).items():
            next(d for d in first if d.client_id == cid).payer = payer
        for d in first:
            d.messages = {
                tone: original_messages(practice, tone, d, month) for tone in collecting.TONES
            }
        return first

    async def _empty_history(session: Any, ids: list[int], today: Any) -> dict[int, Any]:
        return {}

    _original_unpaid = collecting.unpaid_for_month
    collecting.unpaid_for_month = unpaid_for_month


def _fast_money() -> None:
    from decimal import Decimal
    from functools import lru_cache

    from babel import Locale
    from babel.dates import format_date
    from babel.numbers import format_currency

    from app.web import i18n

    @lru_cache(maxsize=64)
    def parts(currency: str, locale: str) -> tuple[str, str, str, str, str, str]:
        """Prefix and suffix (positive, negative), group and decimal marks, from Babel."""
        pos = format_currency(Decimal("1234567.89"), currency, locale=locale)
        neg = format_currency(Decimal("-1234567.89"), currency, locale=locale)
        first, last = pos.index("1"), pos.rindex("9")
        group, decimal = pos[first + 1], pos[last - 2]
        n_first, n_last = neg.index("1"), neg.rindex("9")
        return pos[:first], pos[last + 1 :], neg[:n_first], neg[n_last + 1 :], group, decimal

    def format_money(cents: int | None, fmt: Any = None) -> str:
        fmt = fmt or i18n.current()
        pre, suf, npre, nsuf, group, decimal = parts(fmt.currency, fmt.locale)
        cents = cents or 0
        units, hundredths = divmod(abs(cents), 100)
        digits = f"{units:,}".replace(",", group)
        if cents < 0:
            pre, suf = npre, nsuf
        return f"{pre}{digits}{decimal}{hundredths:02d}{suf}"

    @lru_cache(maxsize=64)
    def locale_of(name: str) -> Locale:
        return Locale.parse(name)

    def format_day(value: Any, style: str = "medium", fmt: Any = None) -> str:
        if value is None:
            return ""
        fmt = fmt or i18n.current()
        return format_date(value, format=style, locale=locale_of(fmt.locale))

    original = i18n.format_money
    for currency, locale in (("BRL", "pt_BR"), ("USD", "en_US"), ("EUR", "es_ES")):
        f = i18n.Formatting(language="en", locale=locale, currency=currency, timezone="UTC")
        for cents in (0, 5, 99, 100, 123456, -123456, 123456789, -5):
            assert format_money(cents, f) == original(cents, f), (cents, locale)
    i18n.format_money = format_money
    i18n.format_day = format_day


async def _bulk_statements(session: Any, start: Any, end: Any) -> dict[int, Any]:
    """Every statement of [start, end] for the clients with entries in it, in 3+1 queries."""
    from sqlalchemy import func, select

    from app.clients.models import Client
    from app.ledger.models import Charge, Entry
    from app.statements import services

    in_period = (
        select(Entry.client_id)
        .where(Entry.effective_date >= start, Entry.effective_date <= end)
        .distinct()
        .scalar_subquery()
    )
    names = await session.execute(select(Client.id, Client.name).where(Client.id.in_(in_period)))
    openings = dict(
        (
            await session.execute(
                select(Entry.client_id, func.sum(Entry.amount_cents))
                .where(Entry.client_id.in_(in_period), Entry.effective_date < start)
                .group_by(Entry.client_id)
            )
        ).all()
    )
    out = {
        cid: services.Statement(cid, name, start, end, int(openings.get(cid) or 0))
        for cid, name in names
    }
    balance = {cid: st.opening_cents for cid, st in out.items()}
    lines = await session.execute(
        select(
            Entry.client_id,
            Entry.id,
            Entry.effective_date,
            Entry.kind,
            Entry.description,
            Entry.amount_cents,
        )
        .where(Entry.effective_date >= start, Entry.effective_date <= end, Entry.amount_cents != 0)
        .order_by(Entry.client_id, Entry.effective_date, Entry.id)
    )
    for cid, entry_id, day, kind, description, amount in lines:
        balance[cid] += amount
        out[cid].lines.append(services.Line(entry_id, day, kind, description, amount, balance[cid]))
    for cid, st in out.items():
        st.closing_cents = balance[cid]
    open_rows = await session.execute(
        select(
            Charge.client_id,
            Charge.id,
            Charge.date,
            Charge.due_date,
            Charge.description,
            Charge.amount_cents,
            func.sum(Entry.owed_delta_cents),
        )
        .join(Entry, Entry.charge_id == Charge.id)
        .where(
            Charge.client_id.in_(in_period),
            Entry.client_id == Charge.client_id,
            Charge.date <= end,
            Entry.effective_date <= end,
        )
        .group_by(
            Charge.client_id,
            Charge.id,
            Charge.date,
            Charge.due_date,
            Charge.description,
            Charge.amount_cents,
        )
        .having(func.sum(Entry.owed_delta_cents) > 0)
        .order_by(Charge.client_id, Charge.date, Charge.id)
    )
    for cid, charge_id, day, due, description, amount, open_cents in open_rows:
        days = max(0, (end - due).days)
        st = out[cid]
        st.open_charges.append(
            services.OpenCharge(charge_id, day, due, description, amount, int(open_cents), days)
        )
        st.aging_cents[services.aging_bucket(days)] += int(open_cents)
    return out


def _bulk_close() -> None:
    from app.statements import services

    original_close = services.close_month

    async def close_month(session: Any, month: str, actor: Any, *args: Any, **kwargs: Any) -> Any:
        real = services.statement
        built: dict[Any, dict[int, Any]] = {}

        async def statement(s: Any, client_id: int, start: Any, end: Any) -> Any:
            if (start, end) not in built:
                built[(start, end)] = await _bulk_statements(s, start, end)
            found = built[(start, end)].get(client_id)
            return found if found is not None else await real(s, client_id, start, end)

        services.statement = statement
        try:
            return await original_close(session, month, actor, *args, **kwargs)
        finally:
            services.statement = real

    services.close_month = close_month


def _cached_login() -> None:
    """Upper bound, not a fix: each process answers a session cookie it has seen from memory.

    Nothing invalidates the entry (a logout would go unnoticed), so this only
    says what the login lookup's round trip costs a request.
    """
    from app.auth import services

    original = services.session_user
    seen: dict[str, Any] = {}

    async def session_user(session: Any, token: str, *args: Any) -> Any:
        if token not in seen:
            seen[token] = await original(session, token, *args)
        return seen[token]

    services.session_user = session_user


def _plain_fragment() -> None:
    """Upper bound, not a fix: the search fragment without Jinja or Litestar's Template."""
    from html import escape

    from litestar.response import Template
    from litestar.response.base import ASGIResponse

    original = Template.to_asgi_response

    def to_asgi_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.template_name != "clients/_results.html":
            return original(self, *args, **kwargs)
        rows = "".join(
            f'<li><a class="client-row" href="/clients/{c.id}">{escape(c.name)} '
            f"{escape(c.phone or '')} {c.balance_cents}</a></li>"
            for c in self.context["results"].items
        )
        body = f'<section id="client-results"><ul class="client-list">{rows}</ul></section>'
        return ASGIResponse(body=body.encode(), media_type="text/html; charset=utf-8")

    Template.to_asgi_response = to_asgi_response  # type: ignore[method-assign]


def _gc_log() -> None:
    """Log every garbage collection that stops a worker for 5 ms or more (a diagnosis)."""
    import gc
    import time

    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        took = (time.perf_counter() - started[0]) * 1000
        if took >= 5:
            logging.getLogger("saldo.gc").warning(
                "gc generation %d took %.1f ms (%d collected)",
                info["generation"], took, info["collected"],
            )  # fmt: skip

    gc.callbacks.append(callback)


def _one_write() -> None:
    """Trial: uvicorn sends a response's status line and headers with its body, in one write."""
    from uvicorn.protocols.http import httptools_impl

    class Held:
        def __init__(self, transport: Any) -> None:
            self.transport, self.head = transport, b""

        def write(self, data: bytes) -> None:
            if not self.head and data.startswith(b"HTTP/"):
                self.head = data
                return
            head, self.head = self.head, b""
            self.transport.write(head + data if head else data)

        def flush(self) -> None:
            if self.head:
                self.write(b"")

        def __getattr__(self, name: str) -> Any:
            return getattr(self.transport, name)

    original = httptools_impl.RequestResponseCycle.send

    async def send(self: Any, message: Any) -> None:
        if not isinstance(self.transport, Held):
            self.transport = Held(self.transport)
        await original(self, message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            self.transport.flush()

    httptools_impl.RequestResponseCycle.send = send


def _quiet_access_log() -> None:
    logging.getLogger("saldo.access").setLevel(logging.WARNING)


def _asgi_search(built: Litestar, jinja: bool = False) -> None:
    """Upper bound, not a fix: the search fragment served past Litestar's handler layer.

    Anything but a logged-in search fragment goes on to the app as usual. The
    f-string rows are what the benchmark's searches show (no archived tag,
    no empty-list texts); with ``jinja`` the app's own template renders them.
    """
    import dataclasses
    from datetime import timedelta
    from types import SimpleNamespace
    from urllib.parse import parse_qs

    from markupsafe import escape

    from app.admin.services import SETTINGS_STAMP, SettingsCache
    from app.auth import services
    from app.auth.middleware import _cookie
    from app.clients.services import ClientService
    from app.db import read_session_maker
    from app.web import i18n

    settings = built.state.settings
    idle = timedelta(minutes=settings.session_idle_minutes)
    absolute = timedelta(hours=settings.session_absolute_hours)
    read_maker = read_session_maker(built.state.engine)
    lookup = services.session_lookup(*SETTINGS_STAMP)
    practice_cache = SettingsCache()
    template = built.template_engine.get_template("clients/_results.html")

    async def respond(send: Any, body: bytes) -> None:
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    outer = built.asgi_handler  # RequestMiddleware
    app = outer.app

    async def search(scope: Any, receive: Any, send: Any) -> None:
        keystroke = (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"] == "/clients"
            and dict(scope["headers"]).get(b"hx-target") == b"client-results"
        )
        token = _cookie(scope, settings.session_cookie) if keystroke else None
        if token is None:
            await app(scope, receive, send)
            return
        db = read_maker()
        try:
            user, stamp = await services.session_user(db, token, idle, absolute, lookup)
            if user is None:
                await app(scope, receive, send)
                return
            practice = await practice_cache.get(db, stamp)
            fmt = practice.formatting  # and the user's language, as app.main's formatting does
            if user.language in i18n.LANGUAGES:
                fmt = dataclasses.replace(fmt, language=user.language)
            i18n.use(fmt)
            q = parse_qs(scope["query_string"].decode("latin-1")).get("q", [""])[0]
            results = await ClientService(db).search(q, summary=True)
        finally:
            await db.close()
        if jinja:
            request = SimpleNamespace(scope=scope)
            context = {"request": request, "q": q, "archived": False, "results": results}
            body = template.render(context).encode()
            await respond(send, body)
            return
        owes, balance = escape(i18n.gettext("Owes")), escape(i18n.gettext("Balance"))
        # f-strings with escape() per value: Markup.format (string.Formatter) is slower than Jinja.
        rows = "".join(
            f'<li><a class="client-row{"" if c.active else " archived"}" href="/clients/{c.id}">'
            f'<span class="client-name">{escape(c.name)}</span>'
            f'<span class="client-phone">{escape(c.phone or "")}</span>'
            + (
                f'<span class="client-balance num neg" title="{owes}">'
                if c.balance_cents < 0
                else f'<span class="client-balance num pos" title="{balance}">'
                if c.balance_cents > 0
                else f'<span class="client-balance num" title="{balance}">'
            )
            + f"{escape(i18n.format_money(c.balance_cents))}</span></a></li>"
            for c in results.items
        )
        more = ""
        if results.more:
            text = "Showing the first %(n)d clients. Type more of the name to narrow the list."
            more = f'<p class="help">{escape(i18n.gettext(text, n=len(results.items)))}</p>'
        body = (
            '<section id="client-results" class="client-results" aria-live="polite">'
            f'<ul class="client-list">{rows}</ul>{more}</section>'
        ).encode()
        await respond(send, body)

    outer.app = search


VARIANTS = {
    "async_guard": _async_guard,
    "one_auth_session": _one_auth_session,
    "quiet_access_log": _quiet_access_log,
    "statement_by_client": _statement_by_client,
    "review_page": _review_page,
    "fast_money": _fast_money,
    "bulk_close": _bulk_close,
    "cached_login": _cached_login,
    "plain_fragment": _plain_fragment,
    "gc_log": _gc_log,
    "asgi_search": lambda: None,  # applied to the built app: see create_app
    "asgi_search_jinja": lambda: None,
    "one_write": _one_write,
}


def apply(names: list[str]) -> None:
    for name in names:
        VARIANTS[name]()


def _names() -> list[str]:
    return [n for n in os.environ.get("SALDO_BENCH_VARIANT", "").split(",") if n]


def create_app() -> Litestar:
    import app.main

    names = _names()
    apply(names)
    built = app.main.create_app()
    if "quiet_access_log" in names:
        _quiet_access_log()
    if "asgi_search" in names or "asgi_search_jinja" in names:
        _asgi_search(built, jinja="asgi_search_jinja" in names)
    return built


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    apply(_names())
    from app.cli import main

    sys.argv = ["python -m app", *sys.argv[1:]]
    main()
