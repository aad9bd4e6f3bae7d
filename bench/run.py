"""Issue 8's benchmarks, one command each, results into docs/BENCHMARKS.md.

    python bench/run.py search   [--db saldo50k | --sqlite FILE] [--duration 20] [--label TEXT]
    python bench/run.py pay      [--db saldo50k | --sqlite FILE]
    python bench/run.py pages    [--db saldo50k] [--repeat 20]
    python bench/run.py pdf      [--db saldo50k]
    python bench/run.py zip      [--db saldo5k]        (its peak month has ~1,300 statements)
    python bench/run.py csv      [--db saldo50k]
    python bench/run.py close    [--db saldo50k]       (on a copy of the database)
    python bench/run.py all      [--db saldo5k]        (everything above on one database)
    python bench/run.py report                         (rewrite the tables from bench/results.jsonl)

Options for every benchmark: ``--label TEXT`` (e.g. "after: index on …"),
``--variant a,b`` (run the app with proposed fixes applied in memory, see
``bench/variants.py``; recorded as an experiment), ``--wait-quiet N`` (wait up
to N s for an idle CPU first; this machine is shared).

Each run starts the app as production would (``uvicorn --factory
app.main:create_app --workers 2`` on 127.0.0.1, a free port), logs in through
the login form, and measures from another process on loopback: ``wrk`` for
throughput (Lua scripts in ``bench/lua/``), a keep-alive HTTP client for
single-request latencies. The databases come from ``bench/generate.py``; the
PostgreSQL server is ``bench/pg.py``'s. Every result is appended to
``bench/results.jsonl`` with the machine, database and date, and the tables in
``docs/BENCHMARKS.md`` are rewritten from it (earlier runs stay as rows).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import pg  # noqa: E402
import report  # noqa: E402

LUA = BENCH / "lua"
RESULTS = BENCH / "results.jsonl"
SECRET_KEY = "bench-" + "k" * 58  # fixed: any worker can read any worker's cookies
IDLE_BEFORE: dict[str, float] = {}  # CPU idle % measured just before the current benchmark
VARIANT: dict[str, str] = {}  # bench/variants.py patches to apply (experiments, not fixes)
PG_SOCKET: dict[str, bool] = {}  # --pg-socket: the app reaches PostgreSQL over its Unix socket
PGBOUNCER: dict[str, bool] = {}  # --pgbouncer: the app reaches it through PgBouncer (DB_POOLER)


# --------------------------------------------------------------------------- the facts


def facts(db: str | None, sqlite: Path | None) -> dict[str, Any]:
    """What generate.py wrote about the database."""
    name = db if db else sqlite.stem
    path = pg.BENCH_ROOT / f"{name}.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: generate the database first (bench/generate.py)")
    data = json.loads(path.read_text())
    data["url"] = pg.url(db) if db else f"sqlite+aiosqlite:///{sqlite.resolve()}"
    data["backend"] = "postgresql" if db else "sqlite"
    data["dataset"] = f"{data['clients']:,} clients"
    return data


def machine() -> dict[str, Any]:
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    load = os.getloadavg()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "app", "migrations", "templates"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu.group(1).strip() if cpu else platform.processor(),
        "os": _os_name(),
        "python": platform.python_version(),
        "load_before": round(load[0], 2),
        "idle_before_pct": IDLE_BEFORE.get("pct"),
        "commit": commit + ("+uncommitted" if dirty else ""),
    }


def cpu_idle(seconds: float = 2.0) -> float:
    """Share of CPU time idle over ``seconds``, in percent (other work on the machine)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return round(100 * (idle1 - idle0) / max(1, total1 - total0), 1)


def wait_quiet(limit_s: int, idle_pct: float = 85.0) -> float:
    """Wait (up to ``limit_s``) until the machine is mostly idle; return the idle share seen."""
    deadline = time.monotonic() + limit_s
    idle = cpu_idle()
    while idle < idle_pct and time.monotonic() < deadline:
        print(f"  machine busy ({idle}% idle): waiting")
        time.sleep(10)
        idle = cpu_idle()
    return idle


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.platform()


def database_label(f: dict[str, Any]) -> str:
    if f["backend"] == "postgresql":
        version = pg.psql("postgres", "SHOW server_version").split()[0]
        via = ", Unix socket" if PG_SOCKET.get("on") else ""
        if PGBOUNCER.get("on"):
            bouncer = subprocess.run(
                [pg.bouncer_binary(), "--version"], capture_output=True, text=True, check=False
            ).stdout.split("\n")[0]
            via += f", through {bouncer} in transaction mode"
        return f"PostgreSQL {version} (same machine{via})"
    return f"SQLite {__import__('sqlite3').sqlite_version} (WAL)"


def record(bench: str, f: dict[str, Any], figures: dict[str, Any], label: str) -> None:
    if bench == "search" and figures.get("non_2xx_3xx"):
        # Error pages are fast: such a run measures the failure, not the search.
        raise SystemExit(
            f"search: {figures['non_2xx_3xx']:,} answers were errors, nothing recorded "
            "(the server's log says why)"
        )
    row = {
        "bench": bench,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "label": label,
        "dataset": f["dataset"],
        "database": database_label(f),
        "machine": machine(),
        "figures": figures,
    }
    with RESULTS.open("a") as out:
        out.write(json.dumps(row) + "\n")
    report.write()
    print(json.dumps(row, indent=2))


# --------------------------------------------------------------------------- the app


class AppServer:
    """The app with 2 uvicorn workers, in a process group of its own that ``stop`` ends."""

    def __init__(self, database_url: str, workers: int = 2, variant: str = "") -> None:
        if PG_SOCKET.get("on") and database_url.startswith("postgresql"):
            database_url = pg.socket_url(database_url.rsplit("/", 1)[1])
        self.env_extra: dict[str, str] = {}
        if PGBOUNCER.get("on") and database_url.startswith("postgresql"):
            database_url = pg.bouncer(database_url.rsplit("/", 1)[1])
            self.env_extra["DB_POOLER"] = "transaction"
        self.database_url = database_url
        self.variant = variant or VARIANT.get("names", "")
        self.factory = "variants:create_app" if self.variant else "app.main:create_app"
        # Another server than uvicorn (bench/bare_search.py --flask): its argv, with {port}.
        self.command: list[str] = []
        self.workers = workers
        self.port = pg.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = pg.BENCH_ROOT / "logs" / f"app-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        data_dir = pg.BENCH_ROOT / "appdata"
        data_dir.mkdir(parents=True, exist_ok=True)
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("SALDO_", "ADMIN_"))}
        env = {
            **keep,
            "DATABASE_URL": self.database_url,
            "SALDO_DATA_DIR": str(data_dir),
            "SECRET_KEY": SECRET_KEY,
        }
        if self.variant:
            env["SALDO_BENCH_VARIANT"] = self.variant
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH), env.get("PYTHONPATH")]))
        return {**env, **self.env_extra}

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "app", "db", "upgrade"], cwd=ROOT, env=self.env(), check=True
        )

    def start(self) -> AppServer:
        self.migrate()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        uvicorn = [
            sys.executable, "-m", "uvicorn", "--factory",
            self.factory,
            "--workers", str(self.workers), "--host", "127.0.0.1", "--port", str(self.port),
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        command = [a.format(port=self.port) for a in self.command] or uvicorn
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited: see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + "/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)
        else:
            raise RuntimeError(f"the app did not answer /health in 90 s: see {self.log_path}")
        while len(self.worker_pids()) < self.workers and time.monotonic() < deadline:
            time.sleep(0.2)
        return self

    def worker_pids(self) -> list[int]:
        """uvicorn's worker processes (spawned children running the app)."""
        if self.proc is None:
            return []
        if self.command:  # gunicorn: the master's children are its workers
            return _children(self.proc.pid)
        pids = []
        for pid in _children(self.proc.pid):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"spawn_main" in cmdline:
                pids.append(pid)
        return pids

    def stop(self) -> None:
        if "DB_POOLER" in self.env_extra:
            # Its server connections would keep the database from being copied (close).
            pg.stop_bouncer()
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # the group this script started
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self) -> AppServer:
        try:
            return self.start()
        except BaseException:
            self.stop()  # a server that never answered must not outlive the run
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    return [int(p) for p in out]


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in kB: 0 once it exited (a zombie has neither)."""
    text = Path(f"/proc/{pid}/status").read_text()
    found = {k: re.search(rf"{k}:\s+(\d+)", text) for k in ("VmRSS", "VmHWM")}
    return {k: int(m.group(1)) if m else 0 for k, m in found.items()}


class Session:
    """A logged-in browser: session cookie, CSRF cookie and its token."""

    def __init__(self, base: str, username: str, password: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=300, follow_redirects=False)
        page = self.http.get("/login")
        page.raise_for_status()
        token = self.http.cookies.get("saldo_csrf")
        answer = self.http.post(
            "/login",
            data={"username": username, "password": password, "next": "/", "_csrf_token": token},
        )
        if answer.status_code != 303 or "saldo_session" not in self.http.cookies:
            raise RuntimeError(f"login as {username} failed: {answer.status_code}")
        # Login expires the CSRF cookie; the next page mints the session's own.
        self.http.get("/").raise_for_status()
        self.csrf = self.http.cookies.get("saldo_csrf")

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.http.cookies.jar)

    def close(self) -> None:
        self.http.close()


# --------------------------------------------------------------------------- wrk


def _cpu_ticks(pids: list[int]) -> dict[int, int]:
    """utime + stime of each process still alive, in clock ticks."""
    ticks = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks


def _spent(before: dict[int, int], after: dict[int, int]) -> int:
    """Ticks spent between two snapshots; processes that ended in between are lost."""
    return sum(t - before.get(pid, 0) for pid, t in after.items())


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


def wrk(
    base: str,
    script: str,
    env: dict[str, str],
    duration: int,
    connections: int,
    app: AppServer | None = None,
) -> dict[str, Any]:
    """Run wrk; with ``app``, also where the CPU went (app workers, PostgreSQL, the rest)."""
    workers = app.worker_pids() if app else []
    server = pg.server_pids() if app and app.database_url.startswith("postgresql") else []
    before = (_cpu_ticks(workers), _cpu_ticks(server), _machine_ticks())
    children = os.times()
    cmd = [
        "wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
        "-s", str(LUA / script), base,
    ]  # fmt: skip
    done = subprocess.run(
        cmd,
        env={**os.environ, "SALDO_LUA_DIR": str(LUA), **env},
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("SALDO_RESULT "))
    raw = json.loads(line.split(" ", 1)[1])
    seconds = raw["duration_us"] / 1e6
    cpu: dict[str, Any] = {}
    if app:
        hz = os.sysconf("SC_CLK_TCK")
        busy, total = (a - b for a, b in zip(_machine_ticks(), before[2], strict=True))
        app_s = _spent(before[0], _cpu_ticks(workers)) / hz
        # Backends born during the run count whole; ones that ended are lost (a lower bound).
        pg_s = _spent(before[1], _cpu_ticks(pg.server_pids() if server else [])) / hz
        now = os.times()
        wrk_s = (now.children_user + now.children_system) - (
            children.children_user + children.children_system
        )
        n = max(1, raw["requests"])
        cpu = {
            "app_cpu_ms_per_req": round(app_s * 1000 / n, 2),
            "pg_cpu_ms_per_req": round(pg_s * 1000 / n, 2),
            # CPU used by anything else than the app, its PostgreSQL and wrk: other work.
            "other_cpu_pct": round(100 * max(0.0, busy / hz - app_s - pg_s - wrk_s) / (total / hz)),
        }
    errors = sum(
        raw[k]
        for k in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts")
    )
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 1),
        "req_per_s": round(raw["requests"] / seconds, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 1),
        "p90_ms": round(raw["p90_us"] / 1000, 1),
        "p99_ms": round(raw["p99_us"] / 1000, 1),
        "max_ms": round(raw["max_us"] / 1000, 1),
        "non_2xx_3xx": raw["status_errors"],
        "socket_errors": errors - raw["status_errors"],
        "connections": connections,
        **cpu,
    }


# Names no generated client has: reception about to add a new client.
NOBODY = ("zelia quint", "wagner tobi", "yolanda per", "xavier")


def search_queries(
    f: dict[str, Any], count: int = 3000, seed: int = 8, as_typed: bool = False
) -> list[str]:
    """What reception types to find clients who exist, without accents, as they type it.

    Drawn from real clients of the database: a first-name prefix (3+ letters),
    first name and the start of a surname, a surname prefix, 4–6 digits of the
    phone; and now and then a name nobody has (a new client). ``as_typed``: each
    of them a letter at a time ("a", "an", "ana", "ana s" …), as the search box
    asks when every keystroke outlasts its 250 ms pause.
    """
    import random

    rng = random.Random(seed)
    sql = "SELECT name_key, coalesce(phone_digits, '') FROM clients WHERE active ORDER BY id"
    people = _rows(f, sql)
    out = []
    for _ in range(count):
        words, phone = rng.choice(people)
        words = [w for w in words.split() if w.isalpha()] or ["maria"]
        kind = rng.random()
        if kind < 0.40:
            out.append(words[0][: rng.randint(3, max(3, len(words[0])))])
        elif kind < 0.70 and len(words) > 1:
            last = rng.choice(words[1:])
            out.append(f"{words[0]} {last[: rng.randint(2, len(last))]}")
        elif kind < 0.85:
            last = words[-1]
            out.append(last[: rng.randint(3, max(3, len(last)))])
        elif kind < 0.95 and len(phone) >= 8:
            start = rng.randint(len(phone) - 8, len(phone) - 4)
            out.append(phone[start : start + rng.randint(4, 6)])
        else:
            out.append(rng.choice(NOBODY))
    if as_typed:
        out = [q[:n] for q in out for n in range(1, len(q) + 1) if q[n - 1] != " "]
    return [urllib.parse.quote_plus(q) for q in out]


# --------------------------------------------------------------------------- benchmarks


def bench_search(f: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    with AppServer(f["url"]) as app, tempfile.TemporaryDirectory() as tmp:
        queries = Path(tmp) / "queries.txt"
        queries.write_text("\n".join(search_queries(f, as_typed=args.as_typed)) + "\n")
        user = Session(app.base, f["reception"], f["password"])
        env = {"SALDO_QUERIES": str(queries), "SALDO_COOKIE": user.cookie_header}
        check = user.http.get("/clients?q=silva", headers={"HX-Request": "true"})
        assert check.status_code == 200 and "<html" not in check.text[:200].lower(), check.text[
            :200
        ]
        wrk(app.base, "search.lua", env, 5, args.connections)  # warm-up
        result = wrk(app.base, "search.lua", env, args.duration, args.connections, app)
        user.close()
    result["queries"] = "3,000 rotating, from real clients: prefixes, two words, digits" + (
        ", each typed a letter at a time" if args.as_typed else ""
    )
    return result


def _count(f: dict[str, Any], sql: str) -> int:
    if f["backend"] == "postgresql":
        return int(pg.psql(f["url"].rsplit("/", 1)[1], sql))
    import sqlite3

    path = f["url"].split(":///", 1)[1]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute(sql).fetchone()[0])


def _rows(f: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    if f["backend"] == "postgresql":
        out = pg.psql(f["url"].rsplit("/", 1)[1], sql)
        return [tuple(line.split("|")) for line in out.splitlines()]
    import sqlite3

    path = f["url"].split(":///", 1)[1]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql.replace("WHERE active", "WHERE active = 1")).fetchall()


def _client_ids(f: dict[str, Any], limit: int = 5000) -> list[str]:
    sql = f"SELECT id FROM clients WHERE active AND id > 1 ORDER BY id LIMIT {limit}"  # noqa: S608
    if f["backend"] == "postgresql":
        return pg.psql(f["url"].rsplit("/", 1)[1], sql).split()
    import sqlite3

    path = f["url"].split(":///", 1)[1]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [str(r[0]) for r in conn.execute(sql.replace("active", "active = 1"))]


def verify(f: dict[str, Any]) -> tuple[bool, float]:
    env = {**os.environ, "DATABASE_URL": f["url"]}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "app", "verify"], cwd=ROOT, env=env, capture_output=True, check=False
    )
    return done.returncode == 0, round(time.perf_counter() - started, 1)


def bench_pay(f: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    charges_before = _count(f, "SELECT count(*) FROM charges")
    with AppServer(f["url"]) as app, tempfile.TemporaryDirectory() as tmp:
        clients = Path(tmp) / "clients.txt"
        clients.write_text("\n".join(_client_ids(f)) + "\n")
        user = Session(app.base, f["reception"], f["password"])
        today = datetime.now(UTC).date().isoformat()
        env = {
            "SALDO_CLIENTS": str(clients),
            "SALDO_COOKIE": user.cookie_header,
            "SALDO_CSRF": user.csrf,
            "SALDO_DAY": today,
            "SALDO_RUN": str(int(time.time())),
        }
        result = wrk(app.base, "pay.lua", env, args.duration, args.connections, app)
        user.close()
    added = _count(f, "SELECT count(*) FROM charges") - charges_before
    # Each request's key names one charge entry: more would be a double-record.
    keys = f"idempotency_key LIKE 'bench-{env['SALDO_RUN']}-%'"
    doubles = _count(
        f,
        f"SELECT count(*) - count(DISTINCT idempotency_key) FROM entries "  # noqa: S608
        f"WHERE kind = 'charge' AND {keys}",
    )
    ok, seconds = verify(f)
    result.update(
        # wrk stops counting with up to one request per connection still in flight.
        charges_added=added,
        double_records=doubles,
        verify_clean=ok,
        verify_seconds=seconds,
    )
    return result


def timed_gets(http: httpx.Client, path: str, repeat: int, warm: int = 3) -> dict[str, Any]:
    for _ in range(warm):
        http.get(path)
    times, sizes, statuses = [], [], set()
    for _ in range(repeat):
        started = time.perf_counter()
        answer = http.get(path)
        times.append((time.perf_counter() - started) * 1000)
        sizes.append(len(answer.content))
        statuses.add(answer.status_code)
    times.sort()
    return {
        "path": path,
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))], 1),
        "min_ms": round(times[0], 1),
        "max_ms": round(times[-1], 1),
        "n": repeat,
        "kb": round(statistics.median(sizes) / 1024, 1),
        "status": sorted(statuses),
    }


def _month_range(month: str) -> tuple[str, str]:
    first = date.fromisoformat(month + "-01")
    nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first.isoformat(), (nxt - timedelta(days=1)).isoformat()


def bench_pages(f: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    heavy = f["heavy_client_id"]
    start = f["first_month"] + "-01"
    peak_first, end = _month_range(f["peak_month"])
    pages = {
        "month review": f"/collect?month={f['peak_month']}",
        "statement API (heavy client, 2,000 lines)": (
            f"/api/v1/clients/{heavy}/statement?from={start}&to={end}"
        ),
        "statement page (heavy client, 2,000 lines)": (
            f"/clients/{heavy}/statement?from={start}&to={end}"
        ),
        "dashboard": "/",
        "client page (heavy client)": f"/clients/{heavy}",
        "reports: 12-month charts": "/reports",
        "reports: received in the peak month": f"/reports/received?from={peak_first}&to={end}",
        "reports: aging at the end of the peak month": f"/reports/aging?as_of={end}",
        "reports: commissions of the peak month": (
            f"/reports/commissions?from={peak_first}&to={end}&basis=received"
        ),
        "reports: top debtors": "/reports/debtors",
    }
    out: dict[str, Any] = {}
    # Every pay run adds its charges dated today: 150,000 of them on one day put the
    # dashboard at 330 ms instead of 65 (2026-12-05). Recorded, and said out loud.
    added = _count(f, "SELECT count(*) FROM charges") - f["counts"]["charges"]
    out["charges_added_since_generated"] = added
    if added > f["counts"]["charges"] // 100:
        print(
            f"warning: {added:,} charges were added since generate.py (pay runs, dated the"
            " day they ran): the dashboard and reports read them. Regenerate the practice"
            " for figures that compare with earlier runs.",
            file=sys.stderr,
        )
    with AppServer(f["url"]) as app:
        user = Session(app.base, f["username"], f["password"])
        for name, path in pages.items():
            out[name] = timed_gets(user.http, path, args.repeat)
            print(name, out[name])
        user.close()
    return out


def _small_client(f: dict[str, Any], owing: bool = False) -> int:
    """A client with a handful of entries in the peak month: a one-page statement.

    ``owing``: one who still owes a charge dated in or before the month, so that
    the statement also lists open charges and their aging.
    """
    first, last = _month_range(f["peak_month"])
    still_open = (
        "AND client_id IN (SELECT client_id FROM charges WHERE status IN ('open', 'partial') "  # noqa: S608
        f"AND date <= '{last}') "
    )
    sql = (
        "SELECT client_id FROM entries WHERE effective_date BETWEEN "  # noqa: S608
        f"'{first}' AND '{last}' AND client_id > 1 {still_open if owing else ''}"
        "GROUP BY client_id HAVING count(*) BETWEEN 6 AND 9 ORDER BY client_id LIMIT 1"
    )
    return _count(f, sql)


def bench_pdf(f: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    first, last = _month_range(f["peak_month"])
    # A statement with nothing open leaves the open charges and aging tables out.
    paths = {
        "one-page PDF statement": _small_client(f),
        "one-page PDF statement, charges open": _small_client(f, owing=True),
    }
    out = {}
    with AppServer(f["url"]) as app:
        user = Session(app.base, f["username"], f["password"])
        for name, client in paths.items():
            path = f"/clients/{client}/statement.pdf?from={first}&to={last}"
            # Warm both workers (new connections land on either), then measure on one.
            for _ in range(6):
                with httpx.Client(
                    base_url=app.base, cookies=user.http.cookies, timeout=60
                ) as other:
                    other.get(path).raise_for_status()
            result = timed_gets(user.http, path, args.repeat, warm=5)
            result["pdf_kb"] = round(len(user.http.get(path).content) / 1024, 1)
            out[name] = result
        user.close()
    return out


def bench_zip(f: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    if f["backend"] != "postgresql":
        raise SystemExit("zip runs on PostgreSQL")
    db = f["url"].rsplit("/", 1)[1]
    month = f["peak_month"]
    # Jobs left "running" by an earlier, interrupted bench would be joined instead of started.
    pg.psql(
        db,
        "UPDATE document_jobs SET status = 'failed', error = 'bench: abandoned' "
        "WHERE status IN ('queued', 'running')",
    )
    with AppServer(f["url"]) as app:
        user = Session(app.base, f["username"], f["password"])
        started = time.perf_counter()
        answer = user.http.post("/statements/bulk", data={"month": month, "_csrf_token": user.csrf})
        if answer.status_code != 303:
            raise RuntimeError(f"POST /statements/bulk: {answer.status_code} {answer.text[:300]}")
        job_id = int(answer.headers["location"].rstrip("/").rsplit("/", 1)[1])
        marks: dict[str, float] = {}
        peak_kb = 0
        status, done, total = "queued", 0, 0
        deadline = started + args.timeout
        while time.perf_counter() < deadline:
            job_sql = f"SELECT status, done, total FROM document_jobs WHERE id = {job_id}"  # noqa: S608
            row = pg.psql(db, job_sql)
            status, done, total = row.split("|")[0], int(row.split("|")[1]), int(row.split("|")[2])
            elapsed = time.perf_counter() - started
            if done > 0 and "first" not in marks:
                marks["first"] = elapsed
            if done >= 1000 and "1000" not in marks:
                marks["1000"] = elapsed
            pids = app.worker_pids()
            pids += [c for p in pids for c in _children(p)]
            with contextlib.suppress(OSError):
                peak_kb = max(peak_kb, sum(memory_kb(p)["VmRSS"] for p in pids))
            if status not in ("queued", "running"):
                break
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        size = pg.psql(
            db,
            f"SELECT coalesce(length(content), 0) FROM document_jobs WHERE id = {job_id}",  # noqa: S608
        )
        user.close()
    return {
        "month": month,
        "statements": total,
        "status": status,
        "done": done,
        "seconds_total": round(elapsed, 1),
        "seconds_to_first": round(marks.get("first", 0), 1),
        "seconds_to_1000": round(marks["1000"], 1) if "1000" in marks else None,
        "per_1000_s": round(elapsed / done * 1000, 1) if done else None,
        "zip_mb": round(int(size or 0) / 1e6, 1),
        "app_rss_peak_mb": round(peak_kb / 1024),
    }


def bench_csv(f: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    last = date.fromisoformat(f["peak_month"] + "-01")
    months = []
    for _ in range(12):
        months.append(f"{last:%Y-%m}")
        last = (last - timedelta(days=1)).replace(day=1)
    out: dict[str, Any] = {}
    for what in ("charges", "entries"):
        with AppServer(f["url"]) as app:
            user = Session(app.base, f["username"], f["password"])
            user.http.get(f"/exports/{what}.csv?month={months[-1]}").raise_for_status()  # warm
            pids = app.worker_pids()
            for pid in pids:  # forget the warm-up's peak: VmHWM restarts from the current RSS
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            before = {p: memory_kb(p) for p in pids}
            rows = size = 0
            started = time.perf_counter()
            for month in months:
                with user.http.stream("GET", f"/exports/{what}.csv?month={month}") as answer:
                    answer.raise_for_status()
                    for chunk in answer.iter_bytes():
                        rows += chunk.count(b"\n")
                        size += len(chunk)
                rows -= 1  # the header line
            seconds = time.perf_counter() - started
            after = {p: memory_kb(p) for p in pids}
            growth = max(after[p]["VmHWM"] - before[p]["VmRSS"] for p in pids)
            user.close()
        out[f"{what}.csv, 12 months"] = {
            "rows": rows,
            "seconds": round(seconds, 1),
            "rows_per_s": round(rows / seconds),
            "mb": round(size / 1e6, 1),
            "peak_rss_growth_mb": round(growth / 1024, 1),
            "worker_rss_before_mb": round(max(b["VmRSS"] for b in before.values()) / 1024),
        }
        print(what, out[f"{what}.csv, 12 months"])
    return out


def bench_close(f: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    month = f["peak_month"]
    if f["backend"] == "postgresql":
        db = f["url"].rsplit("/", 1)[1]
        copy = f"{db}_close"
        pg.psql("postgres", f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
        pg.psql("postgres", f'CREATE DATABASE "{copy}" TEMPLATE "{db}"')
        url = pg.url(copy)
    else:
        path = Path(f["url"].split(":///", 1)[1])
        copy_path = path.with_name(path.stem + "_close.db")
        import sqlite3

        with sqlite3.connect(path) as src, sqlite3.connect(copy_path) as dst:
            src.backup(dst)
        url = f"sqlite+aiosqlite:///{copy_path}"
    env = {**os.environ, "DATABASE_URL": url}
    command = [sys.executable, "-m", "app", "close-month", month]
    if VARIANT.get("names"):
        env["SALDO_BENCH_VARIANT"] = VARIANT["names"]
        command = [sys.executable, str(BENCH / "variants.py"), "close-month", month]
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=args.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        # Killed: its transaction rolls back, the copy is dropped below.
        done = subprocess.CompletedProcess([], returncode=-1, stdout="", stderr="")
        done.stderr = f"did not finish in {args.timeout} s (stopped)"
    seconds = time.perf_counter() - started
    result = {
        "month": month,
        "charges_in_month": _count(
            f,
            "SELECT count(*) FROM charges WHERE date BETWEEN '{}' AND '{}'".format(  # noqa: S608
                *_month_range(month)
            ),
        ),
        "seconds": round(seconds, 1) if done.returncode == 0 else None,
        "stopped_after_s": None if done.returncode == 0 else round(seconds),
        "ok": done.returncode == 0,
        "output": [
            line
            for line in (done.stdout + done.stderr).strip().splitlines()
            if not line.startswith("slow query")
        ][-1:],
    }
    if f["backend"] == "postgresql":
        result["statements_written"] = int(pg.psql(copy, "SELECT count(*) FROM period_statements"))
        pg.psql("postgres", f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
    else:
        copy_path.unlink(missing_ok=True)
    return result


BENCHES = {
    "search": bench_search,
    "pay": bench_pay,
    "pages": bench_pages,
    "pdf": bench_pdf,
    "zip": bench_zip,
    "csv": bench_csv,
    "close": bench_close,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench", choices=[*BENCHES, "all", "report"])
    target = ap.add_mutually_exclusive_group()
    target.add_argument("--db", help="PostgreSQL database (default saldo50k)")
    target.add_argument("--sqlite", type=Path, help="SQLite file made by generate.py")
    ap.add_argument("--duration", type=int, default=20, help="seconds of each wrk run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument(
        "--as-typed",
        action="store_true",
        help="search: every query a letter at a time, first keystrokes included",
    )
    ap.add_argument("--repeat", type=int, default=20, help="requests per latency figure")
    ap.add_argument("--timeout", type=int, default=600, help="limit for zip and close (s)")
    ap.add_argument("--wait-quiet", type=int, default=300, help="wait up to N s for an idle CPU")
    ap.add_argument("--variant", default="", help="bench/variants.py patches, comma-separated")
    ap.add_argument("--label", default="", help="e.g. 'before' or 'after: index on …'")
    ap.add_argument(
        "--pg-socket",
        action="store_true",
        help="the app connects over PostgreSQL's Unix socket instead of TCP on 127.0.0.1",
    )
    ap.add_argument(
        "--pgbouncer",
        action="store_true",
        help="the app reaches PostgreSQL through PgBouncer in transaction mode (DB_POOLER)",
    )
    args = ap.parse_args()
    if args.bench == "report":
        report.write()
        return
    if not args.sqlite:
        pg.start()
        args.db = args.db or "saldo50k"
    f = facts(args.db, args.sqlite)
    PG_SOCKET["on"] = args.pg_socket
    PGBOUNCER["on"] = args.pgbouncer
    if args.variant:
        VARIANT["names"] = args.variant
        args.label = args.label or f"experiment: {args.variant}"
    names = list(BENCHES) if args.bench == "all" else [args.bench]
    for name in names:
        print(f"== {name} on {f['dataset']} ({f['backend']})")
        IDLE_BEFORE["pct"] = wait_quiet(args.wait_quiet)
        record(name, f, BENCHES[name](f, args), args.label)


if __name__ == "__main__":
    main()
