"""Where one request's time goes: SQL statements, round trips, pool checkouts, database time.

    python bench/diagnose.py --db saldo50k "/clients?q=mar" "/collect?month=2026-10" pay
    python bench/diagnose.py --db saldo50k --search-sql     # the search query alone, in SQL
    python bench/diagnose.py --db saldo50k --search-sql --plans   # and with each plan forced
    python bench/diagnose.py --db saldo50k --search-sql --ab-walk # old and new statement in turns
    python bench/diagnose.py --sqlite /tmp/saldo-bench/saldo50k.db --search-sql --plans

Runs the app in this process (Litestar's test client, no network) against a
generated database, logs in as the bench admin, and for each path reports the
statements sent (with BEGIN/COMMIT/ROLLBACK, which SQLAlchemy sends outside
cursor events), the connections checked out of the pool, the time spent
waiting for the database and the request's wall time. ``pay`` posts one
register-and-pay form as the benchmark does. Each request runs ``--repeat``
times; the figures are of the last one (warm caches).

``--search-sql`` runs the benchmark's 3,000 search queries one after the other
straight on asyncpg, with the SQL the app sends, and reports the database's
time per query: the part of a search request no app change can remove.
With ``--plans`` it also runs every query with each of the two plans forced —
the trigram index then a sort, or the walk of the name index — and the faster
of the two per query: what choosing the plan per query could save. With
``--sqlite FILE`` the same queries run on a SQLite practice (Python's sqlite3,
no thread hop), and ``--plans`` times the name index walked against the FTS5
trigram table's candidates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import pg  # noqa: E402


class Counting:
    """SQLAlchemy engine and pool events, summed per request."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.statements: Counter[str] = Counter()
        self.db_s = 0.0
        self.checkouts = 0
        self._t0: list[float] = []

    def install(self, engine: Any) -> None:
        from sqlalchemy import event

        sync = engine.sync_engine

        @event.listens_for(sync, "before_cursor_execute")
        def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            self._t0.append(time.perf_counter())
            self.statements[_short(statement)] += 1

        @event.listens_for(sync, "after_cursor_execute")
        def _after(*args: Any) -> None:
            self.db_s += time.perf_counter() - self._t0.pop()

        for name, label in (("begin", "BEGIN"), ("commit", "COMMIT"), ("rollback", "ROLLBACK")):
            event.listen(sync, name, lambda *a, _n=label: self._txn(_n))

        @event.listens_for(sync, "checkout")
        def _checkout(*args: Any) -> None:
            self.checkouts += 1

        # HotRead and HotWrite send theirs straight to the driver, past those events.
        from app import db

        for name in ("_on_asyncpg", "_on_aiosqlite"):
            sent = getattr(db, name)

            async def timed(driver: Any, call: str, sql: str, args: Any, sent: Any = sent) -> Any:
                started = time.perf_counter()
                try:
                    return await sent(driver, call, sql, args)
                finally:
                    self.db_s += time.perf_counter() - started
                    self.statements["(hot) " + _short(sql)] += 1

            setattr(db, name, timed)

    def _txn(self, name: str) -> None:
        self.statements[name] += 1


def _short(statement: str) -> str:
    text = " ".join(statement.split())
    text = re.sub(r"\(\$\d+(?:::\w+)?(?:, \$\d+(?:::\w+)?)*\)", "(…)", text)
    return text[:110]


# With --plans, each query also runs with one of the two plans forced (and
# re-planned at every execution, so the settings apply to the prepared statement).
PLANS = {
    "trigram bitmap, then sort": "SET enable_indexscan = off; SET enable_indexonlyscan = off",
    "walk of the name index": "SET enable_bitmapscan = off; SET enable_seqscan = off",
}
RESET = "; ".join(
    f"RESET enable_{s}" for s in ("indexscan", "indexonlyscan", "bitmapscan", "seqscan")
)


def _kind(q: str) -> str:
    import run

    if q in run.NOBODY:
        return "a name nobody has"
    if q.isdigit():
        return "phone digits"
    return "two words" if " " in q else "one word"


def _report(title: str, queries: list[str], per_query: list[float]) -> None:
    """Milliseconds per query, by kind of query, and what they allow on 2 cores."""
    import statistics
    from collections import defaultdict

    by_kind: dict[str, list[float]] = defaultdict(list)
    for q, t in zip(queries, per_query, strict=True):
        by_kind[_kind(q)].append(t)
    print(title)
    for name, ts in sorted(by_kind.items(), key=lambda item: -sum(item[1])):
        ts.sort()
        print(
            f"  {name:18s} {len(ts):5d} queries: mean {statistics.mean(ts):.2f} ms, "
            f"p50 {ts[len(ts) // 2]:.2f}, p99 {ts[int(len(ts) * 0.99)]:.2f}, "
            f"{100 * sum(ts) / sum(per_query):.0f}% of the time"
        )
    every = sorted(per_query)
    print(
        f"{len(every)} searches, database time per query: "
        f"mean {statistics.mean(every):.2f} ms, "
        f"p50 {every[len(every) // 2]:.2f} ms, p99 {every[int(len(every) * 0.99)]:.2f} ms; "
        f"ceiling on 2 cores for the query alone ≈ {2000 / statistics.mean(every):.0f}/s"
    )


def _bench_queries(db: str | None, sqlite: Path | None) -> list[str]:
    import urllib.parse

    import run

    return [urllib.parse.unquote_plus(q) for q in run.search_queries(run.facts(db, sqlite))]


def search_sql_sqlite(path: Path, plans: bool = False) -> None:
    """``--search-sql`` on a SQLite file: the same queries on Python's sqlite3, in this process.

    With ``plans``, every query also as the other statement the app can send:
    the walk of ix_clients_active_name, and the candidates from the FTS5 trigram
    table (only for a query with a word of 3+ characters, which FTS5 can look up).
    """
    import sqlite3

    from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

    from app.clients.services import (
        SEARCH_LIMIT,
        _contains,
        _fts_match,
        _search_statements,
        _walks,
        query_words,
    )

    queries = _bench_queries(None, path)
    conn = sqlite3.connect(path)
    compiled: dict[tuple[int, bool], tuple[str, Any]] = {}

    def fetch_timed(words: list[str], walk: bool) -> float:
        """One search as ``ClientService.search`` sends it on SQLite (walk, or FTS), in ms."""
        if (len(words), walk) not in compiled:
            statement = _search_statements(len(words), False, True, walk, not walk, True)[0]
            sql = statement.compile(dialect=sqlite_dialect())
            compiled[len(words), walk] = (str(sql), sql.positiontup)
        sql, order = compiled[len(words), walk]
        values = {f"w{i}": _contains(w) for i, w in enumerate(words)}
        values.update(limit=SEARCH_LIMIT + 1, offset=0, match=_fts_match(words))
        started = time.perf_counter()
        conn.execute(sql, [values[name] for name in order]).fetchall()
        return (time.perf_counter() - started) * 1000

    def timed(choose: Any) -> list[float]:
        """Milliseconds per query (the second of two rounds), the statement chosen by ``choose``."""
        times = []
        for round_ in range(2):
            for q in queries:
                words = query_words(q)
                spent = fetch_timed(words, choose(words))
                if round_:
                    times.append(spent)
        return times

    _report("as the app sends it:", queries, timed(_walks))
    if plans:
        walked = timed(lambda words: True)
        # FTS5 has nothing to look up without a word of 3+ characters: those walk.
        looked_up = timed(lambda words: not _fts_match(words))
        _report("walk of the name index:", queries, walked)
        _report("FTS5 trigram candidates, then sort:", queries, looked_up)
        _report(
            "the faster of the two for each query (a bound):",
            queries,
            [min(t) for t in zip(walked, looked_up, strict=True)],
        )
    conn.close()


async def search_sql(db: str, plans: bool = False, ab_walk: bool = False) -> None:
    import asyncpg
    from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

    from app.clients.services import (
        SEARCH_LIMIT,
        _contains,
        _has_trigrams,
        _search_statements,
        _walks,
        query_words,
    )

    queries = _bench_queries(db, None)
    conn = await asyncpg.connect(pg.dsn(db))
    compiled: dict[tuple[int, bool, bool], tuple[str, Any]] = {}

    async def fetch_timed(words: list[str], walk: bool) -> float:
        """One search as the app sends it (warm: compiled once), in milliseconds."""
        key = (len(words), walk, _has_trigrams(words))
        if key not in compiled:
            statement = _search_statements(len(words), False, True, walk, False, key[2])[0]
            sql = statement.compile(dialect=asyncpg_dialect())
            compiled[key] = (str(sql), sql.positiontup)
        sql, order = compiled[key]
        values = {f"w{i}": _contains(w) for i, w in enumerate(words)}
        values.update(limit=SEARCH_LIMIT + 1, offset=0)
        started = time.perf_counter()
        await conn.fetch(sql, *[values[name] for name in order])
        return (time.perf_counter() - started) * 1000

    async def timed(setting: str, app_plan: bool = True) -> list[float]:
        """Milliseconds per query, in the order of ``queries``, warm and prepared.

        ``app_plan``: each query's statement as the app chooses it (the name
        index walked or not, see ``ClientService.search``); otherwise the one that
        leaves the choice to the planner, which the forced plans need.
        """
        await conn.execute(RESET)  # one plan's settings must not carry into the next
        if setting:
            await conn.execute(setting)
        times = []
        for round_ in range(2):
            for q in queries:
                words = query_words(q)
                spent = await fetch_timed(words, _walks(words) if app_plan else True)
                if round_:  # the second round: warm, prepared
                    times.append(spent)
        return times

    def report(title: str, per_query: list[float]) -> None:
        _report(title, queries, per_query)

    async def interleaved() -> tuple[list[float], list[float]]:
        """The app's statement and the always-walk one, query by query, in turns.

        This machine drifts between runs; timing both on each query in
        alternating order gives both the same drift.
        """
        old_times, new_times = [], []
        for round_ in range(2):
            for i, q in enumerate(queries):
                words = query_words(q)
                turns = [(old_times, True), (new_times, _walks(words))]
                for times, walk in turns[:: 1 if i % 2 else -1]:
                    spent = await fetch_timed(words, walk)
                    if round_:
                        times.append(spent)
        return old_times, new_times

    if ab_walk:
        old_times, new_times = await interleaved()
        report(
            "the planner's choice for every query (before 2026-12-04):",
            old_times,
        )
        report("as the app sends it:", new_times)
    elif not plans:
        report("as the app sends it:", await timed(""))
    else:
        await conn.execute("SET plan_cache_mode = force_custom_plan")
        report("as the app sends it:", await timed(""))
        report("the planner's choice (before 2026-12-04):", await timed("", app_plan=False))
        forced = [await timed(setting, app_plan=False) for setting in PLANS.values()]
        for title, per_query in zip(PLANS, forced, strict=True):
            report(f"{title}:", per_query)
        report(
            "the faster of the two for each query (a bound):",
            [min(t) for t in zip(*forced, strict=True)],
        )
        # What a rule could get if it knew each query's number of matches (it
        # would take a count, a query of its own, untimed here): walk when many
        # match, since a page of them then sits early in name order.
        matches = []
        counts: dict[int, Any] = {}  # compiled once per number of words
        for q in queries:
            words = query_words(q)
            if len(words) not in counts:
                counts[len(words)] = _search_statements(len(words), False)[1].compile(
                    dialect=asyncpg_dialect()
                )
            count = counts[len(words)]
            values = {f"w{i}": _contains(w) for i, w in enumerate(words)}
            matches.append(await conn.fetchval(str(count), *map(values.get, count.positiontup)))
        trigram, walk = forced
        for many in (200, 500, 1000):
            report(
                f"walk when more than {many} clients match, else the trigram index (a bound):",
                [w if n > many else t for n, t, w in zip(matches, trigram, walk, strict=True)],
            )
    await conn.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="saldo50k")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--search-sql", action="store_true")
    ap.add_argument("--plans", action="store_true", help="with --search-sql: each plan forced")
    ap.add_argument(
        "--ab-walk",
        action="store_true",
        help="with --search-sql: the app's statements against the planner's, in turns",
    )
    ap.add_argument(
        "--sqlite", type=Path, help="with --search-sql: a SQLite file made by generate.py instead"
    )
    ap.add_argument("paths", nargs="*")
    args = ap.parse_args()
    if args.search_sql and args.sqlite:
        search_sql_sqlite(args.sqlite, args.plans)
        return
    if args.search_sql:
        await search_sql(args.db, args.plans, args.ab_walk)
        return
    os.environ.update(
        DATABASE_URL=pg.url(args.db),
        SECRET_KEY="bench-" + "k" * 58,
        SALDO_DATA_DIR=str(pg.BENCH_ROOT / "appdata"),
    )
    from litestar.testing import AsyncTestClient

    from app.main import create_app

    app = create_app()
    counting = Counting()
    counting.install(app.state.engine)
    async with AsyncTestClient(app, base_url="http://127.0.0.1") as client:
        await client.get("/login")
        token = client.cookies.get("saldo_csrf")
        login = {"username": "bench", "password": "bench-Saldo-2026!", "_csrf_token": token}
        assert (await client.post("/login", data=login, follow_redirects=False)).status_code == 303
        await client.get("/")
        csrf = client.cookies.get("saldo_csrf")
        for path in args.paths:
            for _ in range(args.repeat):
                counting.reset()
                started = time.perf_counter()
                if path == "pay":
                    answer = await client.post(
                        "/charges/new",
                        follow_redirects=False,
                        data={
                            "client_id": "7", "service_id": "1", "staff_id": "1",
                            "amount": "150,00", "date": time.strftime("%Y-%m-%d"),
                            "settle": "pay_now", "method": "cash",
                            "idempotency_key": str(uuid.uuid4()), "_csrf_token": csrf,
                        },
                    )  # fmt: skip
                else:
                    answer = await client.get(
                        path, headers={"HX-Request": "true"}, follow_redirects=False
                    )
                wall = time.perf_counter() - started
            statements = sum(counting.statements.values())
            print(
                f"\n{path}: {answer.status_code}, {len(answer.content) / 1024:.0f} KB, "
                f"wall {wall * 1000:.1f} ms, database {counting.db_s * 1000:.1f} ms, "
                f"{statements} statements, {counting.checkouts} pool checkouts"
            )
            for text, n in counting.statements.most_common():
                print(f"  {n:4d} × {text}")


if __name__ == "__main__":
    asyncio.run(main())
