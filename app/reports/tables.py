"""Every report table as CSV rows, with the accountant exports' conventions (app.exports.csvfmt).

Columns are named in English snake case, like the exports; amounts are plain
numbers with the locale's decimal mark; text cells are guarded against formulas.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app.exports.csvfmt import CsvFormat, amount, iso, percent, safe_text
from app.ledger.models import PAYMENT_METHODS
from app.reports import services as reports
from app.statements.services import AGING_BUCKETS

Rows = Iterator[list[str]]


def received_by_day(r: reports.Received, fmt: CsvFormat, currency: str) -> Rows:
    yield ["date", *PAYMENT_METHODS, "total", "currency"]
    for day in r.by_day:
        cells = [amount(day.by_method_cents[m], fmt) for m in PAYMENT_METHODS]
        yield [iso(day.day), *cells, amount(day.total_cents, fmt), currency]


def received_by_method(r: reports.Received, fmt: CsvFormat, currency: str) -> Rows:
    yield ["method", "payments", "amount", "currency"]
    for method, total in r.by_method.items():
        yield [method, str(total.count), amount(total.amount_cents, fmt), currency]


def received_by_staff(r: reports.Received, fmt: CsvFormat, currency: str) -> Rows:
    yield ["staff_id", "staff", "amount", "currency"]
    for row in r.by_staff:
        yield [
            str(row.staff_id),
            safe_text(row.staff_name),
            amount(row.amount_cents, fmt),
            currency,
        ]
    yield ["", "unassigned", amount(r.unassigned_cents, fmt), currency]


def billed_vs_received(months: list[reports.MonthFigures], fmt: CsvFormat, currency: str) -> Rows:
    yield ["month", "billed", "cancelled", "received", "difference", "currency"]
    for m in months:
        yield [
            m.month,
            amount(m.billed_cents, fmt),
            amount(m.cancelled_cents, fmt),
            amount(m.received_cents, fmt),
            amount(m.difference_cents, fmt),
            currency,
        ]


def aging(a: reports.Aging, fmt: CsvFormat, currency: str) -> Rows:
    yield ["client_id", "client", *AGING_BUCKETS, "total", "oldest_due", "as_of", "currency"]
    for c in a.clients:
        cells = [amount(c.buckets_cents[b], fmt) for b in AGING_BUCKETS]
        yield [
            str(c.client_id),
            safe_text(c.client_name),
            *cells,
            amount(c.total_cents, fmt),
            iso(c.oldest_due),
            iso(a.as_of),
            currency,
        ]


def debtors(rows: list[reports.Debtor], fmt: CsvFormat, currency: str) -> Rows:
    yield [
        "client_id",
        "client",
        "phone",
        "owed",
        "overdue",
        "credit",
        "open_charges",
        "oldest_due",
        "last_payment",
        "currency",
    ]
    for d in rows:
        yield [
            str(d.client_id),
            safe_text(d.client_name),
            safe_text(d.phone),
            amount(d.owed_cents, fmt),
            amount(d.overdue_cents, fmt),
            amount(d.credit_cents, fmt),
            str(d.open_count),
            iso(d.oldest_due),
            iso(d.last_payment_on),
            currency,
        ]


def daily(d: reports.Daily, fmt: CsvFormat, currency: str) -> Rows:
    yield ["date", "kind", "client_id", "client", "method", "reference", "amount", "recorded_by",
           "currency"]  # fmt: skip
    for line in d.lines:
        yield [
            iso(d.day),
            line.kind,
            str(line.client_id),
            safe_text(line.client_name),
            line.method,
            safe_text(line.reference),
            amount(line.amount_cents, fmt),
            safe_text(line.recorded_by),
            currency,
        ]


def commissions(rows: list[reports.CommissionRow], fmt: CsvFormat, currency: str) -> Rows:
    yield ["staff_id", "staff", "basis", "base_amount", "rate_percent", "commission", "currency"]
    for r in rows:
        yield [
            str(r.staff_id),
            safe_text(r.staff_name),
            r.basis,
            amount(r.base_cents, fmt),
            percent(r.commission_bp, fmt),
            amount(r.commission_cents, fmt),
            currency,
        ]


def commission_detail(lines: list[reports.CommissionLine], fmt: CsvFormat, currency: str) -> Rows:
    yield ["charge_id", "date", "client", "description", "service", "charge_amount",
           "base_amount", "rate_percent", "currency"]  # fmt: skip
    for line in lines:
        yield [
            str(line.charge_id),
            iso(line.day),
            safe_text(line.client_name),
            safe_text(line.description),
            safe_text(line.service_name),
            amount(line.charge_cents, fmt),
            amount(line.base_cents, fmt),
            percent(line.commission_bp, fmt),
            currency,
        ]


WRITERS: dict[str, Any] = {
    "received-by-day": received_by_day,
    "received-by-method": received_by_method,
    "received-by-staff": received_by_staff,
    "billed-vs-received": billed_vs_received,
    "aging": aging,
    "debtors": debtors,
    "daily": daily,
    "commissions": commissions,
    "commission-detail": commission_detail,
}
