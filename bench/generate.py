"""A large practice, generated deterministically into PostgreSQL or SQLite through the real schema.

    python bench/generate.py --db saldo50k                    # PostgreSQL (bench/pg.py cluster)
    python bench/generate.py --db saldo5k --clients 5000      # the scaled-down variant
    python bench/generate.py --sqlite /tmp/saldo-bench/saldo50k.db

Defaults are issue 8's practice: 50,000 clients, 20 staff, 40 services,
2,000,000 charges over the 60 months that end with last month, about
1,500,000 payments with their allocations and journal entries. Smaller
``--clients`` scale charges (and so payments) proportionally.

The same seed on the same day gives the same practice (the five years end
with last month, so another month shifts every date).

How it is made. The schema comes from the migrations (``python -m app db
upgrade``). A day-by-day simulation, with one fixed seed, plays each month in
date order: sessions are drawn among the clients active that month, and each
client settles as its habit says —

- *pays now* (most): charge, payment, allocation; entries ``charge``,
  ``payment``, ``payment_applied``;
- *prepays*: a top-up (``payment``, credit) when credit runs short, then each
  session is paid from credit (``credit_applied``, allocation without payment);
- *monthly*: sessions stay open, one payment early next month pays them all;
- *late*: like monthly, but skips months, sometimes pays only part, and a few
  never pay after leaving (old debts);

plus a few cancelled sessions (``void``) and refunds of leftover credit when a
prepaying client leaves. Client totals, charges' paid amounts and statuses
follow from the same events, so ``python -m app verify`` passes. Rows get
explicit ids in chronological order, as a live system would number them; the
identity sequences are moved past them at the end.

Two rows are planted for the benchmarks: last month gets ``--peak-month``
charges (~35,000 at full size: the month review and month close), and client 1
is a group account with ``--heavy`` sessions paid on the spot (1,000 sessions:
3,000 journal entries, 2,000 statement lines).

PostgreSQL is loaded with COPY (asyncpg ``copy_records_to_table``) with
``session_replication_role = replica`` — the journal's append-only triggers
and the foreign-key triggers stay quiet during the load, as in ``pg_restore
--disable-triggers`` — then VACUUM ANALYZE (what autovacuum would do after such
a load). SQLite is loaded with ``executemany`` in one transaction.

Logins: ``bench`` (admin) and ``reception`` (reception), password
``BENCH_PASSWORD``. Facts the benchmarks need (heavy client, peak month,
counts, timings) go to ``<bench dir>/<name>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import pg  # noqa: E402

from app.auth.services import hash_password  # noqa: E402
from app.clients.services import normalise_phone, search_fields  # noqa: E402
from app.demo import DEMO_SETTINGS, FIRST, LAST  # noqa: E402

SEED = 20_261_122
BENCH_PASSWORD = "bench-Saldo-2026!"
TIMEZONE = ZoneInfo(DEMO_SETTINGS["timezone"])
DUE_DAYS = 10

PAYS_NOW, PREPAYS, MONTHLY, LATE = range(4)
HABITS = (PAYS_NOW, PREPAYS, MONTHLY, LATE)
HABIT_WEIGHTS = (0.66, 0.12, 0.14, 0.08)
# Sessions per month, relative: weekly, fortnightly, monthly, now and then.
FREQUENCIES = ((4.0, 0.25), (2.0, 0.30), (1.0, 0.30), (0.3, 0.15))
METHODS = (("pix", 0.42), ("card", 0.30), ("cash", 0.18), ("transfer", 0.10))
METHOD_TEXT = {
    "pix": "Pagamento (Pix)",
    "card": "Pagamento (Cartão)",
    "cash": "Pagamento (Dinheiro)",
    "transfer": "Pagamento (Transferência bancária)",
}
ADMIN_ID, RECEPTION_ID = 1, 2

MORE_FIRST = [
    "Adriana", "Alice", "Amanda", "André", "Antônio", "Bárbara", "Bernardo", "Cecília",
    "Cláudia", "Cristina", "Débora", "Emanuel", "Enzo", "Fábio", "Felipe", "Flávia",
    "Francisco", "Guilherme", "Heitor", "Henrique", "Ítalo", "Jéssica", "José", "Júlia",
    "Larissa", "Leonardo", "Lívia", "Lorena", "Luís", "Márcia", "Maria", "Miguel",
    "Murilo", "Nicolás", "Patrícia", "Pedro", "Priscila", "Regina", "Ricardo", "Rosângela",
    "Samuel", "Sílvia", "Simone", "Tânia", "Valéria", "Vinícius", "Yasmin", "Zoé",
    "Águeda", "Andrés", "Ángel", "Aitana", "Carlota", "Fermín", "Gonzalo", "Jesús",
    "Lourdes", "Macarena", "Nerea", "Rocío", "Ramón", "Íñigo", "Maite", "Óscar",
]  # fmt: skip
MORE_LAST = [
    "Moreira", "Mendes", "Freitas", "Castro", "Teixeira", "Correia", "Pinto", "Vieira",
    "Monteiro", "Cavalcanti", "Brandão", "Magalhães", "Guimarães", "Simões", "Falcão",
    "Assunção", "Lacerda", "Sá", "Peixoto", "Antunes", "Sobral", "Leão", "Macedo",
    "Iglesias", "Ortiz", "Rubio", "Serrano", "Molina", "Delgado", "Castaño", "Ibáñez",
    "Peña", "Cortés", "Garrido", "Santana", "Calderón", "Velázquez", "Zúñiga", "Quiñones",
]  # fmt: skip
AREA_CODES = ("11", "21", "31", "41", "48", "51", "61", "71", "81", "85", "19", "27")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
STAFF_NAMES = [
    "Dra. Marina Costa", "Dr. Rafael Mendes", "Lucía Herrera", "Dra. Beatriz Sá",
    "Dr. João Pedro Lima", "Carmen Ibáñez", "Dra. Helena Brandão", "Tomás Ortega",
    "Dra. Camila Rocha", "Dr. Ignacio Peña", "Luana Freitas", "Dr. André Vieira",
    "Dra. Natália Simões", "Raúl Delgado", "Patrícia Moura", "Dr. Sérgio Antunes",
    "Dra. Conceição Prado", "Manuel Zúñiga", "Dra. Inês Falcão", "Otávio Leão",
]  # fmt: skip
SERVICE_KINDS = [
    ("Sessão individual", 20000), ("Sessão de casal", 28000), ("Avaliação inicial", 25000),
    ("Sessão online", 18000), ("Terapia infantil", 22000), ("Retorno", 12000),
    ("Relatório psicológico", 45000), ("Grupo terapêutico", 9000), ("Orientação de pais", 21000),
    ("Neuropsicologia", 35000),
]  # fmt: skip

# Columns in the order rows are built, per table.
COLUMNS: dict[str, tuple[str, ...]] = {
    "users": (
        "id", "username", "display_name", "role", "password_hash", "active", "auth_epoch",
        "language", "created_at", "updated_at",
    ),
    "settings": ("id", "key", "value", "created_at", "updated_at"),
    "staff": ("id", "name", "commission_bp", "active", "user_id", "created_at", "updated_at"),
    "services": (
        "id", "name", "price_cents", "commission_bp", "active", "created_at", "updated_at",
    ),
    "clients": (
        "id", "name", "phone", "phone_digits", "email", "notes", "active", "name_key",
        "search_text", "credit_cents", "owed_cents", "created_at", "updated_at",
    ),
    "charges": (
        "id", "client_id", "date", "service_id", "staff_id", "description", "amount_cents",
        "paid_cents", "due_date", "status", "commission_bp", "created_by_id",
        "status_changed_by_id", "status_changed_at", "void_reason", "created_at", "updated_at",
    ),
    "payments": (
        "id", "client_id", "amount_cents", "method", "received_on", "reference",
        "created_by_id", "created_at", "reversed_at", "reversed_by_id",
    ),
    "allocations": (
        "id", "charge_id", "payment_id", "amount_cents", "created_by_id", "created_at",
    ),
    "refunds": (
        "id", "client_id", "amount_cents", "method", "refunded_on", "reason", "created_by_id",
        "created_at",
    ),
    "entries": (
        "id", "client_id", "kind", "amount_cents", "credit_delta_cents", "owed_delta_cents",
        "effective_date", "description", "charge_id", "payment_id", "refund_id", "reverses_id",
        "user_id", "idempotency_key", "created_at",
    ),
}  # fmt: skip
# Charge row fields that change after the charge is registered.
C_ID, C_CLIENT, C_DATE, C_AMOUNT, C_PAID, C_STATUS = 0, 1, 2, 6, 7, 9
C_CHANGED_BY, C_CHANGED_AT, C_VOID_REASON, C_UPDATED = 12, 13, 14, 16

Batch = dict[str, list[tuple | list]]


# --------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    clients: int = 50_000
    charges: int = 2_000_000
    peak_month_charges: int = 35_000
    heavy_sessions: int = 1_000
    staff: int = 20
    services: int = 40
    months: int = 60
    seed: int = SEED
    today: date = field(default_factory=lambda: datetime.now(TIMEZONE).date())

    @classmethod
    def for_clients(cls, clients: int, **overrides: int) -> Plan:
        """Charges and the peak month scale with the number of clients (40 and 0.7 per client)."""
        plan = cls(clients=clients, charges=clients * 40, peak_month_charges=clients * 7 // 10)
        for key, value in overrides.items():
            if value is not None:
                setattr(plan, key, value)
        return plan

    @property
    def month_starts(self) -> list[date]:
        """First days of the ``months`` months that end with last month."""
        first = self.today.replace(day=1)
        starts = []
        for _ in range(self.months):
            first = (first - timedelta(days=1)).replace(day=1)
            starts.append(first)
        return starts[::-1]

    @property
    def peak_month(self) -> str:
        return f"{self.month_starts[-1]:%Y-%m}"


def _month_end(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def _workdays(first: date) -> list[date]:
    """Monday to Saturday of the month."""
    last = _month_end(first)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [d for d in days if d.weekday() < 6]


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


# --------------------------------------------------------------------------- people


@dataclass
class People:
    """Who the clients are and how they behave; index 0 is the heavy group account."""

    names: list[str]
    phones: list[str | None]
    emails: list[str | None]
    habit: list[int]
    weight: list[float]
    service: list[int]  # index into services
    staff: list[int]  # index into staff
    join: list[int]  # first active month index
    leave: list[int]  # last active month index
    abandons: list[bool]  # a late payer who stops paying after leaving


def make_people(plan: Plan, rng: random.Random) -> People:
    firsts, lasts = FIRST + MORE_FIRST, LAST + MORE_LAST
    n = plan.clients
    names, phones, emails = [], [], []
    for i in range(n):
        if i == 0:
            name = "Colégio São João — Grupo de Apoio"
        else:
            parts = [rng.choice(firsts)]
            if rng.random() < 0.25:
                parts.append(rng.choice(firsts))
            parts.append(rng.choice(lasts))
            if rng.random() < 0.6:
                parts.append(rng.choice(lasts))
            name = " ".join(parts)
        names.append(name)
        r = rng.random()
        if r < 0.80:
            area = rng.choice(AREA_CODES)
            a, b = rng.randint(6000, 9999), rng.randint(0, 9999)
            phone = rng.choice(
                (f"({area}) 9{a}-{b:04d}", f"{area} 9{a}{b:04d}", f"+55 {area} 9{a}-{b:04d}")
            )
        elif r < 0.93:
            phone = f"+34 6{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)}"
        else:
            phone = None
        phones.append(phone)
        if rng.random() < 0.6:
            words = _ascii(name).replace("—", "").split()
            local = f"{words[0]}.{words[-1]}{rng.randint(1, 999) if rng.random() < 0.5 else ''}"
            emails.append(f"{local}@{rng.choice(EMAIL_DOMAINS)}")
        else:
            emails.append(None)
    habit = rng.choices(HABITS, weights=HABIT_WEIGHTS, k=n)
    weight = rng.choices([f for f, _ in FREQUENCIES], weights=[w for _, w in FREQUENCIES], k=n)
    months = plan.months
    join, leave = [], []
    for _ in range(n):
        start = 0 if rng.random() < 0.3 else rng.randrange(months)
        stay = max(1, int(rng.expovariate(1 / 30)))
        join.append(start)
        leave.append(min(months - 1, start + stay - 1))
    habit[0], weight[0], join[0], leave[0] = PAYS_NOW, 0.0, 0, months - 1
    return People(
        names=names,
        phones=phones,
        emails=emails,
        habit=habit,
        weight=weight,
        service=[rng.randrange(plan.services) for _ in range(n)],
        staff=[rng.randrange(plan.staff) for _ in range(n)],
        join=join,
        leave=leave,
        abandons=[h == LATE and rng.random() < 0.3 for h in habit],
    )


# --------------------------------------------------------------------------- the simulation


class Practice:
    """Plays the practice's five years month by month, yielding the rows of each month."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.people = make_people(plan, random.Random(plan.seed + 1))
        n = plan.clients
        self.credit = [0] * n
        self.owed = [0] * n
        self.open: dict[int, list[list]] = {}  # client index -> open charge rows, oldest first
        self.ids = {t: itertools.count(1) for t in ("charges", "payments", "allocations")}
        self.ids.update(refunds=itertools.count(1), entries=itertools.count(1))
        self.services = self._services()
        self.staff = self._staff()
        self.counts: dict[str, int] = dict.fromkeys(
            ("charges", "payments", "allocations", "refunds", "entries", "voids"), 0
        )
        self.batch: Batch = {}

    def _services(self) -> list[tuple[str, int, int | None]]:
        rng = random.Random(self.plan.seed + 2)
        out = []
        for i in range(self.plan.services):
            name, price = SERVICE_KINDS[i % len(SERVICE_KINDS)]
            if i >= len(SERVICE_KINDS):
                name = f"{name} {['60 min', '90 min', 'pacote', 'domiciliar'][i // 10 - 1]}"
                price = price + 500 * rng.randint(-6, 12)
            override = rng.choice((3000, 5000)) if rng.random() < 0.15 else None
            out.append((name, price, override))
        return out

    def _staff(self) -> list[tuple[str, int]]:
        rng = random.Random(self.plan.seed + 3)
        names = STAFF_NAMES * (self.plan.staff // len(STAFF_NAMES) + 1)
        return [
            (names[i], rng.choice((3000, 3500, 4000, 4500, 5000))) for i in range(self.plan.staff)
        ]

    # --- rows ------------------------------------------------------------------------------

    def _add(self, table: str, row: tuple | list) -> None:
        self.batch.setdefault(table, []).append(row)
        self.counts[table] += 1

    def _entry(
        self,
        cid: int,
        kind: str,
        day: date,
        at: datetime,
        credit: int = 0,
        owed: int = 0,
        description: str = "",
        charge_id: int | None = None,
        payment_id: int | None = None,
        refund_id: int | None = None,
    ) -> None:
        self._add(
            "entries",
            (
                next(self.ids["entries"]), cid, kind, credit - owed, credit, owed, day,
                description, charge_id, payment_id, refund_id, None, RECEPTION_ID, None, at,
            ),
        )  # fmt: skip

    def _payment(self, cid: int, amount: int, method: str, day: date, at: datetime) -> int:
        pid = next(self.ids["payments"])
        self._add("payments", (pid, cid, amount, method, day, None, RECEPTION_ID, at, None, None))
        self._entry(cid, "payment", day, at, credit=amount, description=METHOD_TEXT[method],
                    payment_id=pid)  # fmt: skip
        return pid

    def _apply(self, charge: list, cents: int, day: date, at: datetime, pid: int | None) -> None:
        """Allocate ``cents`` of payment ``pid`` (or of credit) to a charge."""
        self._add("allocations", (next(self.ids["allocations"]), charge[C_ID], pid, cents,
                                  RECEPTION_ID, at))  # fmt: skip
        charge[C_PAID] += cents
        charge[C_STATUS] = "paid" if charge[C_PAID] == charge[C_AMOUNT] else "partial"
        charge[C_CHANGED_BY], charge[C_CHANGED_AT], charge[C_UPDATED] = RECEPTION_ID, at, at
        self._entry(
            charge[C_CLIENT], "payment_applied" if pid else "credit_applied", day, at,
            credit=-cents, owed=-cents, description=charge[5], charge_id=charge[C_ID],
            payment_id=pid,
        )  # fmt: skip

    def _finish(self, charge: list) -> None:
        self._add("charges", tuple(charge))

    # --- events ----------------------------------------------------------------------------

    def session(self, i: int, day: date, at: datetime) -> list | None:
        """A session: the charge and, by the client's habit, how it is paid."""
        p, rng, cid = self.people, self.rng, i + 1
        service_idx = p.service[i] if rng.random() < 0.85 else rng.randrange(self.plan.services)
        name, price, override = self.services[service_idx]
        staff_bp = self.staff[p.staff[i]][1]
        amount = price if rng.random() < 0.95 else price * 9 // 10
        charge = [
            next(self.ids["charges"]), cid, day, service_idx + 1, p.staff[i] + 1, name, amount,
            0, day + timedelta(days=DUE_DAYS), "open", override or staff_bp, RECEPTION_ID,
            None, None, None, at, at,
        ]  # fmt: skip
        self._entry(cid, "charge", day, at, owed=amount, description=name, charge_id=charge[C_ID])
        habit = p.habit[i]
        if habit == PAYS_NOW:
            method = rng.choices([m for m, _ in METHODS], weights=[w for _, w in METHODS])[0]
            pid = self._payment(cid, amount, method, day, at)
            self._apply(charge, amount, day, at, pid)
            self._finish(charge)
            return None
        if habit == PREPAYS:
            if self.credit[i] < amount:
                top_up = price * rng.choice((4, 5, 8, 10))
                self._payment(cid, top_up, rng.choice(("pix", "transfer", "card")), day, at)
                self.credit[i] += top_up
            self._apply(charge, amount, day, at, None)
            self.credit[i] -= amount
            self._finish(charge)
            return None
        self.owed[i] += amount
        self.open.setdefault(i, []).append(charge)
        return charge

    def settle(self, i: int, day: date, at: datetime, before: date) -> None:
        """A monthly or late payer pays what was open before ``before``, oldest first."""
        charges = [c for c in self.open.get(i, []) if c[C_DATE] < before]
        total = sum(c[C_AMOUNT] - c[C_PAID] for c in charges)
        if total == 0:
            return
        amount = total
        if self.people.habit[i] == LATE and self.rng.random() < 0.3 and total > 2000:
            amount = max(1000, int(total * self.rng.uniform(0.3, 0.9)) // 1000 * 1000)
        cid = i + 1
        pid = self._payment(cid, amount, self.rng.choice(("transfer", "pix")), day, at)
        left = amount
        for charge in charges:
            if left == 0:
                break
            part = min(left, charge[C_AMOUNT] - charge[C_PAID])
            left -= part
            self._apply(charge, part, day, at, pid)
            if charge[C_STATUS] == "paid":
                self.open[i].remove(charge)
                self._finish(charge)
        self.owed[i] -= amount
        if not self.open[i]:
            del self.open[i]

    def void(self, charge: list, day: date, at: datetime) -> None:
        i = charge[C_CLIENT] - 1
        if charge[C_STATUS] != "open" or charge not in self.open.get(i, []):
            return
        self._entry(charge[C_CLIENT], "void", day, at, owed=-charge[C_AMOUNT],
                    description=f"Cancelado: {charge[5]} — sessão desmarcada",
                    charge_id=charge[C_ID])  # fmt: skip
        charge[C_STATUS], charge[C_VOID_REASON] = "void", "Sessão desmarcada"
        charge[C_CHANGED_BY], charge[C_CHANGED_AT], charge[C_UPDATED] = RECEPTION_ID, at, at
        self.owed[i] -= charge[C_AMOUNT]
        self.open[i].remove(charge)
        if not self.open[i]:
            del self.open[i]
        self.counts["voids"] += 1
        self._finish(charge)

    def refund(self, i: int, day: date, at: datetime) -> None:
        amount, cid = self.credit[i], i + 1
        rid = next(self.ids["refunds"])
        self._add("refunds", (rid, cid, amount, "pix", day, "Encerramento", RECEPTION_ID, at))
        self._entry(cid, "refund", day, at, credit=-amount, description="Reembolso · Encerramento",
                    refund_id=rid)  # fmt: skip
        self.credit[i] = 0

    # --- months ----------------------------------------------------------------------------

    def _month_targets(self) -> list[int]:
        """Charges per month, heavy client aside: equal give or take 5 %, last month the peak."""
        plan, rng = self.plan, random.Random(self.plan.seed + 4)
        heavy_last = plan.heavy_sessions // plan.months
        others = plan.charges - plan.heavy_sessions
        last = plan.peak_month_charges - heavy_last
        raw = [rng.uniform(0.95, 1.05) for _ in range(plan.months - 1)]
        scale = (others - last) / sum(raw)
        targets = [int(r * scale) for r in raw]
        targets[-1] += (others - last) - sum(targets)
        return [*targets, last]

    def months(self) -> Iterator[tuple[str, Batch]]:
        plan, p, rng = self.plan, self.people, self.rng
        heavy_per_month = [
            plan.heavy_sessions * (m + 1) // plan.months - plan.heavy_sessions * m // plan.months
            for m in range(plan.months)
        ]
        for m, (first, target) in enumerate(
            zip(plan.month_starts, self._month_targets(), strict=True)
        ):
            days = _workdays(first)
            events: dict[date, list[tuple[int, int]]] = {}  # day -> (order, client index)
            # Monthly and late payers settle the past months.
            for i in sorted(self.open):
                stopped = p.abandons[i] and m > p.leave[i]
                if p.habit[i] == MONTHLY and rng.random() < 0.95:
                    events.setdefault(rng.choice(days[:8]), []).append((0, i))
                elif p.habit[i] == LATE and not stopped and rng.random() < 0.5:
                    events.setdefault(rng.choice(days), []).append((0, i))
            active = [i for i in range(1, plan.clients) if p.join[i] <= m <= p.leave[i]]
            if active:
                for i in rng.choices(
                    active, cum_weights=list(itertools.accumulate(p.weight[i] for i in active)),
                    k=target,
                ):  # fmt: skip
                    events.setdefault(rng.choice(days), []).append((1, i))
            for _ in range(heavy_per_month[m]):
                events.setdefault(rng.choice(days), []).append((1, 0))
            voids: dict[date, list[list]] = {}
            for day in days:
                base = datetime(day.year, day.month, day.day, 11, tzinfo=UTC)
                for order, i in sorted(events.get(day, ()), key=lambda e: e[0]):
                    at = base + timedelta(seconds=rng.randrange(11 * 3600))
                    if order == 0:
                        self.settle(i, day, at, first if p.habit[i] == MONTHLY else day)
                        continue
                    charge = self.session(i, day, at)
                    if charge is not None and rng.random() < 0.012:
                        when = min(day + timedelta(days=rng.randrange(6)), days[-1])
                        voids.setdefault(when, []).append(charge)
                for charge in voids.get(day, ()):
                    self.void(charge, day, base + timedelta(hours=10))
            # Prepaying clients who leave with credit left mostly get it back.
            last_day = datetime(days[-1].year, days[-1].month, days[-1].day, 20, tzinfo=UTC)
            for i in active:
                leaving = p.leave[i] == m < plan.months - 1 and p.habit[i] == PREPAYS
                if leaving and self.credit[i] > 0 and rng.random() < 0.6:
                    self.refund(i, days[-1], last_day)
            batch, self.batch = self.batch, {}
            yield f"{first:%Y-%m}", batch
        # What is still open at the end.
        self.batch = {"charges": [tuple(c) for cs in self.open.values() for c in cs]}
        self.batch["charges"].sort(key=lambda c: c[0])
        self.counts["charges"] += len(self.batch["charges"])
        yield "open", self.batch
        self.batch = {}

    # --- the rest --------------------------------------------------------------------------

    def clients_rows(self) -> list[tuple]:
        p, plan = self.people, self.plan
        rows = []
        starts = plan.month_starts
        for i in range(plan.clients):
            digits = normalise_phone(p.phones[i], "55") if p.phones[i] else None
            name_key, search_text = search_fields(p.names[i], digits, p.emails[i])
            joined = starts[p.join[i]]
            at = datetime(joined.year, joined.month, joined.day, 12, tzinfo=UTC)
            gone_long = p.leave[i] <= plan.months - 7
            active = not (
                gone_long and not self.credit[i] and not self.owed[i] and (i * 7919) % 2 == 0
            )
            notes = "Conta de grupo: sessões semanais." if i == 0 else None
            rows.append(
                (
                    i + 1, p.names[i], p.phones[i], digits, p.emails[i], notes, active, name_key,
                    search_text, self.credit[i], self.owed[i], at, at,
                )
            )  # fmt: skip
        return rows

    def catalog_rows(self) -> Batch:
        at = datetime.combine(self.plan.month_starts[0], datetime.min.time(), UTC)
        admin_hash = hash_password(BENCH_PASSWORD)
        settings = {**DEMO_SETTINGS, "practice_name": "Clínica Bench", "language": "pt_BR"}
        return {
            "users": [
                (ADMIN_ID, "bench", "Bench Admin", "admin", admin_hash, True, 0, None, at, at),
                (
                    RECEPTION_ID,
                    "reception",
                    "Recepção",
                    "reception",
                    admin_hash,
                    True,
                    0,
                    None,
                    at,
                    at,
                ),
            ],
            "settings": [
                (n, key, json.dumps(value), at, at)
                for n, (key, value) in enumerate(sorted(settings.items()), 1)
            ],
            "staff": [
                (n, name, bp, True, None, at, at) for n, (name, bp) in enumerate(self.staff, 1)
            ],
            "services": [
                (n, name, price, override, True, at, at)
                for n, (name, price, override) in enumerate(self.services, 1)
            ],
        }


# --------------------------------------------------------------------------- sinks


class PostgresSink:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn = None

    async def open(self) -> None:
        import asyncpg

        self.conn = await asyncpg.connect(self.dsn)
        # Bulk load: no per-row trigger work (FK checks, append-only guards).
        await self.conn.execute("SET session_replication_role = replica")
        await self.conn.execute("SET synchronous_commit = off")

    async def write(self, batch: Batch) -> None:
        for table, rows in batch.items():
            if rows:
                await self.conn.copy_records_to_table(table, records=rows, columns=COLUMNS[table])

    async def close(self) -> None:
        for table in COLUMNS:
            sql = f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) FROM {table}"  # noqa: E501, S608
            await self.conn.execute(sql)
        await self.conn.execute("RESET session_replication_role")
        await self.conn.execute("VACUUM (ANALYZE)")
        await self.conn.execute("CHECKPOINT")
        await self.conn.close()


class SqliteSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        # The app stores dates as ISO text and DateTimeUTC values as naive UTC text.
        sqlite3.register_adapter(date, date.isoformat)
        sqlite3.register_adapter(datetime, lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f"))
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        for pragma in (
            "journal_mode=DELETE",
            "synchronous=OFF",
            "cache_size=-1000000",
            "foreign_keys=OFF",
        ):
            self.conn.execute(f"PRAGMA {pragma}")
        self.conn.execute("BEGIN")

    async def write(self, batch: Batch) -> None:
        for table, rows in batch.items():
            if rows:
                cols = COLUMNS[table]
                marks = ", ".join("?" * len(cols))
                sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"  # noqa: S608
                self.conn.executemany(sql, rows)

    async def close(self) -> None:
        self.conn.execute("COMMIT")
        # What the app's connections use; WAL is remembered in the file.
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.close()


# --------------------------------------------------------------------------- main


def _migrate(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    subprocess.run([sys.executable, "-m", "app", "db", "upgrade"], cwd=ROOT, env=env, check=True)


def _verify(database_url: str) -> tuple[bool, float, str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "app", "verify"], cwd=ROOT, env=env, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    out = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode == 0, time.perf_counter() - started, "\n".join(out[-5:])


async def generate(plan: Plan, sink: PostgresSink | SqliteSink, log: bool = True) -> dict:
    """Simulate and write month by month; returns counts and where the time went."""
    practice = Practice(plan)
    started = time.perf_counter()
    write_s = 0.0
    await sink.open()
    await sink.write(practice.catalog_rows())
    for month, batch in practice.months():
        t0 = time.perf_counter()
        await sink.write(batch)
        write_s += time.perf_counter() - t0
        if log and (month.endswith("-12") or month == "open"):
            print(f"  {month}: {practice.counts} ({time.perf_counter() - started:.0f} s)")
    t0 = time.perf_counter()
    clients = practice.clients_rows()
    t1 = time.perf_counter()
    await sink.write({"clients": clients})
    write_s += time.perf_counter() - t1
    t2 = time.perf_counter()
    await sink.close()
    finish_s = time.perf_counter() - t2
    counts = dict(practice.counts)
    counts["clients"] = plan.clients
    counts["clients_in_credit"] = sum(1 for c in practice.credit if c > 0)
    counts["clients_owing"] = sum(1 for o in practice.owed if o > 0)
    total = time.perf_counter() - started
    return {
        "counts": counts,
        "seconds": {
            "simulate": round(total - write_s - finish_s, 1),
            "write": round(write_s, 1),
            "finish (sequences, VACUUM ANALYZE / commit)": round(finish_s, 1),
            "client rows": round(t1 - t0, 1),
            "total": round(total, 1),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = ap.add_mutually_exclusive_group(required=True)
    target.add_argument("--db", help="PostgreSQL database name on the bench cluster")
    target.add_argument("--sqlite", type=Path, help="SQLite file to create")
    ap.add_argument("--clients", type=int, default=50_000)
    ap.add_argument("--charges", type=int, help="default: 40 per client")
    ap.add_argument("--peak-month", type=int, help="charges in last month (default 0.7/client)")
    ap.add_argument("--heavy", type=int, default=1_000, help="sessions of the heavy client")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args()
    plan = Plan.for_clients(
        args.clients,
        charges=args.charges,
        peak_month_charges=args.peak_month,
        heavy_sessions=args.heavy,
        seed=args.seed,
    )
    started = time.perf_counter()
    if args.db:
        pg.start()
        pg.psql("postgres", f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        pg.psql("postgres", f'CREATE DATABASE "{args.db}"')
        url, name = pg.url(args.db), args.db
        _migrate(url)
        sink: PostgresSink | SqliteSink = PostgresSink(pg.dsn(args.db))
    else:
        path = args.sqlite.resolve()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        url, name = f"sqlite+aiosqlite:///{path}", path.stem
        _migrate(url)
        sink = SqliteSink(path)
    migrate_s = time.perf_counter() - started
    print(f"generating {plan.clients} clients, {plan.charges} charges into {url}")
    facts = asyncio.run(generate(plan, sink))
    facts.update(
        database_url=url,
        clients=plan.clients,
        seed=plan.seed,
        peak_month=plan.peak_month,
        first_month=f"{plan.month_starts[0]:%Y-%m}",
        heavy_client_id=1,
        migrate_seconds=round(migrate_s, 1),
        generated_on=plan.today.isoformat(),
        username="bench",
        reception="reception",
        password=BENCH_PASSWORD,
    )
    if not args.no_verify:
        ok, seconds, output = _verify(url)
        facts.update(verify_ok=ok, verify_seconds=round(seconds, 1), verify_output=output)
        print(f"verify: {'clean' if ok else 'DIFFERENCES'} in {seconds:.1f} s\n{output}")
    facts["wall_seconds"] = round(time.perf_counter() - started, 1)
    if args.db:
        facts["size"] = pg.psql("postgres", f"SELECT pg_size_pretty(pg_database_size('{args.db}'))")
    else:
        facts["size"] = f"{args.sqlite.stat().st_size / 2**30:.1f} GB"
    pg.BENCH_ROOT.mkdir(parents=True, exist_ok=True)
    (pg.BENCH_ROOT / f"{name}.json").write_text(json.dumps(facts, indent=2))
    print(json.dumps(facts, indent=2))
    record_generation(facts, args)


def record_generation(facts: dict, args: argparse.Namespace) -> None:
    """A row for docs/BENCHMARKS.md: how long the practice took to make."""
    import report
    from run import machine

    database = (
        "PostgreSQL " + pg.psql("postgres", "SHOW server_version").split()[0]
        if args.db
        else f"SQLite {sqlite3.sqlite_version}"
    )
    report.add(
        {
            "bench": "generate",
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "label": "",
            "dataset": f"{facts['clients']:,} clients",
            "database": database,
            "machine": machine(),
            "figures": {k: v for k, v in facts.items() if k != "password"},
        }
    )


if __name__ == "__main__":
    main()
