"""A user switches the app to Portuguese, then Spanish, and the dashboard follows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e


def test_a_user_switches_the_dashboard_to_portuguese_then_spanish(
    tablet: Page, live_server: Any, sign_in: Callable[..., None]
) -> None:
    size = tablet.viewport_size or {"width": 0}
    username = f"lia{size['width']}"
    live_server.create_user(username, "reception", display_name="Lia")
    sign_in(tablet, username, live_server.password)

    tablet.goto("/")
    english_heading = tablet.locator("main h1").first.inner_text()
    expect(tablet.locator("[data-nav=dashboard]")).to_have_text("Dashboard")

    tablet.goto("/account/password")
    tablet.get_by_label("Language of the app for me").select_option("pt_BR")
    tablet.get_by_role("button", name="Save language").click()
    expect(tablet.get_by_role("heading", name="Meu idioma")).to_be_visible()

    tablet.goto("/")
    expect(tablet.locator("html")).to_have_attribute("lang", "pt-BR")
    expect(tablet.locator("[data-nav=dashboard]")).to_have_text("Painel")
    expect(tablet.locator("main h1").first).not_to_have_text(english_heading)
    portuguese_heading = tablet.locator("main h1").first.inner_text()
    expect(tablet.get_by_role("button", name="Sair")).to_be_visible()

    tablet.goto("/account/password")
    tablet.get_by_label("Idioma do aplicativo para mim").select_option("es")
    tablet.get_by_role("button", name="Salvar idioma").click()

    tablet.goto("/")
    expect(tablet.locator("html")).to_have_attribute("lang", "es")
    expect(tablet.locator("[data-nav=dashboard]")).to_have_text("Panel")
    expect(tablet.locator("main h1").first).not_to_have_text(portuguese_heading)
    expect(tablet.get_by_role("button", name="Cerrar sesión")).to_be_visible()
