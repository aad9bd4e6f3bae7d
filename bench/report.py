"""Rewrite the measured tables of docs/BENCHMARKS.md from bench/results.jsonl.

Only the part between the ``results:start`` and ``results:end`` markers is
generated; the prose around it is written by hand. Every run stays as a row:
the newest run per dataset and database is the current figure, older rows are
marked "earlier" (the "before" of a before/after).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results.jsonl"
DOC = BENCH.parent / "docs" / "BENCHMARKS.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"

# Issue 8's targets: (figure, test, text shown).
Target = tuple[str, Callable[[Any], bool], str]
TARGETS: dict[str, list[Target]] = {
    "search": [
        ("req_per_s", lambda v: v >= 1500, "≥ 1,500 req/s"),
        ("p99_ms", lambda v: v <= 50, "p99 ≤ 50 ms"),
    ],
    "pay": [
        ("req_per_s", lambda v: v >= 300, "≥ 300 req/s"),
        ("non_2xx_3xx", lambda v: v == 0, "0 errors"),
        ("verify_clean", lambda v: v is True, "verify clean"),
    ],
    "month review": [("p50_ms", lambda v: v <= 300, "≤ 300 ms")],
    "statement API (heavy client, 2,000 lines)": [("p50_ms", lambda v: v <= 150, "≤ 150 ms")],
    "statement page (heavy client, 2,000 lines)": [("p50_ms", lambda v: v <= 150, "≤ 150 ms")],
    "dashboard": [("p50_ms", lambda v: v <= 200, "≤ 200 ms")],
    "one-page PDF statement": [("p50_ms", lambda v: v <= 60, "p50 ≤ 60 ms")],
    "one-page PDF statement, charges open": [("p50_ms", lambda v: v <= 60, "p50 ≤ 60 ms")],
    "zip": [("per_1000_s", lambda v: v is not None and v <= 60, "1,000 PDFs ≤ 60 s")],
    "csv": [
        ("rows_per_s", lambda v: v >= 150_000, "≥ 150,000 rows/s"),
        ("peak_rss_growth_mb", lambda v: v <= 50, "growth ≤ 50 MB"),
    ],
    "close": [("seconds", lambda v: v is not None and v <= 10, "≤ 10 s")],
}


def verdict(name: str, figures: dict[str, Any]) -> tuple[str, str]:
    """(targets text, PASS/MISS text) for one result."""
    targets = TARGETS.get(name, [])
    if not targets:
        return "—", "—"
    missed = [text for key, test, text in targets if key in figures and not test(figures[key])]
    shown = "; ".join(text for _, _, text in targets)
    return shown, ("**MISS**: " + ", ".join(missed)) if missed else "pass"


def _rows() -> list[dict[str, Any]]:
    if not RESULTS.exists():
        return []
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


def _aside(row: dict[str, Any]) -> bool:
    """Experiments and the bare reference app are never the app's current figure."""
    return (row.get("label") or "").startswith(("experiment", "bare"))


def _label(row: dict[str, Any], newest: bool) -> str:
    label = row.get("label") or ""
    if not newest:
        label = f"earlier{': ' + label if label else ''}"
    return label or "current"


def _ms(v: Any) -> str:
    return "—" if v is None else f"{v:,.1f}"


def _n(v: Any) -> str:
    if v is None:
        return "—"
    return f"{v:,.0f}" if isinstance(v, int | float) else str(v)


CPU_HEADERS = ["app CPU ms/req", "PG CPU ms/req", "other CPU %"]
TR = ["target", "result"]


def _cpu(f: dict[str, Any]) -> list[str]:
    """Where the CPU went during a wrk run (— for runs made before it was measured)."""
    keys = ("app_cpu_ms_per_req", "pg_cpu_ms_per_req", "other_cpu_pct")
    return [_ms(f[k]) if k in f else "—" for k in keys]


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return out


def _load(row: dict[str, Any]) -> str:
    m = row["machine"]
    idle = m.get("idle_before_pct")
    return f"{m.get('load_before', '?')}" + (f" ({idle:.0f}% idle)" if idle is not None else "")


def render(rows: list[dict[str, Any]]) -> str:
    out: list[str] = [START, ""]
    if rows:
        m = rows[-1]["machine"]
        out += [
            f"Newest run: {rows[-1]['date']} on {m['nproc']} cores ({m['cpu']}), "
            f"{m['memory_gib']} GiB, {m['os']}, Python {m['python']}, commit {m['commit']}. "
            "*load*: the 1-minute load average and the CPU idle share just before a run "
            "(other work on this shared machine disturbs the figures).",
            "",
        ]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["bench"], []).append(row)

    def newest(bench_rows: list[dict[str, Any]], row: dict[str, Any]) -> bool:
        """The latest measurement of the app as it is (experiments never count as current)."""
        if _aside(row):
            return True
        same = [
            r
            for r in bench_rows
            if (r["dataset"], r["database"]) == (row["dataset"], row["database"]) and not _aside(r)
        ]
        return row is same[-1]

    common = ["date", "run", "dataset", "database", "load"]

    def head(row: dict[str, Any], bench_rows: list[dict[str, Any]]) -> list[str]:
        return [
            row["date"],
            _label(row, newest(bench_rows, row)),
            row["dataset"],
            row["database"],
            _load(row),
        ]

    if g := groups.get("generate"):
        out += ["### Generating the practice", ""]
        lines = []
        for row in g:
            f = row["figures"]
            c = f["counts"]
            s = f["seconds"]
            lines.append(
                [
                    row["date"],
                    row["dataset"],
                    row["database"],
                    _n(c["charges"]),
                    _n(c["payments"]),
                    _n(c["allocations"]),
                    _n(c["entries"]),
                    _n(c.get("voids")),
                    _n(c.get("refunds")),
                    f"{s['simulate']:.0f}",
                    f"{s['write']:.0f}",
                    f"{s['finish (sequences, VACUUM ANALYZE / commit)']:.0f}",
                    f"{f.get('wall_seconds', s['total']):.0f}",
                    f.get("size", "—"),
                    "clean" if f.get("verify_ok") else "DIFFERENCES",
                    _n(f.get("verify_seconds")),
                ]
            )
        out += _table(
            [
                "date",
                "dataset",
                "database",
                "charges",
                "payments",
                "allocations",
                "entries",
                "voids",
                "refunds",
                "simulate s",
                "write s",
                "finish s",
                "wall s",
                "size",
                "verify",
                "verify s",
            ],
            lines,
        )
        out.append("")

    if g := groups.get("search"):
        out += ["### Instant search fragment (`GET /clients?q=…`, HX-Request, 32 connections)", ""]
        lines = []
        for row in g:
            f = row["figures"]
            targets, result = verdict("search", f)
            lines.append(
                [
                    *head(row, g),
                    _n(f["req_per_s"]),
                    _ms(f["p50_ms"]),
                    _ms(f["p99_ms"]),
                    _ms(f["max_ms"]),
                    _n(f["non_2xx_3xx"]),
                    *_cpu(f),
                    targets,
                    result,
                ]
            )
        out += _table(
            [*common, "req/s", "p50 ms", "p99 ms", "max ms", "non-2xx/3xx", *CPU_HEADERS, *TR],
            lines,
        )
        out.append("")

    if g := groups.get("pay"):
        out += [
            "### Register a session and pay (`POST /charges/new`, settle=pay_now, 32 connections)",
            "",
        ]
        lines = []
        for row in g:
            f = row["figures"]
            targets, result = verdict("pay", f)
            lines.append(
                [
                    *head(row, g),
                    _n(f["req_per_s"]),
                    _ms(f["p50_ms"]),
                    _ms(f["p99_ms"]),
                    _n(f["non_2xx_3xx"]),
                    _n(f["socket_errors"]),
                    _n(f["charges_added"]),
                    _n(f.get("double_records")),
                    ("clean" if f["verify_clean"] else "DIFFERENCES")
                    + f" ({f['verify_seconds']} s)",
                    *_cpu(f),
                    targets,
                    result,
                ]
            )
        out += _table(
            [
                *common,
                "req/s",
                "p50 ms",
                "p99 ms",
                "non-2xx/3xx",
                "socket errors",
                "charges added",
                "double records",
                "verify",
                *CPU_HEADERS,
                "target",
                "result",
            ],
            lines,
        )
        out.append("")

    page_rows = groups.get("pages", []) + groups.get("pdf", [])
    if page_rows:
        out += ["### Single requests (sequential, keep-alive, logged in as admin)", ""]
        lines = []
        for row in page_rows:
            g = groups[row["bench"]]
            for name, f in row["figures"].items():
                if not isinstance(f, dict):  # a count beside the pages (charges_added_…)
                    continue
                targets, result = verdict(name, f)
                lines.append(
                    [
                        *head(row, g),
                        name,
                        f"`{f['path']}`",
                        _ms(f["p50_ms"]),
                        _ms(f["p95_ms"]),
                        _n(f["n"]),
                        _ms(f["kb"]),
                        ",".join(map(str, f["status"])),
                        targets,
                        result,
                    ]
                )
        out += _table(
            [*common, "page", "path", "p50 ms", "p95 ms", "n", "KB", "status", "target", "result"],
            lines,
        )
        out.append("")

    if g := groups.get("zip"):
        out += ["### A month's statements as one ZIP (`POST /statements/bulk`, then the job)", ""]
        lines = []
        for row in g:
            f = row["figures"]
            targets, result = verdict("zip", f)
            lines.append(
                [
                    *head(row, g),
                    f["month"],
                    _n(f["statements"]),
                    f["status"],
                    _n(f["done"]),
                    _ms(f["seconds_to_first"]),
                    _ms(f["seconds_to_1000"]),
                    _ms(f["seconds_total"]),
                    _ms(f["per_1000_s"]),
                    _ms(f["zip_mb"]),
                    _n(f["app_rss_peak_mb"]),
                    targets,
                    result,
                ]
            )
        out += _table(
            [
                *common,
                "month",
                "statements",
                "status",
                "done",
                "s to first",
                "s to 1,000",
                "s total",
                "s per 1,000",
                "ZIP MB",
                "app RSS peak MB",
                "target",
                "result",
            ],
            lines,
        )
        out.append("")

    if g := groups.get("csv"):
        out += ["### CSV exports of a full year (12 × `GET /exports/…csv?month=`)", ""]
        lines = []
        for row in g:
            for name, f in row["figures"].items():
                targets, result = verdict("csv", f)
                lines.append(
                    [
                        *head(row, g),
                        name,
                        _n(f["rows"]),
                        _ms(f["seconds"]),
                        _n(f["rows_per_s"]),
                        _ms(f["mb"]),
                        _ms(f["peak_rss_growth_mb"]),
                        _n(f["worker_rss_before_mb"]),
                        targets,
                        result,
                    ]
                )
        out += _table(
            [
                *common,
                "file",
                "rows",
                "s",
                "rows/s",
                "MB",
                "peak RSS growth MB",
                "worker RSS MB",
                "target",
                "result",
            ],
            lines,
        )
        out.append("")

    if g := groups.get("close"):
        out += ["### Month close (`python -m app close-month YYYY-MM`, on a copy)", ""]
        lines = []
        for row in g:
            f = row["figures"]
            targets, result = verdict("close", f)
            lines.append(
                [
                    *head(row, g),
                    f["month"],
                    _n(f["charges_in_month"]),
                    _n(f.get("statements_written")),
                    _ms(f["seconds"]),
                    "ok" if f["ok"] else f"stopped at {f.get('stopped_after_s')} s",
                    targets,
                    result,
                ]
            )
        out += _table(
            [*common, "month", "charges", "statements", "s", "exit", "target", "result"], lines
        )
        out.append("")
    out.append(END)
    return "\n".join(out)


def write() -> None:
    text = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    if START not in text:
        text += f"\n{START}\n{END}\n"
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    DOC.write_text(before + render(_rows()) + after)


def add(row: dict[str, Any]) -> None:
    with RESULTS.open("a") as out:
        out.write(json.dumps(row) + "\n")
    write()


if __name__ == "__main__":
    write()
