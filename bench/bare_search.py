"""The ceiling for the search benchmark: the same search on a bare Litestar + asyncpg app.

    python bench/bare_search.py --db saldo50k
    python bench/bare_search.py --db saldo50k --flask   # pip install -e '.[bench]'

No login, no ORM, no templates: one asyncpg pool per worker, the statement
Saldo's ``ClientService.search`` sends (compiled from it), and the rows as a
small HTML list. Started like Saldo (uvicorn, 2 workers, 127.0.0.1) and loaded with the same wrk
script and queries, it tells how much of the search target this machine and
this data allow at all. The result is recorded as a "bare" search row.

With ``--flask`` the same statement runs on a plain Flask + psycopg2 app under
gunicorn (2 workers, threads, keep-alive): the issue's yardstick ("Saldo should
not be slower than the plain Flask app"), measured on this machine instead of
quoted from another one.

With ``--login`` either app first finds the user behind the session cookie, as
Saldo does on every request: Saldo's own session lookup (the statement
``session_user`` sends, a second round trip) and the checks it makes of the row,
for a session row made here for the bench's reception user. A search without a
valid session is answered 401 (and the run is not recorded).

With ``--login --fused`` (bare Litestar only) the session lookup and the search
go as one statement, the search's rows outer-joined to the session's row: what
one round trip fewer per search would be worth, measured before anyone builds it
into Saldo.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import asyncpg
from litestar import Litestar, MediaType, Request, get
from litestar.exceptions import NotAuthorizedException
from sqlalchemy import LABEL_STYLE_TABLENAME_PLUS_COL, select, true
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.postgresql.psycopg2 import dialect as psycopg2_dialect

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from app.auth.services import _SESSION_USER, _USER_KEYS, token_hash  # noqa: E402
from app.clients.services import (  # noqa: E402
    SEARCH_LIMIT,
    _contains,
    _search_statements,
    _walks,
    query_words,
)

POOL: dict[str, asyncpg.Pool] = {}


@lru_cache(maxsize=16)
def _sql(words: int, walk: bool, driver: str = "asyncpg") -> tuple[str, tuple[str, ...]]:
    """The statement ``ClientService.search`` sends, as the driver receives it.

    asyncpg takes positional ``$1`` parameters in the order returned;
    psycopg2 takes the named ``%(w0)s`` ones from a dict.
    """
    dialect = asyncpg_dialect() if driver == "asyncpg" else psycopg2_dialect()
    compiled = _search_statements(words, False, walk=walk)[0].compile(dialect=dialect)
    return str(compiled), tuple(compiled.positiontup or ())


def _values(q: str) -> tuple[tuple[int, bool], dict[str, object]]:
    """The statement's key (``_sql``'s first two arguments) and its values."""
    words = query_words(q)
    values: dict[str, object] = {f"w{i}": _contains(w) for i, w in enumerate(words)}
    values.update(limit=SEARCH_LIMIT + 1, offset=0)
    return (len(words), _walks(words)), values


@lru_cache(maxsize=16)
def _fused_sql(words: int, walk: bool) -> tuple[str, tuple[str, ...]]:
    """The session lookup and the search in one statement: the search's rows (if any)
    outer-joined to the session's one row, in the search's order."""
    me = _SESSION_USER.subquery("me")
    page = _search_statements(words, False, walk=walk)[0].subquery("page")
    fused = (
        select(me, page)
        .select_from(me.outerjoin(page, true()))
        .order_by(page.c.name_key, page.c.id)
        .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)
    )
    compiled = fused.compile(dialect=asyncpg_dialect())
    return str(compiled), tuple(compiled.positiontup or ())


_FUSED = os.environ.get("BARE_FUSED") == "1"


@lru_cache(maxsize=2)
def _login_sql(driver: str) -> str:
    """Saldo's session lookup, as the driver receives it (one parameter: the token's hash)."""
    dialect = asyncpg_dialect() if driver == "asyncpg" else psycopg2_dialect()
    return str(_SESSION_USER.compile(dialect=dialect))


_ACTIVE, _EPOCH, _N = _USER_KEYS.index("active"), _USER_KEYS.index("auth_epoch"), len(_USER_KEYS)
_IDLE, _ABSOLUTE = timedelta(minutes=30), timedelta(hours=12)  # the app's defaults


def _signed_in(row: Any) -> bool:
    """The checks ``session_user`` makes of the lookup's row."""
    if row is None:
        return False
    at = datetime.now(UTC)
    epoch, created_at, last_seen_at = row[_N + 1], row[_N + 2], row[_N + 3]
    return (
        bool(row[_ACTIVE])
        and epoch == row[_EPOCH]
        and (at - last_seen_at <= _IDLE and at - created_at <= _ABSOLUTE)
    )


# The session cookie to look the user up by, or None: no login (``--login`` off).
# Read once: the servers' environment is set before they import this module.
_LOGIN_COOKIE = os.environ.get("BARE_LOGIN_COOKIE") or None


def _page(rows: list[Any], prefix: str = "") -> str:
    """The rows as a small HTML list; ``prefix``: their columns' label (the fused statement)."""
    id_, name, phone = prefix + "id", prefix + "name", prefix + "phone"
    credit, owed = prefix + "credit_cents", prefix + "owed_cents"
    items = "".join(
        f'<li><a href="/clients/{r[id_]}">{html.escape(r[name])}</a> '
        f"{html.escape(r[phone] or '')} {r[credit] - r[owed]}</li>"
        for r in rows[:SEARCH_LIMIT]
        if r[id_] is not None
    )
    return f'<section id="client-results"><ul>{items}</ul></section>'


@get("/clients", media_type=MediaType.HTML)
async def search(request: Request[Any, Any, Any], q: str = "") -> str:
    key, values = _values(q)
    sql, order = _sql(*key)
    async with POOL["db"].acquire() as db:
        if _FUSED and (cookie := _LOGIN_COOKIE) is not None:
            sql, order = _fused_sql(*key)
            values["token_hash"] = token_hash(request.cookies.get(cookie, ""))
            rows = await db.fetch(sql, *[values[name] for name in order])
            if not rows or not _signed_in(rows[0]):
                raise NotAuthorizedException()
            return _page(rows, "page_")
        if (cookie := _LOGIN_COOKIE) is not None:
            token = request.cookies.get(cookie, "")
            if not _signed_in(await db.fetchrow(_login_sql("asyncpg"), token_hash(token))):
                raise NotAuthorizedException()
        return _page(await db.fetch(sql, *[values[name] for name in order]))


@get("/health", media_type=MediaType.TEXT)
async def health() -> str:
    return "ok"


async def _open() -> None:
    POOL["db"] = await asyncpg.create_pool(os.environ["BARE_DSN"], min_size=4, max_size=16)


async def _close() -> None:
    await POOL["db"].close()


def create_app() -> Litestar:
    return Litestar([search, health], on_startup=[_open], on_shutdown=[_close], debug=False)


def create_flask_app() -> Any:
    """The plain Flask + psycopg2 app: one connection per worker thread, autocommit reads."""
    import psycopg2
    import psycopg2.extensions
    from flask import Flask, request
    from psycopg2.extras import RealDictCursor

    flask = Flask(__name__)
    local = threading.local()

    def connection() -> Any:
        # Opened by each thread on its first request, after gunicorn forked
        # (psycopg2's own pools close every connection above their minimum).
        if getattr(local, "conn", None) is None:
            local.conn = psycopg2.connect(os.environ["BARE_DSN"], cursor_factory=RealDictCursor)
            local.conn.autocommit = True
        return local.conn

    @flask.get("/clients")
    def flask_search() -> Any:
        key, values = _values(request.args.get("q", ""))
        db = connection()
        if (cookie := _LOGIN_COOKIE) is not None:
            with db.cursor(cursor_factory=psycopg2.extensions.cursor) as cur:
                token = request.cookies.get(cookie, "")
                cur.execute(_login_sql("psycopg2"), {"token_hash": token_hash(token)})
                if not _signed_in(cur.fetchone()):
                    return "", 401
        with db.cursor() as cur:
            cur.execute(_sql(*key, "psycopg2")[0], values)
            return _page(cur.fetchall())

    @flask.get("/health")
    def flask_health() -> str:
        return "ok"

    return flask


async def _session_token(url: str, username: str) -> str:
    """A real login session for ``username``, made through Saldo's own service."""
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.auth.models import User
    from app.auth.services import start_session
    from app.db import session_maker

    engine = create_async_engine(url)
    try:
        async with session_maker(engine)() as session:
            user = await session.scalar(select(User).where(User.username == username))
            return await start_session(session, user, "127.0.0.1", "bench/bare_search.py", None)
    finally:
        await engine.dispose()


def main() -> None:
    sys.path.insert(0, str(BENCH))
    import pg
    import run

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="saldo50k")
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--flask", action="store_true", help="the plain Flask + psycopg2 app instead")
    ap.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (--flask)")
    ap.add_argument("--pg-socket", action="store_true", help="over PostgreSQL's Unix socket")
    ap.add_argument(
        "--login", action="store_true", help="look the user up by a session cookie first, as Saldo"
    )
    ap.add_argument(
        "--fused", action="store_true", help="with --login: lookup and search as one statement"
    )
    args = ap.parse_args()
    if args.fused and (args.flask or not args.login):
        ap.error("--fused goes with --login, on bare Litestar")
    pg.start()
    f = run.facts(args.db, None)
    run.PG_SOCKET["on"] = args.pg_socket
    run.IDLE_BEFORE["pct"] = run.wait_quiet(300)
    server = run.AppServer(f["url"])
    dsn = pg.socket_url(args.db, "postgresql") if args.pg_socket else pg.dsn(args.db)
    server.env_extra = {"BARE_DSN": dsn, "PYTHONPATH": str(BENCH)}
    server.factory = "bare_search:create_app"
    login = "no login"
    cookie = ""
    if args.login:
        login = "logged in (Saldo's session lookup first)"
        token = asyncio.run(_session_token(f["url"], f["reception"]))
        server.env_extra["BARE_LOGIN_COOKIE"] = "saldo_session"
        cookie = f"saldo_session={token}"
        if args.fused:
            login = "logged in, the session lookup and the search as one statement"
            server.env_extra["BARE_FUSED"] = "1"
    queries_text = f"the same 3,000 queries and SQL, bare Litestar + asyncpg, {login}"
    label = "bare Litestar + asyncpg (the ceiling, not Saldo)"
    if args.flask:
        server.command = [
            sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class", "gthread",
            "--threads", str(args.threads), "--keep-alive", "75", "--bind", "127.0.0.1:{port}",
            "--log-level", "warning", "bare_search:create_flask_app()",
        ]  # fmt: skip
        queries_text = (
            f"the same 3,000 queries and SQL, plain Flask + psycopg2 (gunicorn gthread, "
            f"2 workers x {args.threads} threads), {login}"
        )
        label = "bare Flask + psycopg2 (the issue's yardstick, not Saldo)"
    if args.login:
        label = label.replace(" (", ", logged in (", 1)
    if args.fused:
        label = label.replace("logged in (", "logged in, one statement (", 1)
    with server as app, tempfile.TemporaryDirectory() as tmp:
        queries = Path(tmp) / "queries.txt"
        queries.write_text("\n".join(run.search_queries(f)) + "\n")
        env = {"SALDO_QUERIES": str(queries), "SALDO_COOKIE": cookie}
        run.wrk(app.base, "search.lua", env, 5, args.connections)
        result = run.wrk(app.base, "search.lua", env, args.duration, args.connections, app)
    result["queries"] = queries_text
    run.record("search", f, result, label)


if __name__ == "__main__":
    main()
