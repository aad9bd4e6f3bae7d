"""A client's rights over their data: a copy of everything held about them, and anonymisation.

Both are admin actions (the routes say so) and both are audited, with the
client's id only — never their personal data.

- **Export** gathers the client's profile, charges, payments with their
  allocations, journal entries, refunds, the messages sent to them and their
  statement for their whole history into one ZIP of JSON and CSV files (and the
  statement's PDF).
- **Anonymise** replaces the client's personal data (name, phone, e-mail,
  notes) by a pseudonym, archives them, and removes their name and contact
  details from the places that copied them (audit details, document jobs).
  Money records are not touched: charges, payments, allocations, refunds and
  journal entries keep their amounts, so balances, statements, exports and
  the ``verify`` command give the same figures as before. Closed months'
  snapshots (``period_statements``) are frozen history and keep the name
  they were closed with, so the month's digest still matches them.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import anyio
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Service, Staff
from app.admin.services import PracticeSettings
from app.audit import AuditEvent, audit
from app.auth.models import User
from app.clients.models import Client
from app.clients.services import search_fields, search_key
from app.collecting.models import BillingMessage
from app.db import begin_write
from app.exports import csvfmt
from app.ledger.models import Allocation, Charge, Entry, Payment, Refund
from app.statements import documents
from app.statements.models import DocumentJob
from app.statements.services import statement
from app.web.i18n import _, decimal_string, recorded, today


class PrivacyError(ValueError):
    """A refused privacy action: field name -> message to show next to it."""

    status_code = 422

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(next(iter(errors.values())))
        self.errors = errors


class AlreadyAnonymised(PrivacyError):
    """The client's personal data is already gone: there is nothing left to anonymise."""

    status_code = 409


def pseudonym(client_id: int) -> str:
    """The name an anonymised client keeps: stable, unique, and says what happened."""
    return recorded("Anonymised client #%(id)d", id=client_id)  # kept: the practice's language


# --- export -----------------------------------------------------------------------------------

# Column kinds: how a value is written in JSON and in CSV.
TEXT, AMOUNT, DAY, MOMENT, NUMBER, FLAG = "text", "amount", "day", "moment", "number", "flag"


@dataclass
class Table:
    """Rows of one kind of record, written both as ``<name>.json`` and ``<name>.csv``."""

    name: str
    columns: list[tuple[str, str]]  # (column, kind)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def json_rows(self) -> list[dict[str, Any]]:
        return [
            {col: _json_value(row.get(col), kind) for col, kind in self.columns}
            for row in self.rows
        ]

    def csv_bytes(self, fmt: csvfmt.CsvFormat) -> bytes:
        encoder = csvfmt.CsvEncoder(fmt)
        header = encoder.encode([[col for col, _kind in self.columns]])
        body = encoder.encode(
            [_csv_value(row.get(col), kind, fmt) for col, kind in self.columns] for row in self.rows
        )
        return header + body


def _json_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == AMOUNT:
        return decimal_string(value)
    if kind in (DAY, MOMENT):
        return value.isoformat()
    return value


def _csv_value(value: Any, kind: str, fmt: csvfmt.CsvFormat) -> str:
    if value is None:
        return ""
    if kind == AMOUNT:
        return csvfmt.amount(value, fmt)
    if kind == DAY:
        return csvfmt.iso(value)
    if kind == MOMENT:
        return value.isoformat()
    if kind == FLAG:
        return "true" if value else "false"
    if kind == NUMBER:
        return str(value)
    return csvfmt.safe_text(value)


@dataclass
class ClientData:
    """Everything held about one client, read in one go, ready to be written as files."""

    client: Client
    profile: dict[str, Any]
    tables: dict[str, Table]
    payment_allocations: dict[int, list[dict[str, Any]]]
    statement_doc: documents.StatementDocument
    currency: str
    fmt: csvfmt.CsvFormat
    generated_at: datetime


def export_filename(client_id: int, day: date) -> str:
    """``client-17-data-2026-12-02.zip``: no personal data in the file name."""
    return f"client-{client_id}-data-{day.isoformat()}.zip"


async def gather(session: AsyncSession, client_id: int, practice: PracticeSettings) -> ClientData:
    """Read everything held about the client. Raises LookupError for an unknown client."""
    client = await session.get(Client, client_id)
    if client is None:
        raise LookupError(client_id)
    recorded_by = User.username.label("recorded_by")
    tables: dict[str, Table] = {}

    charges = Table(
        "charges",
        [
            ("charge_id", NUMBER),
            ("date", DAY),
            ("due_date", DAY),
            ("service", TEXT),
            ("staff", TEXT),
            ("description", TEXT),
            ("amount", AMOUNT),
            ("paid", AMOUNT),
            ("open", AMOUNT),
            ("status", TEXT),
            ("void_reason", TEXT),
            ("recorded_by", TEXT),
            ("created_at", MOMENT),
        ],
    )
    for charge, service, staff, user in await session.execute(
        select(Charge, Service.name, Staff.name, recorded_by)
        .outerjoin(Service, Service.id == Charge.service_id)
        .outerjoin(Staff, Staff.id == Charge.staff_id)
        .outerjoin(User, User.id == Charge.created_by_id)
        .where(Charge.client_id == client_id)
        .order_by(Charge.date, Charge.id)
    ):
        charges.rows.append(
            {
                "charge_id": charge.id,
                "date": charge.date,
                "due_date": charge.due_date,
                "service": service,
                "staff": staff,
                "description": charge.description,
                "amount": charge.amount_cents,
                "paid": charge.paid_cents,
                "open": charge.open_cents,
                "status": charge.status,
                "void_reason": charge.void_reason,
                "recorded_by": user,
                "created_at": charge.created_at,
            }
        )
    tables["charges"] = charges

    allocations = Table(
        "allocations",
        [
            ("allocation_id", NUMBER),
            ("charge_id", NUMBER),
            ("payment_id", NUMBER),
            ("from_credit", FLAG),
            ("amount", AMOUNT),
            ("created_at", MOMENT),
        ],
    )
    payment_allocations: dict[int, list[dict[str, Any]]] = {}
    for allocation in await session.scalars(
        select(Allocation)
        .join(Charge, Charge.id == Allocation.charge_id)
        .where(Charge.client_id == client_id)
        .order_by(Allocation.id)
    ):
        row = {
            "allocation_id": allocation.id,
            "charge_id": allocation.charge_id,
            "payment_id": allocation.payment_id,
            "from_credit": allocation.payment_id is None,
            "amount": allocation.amount_cents,
            "created_at": allocation.created_at,
        }
        allocations.rows.append(row)
        if allocation.payment_id is not None:
            payment_allocations.setdefault(allocation.payment_id, []).append(row)

    payments = Table(
        "payments",
        [
            ("payment_id", NUMBER),
            ("received_on", DAY),
            ("amount", AMOUNT),
            ("allocated", AMOUNT),
            ("method", TEXT),
            ("reference", TEXT),
            ("reversed_at", MOMENT),
            ("recorded_by", TEXT),
            ("created_at", MOMENT),
        ],
    )
    for payment, user in await session.execute(
        select(Payment, recorded_by)
        .outerjoin(User, User.id == Payment.created_by_id)
        .where(Payment.client_id == client_id)
        .order_by(Payment.received_on, Payment.id)
    ):
        payments.rows.append(
            {
                "payment_id": payment.id,
                "received_on": payment.received_on,
                "amount": payment.amount_cents,
                "allocated": sum(a["amount"] for a in payment_allocations.get(payment.id, [])),
                "method": payment.method,
                "reference": payment.reference,
                "reversed_at": payment.reversed_at,
                "recorded_by": user,
                "created_at": payment.created_at,
            }
        )
    tables["payments"] = payments
    tables["allocations"] = allocations

    refunds = Table(
        "refunds",
        [
            ("refund_id", NUMBER),
            ("refunded_on", DAY),
            ("amount", AMOUNT),
            ("method", TEXT),
            ("reason", TEXT),
            ("recorded_by", TEXT),
            ("created_at", MOMENT),
        ],
    )
    for refund, user in await session.execute(
        select(Refund, recorded_by)
        .outerjoin(User, User.id == Refund.created_by_id)
        .where(Refund.client_id == client_id)
        .order_by(Refund.refunded_on, Refund.id)
    ):
        refunds.rows.append(
            {
                "refund_id": refund.id,
                "refunded_on": refund.refunded_on,
                "amount": refund.amount_cents,
                "method": refund.method,
                "reason": refund.reason,
                "recorded_by": user,
                "created_at": refund.created_at,
            }
        )
    tables["refunds"] = refunds

    entries = Table(
        "entries",
        [
            ("entry_id", NUMBER),
            ("date", DAY),
            ("kind", TEXT),
            ("description", TEXT),
            ("amount", AMOUNT),
            ("credit_delta", AMOUNT),
            ("owed_delta", AMOUNT),
            ("charge_id", NUMBER),
            ("payment_id", NUMBER),
            ("refund_id", NUMBER),
            ("reverses_id", NUMBER),
            ("recorded_by", TEXT),
            ("created_at", MOMENT),
        ],
    )
    for entry, user in await session.execute(
        select(Entry, recorded_by)
        .outerjoin(User, User.id == Entry.user_id)
        .where(Entry.client_id == client_id)
        .order_by(Entry.effective_date, Entry.id)
    ):
        entries.rows.append(
            {
                "entry_id": entry.id,
                "date": entry.effective_date,
                "kind": entry.kind,
                "description": entry.description,
                "amount": entry.amount_cents,
                "credit_delta": entry.credit_delta_cents,
                "owed_delta": entry.owed_delta_cents,
                "charge_id": entry.charge_id,
                "payment_id": entry.payment_id,
                "refund_id": entry.refund_id,
                "reverses_id": entry.reverses_id,
                "recorded_by": user,
                "created_at": entry.created_at,
            }
        )
    tables["entries"] = entries

    messages = Table(
        "messages",
        [
            ("sent_at", MOMENT),
            ("what", TEXT),
            ("channel", TEXT),
            ("month", TEXT),
            ("tone", TEXT),
            ("period_from", TEXT),
            ("period_to", TEXT),
            ("to", TEXT),
            ("sent_by", TEXT),
        ],
    )
    for message, user in await session.execute(
        select(BillingMessage, User.username)
        .outerjoin(User, User.id == BillingMessage.sent_by_id)
        .where(BillingMessage.client_id == client_id)
    ):
        messages.rows.append(
            {
                "sent_at": message.sent_at,
                "what": "billing_message",
                "channel": message.channel,
                "month": message.month,
                "tone": message.tone,
                "sent_by": user,
            }
        )
    # Statements e-mailed to the client are known from the audit log only.
    for event in await _events_about(session, client_id, action="statement_emailed"):
        detail = json.loads(event.detail or "{}")
        messages.rows.append(
            {
                "sent_at": event.at,
                "what": "statement_emailed",
                "channel": "email",
                "period_from": detail.get("start"),
                "period_to": detail.get("end"),
                "to": detail.get("to"),
                "sent_by": event.username or None,
            }
        )
    messages.rows.sort(key=lambda r: r["sent_at"])
    tables["messages"] = messages

    # The statement of the client's whole history: from their first entry to today.
    first, last = (
        await session.execute(
            select(func.min(Entry.effective_date), func.max(Entry.effective_date)).where(
                Entry.client_id == client_id
            )
        )
    ).one()
    end = max(today(), last or today())
    start = first or min(end, client.created_at.date() if client.created_at else end)
    st = await statement(session, client_id, start, end)
    generated_at = datetime.now(UTC)
    profile = {
        "client_id": client.id,
        "name": client.name,
        "phone": client.phone,
        "phone_digits": client.phone_digits,
        "email": client.email,
        "notes": client.notes,
        "active": client.active,
        "created_at": client.created_at.isoformat() if client.created_at else None,
        "updated_at": client.updated_at.isoformat() if client.updated_at else None,
        "anonymised_at": client.anonymised_at.isoformat() if client.anonymised_at else None,
        "balance": decimal_string(client.balance_cents),
        "credit": decimal_string(client.credit_cents),
        "owed": decimal_string(client.owed_cents),
        "currency": practice.currency,
        "practice": practice.practice_name,
        "exported_at": generated_at.isoformat(),
    }
    return ClientData(
        client=client,
        profile=profile,
        tables=tables,
        payment_allocations=payment_allocations,
        statement_doc=documents.StatementDocument(
            st, documents.Letterhead.of(practice), generated_at
        ),
        currency=practice.currency,
        fmt=csvfmt.format_for_locale(practice.locale),
        generated_at=generated_at,
    )


def readme(data: ClientData) -> str:
    """README.txt: what each file of the export holds (in the practice's language)."""
    fmt = data.fmt
    st = data.statement_doc.statement
    lines = [
        _(
            "Data held by %(practice)s about client #%(id)d",
            practice=data.profile["practice"],
            id=data.client.id,
        ),
        _("Exported at %(when)s (UTC).", when=data.generated_at.isoformat(timespec="seconds")),
        "",
        _("client.json: the client's profile: name, phone, e-mail, notes, balance, credit, owed."),
        _("charges.json, charges.csv: every charge (session, service), paid or not, voided too."),
        _(
            "payments.json, payments.csv: every payment received; "
            "in the JSON each payment lists its allocations."
        ),
        _(
            "allocations.json, allocations.csv: "
            "which part of a payment or of credit paid which charge."
        ),
        _("refunds.json, refunds.csv: credit handed back to the client."),
        _(
            "entries.json, entries.csv: the journal, one line per money event; "
            "amount is its effect on the balance."
        ),
        _(
            "messages.json, messages.csv: billing messages and statements sent to the client "
            "(when, how, by whom; their text is not kept)."
        ),
        _(
            "statement.csv, statement.pdf: the statement from %(start)s to %(end)s.",
            start=st.start.isoformat(),
            end=st.end.isoformat(),
        ),
        "",
        _(
            'Amounts are in %(currency)s. In JSON they are decimal strings like "1234.50"; '
            'in the CSV files plain numbers with "%(decimal)s" as the decimal mark, '
            'cells separated by "%(delimiter)s" (statement.csv: "." and ",").',
            currency=data.currency,
            decimal=fmt.decimal,
            delimiter=fmt.delimiter,
        ),
        _("Dates are YYYY-MM-DD; moments are ISO 8601 in UTC."),
    ]
    return "\r\n".join(lines) + "\r\n"


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str).encode()


def build_zip(data: ClientData, statement_pdf: bytes) -> bytes:
    """The export's ZIP, in memory. Blocking (deflate): call it off the event loop."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        # The client's copy: in the practice's language, as statements are.
        fmt = data.statement_doc.letterhead.formatting
        archive.writestr("README.txt", documents.in_formatting(fmt, readme, data).encode())
        archive.writestr("client.json", _dump(data.profile))
        for name, table in data.tables.items():
            rows = table.json_rows()
            if name == "payments":
                for row in rows:
                    row["allocations"] = [
                        {k: _json_value(v, kind) for k, v, kind in _allocation_items(a)}
                        for a in data.payment_allocations.get(row["payment_id"], [])
                    ]
            archive.writestr(f"{name}.json", _dump(rows))
            archive.writestr(f"{name}.csv", table.csv_bytes(data.fmt))
        st = data.statement_doc.statement
        archive.writestr("statement.csv", documents.statement_csv(st, data.currency))
        archive.writestr("statement.pdf", statement_pdf)
    return buffer.getvalue()


def _allocation_items(row: dict[str, Any]) -> Iterable[tuple[str, Any, str]]:
    yield "allocation_id", row["allocation_id"], NUMBER
    yield "charge_id", row["charge_id"], NUMBER
    yield "amount", row["amount"], AMOUNT
    yield "created_at", row["created_at"], MOMENT


async def export_client_data(
    session: AsyncSession,
    client_id: int,
    practice: PracticeSettings,
    actor: User,
    ip: str | None = None,
) -> tuple[str, bytes]:
    """Everything held about the client as ``(file name, ZIP bytes)``; audited.

    Works for archived and anonymised clients too (then it holds what is
    left). Raises LookupError for an unknown client. The audit line names the
    client by id only. The statement's PDF renders in the documents' thread
    pool and the ZIP is compressed in a worker thread, never on the event loop;
    the database connection is given back while they run.
    """
    data = await gather(session, client_id, practice)
    await session.commit()
    statement_pdf = await documents.pdf(data.statement_doc)
    content = await anyio.to_thread.run_sync(build_zip, data, statement_pdf)
    await begin_write(session)
    audit(
        session,
        "client_data_exported",
        user_id=actor.id,
        username=actor.username,
        ip=ip,
        client_id=client_id,
        bytes=len(content),
    )
    await session.commit()
    return export_filename(client_id, today()), content


# --- anonymisation ----------------------------------------------------------------------------


def _client_marker(client_id: int) -> tuple[str, str]:
    """How ``"client_id": 17`` appears in an audit detail (keys sorted, default separators)."""
    return f'"client_id": {client_id},', f'"client_id": {client_id}}}'


async def _events_about(
    session: AsyncSession, client_id: int, *, action: str | None = None, also: Iterable[str] = ()
) -> list[AuditEvent]:
    """Audit events whose detail names this client's id, or contains any of ``also``."""
    marker, last = _client_marker(client_id)
    detail = func.lower(AuditEvent.detail)
    found = [
        AuditEvent.detail.contains(marker, autoescape=True),
        AuditEvent.detail.endswith(last, autoescape=True),
    ]
    found += [detail.contains(text.lower(), autoescape=True) for text in also]
    query = select(AuditEvent).where(or_(*found))
    if action is not None:
        query = query.where(AuditEvent.action == action)
    events = await session.scalars(query.order_by(AuditEvent.at, AuditEvent.id))
    return list(events)


def _redactor(personal: dict[str, str], replacement_name: str) -> Callable[[str], str]:
    """A function that takes the client's name, phone and e-mail out of a text.

    The name is matched as whole words (a name "Ana" leaves "Banana" alone),
    without regard to case; contacts anywhere they appear.
    """
    removed = _("[removed]")
    patterns: list[tuple[re.Pattern[str], str]] = []
    if personal.get("name"):
        name = re.escape(personal["name"])
        patterns.append((re.compile(rf"(?<!\w){name}(?!\w)", re.IGNORECASE), replacement_name))
    for key in ("email", "phone", "phone_digits"):
        if personal.get(key):
            patterns.append((re.compile(re.escape(personal[key]), re.IGNORECASE), removed))

    def redact(text: str) -> str:
        for pattern, replacement in patterns:
            text = pattern.sub(replacement, text)
        return text

    return redact


def _redact_json(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redact_json(v, redact) for v in value]
    if isinstance(value, dict):
        return {k: _redact_json(v, redact) for k, v in value.items()}
    return value


async def _redact_audit(
    session: AsyncSession, client_id: int, personal: dict[str, str], name: str
) -> int:
    """Take the client's personal data out of audit details; returns how many events changed.

    Events about the client (``statement_emailed``…) lose the address they
    were sent to; any event that quotes the name, phone or e-mail loses it.
    Who did what and when stays.
    """
    redact = _redactor(personal, name)
    changed = 0
    for event in await _events_about(session, client_id, also=personal.values()):
        detail = json.loads(event.detail or "{}")
        if isinstance(detail, dict) and detail.get("client_id") == client_id and "to" in detail:
            detail["to"] = _("[removed]")
        new = json.dumps(
            _redact_json(detail, redact), default=str, ensure_ascii=False, sort_keys=True
        )
        if new != event.detail:
            event.detail = new
            changed += 1
    return changed


async def _redact_documents(
    session: AsyncSession, client_id: int, personal: dict[str, str], name: str
) -> int:
    """Drop finished month ZIPs holding the client's statement; clean job error notes.

    A month's ZIP names each PDF ``statement-<client id>-<name>-…``, and its
    PDF shows the name and address: the file is removed (the month can be
    zipped again, with the pseudonym). Returns how many jobs changed.
    """
    redact = _redactor(personal, name)
    prefix = f"statement-{client_id}-"
    changed = 0
    jobs = await session.scalars(
        select(DocumentJob).where(
            or_(DocumentJob.content.is_not(None), DocumentJob.error.is_not(None))
        )
    )
    for job in jobs:
        dirty = False
        if job.error:
            cleaned = redact(job.error)
            if cleaned != job.error:
                job.error, dirty = cleaned, True
        if job.kind == "zip" and job.status == "done":
            content = await session.scalar(
                select(DocumentJob.content).where(DocumentJob.id == job.id)
            )
            if content is not None and _zip_mentions(content, prefix):
                job.content = None
                job.error = _("The file was removed: a client in it was anonymised.")
                dirty = True
        changed += dirty
    return changed


def _zip_mentions(content: bytes, prefix: str) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return any(n.startswith(prefix) for n in archive.namelist())
    except zipfile.BadZipFile:
        return False


async def anonymise_client(
    session: AsyncSession,
    client_id: int,
    confirmation: str,
    actor: User,
    ip: str | None = None,
) -> Client:
    """Replace the client's personal data by a pseudonym, on their request. Irreversible.

    The name becomes "Anonymised client #<id>"; phone, its digits, e-mail and
    notes are cleared; the search text is rebuilt from the pseudonym, so the old
    name, phone or e-mail no longer find the client; the client is archived and
    ``anonymised_at`` set. The same personal data is taken out of audit
    details and document jobs. Charges, payments, allocations, refunds, journal
    entries and closed months are not touched.

    Refuses (``PrivacyError``, nothing written) when ``confirmation`` is not the
    client's current name (case, accents and spaces aside), and
    (``AlreadyAnonymised``) a client anonymised before. Raises LookupError for
    an unknown client. The audit line holds the client's id only.
    """
    await begin_write(session)
    try:
        client = await session.scalar(
            select(Client)
            .where(Client.id == client_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if client is None:
            raise LookupError(client_id)
        if client.anonymised_at is not None:
            raise AlreadyAnonymised(
                {
                    "confirmation": _(
                        "This client was already anonymised: nothing is left to remove."
                    )
                }
            )
        if not confirmation.strip() or search_key(confirmation) != client.name_key:
            raise PrivacyError(
                {"confirmation": _("Type the client's name exactly as shown to confirm.")}
            )
        personal = {
            key: value
            for key, value in (
                ("name", client.name),
                ("phone", client.phone),
                ("phone_digits", client.phone_digits),
                ("email", client.email),
            )
            if value
        }
        name = pseudonym(client.id)
        client.name = name
        client.phone = client.phone_digits = client.email = client.notes = None
        client.name_key, client.search_text = search_fields(name, None, None)
        client.active = False
        client.anonymised_at = datetime.now(UTC)
        await session.flush()
        events = await _redact_audit(session, client_id, personal, name)
        jobs = await _redact_documents(session, client_id, personal, name)
        audit(
            session,
            "client_anonymised",
            user_id=actor.id,
            username=actor.username,
            ip=ip,
            client_id=client_id,
            audit_events_redacted=events,
            document_jobs_redacted=jobs,
        )
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    return client
