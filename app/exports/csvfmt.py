"""CSV that spreadsheet software opens with a double click, and that cannot run formulas.

Shared by every CSV the app writes (the accountant's exports, client statements):

- ``CsvFormat``: delimiter, decimal separator and encoding. ``format_for_locale``
  picks what spreadsheets in the installation's locale expect: where the
  decimal mark is a comma (pt_BR, es, de, fr…) Excel and LibreOffice split
  columns on ``;``; elsewhere on ``,``. Both get UTF-8 with a byte-order mark,
  which is how Excel (Windows and Mac) knows a CSV is UTF-8; LibreOffice and
  Numbers read it too.
- ``amount``: integer cents as a raw number (``-1234.50`` / ``-1234,50``):
  no currency symbol, no thousands separator, always two decimals.
- ``safe_text``: text cells that a spreadsheet would read as a formula get a
  leading apostrophe. Numbers written by ``amount`` are never passed through it.
- ``filename``: ``clinica-bem-estar-2026-02-payments.csv``.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from babel.numbers import get_decimal_symbol

DELIMITERS = {"comma": ",", "semicolon": ";", "tab": "\t"}
DECIMALS = {"point": ".", "comma": ","}
ENCODINGS = ("utf-8-sig", "utf-8", "latin-1")

# What a spreadsheet may take as the start of a formula (or of a DDE payload).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class CsvFormat:
    delimiter: str = ","
    decimal: str = "."
    encoding: str = "utf-8-sig"

    def with_overrides(
        self, delimiter: str | None = None, decimal: str | None = None, encoding: str | None = None
    ) -> CsvFormat:
        """This format with the named choices (``semicolon``, ``comma``, ``latin-1``…) applied.

        Raises ``ValueError`` on a name it does not know.
        """
        changes: dict[str, str] = {}
        if delimiter:
            if delimiter not in DELIMITERS:
                raise ValueError(f"delimiter is one of {', '.join(DELIMITERS)}")
            changes["delimiter"] = DELIMITERS[delimiter]
        if decimal:
            if decimal not in DECIMALS:
                raise ValueError(f"decimal is one of {', '.join(DECIMALS)}")
            changes["decimal"] = DECIMALS[decimal]
        if encoding:
            if encoding not in ENCODINGS:
                raise ValueError(f"encoding is one of {', '.join(ENCODINGS)}")
            changes["encoding"] = encoding
        return replace(self, **changes)

    @property
    def delimiter_name(self) -> str:
        return next(k for k, v in DELIMITERS.items() if v == self.delimiter)

    @property
    def decimal_name(self) -> str:
        return next(k for k, v in DECIMALS.items() if v == self.decimal)


def format_for_locale(locale: str) -> CsvFormat:
    """What a spreadsheet in ``locale`` opens cleanly with a double click."""
    try:
        comma_decimal = get_decimal_symbol(locale) == ","
    except (ValueError, LookupError):  # an unknown locale: the neutral format
        comma_decimal = False
    if comma_decimal:
        return CsvFormat(delimiter=";", decimal=",", encoding="utf-8-sig")
    return CsvFormat(delimiter=",", decimal=".", encoding="utf-8-sig")


def amount(cents: int, fmt: CsvFormat) -> str:
    """Integer cents as a plain number with two decimals: ``-150.00`` or ``-150,00``."""
    return _amount(cents, fmt.decimal)


def _amount(cents: int, decimal: str) -> str:
    # Integer arithmetic, exact like ``Decimal`` and never a float; it runs for
    # every amount cell of an export, so it stays this cheap.
    units, hundredths = divmod(abs(cents), 100)
    sign = "-" if cents < 0 else ""
    return f"{sign}{units}{decimal}{hundredths:02d}"


def percent(basis_points: int, fmt: CsvFormat) -> str:
    """A rate in basis points as a percentage number: 4050 -> ``40.50``."""
    return amount(basis_points, fmt)


def safe_text(value: object) -> str:
    """A text cell a spreadsheet will show as text, never evaluate.

    ``=HYPERLINK(...)``, ``+1``, ``-2``, ``@SUM(...)`` and cells starting with a
    tab or carriage return get a leading apostrophe. ``None`` is an empty cell.
    """
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_START):
        return "'" + text
    return text


def iso(value: date | datetime | None) -> str:
    """A date as ``YYYY-MM-DD`` (ISO 8601), or an empty cell."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    return value.isoformat()


# --- whole columns at once: the same cells as above, for an export's thousands of rows ---


def amounts(values: Sequence[int], fmt: CsvFormat) -> list[str]:
    """``amount`` for each of ``values``."""
    decimal = fmt.decimal
    return [f"{'-' if c < 0 else ''}{abs(c) // 100}{decimal}{abs(c) % 100:02d}" for c in values]


def safe_texts(values: Sequence[str | None]) -> list[str]:
    """``safe_text`` for each of ``values`` (strings or ``None``)."""
    return ["" if t is None else "'" + t if t.startswith(FORMULA_START) else t for t in values]


def isos(values: Sequence[date | None]) -> list[str]:
    """``iso`` for each of ``values``."""
    if None in values:
        return [iso(v) for v in values]
    return list(map(date.isoformat, values))  # type: ignore[arg-type]  # no None here


def numbers(values: Sequence[int | None]) -> list[str]:
    """Integers (ids) as text; ``None`` is an empty cell."""
    if None in values:
        return ["" if v is None else str(v) for v in values]
    return list(map(str, values))


def slug(text: str) -> str:
    """ "Clínica Bem-Estar" -> ``clinica-bem-estar``: ASCII letters, digits and hyphens."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def filename(practice_name: str, month: str, what: str) -> str:
    """``clinica-bem-estar-2026-02-payments.csv``; ``saldo-…`` when the name has no letters."""
    return f"{slug(practice_name) or 'saldo'}-{month}-{slug(what)}.csv"


def content_disposition(name: str) -> str:
    return f'attachment; filename="{name}"'


def charset(fmt: CsvFormat) -> str:
    """The ``charset`` of the file's ``Content-Type``."""
    return "iso-8859-1" if fmt.encoding == "latin-1" else "utf-8"


class CsvEncoder:
    """Turns rows of cells into encoded bytes, a chunk at a time, in a small buffer.

    The byte-order mark of ``utf-8-sig`` comes once, before the first chunk;
    characters ``latin-1`` cannot hold become ``?``.
    """

    def __init__(self, fmt: CsvFormat) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, delimiter=fmt.delimiter, lineterminator="\r\n")
        self._encoder = codecs.getincrementalencoder(fmt.encoding)(errors="replace")

    def encode(self, rows: Iterable[Iterable[str]]) -> bytes:
        self._writer.writerows(rows)
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return self._encoder.encode(text)
