"""The shortest story: someone at the desk logs in on a tablet and sees the app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e


def test_admin_logs_in_on_a_tablet_and_sees_the_dashboard(
    tablet: Page,
    live_server: Any,
    sign_in: Callable[..., None],
    screenshot: Callable[[str], Path],
) -> None:
    sign_in(tablet, live_server.username, live_server.password)

    expect(tablet.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(tablet.locator("header.topbar")).to_contain_text(live_server.username)
    assert screenshot("dashboard").stat().st_size > 0


def test_a_new_reception_login_sees_her_own_name_in_the_top_bar(
    tablet: Page, live_server: Any, sign_in: Callable[..., None]
) -> None:
    size = tablet.viewport_size or {"width": 0}
    username = f"rita{size['width']}"  # one login per tablet size, on one shared server
    live_server.create_user(username, "reception", display_name="Rita Reception")

    sign_in(tablet, username)

    expect(tablet.locator("header.topbar")).to_contain_text("Rita Reception")


def test_a_wrong_password_keeps_you_on_the_login_page(tablet: Page, live_server: Any) -> None:
    tablet.goto("/login")
    tablet.fill("#f-username", live_server.username)
    tablet.fill("#f-password", "not the right password")
    tablet.click("button[type=submit]")

    expect(tablet.get_by_role("alert")).to_be_visible()
    assert "/login" in tablet.url
