"""The app's own CPU per request, without HTTP, wrk or a second process in the way.

    python bench/cpu.py --db saldo50k search        # the search fragment, rotating queries
    python bench/cpu.py --db saldo50k pay           # register and pay, 300 POSTs
    python bench/cpu.py --db saldo50k topup         # a top-up through the API, 300 POSTs
    python bench/cpu.py --db saldo50k search --profile   # and where it goes (cProfile)
    PROFILE_OUT=/tmp/pay.prof python bench/cpu.py --db saldo50k pay --profile  # and keep it
    python bench/cpu.py --db saldo50k pay --ab-hot-read  # HotRead against SQLAlchemy
    python bench/cpu.py --sqlite /tmp/saldo-bench/saldo50k.db pay
    python bench/cpu.py --db saldo50k pdf           # the one-page PDF against WeasyPrint's floor

Builds the app in this process, logs the bench reception user in through the service
(a real session row, a real CSRF token), then calls the app as ASGI one
request at a time and divides ``time.process_time()`` by the requests: the
app's CPU (SQLAlchemy, asyncpg, Litestar, templates), not PostgreSQL's. It
moves by tenths of a millisecond between runs; compare a change against its
before in back-to-back runs. ``topup`` writes real payments (50,00 each, to
the same 5,000 clients). ``pay`` writes real charges (one per POST,
spread over 5,000 active clients, dated today), as the wrk benchmark does.
``pdf`` renders the statement ``run.py pdf`` downloads, in this process, in
alternating blocks with the same statement through WeasyPrint's own HTML
parser and user-agent sheet (what the app did before ad98a83), the same HTML
laid out without the stylesheet, and an empty page: what the statement's own
content costs WeasyPrint here.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import logging
import os
import pstats
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import pg  # noqa: E402
import run  # noqa: E402


async def _call(app: Any, method: str, target: str, headers: list, body: bytes = b"") -> int:
    path, _, query = target.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": query.encode(), "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _ab_hot_read(one: Any, n: int, ok: int, bench: str, facts: dict[str, Any]) -> None:
    """HotRead against SQLAlchemy's own execution, in alternating blocks of 50 requests.

    This machine's speed drifts by a third between runs; blocks interleaved in
    one process see the same drift, so the difference between them is the change's.
    """
    from app.db import HotRead

    direct = HotRead.all

    async def through_sqlalchemy(self: Any, session: Any, params: dict[str, Any]) -> list[Any]:
        return list((await session.execute(self.statement, params)).all())

    spent = {"HotRead": 0.0, "SQLAlchemy": 0.0}
    for block in range(max(2, n // 50)):
        name = "HotRead" if block % 2 == 0 else "SQLAlchemy"
        HotRead.all = direct if name == "HotRead" else through_sqlalchemy  # type: ignore[method-assign]
        started = time.process_time()
        for _ in range(50):
            assert await one() == ok
        spent[name] += time.process_time() - started
    HotRead.all = direct  # type: ignore[method-assign]
    each = max(2, n // 50) // 2 * 50
    for name, seconds in spent.items():
        per = seconds / each * 1000
        print(f"{bench} on {facts['dataset']}, {name}: app CPU {per:.2f} ms per request")


async def _pdf(app: Any, facts: dict[str, Any], n: int) -> None:
    """p50 of the statement's render against WeasyPrint's own parser and user-agent sheet,
    the same HTML unstyled, and an empty page."""
    import statistics
    from datetime import UTC, date, datetime

    from weasyprint import HTML

    from app.admin.services import load_settings
    from app.statements import documents
    from app.statements.services import statement

    client = run._small_client(facts)
    first, last = (date.fromisoformat(d) for d in run._month_range(facts["peak_month"]))
    async with app.state.session_maker() as session:
        st = await statement(session, client, first, last)
        practice = await load_settings(session)
    doc = documents.StatementDocument(st, documents.Letterhead.of(practice), datetime.now(UTC))
    html = documents.pdf_html(doc)
    setup = documents._weasyprint_setup()

    def bare(source: str, html_class: Any = None, stylesheets: Any = ()) -> bytes:
        html_class = html_class or documents._html_class()  # render_pdf's parser and UA sheet
        with documents._gc_paused():  # as render_pdf renders
            page = html_class(string=source, base_url=documents.BASE_URL)
            return page.write_pdf(stylesheets=list(stylesheets), font_config=setup.font_config)

    cases = {
        "the statement (render_pdf)": lambda: documents.render_pdf(doc),
        "the same through WeasyPrint's own HTML parser and user-agent sheet": lambda: bare(
            html, HTML, [setup.stylesheet]
        ),
        "its HTML without the stylesheet": lambda: bare(html),
        "an empty page": lambda: bare("<!DOCTYPE html><p>Saldo</p>"),
    }
    spent: dict[str, list[float]] = {name: [] for name in cases}
    for _block in range(max(1, n // 5)):
        for name, render in cases.items():
            render()  # not timed: the first of a block pays for the switch
            for _ in range(5):
                started = time.process_time()
                render()
                spent[name].append((time.process_time() - started) * 1000)
    cells = html.count("<td") + html.count("<th")
    print(f"client {client}, {first:%Y-%m}: {len(st.lines)} lines, {cells} table cells")
    for name, times in spent.items():
        print(f"{name}: p50 {statistics.median(times):.1f} ms of CPU ({len(times)} renders)")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench", choices=["search", "pay", "topup", "pdf"])
    ap.add_argument("--db", default="saldo50k")
    ap.add_argument("--sqlite", type=Path, help="a SQLite file made by generate.py instead")
    ap.add_argument("-n", type=int, default=0, help="requests (search 1,500, pay 300, pdf 40)")
    ap.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    ap.add_argument(
        "--ab-hot-read",
        action="store_true",
        help="alternate blocks of requests with HotRead sent through SQLAlchemy instead",
    )
    args = ap.parse_args()
    facts = run.facts(None if args.sqlite else args.db, args.sqlite)
    os.environ.update(
        DATABASE_URL=facts["url"],
        SECRET_KEY="bench-" + "k" * 58,
        SALDO_DATA_DIR=str(pg.BENCH_ROOT / "appdata"),
    )
    from litestar.middleware.csrf import generate_csrf_token
    from sqlalchemy import select

    from app.auth import services as auth
    from app.auth.models import User
    from app.main import create_app

    app = create_app()
    logging.getLogger("saldo.access").setLevel(logging.WARNING)
    if args.bench == "pdf":
        await _pdf(app, facts, args.n or 40)
        await app.state.engine.dispose()
        return
    settings = app.state.settings
    async with app.state.session_maker() as session:
        user = await session.scalar(select(User).where(User.username == facts["reception"]))
        token = await auth.start_session(session, user, "127.0.0.1", "bench/cpu.py", None)
    csrf = generate_csrf_token(secret=settings.secret_key)
    cookie = f"{settings.session_cookie}={token}; {settings.csrf_cookie}={csrf}".encode()

    if args.bench == "search":
        queries = itertools.cycle(run.search_queries(facts))
        headers = [
            (b"host", b"127.0.0.1"), (b"cookie", cookie), (b"hx-request", b"true"),
            (b"hx-target", b"client-results"), (b"accept", b"*/*"),
        ]  # fmt: skip

        async def one() -> int:
            return await _call(app, "GET", f"/clients?q={next(queries)}", headers)

        n, ok = args.n or 1500, 200
    elif args.bench == "topup":
        sql = "SELECT id FROM clients WHERE active ORDER BY id LIMIT 5000"
        clients = itertools.cycle([row[0] for row in run._rows(facts, sql)])

        async def one() -> int:
            body = f'{{"client_id": {next(clients)}, "amount": "50.00", "method": "pix"}}'.encode()
            headers = [
                (b"host", b"127.0.0.1"), (b"cookie", cookie), (b"x-csrftoken", csrf.encode()),
                (b"content-type", b"application/json"),
                (b"idempotency-key", uuid.uuid4().hex.encode()),
                (b"content-length", str(len(body)).encode()),
            ]  # fmt: skip
            return await _call(app, "POST", "/api/v1/payments", headers, body)

        n, ok = args.n or 300, 201
    else:
        sql = "SELECT id FROM clients WHERE active ORDER BY id LIMIT 5000"
        clients = itertools.cycle([row[0] for row in run._rows(facts, sql)])
        today = time.strftime("%Y-%m-%d")

        async def one() -> int:
            form = {
                "client_id": str(next(clients)), "service_id": "1", "staff_id": "1",
                "amount": "150,00", "date": today, "settle": "pay_now", "method": "cash",
                "idempotency_key": str(uuid.uuid4()), "_csrf_token": csrf,
            }  # fmt: skip
            body = urllib.parse.urlencode(form).encode()
            headers = [
                (b"host", b"127.0.0.1"), (b"cookie", cookie),
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"content-length", str(len(body)).encode()),
            ]  # fmt: skip
            return await _call(app, "POST", "/charges/new", headers, body)

        n, ok = args.n or 300, 303

    for _ in range(max(20, n // 10)):  # warm: prepared statements, caches
        assert await one() == ok
    # CPU time, not wall time: waiting for PostgreSQL is not the app's cost.
    profile = cProfile.Profile(time.process_time) if args.profile else None
    if args.ab_hot_read:
        await _ab_hot_read(one, n, ok, args.bench, facts)
        await app.state.engine.dispose()
        return
    started = time.process_time()
    if profile:
        profile.enable()
    for _ in range(n):
        status = await one()
        assert status == ok, status
    if profile:
        profile.disable()
    spent = time.process_time() - started
    await app.state.engine.dispose()
    print(f"{args.bench} on {facts['dataset']}: app CPU {spent / n * 1000:.2f} ms per request")
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        if os.environ.get("PROFILE_OUT"):
            profile.dump_stats(os.environ["PROFILE_OUT"])


if __name__ == "__main__":
    asyncio.run(main())
