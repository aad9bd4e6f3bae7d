"""A client's statement as a page, a PDF and a CSV; a month's statements as a ZIP job."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import shutil
import subprocess
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.admin.services import save_settings
from app.auth.models import User
from app.statements import documents
from app.statements.services import statement

HOSTILE_NAME = '<img src="file:///etc/passwd"> Eve'


def pdf_text(content: bytes, tmp_path: Path, *, layout: bool = False) -> list[str]:
    """The text of each page of a PDF, as poppler's pdftotext reads it."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (Debian's poppler-utils) is not installed")
    path = tmp_path / "statement.pdf"
    path.write_bytes(content)
    args = ["pdftotext", "-enc", "UTF-8"] + (["-layout"] if layout else []) + [str(path), "-"]
    done = subprocess.run(args, capture_output=True, check=True, timeout=60)
    text = done.stdout.decode().replace("\u00a0", " ").replace("\u202f", " ")
    return text.split("\f")[:-1] if text.endswith("\f") else text.split("\f")


@pytest.fixture
async def api(client, login, csrf):  # type: ignore[no-untyped-def]
    """A logged-in admin and a helper that POSTs JSON with the CSRF header."""
    user = await login(client, "admin")
    token = await csrf(client)

    async def post(path: str, body: dict[str, Any]) -> Any:
        response = await client.post(path, json=body, headers={"x-csrftoken": token})
        assert response.status_code in (200, 201), response.text
        return response.json()

    post.user = user  # type: ignore[attr-defined]
    return post


async def charge(
    api: Any, client_id: int, day: str, amount: str, due: str | None = None, **extra: Any
) -> int:
    body = {"client_id": client_id, "amount": amount, "date": day, **extra}
    if due:
        body["due_date"] = due
    return (await api("/api/v1/charges", body))["id"]


async def pay(api: Any, client_id: int, day: str, amount: str, **extra: Any) -> None:
    await api(
        "/api/v1/payments",
        {"client_id": client_id, "amount": amount, "method": "pix", "received_on": day, **extra},
    )


async def february_of_ana(api: Any, make_client: Any) -> int:
    """January leaves Ana owing 50.00; February: two sessions, a partial payment, a top-up."""
    ana = await make_client("Ana Souza", email="ana@example.com")
    await charge(api, ana, "2026-01-20", "50.00", due="2026-01-20")
    first = await charge(api, ana, "2026-02-03", "120.00", due="2026-02-10")
    await charge(api, ana, "2026-02-17", "80.00", due="2026-02-24")
    await pay(api, ana, "2026-02-20", "30.00", charge_ids=[first])
    return ana


async def use_locale(maker: Any, user: User, **changes: str) -> None:
    async with maker() as session:
        await save_settings(session, changes, user, None)


# --- the page ---------------------------------------------------------------------------------


async def test_statement_page_shows_opening_lines_running_balance_open_charges_and_aging(
    api, client, make_client
):
    ana = await february_of_ana(api, make_client)
    page = await client.get(f"/clients/{ana}/statement?from=2026-02-01&to=2026-02-28")
    assert page.status_code == 200
    text = page.text
    assert "Ana Souza" in text and "February 2026" in text
    # Opening -50.00; -120 → -170; -80 → -250; +30 → -220.
    for amount in ("-$50.00", "$120.00", "-$170.00", "-$250.00", "$30.00", "-$220.00"):
        assert amount in text, amount
    assert 'data-total="charged">$200.00' in text
    assert 'data-total="credited">$30.00' in text
    assert 'id="closing-balance">-$220.00' in text
    assert "Amount due:" in text
    # Open on Feb 28: January's 50 (39 days overdue), 90 of the first, all of the second.
    assert 'data-aging="0_30">$170.00' in text
    assert 'data-aging="31_60">$50.00' in text
    assert f"/clients/{ana}/statement.pdf?from=2026-02-01&amp;to=2026-02-28" in text
    assert f"/clients/{ana}/statement.csv?from=2026-02-01&amp;to=2026-02-28" in text


async def test_closing_of_one_month_is_the_opening_of_the_next_on_the_page(
    api, client, make_client
):
    ana = await february_of_ana(api, make_client)
    await pay(api, ana, "2026-03-02", "220.00")
    march = await client.get(f"/clients/{ana}/statement?from=2026-03-01&to=2026-03-31")
    assert re.search(
        r"Opening balance</td>\s*<td></td>\s*<td></td>\s*<td[^>]*>-\$220\.00", march.text
    )
    assert 'id="closing-balance">$0.00' in march.text


async def test_with_nothing_open_the_statement_says_so_without_a_table_of_zeros(
    api, client, make_client
):
    bia = await make_client("Bia Lima")
    session = await charge(api, bia, "2026-03-05", "90.00", due="2026-03-12")
    await pay(api, bia, "2026-03-10", "90.00", charge_ids=[session])
    march = await client.get(f"/clients/{bia}/statement?from=2026-03-01&to=2026-03-31")
    assert "No charges were open on that day." in march.text
    assert "data-aging" not in march.text and "Aging on" not in march.text
    # One charge left open brings the aging back.
    await charge(api, bia, "2026-03-20", "40.00", due="2026-03-27")
    march = await client.get(f"/clients/{bia}/statement?from=2026-03-01&to=2026-03-31")
    assert "No charges were open on that day." not in march.text
    assert 'data-aging="0_30">$40.00' in march.text


async def test_statement_page_defaults_to_the_current_month_so_far(api, client, make_client):
    from app.web.i18n import today

    ana = await make_client()
    page = await client.get(f"/clients/{ana}/statement")
    day = today()
    assert page.status_code == 200
    assert f'value="{day.replace(day=1).isoformat()}"' in page.text
    assert f'value="{day.isoformat()}"' in page.text


async def test_changing_the_period_swaps_only_the_statement_body(api, client, make_client):
    ana = await february_of_ana(api, make_client)
    fragment = await client.get(
        f"/clients/{ana}/statement?from=2026-02-01&to=2026-02-10",
        headers={"HX-Request": "true", "HX-Target": "statement-body"},
    )
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith("{#") is False
    assert 'id="statement-body"' in fragment.text and "<html" not in fragment.text
    assert 'id="closing-balance">-$170.00' in fragment.text


async def test_a_period_that_ends_before_it_starts_is_explained(api, client, make_client):
    ana = await make_client()
    page = await client.get(f"/clients/{ana}/statement?from=2026-03-01&to=2026-02-01")
    assert page.status_code == 422 and "The period ends before it starts." in page.text
    bad = await client.get(f"/clients/{ana}/statement.pdf?from=2026-13-01")
    assert bad.status_code == 422
    assert (await client.get("/clients/999999/statement.csv")).status_code == 404


async def test_accountant_reads_statements_and_files_but_cannot_email_them(
    client, login, csrf, make_client
):
    ana = await make_client(email="ana@example.com")
    await login(client, "accountant")
    page = await client.get(f"/clients/{ana}/statement")
    assert page.status_code == 200 and "E-mail to the client" not in page.text
    assert (await client.get(f"/clients/{ana}/statement.csv")).status_code == 200
    refused = await client.post(
        f"/clients/{ana}/statement/email",
        data={"from": "2026-02-01", "to": "2026-02-28"},
        headers={"x-csrftoken": await csrf(client)},
    )
    assert refused.status_code == 403


# --- the PDF ----------------------------------------------------------------------------------


async def test_pdf_opens_with_the_client_and_totals_in_the_practice_locale(
    api, client, make_client, maker, tmp_path
):
    ana = await february_of_ana(api, make_client)
    await use_locale(
        maker,
        api.user,
        locale="pt_BR",
        currency="BRL",
        language="pt_BR",
        practice_name="Clínica Bem-Estar",
        payment_instructions="Pix: 12.345.678/0001-90",
    )
    response = await client.get(f"/clients/{ana}/statement.pdf?from=2026-02-01&to=2026-02-28")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    assert (
        f"statement-{ana}-ana-souza-2026-02-01-2026-02-28.pdf"
        in (response.headers["content-disposition"])
    )
    text = "\n".join(pdf_text(response.content, tmp_path))
    assert "Ana Souza" in text and "Clínica Bem-Estar" in text
    assert "-R$ 220,00" in text  # closing balance, the pt_BR way
    assert "R$ 200,00" in text and "R$ 30,00" in text  # charged, credited
    assert "-R$ 50,00" in text  # opening balance
    assert f"{ana}-20260201-20260228" in text  # the statement number
    assert "Pix: 12.345.678/0001-90" in text


async def test_hostile_client_name_is_printed_as_text_and_fetches_nothing(
    api, client, make_client, tmp_path, monkeypatch
):
    eve = await make_client(HOSTILE_NAME)
    await charge(api, eve, "2026-02-03", "10.00")
    asked: list[str] = []
    real_fetch = documents.fetch_static

    def spy(url: str) -> tuple[bytes, str]:
        asked.append(url)
        return real_fetch(url)

    monkeypatch.setattr(documents, "fetch_static", spy)
    response = await client.get(f"/clients/{eve}/statement.pdf?from=2026-02-01&to=2026-02-28")
    assert response.status_code == 200 and response.content.startswith(b"%PDF-")
    text = "\n".join(pdf_text(response.content, tmp_path))
    assert HOSTILE_NAME in text
    assert "root:" not in text
    # At most the stylesheet (parsed once per rendering thread), never the file.
    assert set(asked) <= {documents.BASE_URL + "static/css/statement-pdf.css"}
    page = await client.get(f"/clients/{eve}/statement?from=2026-02-01&to=2026-02-28")
    assert "&lt;img src=&#34;file:///etc/passwd&#34;&gt; Eve" in page.text
    assert '<img src="file:///etc/passwd">' not in page.text


async def test_long_statement_repeats_the_header_on_every_page(api, client, make_client, tmp_path):
    ana = await make_client()
    await pay(api, ana, "2026-02-01", "1000.00")
    for n in range(79):
        await charge(
            api,
            ana,
            f"2026-02-{1 + n % 28:02d}",
            "10.00",
            pay_from_credit=True,
            description=f"S{n}",
        )
    response = await client.get(f"/clients/{ana}/statement.pdf?from=2026-02-01&to=2026-02-28")
    pages = pdf_text(response.content, tmp_path, layout=True)
    assert len(pages) >= 2
    header = re.compile(r"Date\s+Description\s+Charged\s+Credited\s+Balance")
    assert all(header.search(page) for page in pages), [page[:300] for page in pages]
    everything = "\n".join(pages)
    assert all(re.search(rf"\bS{n}\b", everything) for n in range(79))
    assert "$210.00" in pages[-1]  # the closing balance, on the last page


# --- the CSV ----------------------------------------------------------------------------------


async def test_csv_reads_back_with_the_same_totals_as_the_statement(
    api, client, make_client, maker
):
    ana = await february_of_ana(api, make_client)
    void_me = await charge(api, ana, "2026-02-25", "15.00")
    await api(f"/api/v1/charges/{void_me}/void", {"reason": "typo"})
    await pay(api, ana, "2026-02-26", "40.00")  # top-up: credit
    await api(f"/api/v1/clients/{ana}/refunds", {"amount": "5.00", "method": "cash"})
    response = await client.get(f"/clients/{ana}/statement.csv?from=2026-02-01&to=2026-12-31")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert list(rows[0]) == list(documents.CSV_COLUMNS)
    async with maker() as session:
        from datetime import date

        st = await statement(session, ana, date(2026, 2, 1), date(2026, 12, 31))

    def cents(text: str) -> int:
        return int(Decimal(text or "0") * 100)

    assert rows[0]["kind"] == "opening_balance" and cents(rows[0]["balance"]) == st.opening_cents
    assert rows[-1]["kind"] == "closing_balance" and cents(rows[-1]["balance"]) == st.closing_cents
    lines = rows[1:-1]
    assert len(lines) == len(st.lines)
    assert sum(cents(r["charged"]) for r in lines) == st.charged_cents
    assert sum(cents(r["credited"]) for r in lines) == st.credited_cents
    assert st.opening_cents - st.charged_cents + st.credited_cents == st.closing_cents
    assert {r["currency"] for r in rows} == {"USD"}
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["date"]) for r in rows)
    assert all(re.fullmatch(r"-?\d+\.\d{2}", r["balance"]) for r in rows)
    assert {"void", "refund", "payment", "charge"} <= {r["kind"] for r in lines}


async def test_csv_text_cells_cannot_run_as_formulas(api, client, make_client):
    mallory = await make_client('=HYPERLINK("http://evil.example","x")')
    for text in ("=1+1", "+SUM(A1)", "-2", "@cmd", "=cmd|' /C calc'!A0", "Plain"):
        await charge(api, mallory, "2026-02-03", "10.00", description=text)
    response = await client.get(f"/clients/{mallory}/statement.csv?from=2026-02-01&to=2026-02-28")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    descriptions = [r["description"] for r in rows[1:-1]]
    assert descriptions == ["'=1+1", "'+SUM(A1)", "'-2", "'@cmd", "'=cmd|' /C calc'!A0", "Plain"]
    assert all(not r["balance"].startswith("'") for r in rows)  # numbers stay numbers
    assert "statement-" in response.headers["content-disposition"]
    assert '"' not in response.headers["content-disposition"].split("filename=")[1].strip('"')


# --- a month's statements as one ZIP ----------------------------------------------------------


async def wait_for_job(client: Any, job_id: int, seconds: float = 240) -> Any:
    """Poll the progress fragment as HTMX does until it says stop (286)."""
    async with asyncio.timeout(seconds):
        while True:
            progress = await client.get(
                f"/statements/jobs/{job_id}/progress", headers={"HX-Request": "true"}
            )
            if progress.status_code == 286:
                return progress
            assert progress.status_code == 200, progress.text
            assert 'hx-trigger="every 1s"' in progress.text
            await asyncio.sleep(0.2)


async def test_accountant_downloads_a_months_statements_as_one_zip(
    api, client, make_client, login, csrf, tmp_path
):
    ana = await february_of_ana(api, make_client)
    bia = await make_client("Beatriz Lima")
    await pay(api, bia, "2026-02-10", "100.00")
    caio = await make_client("Caio Prado")
    await charge(api, caio, "2026-02-28", "60.00")
    dora = await make_client("Dora Reis")
    await charge(api, dora, "2026-03-01", "60.00")  # March: not in February's ZIP

    await login(client, "accountant")
    page = await client.get("/statements?month=2026-02")
    assert page.status_code == 200 and "3 clients have entries in this month" in page.text
    assert "E-mail all statements" not in page.text  # admin only
    # The clients are listed when the list is opened, not with every visit of the page.
    assert "Caio Prado" not in page.text
    assert 'hx-get="/statements/clients?month=2026-02" hx-trigger="toggle once"' in page.text
    listed = (await client.get("/statements/clients?month=2026-02")).text
    assert [n for n in ("Ana Souza", "Beatriz Lima", "Caio Prado", "Dora Reis") if n in listed] == [
        "Ana Souza",
        "Beatriz Lima",
        "Caio Prado",
    ]  # by name; Dora's entry is in March
    assert f"/clients/{caio}/statement?from=2026-02-01&amp;to=2026-02-28" in listed
    assert listed.count("no e-mail") == 2  # Ana has an address
    started = await client.post(
        "/statements/bulk",
        data={"month": "2026-02"},
        headers={"x-csrftoken": await csrf(client)},
        follow_redirects=False,
    )
    assert started.status_code == 303, started.text
    job_url = started.headers["location"]
    job_id = int(job_url.rsplit("/", 1)[1])
    job_page = await client.get(job_url)
    assert job_page.status_code == 200 and "All statements as ZIP" in job_page.text

    done = await wait_for_job(client, job_id)
    assert "3 of 3 statements rendered" in done.text
    assert "hx-trigger" not in done.text
    assert f"/statements/jobs/{job_id}/download" in done.text

    download = await client.get(f"/statements/jobs/{job_id}/download")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/zip"
    assert "statements-my-practice-2026-02.zip" in download.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        names = sorted(archive.namelist())
        assert names == sorted(
            [
                f"statement-{ana}-ana-souza-2026-02-01-2026-02-28.pdf",
                f"statement-{bia}-beatriz-lima-2026-02-01-2026-02-28.pdf",
                f"statement-{caio}-caio-prado-2026-02-01-2026-02-28.pdf",
            ]
        )
        ana_pdf = archive.read(names[0])
    assert ana_pdf.startswith(b"%PDF-")
    text = "\n".join(pdf_text(ana_pdf, tmp_path))
    assert "Ana Souza" in text and "-$220.00" in text

    recent = await client.get("/statements?month=2026-02")
    assert f"/statements/jobs/{job_id}" in recent.text and "Done" in recent.text


async def test_a_month_without_entries_starts_no_job(api, client, csrf):
    refused = await client.post(
        "/statements/bulk",
        data={"month": "2024-01"},
        headers={"x-csrftoken": await csrf(client)},
        follow_redirects=False,
    )
    assert refused.status_code == 422 and "No client has entries" in refused.text
    assert (await client.get("/statements/jobs/424242")).status_code == 404
    assert (await client.get("/statements/jobs/424242/download")).status_code == 404


async def test_the_accountant_downloads_statement_files_with_a_bearer_token(
    client, make_user, make_client, client_for, app
):
    ana = await make_client()
    accountant = await make_user("accountant")
    token = await client.post(
        "/api/v1/auth/token",
        json={"username": accountant.username, "password": "correct horse battery"},
    )
    assert token.status_code == 201, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    async with client_for(app) as fresh:  # no cookies at all
        csv_file = await fresh.get(f"/clients/{ana}/statement.csv", headers=headers)
        assert csv_file.status_code == 200 and csv_file.content.startswith(b"\xef\xbb\xbfdate,")
        pdf_file = await fresh.get(f"/clients/{ana}/statement.pdf", headers=headers)
        assert pdf_file.status_code == 200 and pdf_file.content.startswith(b"%PDF-")
        anonymous = await fresh.get(f"/clients/{ana}/statement.pdf", follow_redirects=False)
        assert anonymous.status_code == 303 and "/login" in anonymous.headers["location"]
