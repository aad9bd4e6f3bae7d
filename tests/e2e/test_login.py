"""Logging in and out in a real browser, and what htmx does when a request is refused."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e


def unique(page: Page, name: str) -> str:
    """One login per tablet size: the server is shared by the whole module."""
    size = page.viewport_size or {"width": 0}
    return f"{name}{size['width']}"


def test_log_in_and_log_out(tablet: Page, live_server: Any) -> None:
    username = unique(tablet, "bea")
    live_server.create_user(username, "reception", display_name="Bea at the desk")

    tablet.goto("/")  # not logged in: sent to the login page
    expect(tablet).to_have_url(f"{live_server.url}/login?next=/")
    tablet.fill("#f-username", username)
    tablet.fill("#f-password", live_server.password)
    tablet.click("button[type=submit]")

    expect(tablet.locator("header.topbar")).to_contain_text("Bea at the desk")
    tablet.get_by_role("button", name="Log out").click()
    expect(tablet).to_have_url(f"{live_server.url}/login")
    tablet.goto("/")
    expect(tablet).to_have_url(f"{live_server.url}/login?next=/")


def test_a_wrong_password_says_so_and_keeps_the_username(tablet: Page, live_server: Any) -> None:
    username = unique(tablet, "carla")
    live_server.create_user(username, "reception")

    tablet.goto("/login")
    tablet.fill("#f-username", username)
    tablet.fill("#f-password", "not the right password")
    tablet.click("button[type=submit]")

    expect(tablet.get_by_role("alert")).to_have_text("Wrong username or password.")
    expect(tablet.locator("#f-username")).to_have_value(username)
    assert "/login" in tablet.url
    expect(tablet.locator("header.topbar")).to_have_count(0)


def test_admin_disables_a_user_in_place(
    tablet: Page, live_server: Any, sign_in: Callable[..., None]
) -> None:
    username = unique(tablet, "dora")
    live_server.create_user(username, "reception")
    sign_in(tablet, live_server.username, live_server.password)

    tablet.goto("/admin/users")
    row = tablet.locator("tr", has_text=username)
    tablet.once("dialog", lambda dialog: dialog.accept())  # "Disable dora…?"
    row.get_by_role("button", name="Disable").click()

    expect(row).to_contain_text("was logged out everywhere")
    expect(row.get_by_role("button", name="Enable")).to_be_visible()
    assert "/admin/users" in tablet.url  # the row was swapped, the page stayed


def test_a_refused_htmx_request_shows_a_toast(
    tablet: Page, live_server: Any, sign_in: Callable[..., None]
) -> None:
    username = unique(tablet, "eva")
    live_server.create_user(username, "reception")
    sign_in(tablet, live_server.username, live_server.password)
    tablet.goto("/admin/users")
    # As if the page had outlived its CSRF token.
    tablet.evaluate("""document.body.setAttribute("hx-headers", '{"x-csrftoken": "stale"}')""")

    row = tablet.locator("tr", has_text=username)
    row.get_by_role("button", name="Change role").click()

    toast = tablet.locator("#toasts .toast-error")
    expect(toast).to_contain_text("This form has expired. Reload the page and try again.")
    expect(row).to_be_visible()  # the row was left as it was


def test_an_htmx_request_after_the_session_ended_goes_to_the_login_page(
    tablet: Page, live_server: Any, sign_in: Callable[..., None]
) -> None:
    sign_in(tablet, live_server.username, live_server.password)
    tablet.goto("/admin/audit")
    tablet.context.clear_cookies()  # the session is gone

    tablet.select_option("#f-action", index=1)  # the filter asks with hx-get

    expect(tablet).to_have_url(re.compile(r"/login\?next=/admin/audit"))
    expect(tablet.locator("#f-username")).to_be_visible()
    expect(tablet.locator("#audit-results")).to_have_count(0)  # not swapped into the table
