"""The owner opens a client's statement on a tablet, changes the period, and gets the PDF."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_client(live_server: Any) -> tuple[int, str]:
    """A small demo practice (once per module); the client with the most entries."""
    done = live_server.cli("seed-demo", "--clients", "4")
    assert done.returncode == 0, done.stderr
    db_path = live_server.database_url.split(":///", 1)[1]
    with sqlite3.connect(db_path) as conn:
        client_id, name = conn.execute(
            "SELECT c.id, c.name FROM clients c JOIN entries e ON e.client_id = c.id "
            "GROUP BY c.id, c.name ORDER BY count(*) DESC, c.id LIMIT 1"
        ).fetchone()
    return client_id, name


def test_admin_reads_a_statement_changes_the_period_and_opens_the_pdf(
    tablet: Page,
    live_server: Any,
    demo_client: tuple[int, str],
    sign_in: Callable[..., None],
    screenshot: Callable[[str], Path],
) -> None:
    client_id, name = demo_client
    sign_in(tablet, live_server.username, live_server.password)
    last_month_end = date.today().replace(day=1) - timedelta(days=1)
    start = last_month_end.replace(day=1) - timedelta(days=62)
    start = start.replace(day=1)

    tablet.goto(f"/clients/{client_id}/statement")
    expect(tablet.locator("#statement-body h2")).to_contain_text(name)

    tablet.fill("#f-from", start.isoformat())
    tablet.fill("#f-to", last_month_end.isoformat())
    tablet.locator("form.period-picker button[type=submit]").click()
    tablet.wait_for_url(f"**/clients/{client_id}/statement?from={start.isoformat()}*")
    expect(tablet.locator("#statement-body table.lines tbody tr").nth(2)).to_be_visible()
    expect(tablet.locator("#closing-balance")).to_contain_text("R$")
    assert screenshot("statement").stat().st_size > 0

    pdf_link = tablet.locator("#statement-body a[href*='statement.pdf']")
    response = tablet.request.get(pdf_link.get_attribute("href") or "")
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.body().startswith(b"%PDF-")


def test_the_months_clients_are_listed_once_the_list_is_opened(
    tablet: Page,
    live_server: Any,
    demo_client: tuple[int, str],
    sign_in: Callable[..., None],
) -> None:
    sign_in(tablet, live_server.username, live_server.password)
    tablet.goto("/statements")  # last month
    lead = tablet.locator("#month-clients").inner_text()
    count = int(lead.split()[0])
    assert count > 0, lead
    listing = tablet.locator("details.month-clients")
    links = listing.locator("a[href*='/statement?from=']")
    expect(links).to_have_count(0)

    listing.locator("summary").click()
    expect(links).to_have_count(count)
    links.first.click()
    expect(tablet.locator("#statement-body h2")).to_be_visible()
