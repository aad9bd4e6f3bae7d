"""The owner brings a spreadsheet in on a tablet: upload, check the columns, dry run, import."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e


def spreadsheet(tag: str) -> bytes:
    """Clients named after ``tag``: each run (one per tablet size) imports its own."""
    return (
        "Nome;Data;Valor cobrado;Valor pago;Forma de pagamento\n"
        f"Marina Alves {tag};05/01/2026;150,00;150,00;Pix\n"
        f"Marina Alves {tag};12/01/2026;150,00;;\n"
        f"Otávio Reis {tag};13/01/2026;=1+2;;\n"
    ).encode()


def settled(page: Page) -> None:
    """Wait until HTMX has settled the last swap.

    HTMX wires up swapped-in content when it settles (20 ms later): a change
    made by the test inside that window would reach no handler and be lost.
    """
    expect(page.locator(".htmx-settling, .htmx-request")).to_have_count(0)


def test_owner_uploads_a_spreadsheet_dry_runs_it_and_imports_it(
    tablet: Page,
    live_server: Any,
    sign_in: Callable[..., None],
    screenshot: Callable[[str], Path],
) -> None:
    sign_in(tablet, live_server.username, live_server.password)
    tablet.goto("/imports")
    tablet.set_input_files(
        "#f-file",
        {
            "name": "planilha.csv",
            "mimeType": "text/csv",
            "buffer": spreadsheet(uuid.uuid4().hex[:6]),
        },
    )
    tablet.locator("#upload-form button[type=submit]").click()
    tablet.wait_for_url("**/imports/*")
    expect(tablet.locator("#f-col_2")).to_have_value("charge_amount")

    tablet.locator("#import-work .actions button").click()
    expect(tablet.locator("#dry-run")).to_be_visible()
    expect(tablet.locator("#line-4")).to_contain_text("formula")
    expect(tablet.locator("[data-testid=invalid]")).to_have_text("1")
    settled(tablet)

    # Changing a column's meaning runs the dry run again by itself.
    tablet.select_option("#f-col_3", "ignore")
    expect(tablet.locator("[data-testid=new-payments]")).to_have_text("$0.00")
    settled(tablet)
    tablet.select_option("#f-col_3", "payment_amount")
    expect(tablet.locator("#line-2")).to_contain_text("payment")
    screenshot("import-dry-run")
    settled(tablet)

    tablet.check("input[name=skip_invalid]")
    tablet.locator("#import-button").click()
    expect(tablet.locator("#import-done")).to_contain_text("1 new clients")
