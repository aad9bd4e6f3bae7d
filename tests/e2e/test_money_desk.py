"""Reception and the owner at a tablet: the money screens, clicked as people click them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e


@contextmanager
def api(live_server: Any) -> Iterator[httpx.Client]:
    """An API client with the admin's bearer token, to set the scene quickly."""
    with httpx.Client(base_url=live_server.url, timeout=20) as http:
        token = http.post(
            "/api/v1/auth/token",
            json={"username": live_server.username, "password": live_server.password},
        ).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        yield http


def new_client(http: httpx.Client, name: str) -> int:
    response = http.post("/api/v1/clients", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def choose_client(page: Page, typed: str, name: str) -> None:
    page.fill("#f-client-q", typed)
    page.get_by_role("option", name=re.compile(re.escape(name))).click()
    expect(page.locator("#client-box .chosen-name")).to_have_text(name)


def test_top_up_then_register_a_session_paid_from_credit(
    tablet: Page, live_server: Any, sign_in: Callable[..., None], screenshot: Callable[[str], Path]
) -> None:
    width = (tablet.viewport_size or {"width": 0})["width"]
    name = f"João Conceição {width}"
    with api(live_server) as http:
        new_client(http, name)
    sign_in(tablet, live_server.username, live_server.password)

    # Top-up: typing part of the name without its accents finds the client, and
    # the balance and credit show before any amount is confirmed.
    tablet.goto("/payments/new")
    choose_client(tablet, f"conceicao {width}", name)
    expect(tablet.get_by_test_id("balance")).to_have_text("$0.00")
    expect(tablet.get_by_test_id("credit")).to_have_text("$0.00")
    screenshot("topup-balance-before-amount")
    tablet.fill("#f-amount", "100")
    tablet.get_by_text("Pix", exact=True).click()
    tablet.get_by_role("button", name="Record top-up").click()
    expect(tablet.get_by_test_id("receipt-total")).to_have_text("$100.00")
    expect(tablet.get_by_test_id("credit")).to_have_text("$100.00")

    # Register a session paid from that credit.
    tablet.goto("/charges/new")
    choose_client(tablet, "joao", name)
    expect(tablet.get_by_test_id("credit")).to_have_text("$100.00")
    tablet.fill("#f-amount", "60")
    tablet.get_by_role("button", name="Register using credit").click()
    expect(tablet.get_by_test_id("credit")).to_have_text("$40.00")
    expect(tablet.get_by_test_id("balance")).to_have_text("$40.00")
    screenshot("session-paid-from-credit")


def test_short_credit_is_refused_with_a_message_at_the_amount(
    tablet: Page, live_server: Any, sign_in: Callable[..., None]
) -> None:
    width = (tablet.viewport_size or {"width": 0})["width"]
    name = f"Bruno Sem Crédito {width}"
    with api(live_server) as http:
        new_client(http, name)
    sign_in(tablet, live_server.username, live_server.password)
    tablet.goto("/charges/new")
    choose_client(tablet, f"credito {width}", name)
    tablet.fill("#f-amount", "60")
    tablet.get_by_role("button", name="Register using credit").click()
    expect(tablet.get_by_role("alert")).to_contain_text("Not enough credit")
    expect(tablet.get_by_role("alert")).to_contain_text("Nothing was recorded")


def test_toggle_a_row_inline_then_batch_confirm_three(
    tablet: Page, live_server: Any, sign_in: Callable[..., None], screenshot: Callable[[str], Path]
) -> None:
    width = (tablet.viewport_size or {"width": 0})["width"]
    with api(live_server) as http:
        client_id = new_client(http, f"Carla Lote {width}")
        for day in ("2026-02-03", "2026-02-10", "2026-02-17", "2026-02-24"):
            r = http.post(
                "/api/v1/charges", json={"client_id": client_id, "amount": "50.00", "date": day}
            )
            assert r.status_code == 201, r.text
    sign_in(tablet, live_server.username, live_server.password)
    tablet.goto(f"/charges?client_id={client_id}")
    rows = tablet.locator("tr.charge-row")
    expect(rows).to_have_count(4)

    # Inline: only the first row changes; the page is not reloaded.
    tablet.evaluate("window.__same_page = true")
    rows.nth(0).get_by_role("button", name="Mark paid").click()
    expect(rows.nth(0).locator(".status")).to_have_text("Paid")
    expect(rows.nth(0).get_by_role("button", name="Back to open")).to_be_visible()
    assert tablet.evaluate("window.__same_page") is True
    screenshot("row-toggled")

    for i in (1, 2, 3):
        rows.nth(i).locator('input[name="ids"]').check()
    tablet.get_by_role("button", name="Confirm payment").click()
    expect(tablet.locator(".toast")).to_contain_text("3 charges marked paid")
    # The table reloads itself: nothing of this client is left unpaid.
    expect(tablet.locator("tr.charge-row")).to_have_count(0)
    with api(live_server) as http:
        listed = http.get(f"/api/v1/charges?client_id={client_id}").json()
    assert [c["status"] for c in listed["items"]] == ["paid"] * 4
    screenshot("batch-confirmed")
