"""The ceiling for the search benchmark: the same search on a bare Litestar + asyncpg app.

    python bench/bare_search.py --db saldo50k

No login, no ORM, no templates: one asyncpg pool per worker, the statement
Saldo's ``ClientService.search`` sends (compiled from it), and the rows as a
small HTML list. Started like Saldo (uvicorn, 2 workers, 127.0.0.1) and loaded with the same wrk
script and queries, it tells how much of the search target this machine and
this data allow at all. The result is recorded as a "bare" search row.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import asyncpg
from litestar import Litestar, MediaType, get
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from app.clients.services import (  # noqa: E402
    SEARCH_LIMIT,
    _contains,
    _search_statements,
    query_words,
)

POOL: dict[str, asyncpg.Pool] = {}


@lru_cache(maxsize=16)
def _sql(words: int) -> tuple[str, tuple[str, ...]]:
    """The statement ``ClientService.search`` sends, as asyncpg receives it."""
    compiled = _search_statements(words, False)[0].compile(dialect=asyncpg_dialect())
    return str(compiled), tuple(compiled.positiontup or ())


@get("/clients", media_type=MediaType.HTML)
async def search(q: str = "") -> str:
    words = query_words(q)
    sql, order = _sql(len(words))
    values: dict[str, object] = {f"w{i}": _contains(w) for i, w in enumerate(words)}
    values.update(limit=SEARCH_LIMIT + 1, offset=0)
    rows = await POOL["db"].fetch(sql, *[values[name] for name in order])
    items = "".join(
        f'<li><a href="/clients/{r["id"]}">{html.escape(r["name"])}</a> '
        f"{html.escape(r['phone'] or '')} {r['credit_cents'] - r['owed_cents']}</li>"
        for r in rows[:SEARCH_LIMIT]
    )
    return f'<section id="client-results"><ul>{items}</ul></section>'


@get("/health", media_type=MediaType.TEXT)
async def health() -> str:
    return "ok"


async def _open() -> None:
    POOL["db"] = await asyncpg.create_pool(os.environ["BARE_DSN"], min_size=4, max_size=16)


async def _close() -> None:
    await POOL["db"].close()


def create_app() -> Litestar:
    return Litestar([search, health], on_startup=[_open], on_shutdown=[_close], debug=False)


def main() -> None:
    sys.path.insert(0, str(BENCH))
    import pg
    import run

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="saldo50k")
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    pg.start()
    f = run.facts(args.db, None)
    run.IDLE_BEFORE["pct"] = run.wait_quiet(300)
    server = run.AppServer(f["url"])
    server.env_extra = {"BARE_DSN": pg.dsn(args.db), "PYTHONPATH": str(BENCH)}
    server.factory = "bare_search:create_app"
    with server as app, tempfile.TemporaryDirectory() as tmp:
        queries = Path(tmp) / "queries.txt"
        queries.write_text("\n".join(run.search_queries(f)) + "\n")
        env = {"SALDO_QUERIES": str(queries), "SALDO_COOKIE": ""}
        run.wrk(app.base, "search.lua", env, 5, args.connections)
        result = run.wrk(app.base, "search.lua", env, args.duration, args.connections, app)
    result["queries"] = "the same 3,000 queries and SQL, bare Litestar + asyncpg, no login"
    run.record("search", f, result, "bare Litestar + asyncpg (the ceiling, not Saldo)")


if __name__ == "__main__":
    main()
