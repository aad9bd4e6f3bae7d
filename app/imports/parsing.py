"""Reading a spreadsheet's CSV export: encoding, delimiter, columns, amounts and dates.

Pure functions, no database: what a cell means is decided here, what a line
will do to the books is decided in ``services``.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from app.clients.services import search_key
from app.web.i18n import _, format_money

DELIMITERS = {";": ";", ",": ",", "tab": "\t"}
DECIMAL_MARKS = (",", ".")
DATE_FORMATS = ("dmy", "mdy", "iso")

# What a column can be mapped to, in the order the select shows them.
TARGETS = (
    "ignore",
    "name",
    "phone",
    "email",
    "notes",
    "date",
    "kind",
    "amount",
    "charge_amount",
    "payment_amount",
    "description",
    "service",
    "method",
)


def target_labels() -> dict[str, str]:
    return {
        "ignore": _("Ignore"),
        "name": _("Client name"),
        "phone": _("Phone"),
        "email": _("E-mail"),
        "notes": _("Notes"),
        "date": _("Date"),
        "kind": _("Kind (session or payment)"),
        "amount": _("Amount (a session, or what the kind column says)"),
        "charge_amount": _("Amount charged"),
        "payment_amount": _("Amount paid"),
        "description": _("Description"),
        "service": _("Service"),
        "method": _("Payment method"),
    }


# Header words (lower-case, accent-free) in English, Portuguese and Spanish.
# Checked in this order, so "valor pago" is a payment before "valor" is an amount.
_HEADER_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "payment_amount",
        (
            "amount paid",
            "valor pago",
            "pago",
            "paid",
            "pagamento",
            "payment",
            "pagado",
            "recebido",
            "received",
            "abono",
            "importe pagado",
        ),
    ),
    (
        "charge_amount",
        (
            "amount charged",
            "valor cobrado",
            "cobrado",
            "charged",
            "charge",
            "cobranca",
            "cargo",
            "price",
            "preco",
            "precio",
            "valor da sessao",
            "debe",
        ),
    ),
    (
        "method",
        (
            "forma de pagamento",
            "forma de pago",
            "medio de pago",
            "payment method",
            "method",
            "metodo",
            "meio",
            "forma",
        ),
    ),
    (
        "name",
        (
            "client name",
            "nome do cliente",
            "nombre del cliente",
            "cliente",
            "client",
            "customer",
            "paciente",
            "patient",
            "aluno",
            "alumno",
            "student",
            "nombre",
            "nome",
            "name",
        ),
    ),
    (
        "phone",
        ("telefone", "telefono", "phone", "celular", "mobile", "whatsapp", "movil", "fone", "tel"),
    ),
    ("email", ("e-mail", "email", "correo", "mail")),
    ("notes", ("observacoes", "observaciones", "notes", "notas", "note", "obs")),
    ("date", ("fecha", "date", "data", "dia", "day")),
    ("kind", ("kind", "type", "tipo")),
    ("service", ("servico", "servicio", "service", "procedimento", "procedimiento")),
    (
        "description",
        (
            "descricao",
            "descripcion",
            "description",
            "concepto",
            "concept",
            "detalhe",
            "detalle",
            "item",
        ),
    ),
    ("amount", ("amount", "valor", "importe", "monto", "total", "value")),
)

_KINDS = {
    "charge": (
        "charge",
        "session",
        "sessao",
        "sesion",
        "consulta",
        "cobranca",
        "cargo",
        "service",
        "servico",
        "servicio",
        "aula",
        "clase",
        "debito",
    ),
    "payment": (
        "payment",
        "paid",
        "pagamento",
        "pago",
        "pagado",
        "recebimento",
        "abono",
        "credito",
        "top-up",
        "topup",
        "recarga",
        "deposito",
    ),
}
_METHODS = {
    "cash": ("cash", "dinheiro", "efectivo", "especie", "contado"),
    "card": (
        "card",
        "cartao",
        "tarjeta",
        "credito",
        "debito",
        "credit",
        "debit",
        "visa",
        "mastercard",
    ),
    "transfer": ("transfer", "transferencia", "bank", "banco", "ted", "doc", "deposito", "wire"),
    "pix": ("pix",),
}

MAX_ROWS = 20_000
PREVIEW_ROWS = 8


class CellError(ValueError):
    """A cell that cannot be taken; the message says why, for the import's line report."""


# --- the file ---------------------------------------------------------------------------------


def decode(content: bytes) -> tuple[str, str]:
    """The file's text and the encoding it was read with.

    UTF-8 with or without a BOM first (what spreadsheets export today), then
    Windows-1252 (older Excel), then Latin-1, which reads any byte.
    """
    if content.startswith(b"\xef\xbb\xbf"):
        return content[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    for encoding in ("utf-8", "cp1252"):
        try:
            return content.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return content.decode("latin-1"), "latin-1"


def detect_delimiter(text: str) -> str:
    """``;``, ``,`` or ``tab``: the one that splits the first lines into the most regular columns.

    Counting alone is fooled by decimal commas in a ``;`` file; reading the lines
    as CSV with each candidate and preferring the one that gives more than one
    column, the same number on most lines, and then the most columns, is not.
    """
    sample = [line for line in text.splitlines()[:30] if line.strip()]
    best, best_score = ";", (False, 0.0, 0)
    for name, char in DELIMITERS.items():
        counts = [len(row) for row in csv.reader(sample, delimiter=char)]
        if not counts:
            continue
        mode = max(set(counts), key=counts.count)
        score = (mode > 1, round(counts.count(mode) / len(counts), 1), mode)
        if score > best_score:
            best, best_score = name, score
    return best


def read_rows(text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """Non-empty records with the file line each starts on (1 = the first line)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[delimiter])
    rows, line = [], 1
    for record in reader:
        if any(cell.strip() for cell in record):
            rows.append((line, [cell.strip() for cell in record]))
        line = reader.line_num + 1
    return rows


def guess_mapping(headers: list[str]) -> list[str]:
    """A target per column from its header; each target at most once, unknown headers ignored."""
    keys = [search_key(h).replace("_", " ") for h in headers]
    mapping = ["ignore"] * len(headers)
    used: set[str] = set()
    for exact in (True, False):
        for target, words in _HEADER_WORDS:
            if target in used:
                continue
            for i, key in enumerate(keys):
                if mapping[i] != "ignore" or not key:
                    continue
                hit = key in words if exact else any(_has_word(key, w) for w in words)
                if hit:
                    mapping[i] = target
                    used.add(target)
                    break
    return mapping


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(^|[^a-z]){re.escape(word)}($|[^a-z])", text) is not None


# --- what the values look like ---------------------------------------------------------------

_COMMA_DECIMAL = re.compile(r"\d,\d{1,2}$")
_POINT_DECIMAL = re.compile(r"\d\.\d{1,2}$")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T].*)?$")
_DMY = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2}|\d{4})(?:[ T].*)?$")


def detect_decimal_mark(values: list[str], default: str) -> str:
    """``,`` or ``.``: which one ends the amounts with one or two decimals, most often."""
    commas = sum(1 for v in values if _COMMA_DECIMAL.search(v.strip()))
    points = sum(1 for v in values if _POINT_DECIMAL.search(v.strip()))
    if commas == points:
        return default
    return "," if commas > points else "."


def detect_date_format(values: list[str], default: str) -> str:
    """``iso``, ``dmy`` or ``mdy``: a first part above 12 means day first, a second, month first."""
    values = [v.strip() for v in values if v.strip()]
    if values and all(_ISO.match(v) for v in values):
        return "iso"
    firsts = seconds = 0
    for v in values:
        if m := _DMY.match(v):
            firsts += int(m.group(1)) > 12
            seconds += int(m.group(2)) > 12
    if firsts > seconds:
        return "dmy"
    if seconds > firsts:
        return "mdy"
    return default


# --- one cell ---------------------------------------------------------------------------------

_NUMBER_LIKE = re.compile(r"^[+\-]?[\d\s().,/\-]*$")


def is_formula(value: str) -> bool:
    """A spreadsheet formula (``=``, ``+``, ``-``, ``@`` first) that is not simply a number.

    Such a cell is refused, never stored: opened again in a spreadsheet it
    would run. "+55 11 99999-0000" and "-12,50" are numbers, not formulas.
    """
    value = value.strip()
    if not value or value[0] not in "=+-@":
        return False
    return value[0] in "=@" or not _NUMBER_LIKE.match(value)


_MONEY_NOISE = re.compile(r"[^\d,.\-+]")


def parse_amount_cell(value: str, decimal_mark: str, max_cents: int) -> int | None:
    """Cents from a cell like "1.234,50", "R$ 150", "150.00"; None for empty or zero.

    Zero is "nothing" (an unpaid session often shows 0 in the paid column).
    Refuses negative amounts, more than two decimals, and above ``max_cents``.
    """
    raw = _MONEY_NOISE.sub("", value.strip())
    if not raw:
        if value.strip():
            raise CellError(_("“%(value)s” is not an amount.", value=value.strip()))
        return None
    if raw.startswith("-"):
        raise CellError(_("Negative amount “%(value)s”.", value=value.strip()))
    raw = raw.lstrip("+")
    group_mark = "." if decimal_mark == "," else ","
    normalised = raw.replace(group_mark, "").replace(decimal_mark, ".")
    try:
        amount = Decimal(normalised)
    except InvalidOperation:
        raise CellError(_("“%(value)s” is not an amount.", value=value.strip())) from None
    if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
        raise CellError(_("“%(value)s” has more than two decimals.", value=value.strip()))
    cents = int(amount * 100)
    if cents == 0:
        return None
    if cents > max_cents:
        raise CellError(
            _(
                "%(amount)s is above the maximum of %(max)s.",
                amount=format_money(cents),
                max=format_money(max_cents),
            )
        )
    return cents


def parse_date_cell(value: str, date_format: str) -> date:
    """A date written dd/mm/yyyy, mm/dd/yyyy or yyyy-mm-dd (a time after it is ignored)."""
    value = value.strip()
    try:
        if m := _ISO.match(value):
            year, month, day = (int(g) for g in m.groups())
            return date(year, month, day)
        if date_format != "iso" and (m := _DMY.match(value)):
            first, second, year = (int(g) for g in m.groups())
            if len(m.group(3)) == 2:
                year += 2000
            day, month = (first, second) if date_format == "dmy" else (second, first)
            return date(year, month, day)
    except ValueError:
        pass
    example = {"dmy": "31/01/2026", "mdy": "01/31/2026", "iso": "2026-01-31"}[date_format]
    raise CellError(_("“%(value)s” is not a date like %(example)s.", value=value, example=example))


def kind_of(value: str) -> str | None:
    key = search_key(value)
    for kind, words in _KINDS.items():
        if key in words or any(_has_word(key, w) for w in words):
            return kind
    return None


def method_of(value: str, default: str) -> str:
    """The payment method a cell names ("Dinheiro", "PIX", "tarjeta"); unknown words are "other"."""
    key = search_key(value)
    if not key:
        return default
    for method, words in _METHODS.items():
        if key in words or any(_has_word(key, w) for w in words):
            return method
    return "other"


# --- the options a person chose on the preview --------------------------------------------------


@dataclass
class Options:
    mapping: list[str]
    delimiter: str = ";"
    decimal_mark: str = ","
    date_format: str = "dmy"
    has_header: bool = True

    def json(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class Line:
    """One record of the file, read with the chosen options."""

    number: int
    name: str = ""
    name_key: str = ""
    phone: str | None = None
    email: str | None = None
    notes: str | None = None
    day: date | None = None
    charge_cents: int | None = None
    payment_cents: int | None = None
    description: str = ""
    service: str = ""
    method: str = ""
    errors: list[str] = field(default_factory=list)


def read_line(
    number: int, cells: list[str], options: Options, max_cents: int, default_method: str
) -> Line:
    """A record as a ``Line``; everything wrong with it goes into ``errors``, not just the first."""
    line = Line(number)
    values: dict[str, str] = {}
    refused: set[str] = set()
    for i, target in enumerate(options.mapping):
        if target == "ignore" or i >= len(cells) or not cells[i]:
            continue
        if is_formula(cells[i]):
            line.errors.append(
                _(
                    "Column %(n)d holds a formula (“%(value)s”): refused.",
                    n=i + 1,
                    value=cells[i][:40],
                )
            )
            refused.add(target)
            continue
        values[target] = cells[i]
    line.name = " ".join(values.get("name", "").split())[:200]
    line.name_key = search_key(line.name)
    if not line.name_key and "name" not in refused:
        line.errors.append(_("The client's name is missing."))
    line.phone = values.get("phone")
    line.email = values.get("email")
    line.notes = values.get("notes")
    line.description = values.get("description", "")[:300]
    line.service = values.get("service", "")
    line.method = method_of(values.get("method", ""), default_method)

    amounts: dict[str, int | None] = {}
    for target in ("amount", "charge_amount", "payment_amount"):
        if target in values:
            try:
                amounts[target] = parse_amount_cell(values[target], options.decimal_mark, max_cents)
            except CellError as exc:
                line.errors.append(str(exc))
    line.charge_cents = amounts.get("charge_amount")
    line.payment_cents = amounts.get("payment_amount")
    if amounts.get("amount"):
        kind = kind_of(values["kind"]) if "kind" in values else "charge"
        if kind is None:
            line.errors.append(
                _("“%(value)s” is neither a session nor a payment.", value=values["kind"])
            )
        elif kind == "charge":
            line.charge_cents = (line.charge_cents or 0) + amounts["amount"]
        else:
            line.payment_cents = (line.payment_cents or 0) + amounts["amount"]
    if "date" in values:
        try:
            line.day = parse_date_cell(values["date"], options.date_format)
        except CellError as exc:
            line.errors.append(str(exc))
    elif line.charge_cents or line.payment_cents:
        line.errors.append(_("The date is missing."))
    return line
