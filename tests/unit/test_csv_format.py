"""The CSV format helpers: locale defaults, raw numbers, formula guard, file names."""

from __future__ import annotations

import csv
import io

import pytest

from app.exports import csvfmt
from app.exports.csvfmt import CsvEncoder, CsvFormat


@pytest.mark.parametrize(
    ("locale", "delimiter", "decimal"),
    [
        ("pt_BR", ";", ","),
        ("es", ";", ","),
        ("es_ES", ";", ","),
        ("de_DE", ";", ","),
        ("en_US", ",", "."),
        ("en", ",", "."),
        ("en_GB", ",", "."),
        ("not_a_locale", ",", "."),
    ],
)
def test_the_locale_decides_delimiter_and_decimal(locale: str, delimiter: str, decimal: str):
    fmt = csvfmt.format_for_locale(locale)
    assert (fmt.delimiter, fmt.decimal, fmt.encoding) == (delimiter, decimal, "utf-8-sig")


def test_overrides_by_name_and_unknown_names_are_refused():
    fmt = csvfmt.format_for_locale("pt_BR").with_overrides("tab", "point", "latin-1")
    assert (fmt.delimiter, fmt.decimal, fmt.encoding) == ("\t", ".", "latin-1")
    assert (fmt.delimiter_name, fmt.decimal_name) == ("tab", "point")
    for bad in ({"delimiter": "pipe"}, {"decimal": "dot"}, {"encoding": "utf-16"}):
        with pytest.raises(ValueError):
            CsvFormat().with_overrides(**bad)


@pytest.mark.parametrize(
    ("cents", "point", "comma"),
    [
        (0, "0.00", "0,00"),
        (5, "0.05", "0,05"),
        (-15000, "-150.00", "-150,00"),
        (123456789, "1234567.89", "1234567,89"),
        (-1, "-0.01", "-0,01"),
    ],
)
def test_amounts_are_raw_numbers_without_symbol_or_grouping(cents: int, point: str, comma: str):
    assert csvfmt.amount(cents, CsvFormat(decimal=".")) == point
    assert csvfmt.amount(cents, CsvFormat(decimal=",")) == comma


def test_rates_in_basis_points_are_percent_numbers():
    assert csvfmt.percent(4050, CsvFormat(decimal=",")) == "40,50"
    assert csvfmt.percent(10000, CsvFormat()) == "100.00"


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@x", "'@x"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("Ana = Bia", "Ana = Bia"),
        ("Ana", "Ana"),
        ("", ""),
        (None, ""),
    ],
)
def test_text_that_a_spreadsheet_would_evaluate_gets_an_apostrophe(text, safe):
    assert csvfmt.safe_text(text) == safe


def test_file_names_carry_the_practice_and_the_month():
    assert (
        csvfmt.filename("Clínica Bem-Estar", "2026-02", "payments")
        == "clinica-bem-estar-2026-02-payments.csv"
    )
    assert csvfmt.filename("  Estúdio São João & Cia. ", "2026-12", "entries") == (
        "estudio-sao-joao-cia-2026-12-entries.csv"
    )
    assert csvfmt.filename("東京", "2026-01", "charges") == "saldo-2026-01-charges.csv"
    assert csvfmt.content_disposition("a-2026-01-x.csv") == 'attachment; filename="a-2026-01-x.csv"'


def test_encoder_writes_the_bom_once_and_replaces_what_latin1_cannot_hold():
    sig = CsvEncoder(CsvFormat(delimiter=";", encoding="utf-8-sig"))
    first = sig.encode([["a", "João"]])
    second = sig.encode([["b", "Zoë"]])
    assert first.startswith(b"\xef\xbb\xbf") and not second.startswith(b"\xef\xbb\xbf")
    assert (first + second).decode("utf-8-sig") == "a;João\r\nb;Zoë\r\n"

    latin = CsvEncoder(CsvFormat(encoding="latin-1"))
    assert latin.encode([["João", "Łukasz 東"]]) == "João,?ukasz ?\r\n".encode("latin-1")


def test_a_decimal_comma_with_a_comma_delimiter_is_quoted_and_reads_back():
    fmt = CsvFormat(delimiter=",", decimal=",", encoding="utf-8")
    data = CsvEncoder(fmt).encode([["x", csvfmt.amount(-15050, fmt)]])
    assert list(csv.reader(io.StringIO(data.decode()))) == [["x", "-150,50"]]


def test_copy_rows_get_crlf_ends_but_breaks_inside_cells_stay_wherever_chunks_split():
    """COPY ends rows with \\n; the file must read as the csv module writes it, however
    the bytes arrive."""
    from app.exports.services import _RowEnds

    rows = [
        ["1", 'say "hi"\nthere', "x"],
        ["2", "crlf\r\ninside", '""'],
        ["3", "plain", "a;b"],
        ["4", '"\n"', "é"],
    ]

    def written(terminator: str) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator=terminator).writerows(rows)
        return buffer.getvalue().encode()

    copied, expected = written("\n"), written("\r\n")
    assert copied != expected
    for cut in range(len(copied) + 1):
        for second_cut in (cut, min(len(copied), cut + 7)):
            ends = _RowEnds()
            parts = (copied[:cut], copied[cut:second_cut], copied[second_cut:])
            assert b"".join(ends(bytearray(p)) for p in parts) == expected, (cut, second_cut)


def test_copy_bytes_become_latin_1_with_question_marks_even_split_mid_character():
    from app.exports.services import _recoder

    assert _recoder(CsvFormat(encoding="utf-8-sig")) is None
    assert _recoder(CsvFormat(encoding="utf-8")) is None
    text = "Conceição 😀 Ω\r\n"
    data = text.encode()
    for cut in range(len(data) + 1):
        recode = _recoder(CsvFormat(encoding="latin-1"))
        assert recode is not None
        out = recode(data[:cut]) + recode(data[cut:])
        assert (
            out == text.encode("latin-1", errors="replace") == "Conceição ? ?\r\n".encode("latin-1")
        )
