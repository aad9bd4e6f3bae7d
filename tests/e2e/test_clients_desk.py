"""At the desk on a tablet: add a client, then find them by typing part of the name, no accents."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e


def _width(page: Page) -> int:
    return (page.viewport_size or {"width": 0})["width"]


def test_reception_adds_a_client_and_finds_them_typing_without_accents(
    tablet: Page,
    live_server: Any,
    sign_in: Callable[..., None],
    screenshot: Callable[[str], Path],
) -> None:
    width = _width(tablet)  # one login and one client per tablet size, on one shared server
    username = f"desk{width}"
    live_server.create_user(username, "reception")
    sign_in(tablet, username)

    tablet.get_by_role("link", name="Clients").first.tap()
    tablet.get_by_role("link", name="New client").tap()
    tablet.fill("#f-name", f"Conceição Brandão {width}")
    tablet.fill("#f-phone", "+55 11 98765-4321")
    tablet.fill("#f-email", f"conceicao{width}@example.com")
    tablet.get_by_role("button", name="Save").tap()

    expect(tablet.get_by_role("heading", level=1)).to_contain_text(f"Conceição Brandão {width}")
    expect(tablet.locator("#main").get_by_role("link", name="Register session")).to_be_visible()
    client_url = tablet.url
    screenshot("client-page")
    assert re.search(r"/clients/\d+$", client_url)

    tablet.goto("/clients")
    search = tablet.locator("#client-q")
    expect(search).to_be_focused()
    search.press_sequentially(f"brandao {width}", delay=40)

    row = tablet.locator("#client-results a.client-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(f"Conceição Brandão {width}")
    # The URL follows the search, so refresh and back work.
    expect(tablet).to_have_url(re.compile(rf"/clients\?q=brandao(\+|%20){width}$"))
    screenshot("search")

    row.tap()
    expect(tablet).to_have_url(client_url)

    # Back restores the search as it was.
    tablet.go_back()
    expect(tablet.locator("#client-results a.client-row")).to_contain_text("Brandão")


def test_same_name_is_warned_before_a_second_client_is_added(
    tablet: Page, live_server: Any, sign_in: Callable[..., None]
) -> None:
    width = _width(tablet)
    username = f"twin{width}"
    live_server.create_user(username, "reception")
    sign_in(tablet, username)

    name = f"Gêmeo Silva {width}"
    tablet.goto("/clients/new")
    tablet.fill("#f-name", name)
    tablet.get_by_role("button", name="Save").tap()
    expect(tablet.get_by_role("heading", level=1)).to_contain_text(name)

    tablet.goto("/clients/new")
    tablet.fill("#f-name", f"gemeo  SILVA {width}")
    tablet.get_by_role("button", name="Save").tap()

    warning = tablet.locator("#duplicate-warning")
    expect(warning).to_be_visible()
    expect(warning.get_by_role("link", name=name)).to_be_visible()
    tablet.get_by_role("button", name="Create anyway").tap()
    expect(tablet.get_by_role("heading", level=1)).to_contain_text(f"gemeo SILVA {width}")

    tablet.goto(f"/clients?q=gemeo+{width}")
    expect(tablet.locator("#client-results a.client-row")).to_have_count(2)
