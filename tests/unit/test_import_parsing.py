"""Reading a spreadsheet's CSV: encodings, delimiters, header names, amounts, dates, formulas."""

from __future__ import annotations

import re
from datetime import date

import pytest

from app.imports import parsing
from app.imports.parsing import CellError, Options, read_line

MAX = 10_000_000


def test_utf8_with_and_without_bom_and_windows_1252_are_all_read() -> None:
    assert parsing.decode("Conceição".encode()) == ("Conceição", "utf-8")
    assert parsing.decode(b"\xef\xbb\xbf" + "Conceição".encode()) == ("Conceição", "utf-8-sig")
    assert parsing.decode("Conceição".encode("cp1252")) == ("Conceição", "cp1252")


def test_semicolon_file_with_decimal_commas_is_read_as_semicolon_separated() -> None:
    text = "Nome;Valor;Data\nAna;150,00;10/01/2026\nBruno;80,50;11/01/2026\n"
    assert parsing.detect_delimiter(text) == ";"


def test_comma_and_tab_files_are_recognised() -> None:
    assert parsing.detect_delimiter("name,amount,date\nAna,150.00,2026-01-10\n") == ","
    assert parsing.detect_delimiter("name\tamount\nAna\t150.00\n") == "tab"


def test_rows_keep_the_line_they_start_on_and_skip_empty_ones() -> None:
    text = 'name,notes\nAna,"two\nlines"\n\n,\nBruno,x\n'
    assert parsing.read_rows(text, ",") == [
        (1, ["name", "notes"]),
        (2, ["Ana", "two\nlines"]),
        (6, ["Bruno", "x"]),
    ]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            ["Nome", "Telefone", "Data", "Valor cobrado", "Valor pago", "Forma de pagamento"],
            ["name", "phone", "date", "charge_amount", "payment_amount", "method"],
        ),
        (
            ["Nombre", "Fecha", "Importe", "Tipo", "Correo"],
            ["name", "date", "amount", "kind", "email"],
        ),
        (
            ["Client", "E-mail", "Date", "Amount paid", "Notes", "Whatever"],
            ["name", "email", "date", "payment_amount", "notes", "ignore"],
        ),
    ],
)
def test_columns_are_guessed_from_english_portuguese_and_spanish_headers(
    headers: list[str], expected: list[str]
) -> None:
    assert parsing.guess_mapping(headers) == expected


def test_decimal_mark_is_detected_from_the_amounts() -> None:
    assert parsing.detect_decimal_mark(["150,00", "1.234,50", "80"], ".") == ","
    assert parsing.detect_decimal_mark(["150.00", "1,234.50"], ",") == "."
    assert parsing.detect_decimal_mark(["150", "80"], ",") == ","


def test_decimal_comma_and_decimal_point_give_the_same_cents() -> None:
    assert parsing.parse_amount_cell("1.234,50", ",", MAX) == 123450
    assert parsing.parse_amount_cell("R$ 1.234,50", ",", MAX) == 123450
    assert parsing.parse_amount_cell("1,234.50", ".", MAX) == 123450
    assert parsing.parse_amount_cell("150", ".", MAX) == 15000
    assert parsing.parse_amount_cell("0,00", ",", MAX) is None  # an unpaid session's "paid" cell
    assert parsing.parse_amount_cell("", ",", MAX) is None


@pytest.mark.parametrize("cell", ["abc", "-10,00", "1.2.3", "10.005"])
def test_bad_amounts_are_refused_with_the_cell_in_the_message(cell: str) -> None:
    with pytest.raises(CellError, match=re.escape(cell)):
        parsing.parse_amount_cell(cell, ".", MAX)


def test_an_amount_above_the_practice_maximum_is_refused() -> None:
    with pytest.raises(CellError, match="maximum"):
        parsing.parse_amount_cell("2000,00", ",", 100_000)


def test_day_first_month_first_and_iso_dates() -> None:
    assert parsing.parse_date_cell("31/01/2026", "dmy") == date(2026, 1, 31)
    assert parsing.parse_date_cell("01/31/2026", "mdy") == date(2026, 1, 31)
    assert parsing.parse_date_cell("2026-01-31", "dmy") == date(2026, 1, 31)
    assert parsing.parse_date_cell("2026-01-31 10:00:00", "iso") == date(2026, 1, 31)
    assert parsing.parse_date_cell("05.02.26", "dmy") == date(2026, 2, 5)


@pytest.mark.parametrize(
    ("cell", "fmt"),
    [("31/02/2026", "dmy"), ("13/13/2026", "mdy"), ("yesterday", "dmy"), ("31/01/2026", "iso")],
)
def test_wrong_dates_are_refused(cell: str, fmt: str) -> None:
    with pytest.raises(CellError):
        parsing.parse_date_cell(cell, fmt)


def test_date_format_is_detected_from_days_above_twelve() -> None:
    assert parsing.detect_date_format(["2026-01-05", "2026-02-10"], "dmy") == "iso"
    assert parsing.detect_date_format(["05/01/2026", "25/01/2026"], "mdy") == "dmy"
    assert parsing.detect_date_format(["01/25/2026", "02/05/2026"], "dmy") == "mdy"
    assert parsing.detect_date_format(["05/01/2026"], "dmy") == "dmy"


@pytest.mark.parametrize(
    "cell", ["=1+2", '=HYPERLINK("http://x")', "@SUM(A1)", "+cmd|' /C calc'!A0", "-2+3"]
)
def test_formula_cells_are_recognised(cell: str) -> None:
    assert parsing.is_formula(cell)


@pytest.mark.parametrize("cell", ["+55 11 99999-0000", "-12,50", "Ana", "150,00", ""])
def test_numbers_and_phones_are_not_formulas(cell: str) -> None:
    assert not parsing.is_formula(cell)


def test_a_line_with_a_formula_is_invalid_and_the_formula_is_not_kept() -> None:
    options = Options(["name", "date", "charge_amount"], date_format="dmy")
    line = read_line(3, ['=HYPERLINK("http://evil")', "10/01/2026", "150,00"], options, MAX, "cash")
    assert line.name == ""
    assert any("formula" in e for e in line.errors)


def test_a_line_reads_charge_and_payment_columns_and_the_payment_method() -> None:
    options = Options(
        ["name", "date", "charge_amount", "payment_amount", "method"], date_format="dmy"
    )
    line = read_line(
        2, ["  Ana   Souza ", "10/01/2026", "150,00", "100,00", "PIX"], options, MAX, "cash"
    )
    assert line.errors == []
    assert (line.name, line.name_key) == ("Ana Souza", "ana souza")
    assert (line.day, line.charge_cents, line.payment_cents) == (date(2026, 1, 10), 15000, 10000)
    assert line.method == "pix"


def test_a_kind_column_says_whether_the_amount_is_a_session_or_a_payment() -> None:
    options = Options(["name", "date", "kind", "amount"], decimal_mark=".", date_format="iso")
    session = read_line(2, ["Ana", "2026-01-10", "Sessão", "150.00"], options, MAX, "cash")
    payment = read_line(3, ["Ana", "2026-01-11", "Pagamento", "150.00"], options, MAX, "cash")
    unknown = read_line(4, ["Ana", "2026-01-12", "Refund?", "10.00"], options, MAX, "cash")
    assert (session.charge_cents, session.payment_cents) == (15000, None)
    assert (payment.charge_cents, payment.payment_cents) == (None, 15000)
    assert unknown.errors


def test_a_line_without_name_or_with_money_but_no_date_is_invalid() -> None:
    options = Options(["name", "date", "charge_amount"])
    assert read_line(2, ["", "10/01/2026", "10"], options, MAX, "cash").errors
    assert read_line(3, ["Ana", "", "10"], options, MAX, "cash").errors
    assert read_line(4, ["Ana", "", ""], options, MAX, "cash").errors == []
