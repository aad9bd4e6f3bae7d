"""Statement documents without a database: the fetcher's refusals, numbers, names, e-mail."""

from __future__ import annotations

import shutil
import subprocess
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.config import load_settings
from app.statements import documents, mail
from app.statements.documents import Letterhead, RefusedURL, StatementDocument, fetch_static
from app.statements.services import Line, OpenCharge, Statement
from app.web.i18n import Formatting

PT_BR = Formatting(language="pt_BR", locale="pt_BR", currency="BRL", timezone="America/Sao_Paulo")
STYLESHEET = documents.BASE_URL + "static/css/statement-pdf.css"


def sample(name: str = "Ana Souza", lines: int = 3) -> Statement:
    st = Statement(7, name, date(2026, 2, 1), date(2026, 2, 28), -5000)
    balance = st.opening_cents
    for n in range(lines):
        amount = -12000 if n % 2 == 0 else 8000
        balance += amount
        kind = "charge" if amount < 0 else "payment"
        st.lines.append(Line(n + 1, date(2026, 2, n + 2), kind, f"Sessão {n}", amount, balance))
    st.closing_cents = balance
    st.open_charges.append(
        OpenCharge(1, date(2026, 1, 5), date(2026, 1, 10), "Terapia", 12000, 4000, 49)
    )
    st.aging_cents["31_60"] = 4000
    return st


def letterhead(fmt: Formatting = PT_BR) -> Letterhead:
    return Letterhead("Clínica Bem-Estar", "Rua das Flores, 123", "Pix: 123", None, fmt)


def pdf_text(content: bytes, tmp_path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (Debian's poppler-utils) is not installed")
    path = tmp_path / "doc.pdf"
    path.write_bytes(content)
    done = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True)
    return done.stdout.decode().replace("\u00a0", " ")


# --- the fetcher ------------------------------------------------------------------------------


def test_the_pdf_fetcher_serves_the_apps_own_stylesheet():
    body, media_type = fetch_static(STYLESHEET)
    assert media_type == "text/css" and b"@page" in body


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "http://127.0.0.1:1/x.css",
        "https://example.com/static/css/statement-pdf.css",
        documents.BASE_URL + "etc/passwd",
        documents.BASE_URL + "static/../../../../etc/passwd",
        documents.BASE_URL + "static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        documents.BASE_URL + "static/css/missing.css",
        "https://saldo.invalid@example.com/static/css/statement-pdf.css",
        "ftp://saldo.invalid/static/css/statement-pdf.css",
    ],
)
def test_the_pdf_fetcher_refuses_everything_else(url):
    with pytest.raises(RefusedURL):
        fetch_static(url)


def test_data_urls_are_decoded_without_fetching_anything():
    body, media_type = fetch_static("data:text/plain;base64,aGVsbG8=")
    assert (body, media_type) == (b"hello", "text/plain")


def test_markup_that_asks_for_local_files_gets_nothing(tmp_path, monkeypatch):
    """Even HTML that is not escaped (never a client's name) cannot make WeasyPrint read a file."""
    from weasyprint import HTML

    asked: list[tuple[str, str]] = []

    def spy(url: str) -> tuple[bytes, str]:
        try:
            found = fetch_static(url)
        except RefusedURL:
            asked.append((url, "refused"))
            raise
        asked.append((url, "served"))
        return found

    monkeypatch.setattr(documents, "fetch_static", spy)
    html = (
        '<link rel="stylesheet" href="http://127.0.0.1:1/evil.css">'
        '<p>before</p><img src="file:///etc/passwd"><iframe src="file:///etc/hostname"></iframe>'
        '<object data="file:///etc/passwd"></object><p>after</p>'
    )
    fetcher = documents._fetcher_class()()
    content = HTML(string=html, base_url=documents.BASE_URL, url_fetcher=fetcher).write_pdf()
    text = pdf_text(content, tmp_path)
    assert "before" in text and "after" in text and "root:" not in text
    assert asked and all(outcome == "refused" for _url, outcome in asked)
    assert {url for url, _outcome in asked} >= {"file:///etc/passwd", "http://127.0.0.1:1/evil.css"}


# --- numbers, names, periods ------------------------------------------------------------------


def test_statement_number_and_file_name_are_deterministic_and_safe():
    first = StatementDocument(
        sample('<img src="x"> Zoë/../../etc'), letterhead(), datetime.now(UTC)
    )
    again = StatementDocument(
        sample('<img src="x"> Zoë/../../etc'), letterhead(), datetime(2020, 1, 1, tzinfo=UTC)
    )
    assert first.number == again.number == "7-20260201-20260228"
    assert first.filename("pdf") == "statement-7-img-src-x-zoe-etc-2026-02-01-2026-02-28.pdf"
    nameless = StatementDocument(sample("东京"), letterhead(), datetime.now(UTC))
    assert nameless.filename("csv") == "statement-7-client-2026-02-01-2026-02-28.csv"


def test_a_whole_month_is_named_by_its_month():
    assert documents.period_label(date(2026, 2, 1), date(2026, 2, 28), PT_BR) == "fevereiro de 2026"
    english = Formatting()
    assert documents.period_label(date(2026, 2, 1), date(2026, 2, 28), english) == "February 2026"
    assert documents.period_label(date(2026, 2, 3), date(2026, 3, 10), english) == (
        "Feb 3, 2026 – Mar 10, 2026"
    )


# --- rendering --------------------------------------------------------------------------------


def test_pdf_speaks_the_practice_language_and_locale(tmp_path):
    content = documents.render_pdf(StatementDocument(sample(), letterhead(), datetime.now(UTC)))
    text = pdf_text(content, tmp_path)
    assert "Clínica Bem-Estar" in text and "Ana Souza" in text
    assert "-R$ 210,00" in text  # closing: -50 -120 +80 -120
    assert "Pix: 123" in text and "7-20260201-20260228" in text


def long_statement(lines: int) -> Statement:
    """Several pages: a name that wraps, descriptions of one to three lines."""
    st = Statement(8, "Maria Aparecida " * 12, date(2026, 1, 1), date(2026, 3, 31), 0)
    for n in range(lines):
        amount = -12000 if n % 2 == 0 else 8000
        st.closing_cents += amount
        kind = "charge" if amount < 0 else "payment"
        text = "Sessão de terapia de casal, 90 minutos " * (n % 3 + 1)
        st.lines.append(
            Line(n + 1, date(2026, 1, 1) + timedelta(days=n), kind, text, amount, st.closing_cents)
        )
    return st


def _laid_out(html_class: type, doc: StatementDocument) -> tuple[list[tuple], Any]:
    """Every box of every page with its place, size, text and every computed value."""
    from weasyprint.css.properties import INITIAL_VALUES

    setup = documents._weasyprint_setup()
    html = html_class(string=documents.pdf_html(doc), base_url=documents.BASE_URL)
    rendered = html.render(stylesheets=[setup.stylesheet], font_config=setup.font_config)

    def value(style: Any, name: str) -> str:
        try:
            return repr(style[name])
        except KeyError:  # a shorthand-only name WeasyPrint never computes
            return "-"

    boxes = [
        (
            type(box).__name__, box.element_tag, getattr(box, "text", None),
            round(box.position_x, 3), round(box.position_y, 3),
            round(box.width or 0, 3), round(box.height or 0, 3),
            tuple(value(box.style, name) for name in sorted(INITIAL_VALUES)),
        )
        for page in rendered.pages
        for box in page._page_box.descendants()
    ]  # fmt: skip
    return boxes, (rendered.make_bookmark_tree(), vars(rendered.metadata))


# Statements that take every branch of pdf.html: open charges and aging; five pages
# with a logo and lines of address and instructions; nothing at all.
LAYOUTS = {
    "open-charges": StatementDocument(sample(), letterhead(), datetime(2026, 3, 1, tzinfo=UTC)),
    "five-pages-logo": StatementDocument(
        long_statement(70),
        Letterhead(
            "Clínica", "Rua A, 1\nSão Paulo", "Pix: 1\nBanco 2", "/static/img/favicon.svg", PT_BR
        ),
        datetime(2026, 4, 1, tzinfo=UTC),
    ),
    "empty": StatementDocument(
        long_statement(0), Letterhead("C", "", "", None, PT_BR), datetime.now(UTC)
    ),
}
# Not XML (a form feed pasted into a name): WeasyPrint's own parser reads it.
NOT_XML = StatementDocument(sample("Ana\x0cSouza"), letterhead(), datetime.now(UTC))


@pytest.mark.parametrize("doc", [*LAYOUTS.values(), NOT_XML], ids=[*LAYOUTS, "not-xml"])
def test_the_statements_user_agent_sheet_lays_out_as_weasyprints_own(doc):
    """Same boxes, places, sizes and computed values, same outline and metadata, page by page."""
    from weasyprint import HTML

    lean = documents._html_class()
    for hook in ("_ua_stylesheets", "wrapper_element", "etree_element"):
        assert hook in vars(HTML) or hook in vars(HTML(string="")), f"WeasyPrint has no {hook}"
    assert lean(string="<p>x</p>")._ua_stylesheets() == [documents._weasyprint_setup().user_agent]
    ours, about = _laid_out(lean, doc)
    theirs, their_about = _laid_out(HTML, doc)
    assert len(ours) == len(theirs) > 100
    for mine, weasyprints in zip(ours, theirs, strict=True):
        assert mine == weasyprints
    assert about == their_about


@pytest.mark.parametrize("doc", LAYOUTS.values(), ids=LAYOUTS)
def test_statements_are_xml_so_expat_reads_them(doc):
    """WeasyPrint's own HTML5 parser took 3.6 ms of a one-page statement; expat takes 0.06."""
    from xml.etree import ElementTree

    root = ElementTree.fromstring(documents.pdf_html(doc))  # noqa: S314 (our own output)
    assert root.tag == "html" and root.find("body/header") is not None


def test_a_name_that_is_not_xml_still_prints(tmp_path):
    assert "Ana" in pdf_text(documents.render_pdf(NOT_XML), tmp_path)


async def test_single_pdfs_render_off_the_event_loop(monkeypatch):
    threads: list[str] = []

    def fake_render(doc: StatementDocument) -> bytes:
        threads.append(threading.current_thread().name)
        return b"%PDF-fake"

    monkeypatch.setattr(documents, "render_pdf", fake_render)
    doc = StatementDocument(sample(), letterhead(), datetime.now(UTC))
    assert await documents.pdf(doc) == b"%PDF-fake"
    assert threads and threads[0].startswith("saldo-pdf")


# --- e-mail -----------------------------------------------------------------------------------


def test_statement_email_is_in_the_practice_language_with_the_pdf(monkeypatch):
    monkeypatch.delenv("SMTP_FROM", raising=False)
    doc = StatementDocument(sample("Ana\r\nBcc: x@example.com"), letterhead(), datetime.now(UTC))
    message = mail.statement_message(doc, b"%PDF-1.7 fake", "ana@example.com", "a@b.example")
    assert "\n" not in message["To"] and "Bcc" not in message
    assert message["Subject"].startswith("Clínica Bem-Estar")
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "R$ 210,00" in body.replace("\u00a0", " ") and "Pix: 123" in body
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename().endswith("-2026-02-01-2026-02-28.pdf")


def test_smtp_is_configured_by_its_host(monkeypatch, tmp_path):
    monkeypatch.setenv("SALDO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SECRET_KEY", "x")
    monkeypatch.delenv("SMTP_HOST", raising=False)
    assert not mail.smtp_configured(load_settings())
    monkeypatch.setenv("SMTP_HOST", "mail.example")
    assert mail.smtp_configured(load_settings())
