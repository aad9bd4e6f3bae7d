"""Every page and read of the API once over, as the admin: where a large practice is slow.

    python bench/sweep.py --db saldo50k
    python bench/sweep.py --sqlite /tmp/saldo-bench/saldo50k.db

The benchmarks of ``run.py`` time the pages issue 8 names. This one asks every
other GET the app has (the pages of a logged-in person, and the API's reads)
of the same practice, 4 times each after one untimed request, and prints the
median and the size of the answer as a Markdown table: a page that reads the
whole practice where it should read a page of it shows up here. Nothing is
recorded in ``results.jsonl``; the section of BENCHMARKS.md that quotes it says
when it ran.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import run  # noqa: E402


def paths(f: dict) -> list[str]:
    first, last = run._month_range(f["peak_month"])
    month = f["peak_month"]
    client = run._small_client(f)
    return [
        "/", "/clients/", "/clients/?q=a", f"/clients/{client}", f"/clients/{client}/edit",
        "/clients/1", "/clients/1/refund", "/ledger/pick-client?q=ma",
        f"/ledger/client-box?client_id={client}", "/charges/new", "/payments/new",
        f"/charges?client_id={client}", "/charges", f"/collect?month={month}",
        f"/statements?month={month}", f"/statements/clients?month={month}", "/periods",
        "/expenses", "/expenses/summary", "/exports", "/imports", "/reports",
        f"/reports/billed?from={first}&to={last}", "/reports/daily",
        f"/reports/commissions/1?from={first}&to={last}", "/admin/staff", "/admin/services",
        "/admin/users", "/admin/audit", "/admin/settings", "/admin/backups",
        "/api/v1/clients/?q=ma", "/api/v1/clients/1", "/api/v1/charges",
        f"/api/v1/reports/unpaid?month={month}", "/api/v1/reports/dashboard",
        "/api/v1/reports/billed-vs-received", f"/api/v1/reports/aging?as_of={last}",
        "/api/v1/reports/debtors", f"/api/v1/reports/received?from={first}&to={last}",
        "/api/v1/periods",
    ]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = ap.add_mutually_exclusive_group()
    target.add_argument("--db", help="PostgreSQL database (default saldo50k)")
    target.add_argument("--sqlite", type=Path, help="SQLite file made by generate.py")
    ap.add_argument("--repeat", type=int, default=4)
    args = ap.parse_args()
    f = run.facts(args.db if args.db or args.sqlite else "saldo50k", args.sqlite)
    print(f"{f['dataset']}, {f['backend']}; median of {args.repeat}, ms\n")
    print("| GET | status | median ms | KB |\n|---|---|---|---|")
    with run.AppServer(f["url"]) as app:
        user = run.Session(app.base, f["username"], f["password"])
        for path in paths(f):
            user.http.get(path)  # not timed: the first of each pays for its statements
            spent = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                answer = user.http.get(path)
                spent.append((time.perf_counter() - started) * 1000)
            kb = len(answer.content) / 1024
            print(
                f"| `{path}` | {answer.status_code} | {statistics.median(spent):.1f} | {kb:,.0f} |"
            )
        user.close()


if __name__ == "__main__":
    main()
