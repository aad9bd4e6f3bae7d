"""The benchmark's own PostgreSQL 15 server: one cluster under /tmp/saldo-bench, kept between runs.

Unlike the tests' throwaway cluster this one is durable (fsync on, full page
writes on): a real-ish setup whose numbers mean something. It listens on
127.0.0.1 only, on a free port chosen at first start and remembered in
``state.json``. PostgreSQL refuses to run as root, so as root every server
command runs as the ``postgres`` user.

    python bench/pg.py start      # init (first time) and start; prints the admin URL
    python bench/pg.py stop
    python bench/pg.py url [DB]   # the SQLAlchemy URL of database DB
    python bench/pg.py bouncer [DB]   # start PgBouncer in front (transaction mode); its URL

PgBouncer (Debian's ``pgbouncer``, for ``run.py --pgbouncer``) runs in
transaction mode with 20 server connections per database, as a practice that
outgrew one app machine would put it in front of its PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH_ROOT = Path(os.environ.get("SALDO_BENCH_DIR", "/tmp/saldo-bench"))
CLUSTER = BENCH_ROOT / "pg"
DATA = CLUSTER / "data"
LOG = CLUSTER / "server.log"
STATE = BENCH_ROOT / "state.json"
BOUNCER = BENCH_ROOT / "pgbouncer"
BINDIR = Path(os.environ.get("SALDO_BENCH_PG_BIN", "/usr/lib/postgresql/15/bin"))

# A practice's dedicated small server: durable, with memory for its working set.
SERVER_OPTIONS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "200",
    "shared_buffers": "1GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "1GB",
    "effective_cache_size": "8GB",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "15min",
    "random_page_cost": "1.1",
    "log_min_duration_statement": "-1",
}


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *cmd]
    return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(cmd)]


def _run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = _as_postgres([str(a) for a in args])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if check and done.returncode != 0:
        log = LOG.read_text()[-4000:] if LOG.exists() else ""
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{done.stdout}\n{done.stderr}\n{log}")
    return done


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _state() -> dict:
    return json.loads(STATE.read_text()) if STATE.exists() else {}


def _save_state(state: dict) -> None:
    BENCH_ROOT.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps(state, indent=2))


def running() -> bool:
    if not (DATA / "postmaster.pid").exists():
        return False
    return _run(BINDIR / "pg_ctl", "-D", DATA, "status", check=False).returncode == 0


def start() -> str:
    """Start the cluster (creating it the first time); returns the admin URL."""
    BENCH_ROOT.mkdir(parents=True, exist_ok=True)
    if not (DATA / "PG_VERSION").exists():
        CLUSTER.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(CLUSTER, "postgres", "postgres")
        _run(
            BINDIR / "initdb",
            "-D",
            DATA,
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
    state = _state()
    if not running():
        port = state.get("port") or free_port()
        options = " ".join(f"-c {k}={v}" for k, v in SERVER_OPTIONS.items())
        options += f" -c port={port} -c unix_socket_directories={CLUSTER}"
        _run(BINDIR / "pg_ctl", "-D", DATA, "-l", LOG, "-o", options, "-w", "-t", "120", "start")
        state["port"] = port
        _save_state(state)
    return url("postgres")


def stop_bouncer() -> None:
    """Stop the PgBouncer that ``bouncer`` started, if it runs."""
    pid_file = BOUNCER / "pgbouncer.pid"
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):  # its server connections end with it
            os.kill(pid, 0)
            time.sleep(0.1)


def stop() -> None:
    stop_bouncer()
    if running():
        _run(BINDIR / "pg_ctl", "-D", DATA, "-m", "fast", "-w", "stop")


def bouncer_binary() -> str:
    """Debian's PgBouncer (``apt-get install pgbouncer``)."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        raise SystemExit("PgBouncer not found: apt-get install pgbouncer")
    return binary


def bouncer(database: str) -> str:
    """Start PgBouncer in front of the cluster (once); the URL of ``database`` through it."""
    binary = bouncer_binary()
    state = _state()
    port = state.get("bouncer_port") or free_port()
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        BOUNCER.mkdir(parents=True, exist_ok=True)
        (BOUNCER / "users.txt").write_text('"postgres" ""\n')
        (BOUNCER / "pgbouncer.ini").write_text(
            f"""[databases]
* = host=127.0.0.1 port={state["port"]} user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {BOUNCER / "users.txt"}
pool_mode = transaction
default_pool_size = 20
max_client_conn = 1000
logfile = {BOUNCER / "pgbouncer.log"}
pidfile = {BOUNCER / "pgbouncer.pid"}
ignore_startup_parameters = extra_float_digits
"""
        )
        if os.geteuid() == 0:
            shutil.chown(BOUNCER, "postgres", "postgres")
        _run(binary, "-d", BOUNCER / "pgbouncer.ini")
        state["bouncer_port"] = port
        _save_state(state)
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{database}"


def url(database: str, driver: str = "postgresql+asyncpg") -> str:
    port = _state().get("port")
    if not port:
        raise RuntimeError("the bench PostgreSQL was never started: python bench/pg.py start")
    return f"{driver}://postgres@127.0.0.1:{port}/{database}"


def socket_url(database: str, driver: str = "postgresql+asyncpg") -> str:
    """The URL of ``database`` over the cluster's Unix socket (no TCP stack in between)."""
    return f"{driver}://postgres@/{database}?host={CLUSTER}&port={_state()['port']}"


def dsn(database: str) -> str:
    """A plain libpq/asyncpg DSN."""
    return url(database, "postgresql")


def psql(database: str, sql: str) -> str:
    """Run SQL through psql (as postgres) and return its unaligned output."""
    port = _state()["port"]
    done = _run(
        BINDIR / "psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(port), "-d", database,
        "-v", "ON_ERROR_STOP=1", "-c", sql,
    )  # fmt: skip
    return done.stdout.strip()


def server_pids() -> list[int]:
    """The postmaster and its children, for memory and CPU accounting."""
    pid_file = DATA / "postmaster.pid"
    if not pid_file.exists():
        return []
    main = int(pid_file.read_text().split()[0])
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(main)], capture_output=True, text=True, check=False
    ).stdout.split()
    return [main, *map(int, out)]


def main(argv: list[str]) -> None:
    what = argv[0] if argv else "start"
    if what == "start":
        print(start())
    elif what == "stop":
        stop()
    elif what == "bouncer":
        print(bouncer(argv[1] if len(argv) > 1 else "postgres"))
    elif what == "url":
        print(url(argv[1] if len(argv) > 1 else "postgres"))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
