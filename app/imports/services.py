"""Importing a practice's history from a spreadsheet: upload, preview, dry run, import.

The rules:

- The uploaded file is kept in the database (``ImportFile``) so that any app
  process can show its preview, dry run and import it.
- A dry run reads and never writes; it says for each line what the import
  would do: create a client, a charge and/or a payment; or that the line is a
  **duplicate** (a client with the same name ignoring case and accents is
  reused; a charge or payment of the same client, date and amount already
  exists, in the books or earlier in the file); or that it is **invalid**, and
  why (no name, a wrong date or amount, a date in a closed month or in the
  future, a formula cell, an archived client).
- The import runs the same plan inside one write transaction and records
  every charge and payment through the ledger (``register_charge``,
  ``record_payment``), so entries, balances and allocations are as if typed in.
  A line paid in full (its payment equals its charge) is recorded as paid at
  the session (the ledger's "pay now"). Then the other payments, in date
  order, each allocated to that client's open charges oldest first, the rest
  kept as credit — what the spreadsheet's "charged" and "paid" columns add up
  to. All lines land or none do; importing the same file again creates
  nothing (everything in it is then a duplicate).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from app.admin.models import Service
from app.admin.services import PracticeSettings
from app.audit import audit
from app.auth.models import User
from app.clients.models import Client
from app.clients.services import (
    EMAIL_MAX,
    NOTES_MAX,
    PHONE_MAX,
    normalise_phone,
    search_fields,
    search_key,
)
from app.db import begin_write
from app.imports import parsing
from app.imports.models import ImportFile
from app.imports.parsing import Line, Options
from app.ledger.models import Charge, Payment
from app.ledger.services import (
    ChargeInput,
    LedgerError,
    PaymentInput,
    record_payment,
    register_charge,
)
from app.statements.models import Period
from app.web.i18n import _, format_day, format_money
from app.web.i18n import today as local_today

MAX_BYTES = 5 * 1024 * 1024
_CHUNK = 500  # ids or names per IN (...) list


class ImportRefused(ValueError):
    """The file or the request cannot be taken; ``field`` names what to fix."""

    def __init__(self, message: str, field: str = "form") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    items = list(values)
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


# --- the file ---------------------------------------------------------------------------------


async def store_file(
    session: AsyncSession, actor: User, filename: str, content: bytes
) -> ImportFile:
    """Keep an uploaded CSV for its preview; the same file uploaded again is the same import.

    Refuses an empty file, one above 5 MB, a workbook (.xlsx/.ods: save it as
    CSV first) and a file without any line.
    """
    if not content:
        raise ImportRefused(_("Choose a CSV file."), "file")
    if len(content) > MAX_BYTES:
        raise ImportRefused(_("The file must be at most 5 MB."), "file")
    if content.startswith(b"PK\x03\x04") or b"\x00" in content[:4096]:
        raise ImportRefused(
            _("This is not a CSV file. In the spreadsheet, use Save as… / Download as CSV."),
            "file",
        )
    text_, _encoding = parsing.decode(content)
    if not parsing.read_rows(text_, parsing.detect_delimiter(text_)):
        raise ImportRefused(_("The file has no lines."), "file")
    digest = hashlib.sha256(content).hexdigest()
    await begin_write(session)
    existing = await session.scalar(
        select(ImportFile).where(ImportFile.sha256 == digest).order_by(ImportFile.id).limit(1)
    )
    if existing is not None:
        await session.commit()  # nothing written; ends the transaction, keeps ``existing`` loaded
        return existing
    row = ImportFile(
        filename=(filename or "import.csv").rsplit("/", 1)[-1][:200],
        sha256=digest,
        size=len(content),
        content=content,
        created_by_id=actor.id,
        created_at=_now(),
    )
    session.add(row)
    await session.commit()
    return row


async def get_file(session: AsyncSession, import_id: int) -> ImportFile | None:
    return await session.scalar(
        select(ImportFile).where(ImportFile.id == import_id).options(undefer(ImportFile.content))
    )


async def recent_files(session: AsyncSession, limit: int = 10) -> list[ImportFile]:
    return list(
        await session.scalars(select(ImportFile).order_by(ImportFile.id.desc()).limit(limit))
    )


def last_result(f: ImportFile) -> dict[str, Any] | None:
    return json.loads(f.result) if f.result else None


# --- preview and options ------------------------------------------------------------------------


@dataclass
class Preview:
    encoding: str
    headers: list[str]
    rows: list[list[str]]
    columns: int
    total_rows: int


def _table(content: bytes, options: Options) -> tuple[str, list[tuple[int, list[str]]]]:
    text_, encoding = parsing.decode(content)
    return encoding, parsing.read_rows(text_, options.delimiter)


def guess_options(content: bytes, practice: PracticeSettings) -> Options:
    """What the file most likely means: delimiter, columns from the header, decimal mark, dates."""
    text_, _encoding = parsing.decode(content)
    delimiter = parsing.detect_delimiter(text_)
    rows = [cells for _n, cells in parsing.read_rows(text_, delimiter)]
    headers = rows[0] if rows else []
    mapping = parsing.guess_mapping(headers)
    has_header = any(t != "ignore" for t in mapping)
    if not has_header:
        mapping = ["ignore"] * len(headers)
    body = rows[1:] if has_header else rows
    width = max((len(r) for r in rows[:50]), default=0)
    mapping += ["ignore"] * (width - len(mapping))

    def column(*targets: str) -> list[str]:
        wanted = [i for i, t in enumerate(mapping) if t in targets]
        if not wanted and targets != ("date",):
            wanted = list(range(width))
        return [r[i] for r in body[:500] for i in wanted if i < len(r) and r[i]]

    locale_mark = "," if practice.locale.split("_")[0] not in ("en", "zh", "ja", "ko") else "."
    decimal_mark = parsing.detect_decimal_mark(
        column("amount", "charge_amount", "payment_amount"), locale_mark
    )
    locale_dates = "mdy" if practice.locale == "en_US" else "dmy"
    date_format = parsing.detect_date_format(column("date"), locale_dates)
    return Options(mapping, delimiter, decimal_mark, date_format, has_header)


def options_from_form(form: Any, fallback: Options) -> Options:
    """The options as the preview form sent them; anything missing or unknown keeps the guess."""
    delimiter = form.get("delimiter")
    delimiter = delimiter if delimiter in parsing.DELIMITERS else fallback.delimiter
    decimal_mark = form.get("decimal_mark")
    decimal_mark = decimal_mark if decimal_mark in parsing.DECIMAL_MARKS else fallback.decimal_mark
    date_format = form.get("date_format")
    date_format = date_format if date_format in parsing.DATE_FORMATS else fallback.date_format
    if "columns" not in form:
        return Options(
            list(fallback.mapping), delimiter, decimal_mark, date_format, fallback.has_header
        )
    try:
        count = min(max(int(form.get("columns")), 0), 200)
    except (TypeError, ValueError):
        count = len(fallback.mapping)
    mapping = []
    for i in range(count):
        target = form.get(f"col_{i}") or "ignore"
        mapping.append(target if target in parsing.TARGETS else "ignore")
    has_header = form.get("has_header") in ("1", "on", "true")
    return Options(mapping, delimiter, decimal_mark, date_format, has_header)


def preview(content: bytes, options: Options) -> Preview:
    encoding, rows = _table(content, options)
    cells = [r for _n, r in rows]
    width = max((len(r) for r in cells[:200]), default=0)
    headers = cells[0] if options.has_header and cells else []
    body = cells[1:] if options.has_header else cells
    return Preview(
        encoding=encoding,
        headers=headers + [""] * (width - len(headers)),
        rows=[r + [""] * (width - len(r)) for r in body[: parsing.PREVIEW_ROWS]],
        columns=width,
        total_rows=len(body),
    )


# --- the plan (the dry run) ---------------------------------------------------------------------


@dataclass
class LineResult:
    """What one line of the file does: ``create``, ``duplicate`` or ``invalid``, and the details."""

    number: int
    name: str
    status: str
    day: date | None = None
    charge_cents: int | None = None
    payment_cents: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class _NewClient:
    line: int
    name: str
    name_key: str
    phone: str | None
    phone_digits: str | None
    email: str | None
    notes: str | None


@dataclass
class _NewMoney:
    line: int
    client: int | str  # an existing client's id, or the name key of a client the import creates
    day: date
    cents: int
    description: str = ""
    service_id: int | None = None
    method: str = ""


@dataclass
class Totals:
    lines: int = 0
    create: int = 0
    duplicate: int = 0
    invalid: int = 0
    clients: int = 0
    charges: int = 0
    charged_cents: int = 0
    payments: int = 0
    paid_cents: int = 0

    def json(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Plan:
    lines: list[LineResult] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    clients: list[_NewClient] = field(default_factory=list)
    charges: list[_NewMoney] = field(default_factory=list)
    payments: list[_NewMoney] = field(default_factory=list)


def _clean_contact(line: Line, country_code: str) -> tuple[str | None, str | None]:
    """The line's phone digits and normalised e-mail; problems go into ``line.errors``."""
    digits = None
    if line.phone:
        if len(line.phone) > PHONE_MAX:
            line.errors.append(_("The phone is too long."))
        else:
            try:
                digits = normalise_phone(line.phone, country_code)
            except ValueError as exc:
                line.errors.append(_("Phone “%(value)s”: %(why)s", value=line.phone, why=exc))
    email = None
    if line.email:
        try:
            email = validate_email(line.email, check_deliverability=False).normalized
        except EmailNotValidError:
            line.errors.append(_("“%(value)s” is not an e-mail address.", value=line.email))
        else:
            if len(email) > EMAIL_MAX:
                line.errors.append(_("The e-mail is too long."))
    if line.notes and len(line.notes) > NOTES_MAX:
        line.errors.append(_("The notes are too long."))
    return digits, email


async def _existing_clients(session: AsyncSession, keys: set[str]) -> dict[str, tuple[int, bool]]:
    """name key -> (id, active) of the oldest client with that name, for the names in the file."""
    found: dict[str, tuple[int, bool]] = {}
    for chunk in _chunks(sorted(keys)):
        rows = await session.execute(
            select(Client.name_key, Client.id, Client.active)
            .where(Client.name_key.in_(chunk))
            .order_by(Client.id.desc())
        )
        for key, client_id, active in rows:
            found[key] = (client_id, active)
    return found


async def _existing_money(
    session: AsyncSession, client_ids: set[int], first: date, last: date
) -> tuple[dict[tuple[int, date, int], int], dict[tuple[int, date, int], int]]:
    """(client, date, cents) -> id of the charges and the payments already in the books."""
    charges: dict[tuple[int, date, int], int] = {}
    payments: dict[tuple[int, date, int], int] = {}
    for chunk in _chunks(sorted(client_ids)):
        for cid, day, cents, charge_id in await session.execute(
            select(Charge.client_id, Charge.date, Charge.amount_cents, Charge.id).where(
                Charge.client_id.in_(chunk), Charge.date >= first, Charge.date <= last
            )
        ):
            charges.setdefault((cid, day, cents), charge_id)
        for cid, day, cents, payment_id in await session.execute(
            select(Payment.client_id, Payment.received_on, Payment.amount_cents, Payment.id).where(
                Payment.client_id.in_(chunk),
                Payment.received_on >= first,
                Payment.received_on <= last,
            )
        ):
            payments.setdefault((cid, day, cents), payment_id)
    return charges, payments


def _read_lines(content: bytes, options: Options, practice: PracticeSettings) -> list[Line]:
    _encoding, rows = _table(content, options)
    if options.has_header:
        rows = rows[1:]
    if len(rows) > parsing.MAX_ROWS:
        raise ImportRefused(
            _(
                "The file has %(n)d lines; import at most %(max)d at a time.",
                n=len(rows),
                max=parsing.MAX_ROWS,
            )
        )
    if "name" not in options.mapping:
        raise ImportRefused(_("Choose the column with the client's name."), "mapping")
    amounts = ("amount", "charge_amount", "payment_amount")
    for target in parsing.TARGETS[1:]:
        if options.mapping.count(target) > 1:
            raise ImportRefused(
                _(
                    "Two columns are mapped to “%(target)s”: choose one.",
                    target=parsing.target_labels()[target],
                ),
                "mapping",
            )
    if "kind" in options.mapping and "amount" not in options.mapping:
        raise ImportRefused(
            _(
                "A kind column needs an “%(target)s” column.",
                target=parsing.target_labels()["amount"],
            ),
            "mapping",
        )
    if any(t in options.mapping for t in amounts) and "date" not in options.mapping:
        raise ImportRefused(_("Choose the column with the date."), "mapping")
    return [
        parsing.read_line(
            number, cells, options, practice.max_amount_cents, practice.default_payment_method
        )
        for number, cells in rows
    ]


async def make_plan(
    session: AsyncSession,
    content: bytes,
    options: Options,
    practice: PracticeSettings,
    today: date | None = None,
) -> Plan:
    """What importing the file with these options would do, line by line. Reads only.

    A handful of queries whatever the file's size: the clients named in it,
    their charges and payments in the file's dates, the closed months, the services.
    """
    today = today or local_today()
    lines = _read_lines(content, options, practice)
    keys = {line.name_key for line in lines if line.name_key}
    clients = await _existing_clients(session, keys)
    days = [line.day for line in lines if line.day is not None]
    money_charges, money_payments = (
        await _existing_money(
            session, {cid for cid, _active in clients.values()}, min(days), max(days)
        )
        if days and clients
        else ({}, {})
    )
    closed = set(await session.scalars(select(Period.month).where(Period.closed_at.is_not(None))))
    services = {
        search_key(name): sid
        for sid, name in await session.execute(select(Service.id, Service.name))
    }

    plan = Plan()
    new_clients: dict[str, _NewClient] = {}
    seen_charges: dict[tuple[int | str, date, int], int] = {}
    seen_payments: dict[tuple[int | str, date, int], int] = {}
    seen_names: dict[str, int] = {}
    totals = plan.totals
    for line in lines:
        digits, email = _clean_contact(line, practice.phone_country_code)
        if line.day is not None:
            month = f"{line.day.year:04d}-{line.day.month:02d}"
            if line.day > today:
                line.errors.append(
                    _("The date %(day)s is in the future.", day=format_day(line.day))
                )
            elif month in closed:
                line.errors.append(
                    _("%(month)s is closed: nothing dated in it can change.", month=month)
                )
        has_money = bool(line.charge_cents or line.payment_cents)
        existing = clients.get(line.name_key)
        if existing is not None and not existing[1] and has_money:
            line.errors.append(
                _("%(name)s is an archived client: restore the client first.", name=line.name)
            )
        result = LineResult(
            line.number, line.name, "invalid", line.day, line.charge_cents, line.payment_cents
        )
        plan.lines.append(result)
        totals.lines += 1
        if line.errors:
            result.notes = line.errors
            totals.invalid += 1
            continue

        created = False
        client_ref: int | str
        if existing is not None:
            client_ref = existing[0]
            result.notes.append(_("Existing client #%(id)d.", id=existing[0]))
        elif line.name_key in new_clients:
            client_ref = line.name_key
            result.notes.append(_("Same client as line %(n)d.", n=new_clients[line.name_key].line))
        else:
            client_ref = line.name_key
            new_clients[line.name_key] = _NewClient(
                line.number, line.name, line.name_key, line.phone, digits, email, line.notes
            )
            plan.clients.append(new_clients[line.name_key])
            totals.clients += 1
            created = True
            result.notes.append(_("New client."))
        if not has_money and not created and line.name_key in seen_names:
            result.notes.append(_("Repeats line %(n)d.", n=seen_names[line.name_key]))
        seen_names.setdefault(line.name_key, line.number)

        assert line.day is not None or not has_money
        if line.charge_cents:
            key = (client_ref, line.day, line.charge_cents)
            amount = format_money(line.charge_cents)
            if isinstance(client_ref, int) and key in money_charges:
                result.notes.append(
                    _(
                        "Charge of %(amount)s already recorded (#%(id)d).",
                        amount=amount,
                        id=money_charges[key],
                    )
                )
            elif key in seen_charges:
                result.notes.append(
                    _(
                        "Charge of %(amount)s repeats line %(n)d.",
                        amount=amount,
                        n=seen_charges[key],
                    )
                )
            else:
                seen_charges[key] = line.number
                service_id = services.get(search_key(line.service)) if line.service else None
                description = line.description or ("" if service_id else line.service)
                plan.charges.append(
                    _NewMoney(
                        line.number,
                        client_ref,
                        line.day,
                        line.charge_cents,
                        description[:300],
                        service_id,
                    )
                )
                totals.charges += 1
                totals.charged_cents += line.charge_cents
                created = True
                result.notes.append(_("New charge of %(amount)s.", amount=amount))
        if line.payment_cents:
            key = (client_ref, line.day, line.payment_cents)
            amount = format_money(line.payment_cents)
            if isinstance(client_ref, int) and key in money_payments:
                result.notes.append(
                    _(
                        "Payment of %(amount)s already recorded (#%(id)d).",
                        amount=amount,
                        id=money_payments[key],
                    )
                )
            elif key in seen_payments:
                result.notes.append(
                    _(
                        "Payment of %(amount)s repeats line %(n)d.",
                        amount=amount,
                        n=seen_payments[key],
                    )
                )
            else:
                seen_payments[key] = line.number
                totals.payments += 1
                totals.paid_cents += line.payment_cents
                created = True
                result.notes.append(_("New payment of %(amount)s.", amount=amount))
                charge = plan.charges[-1] if plan.charges else None
                if (
                    charge is not None
                    and charge.line == line.number
                    and charge.cents == line.payment_cents
                ):
                    # Paid at the session: the ledger's "pay now", one call for both.
                    charge.method = line.method
                else:
                    plan.payments.append(
                        _NewMoney(
                            line.number,
                            client_ref,
                            line.day,
                            line.payment_cents,
                            line.description if not line.charge_cents else "",
                            method=line.method,
                        )
                    )
        result.status = "create" if created else "duplicate"
        if created:
            totals.create += 1
        else:
            totals.duplicate += 1
    return plan


# --- the import -----------------------------------------------------------------------------------


async def apply_import(
    session: AsyncSession,
    actor: User,
    practice: PracticeSettings,
    import_id: int,
    options: Options,
    *,
    skip_invalid: bool = False,
    ip: str | None = None,
    today: date | None = None,
) -> Plan:
    """Import the file: one transaction, every charge and payment through the ledger.

    The plan is made again inside the write transaction, so what was recorded
    meanwhile (or by this same file before) is a duplicate and not created again.
    Refuses a file with invalid lines unless ``skip_invalid`` (the person saw
    them and chose to import the rest). Audited with its counts.
    """
    await begin_write(session)
    try:
        if session.bind.dialect.name == "postgresql":
            # One import at a time: two of them would not see each other's new clients.
            await session.execute(text("LOCK TABLE import_files IN SHARE ROW EXCLUSIVE MODE"))
        f = await session.scalar(
            select(ImportFile)
            .where(ImportFile.id == import_id)
            .options(undefer(ImportFile.content))
            .with_for_update()
        )
        if f is None:
            raise LookupError(import_id)
        plan = await make_plan(session, f.content, options, practice, today)
        if plan.totals.invalid and not skip_invalid:
            raise ImportRefused(
                _(
                    "%(n)d lines are invalid. Fix them in the file, or tick “skip the invalid "
                    "lines” to import the others.",
                    n=plan.totals.invalid,
                ),
                "skip_invalid",
            )
        import_id, filename, digest = f.id, f.filename, f.sha256
        await _record(session, actor, practice, import_id, plan)
        f = await session.get_one(ImportFile, import_id)
        f.applied_at, f.applied_by_id = _now(), actor.id
        f.options = json.dumps(options.json())
        f.result = json.dumps(plan.totals.json())
        audit(
            session,
            "import_applied",
            user_id=actor.id,
            username=actor.username,
            ip=ip,
            import_id=import_id,
            filename=filename,
            sha256=digest,
            **plan.totals.json(),
        )
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    return plan


async def _record(
    session: AsyncSession, actor: User, practice: PracticeSettings, import_id: int, plan: Plan
) -> None:
    """Write the plan: clients, then charges, then payments allocated oldest first."""
    ids: dict[str, int] = {}
    created = []
    for c in plan.clients:
        name_key, search_text = search_fields(c.name, c.phone_digits, c.email)
        client = Client(
            name=c.name,
            phone=c.phone,
            phone_digits=c.phone_digits,
            email=c.email,
            notes=c.notes,
            active=True,
            name_key=name_key,
            search_text=search_text,
            credit_cents=0,
            owed_cents=0,
        )
        session.add(client)
        created.append((c.name_key, client))
    await session.flush()
    ids = {key: client.id for key, client in created}

    def client_id(ref: int | str) -> int:
        return ref if isinstance(ref, int) else ids[ref]

    # Open charges per client, oldest first: (date, id, open cents), kept as payments allocate.
    open_charges: dict[int, list[list[Any]]] = {}
    paying = {client_id(p.client) for p in plan.payments}
    for chunk in _chunks(sorted(paying)):
        for cid, day, charge_id, amount, paid in await session.execute(
            select(
                Charge.client_id, Charge.date, Charge.id, Charge.amount_cents, Charge.paid_cents
            ).where(Charge.client_id.in_(chunk), Charge.status.in_(("open", "partial")))
        ):
            open_charges.setdefault(cid, []).append([day, charge_id, amount - paid])

    for c in sorted(plan.charges, key=lambda m: (m.day, m.line)):
        cid = client_id(c.client)
        data = ChargeInput(
            client_id=cid,
            amount_cents=c.cents,
            day=c.day,
            service_id=c.service_id,
            description=c.description,
            pay_now_method=c.method or None,
        )
        charge, _payment = await _ledger(
            session,
            c.line,
            register_charge(session, actor, practice, data, _key(import_id, c.line)),
        )
        if cid in paying and not c.method:
            open_charges.setdefault(cid, []).append([c.day, charge.id, c.cents])

    for charges in open_charges.values():
        charges.sort()
    for p in sorted(plan.payments, key=lambda m: (m.day, m.line)):
        cid = client_id(p.client)
        queue = open_charges.get(cid, [])
        chosen, covered = [], 0
        for item in queue:
            if covered >= p.cents:
                break
            chosen.append(item[1])
            covered += item[2]
        data = PaymentInput(
            client_id=cid,
            amount_cents=p.cents,
            method=p.method or practice.default_payment_method,
            received_on=p.day,
            reference=p.description or None,
            charge_ids=chosen or None,
            remainder_to_credit=True,
        )
        result = await _ledger(
            session, p.line, record_payment(session, actor, practice, data, _key(import_id, p.line))
        )
        paid = dict(result.allocations)
        for item in queue:
            item[2] -= paid.get(item[1], 0)
        open_charges[cid] = [item for item in queue if item[2] > 0]


def _key(import_id: int, line: int) -> str:
    """Stored on the journal entries: which import and line they came from."""
    return f"import-{import_id}-line-{line}"


async def _ledger(session: AsyncSession, line: int, call: Any) -> Any:
    """Run one ledger call for a line, then let go of what it loaded.

    The ledger flushes before returning; without the expunge every later
    flush would walk all the rows written so far (minutes for 5,000 lines).
    """
    try:
        result = await call
        session.expunge_all()
        return result
    except LedgerError as exc:
        raise ImportRefused(
            _("Line %(n)d: %(why)s Nothing was imported.", n=line, why=exc.message)
        ) from exc
