"""The admin's settings page: values typed the locale's way, reasons next to each field,
nothing written on bad input, every change audited. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin import services as admin
from app.audit import AuditEvent

Csrf = Callable[[AsyncTestClient[Any]], Awaitable[str]]

VALID = {
    "practice_name": "Clínica Sol",
    "practice_address": "Rua das Flores, 10\nSão Paulo",
    "currency": "brl",
    "locale": "pt_br",
    "language": "pt_BR",
    "timezone": "America/Sao_Paulo",
    "phone_country_code": "55",
    "max_amount": "5,000.00",  # typed the current (en_US) way
    "due_days": "10",
    "payment_instructions": "Pix: 12.345.678/0001-90",
}


# The settings this page owns; later issues add their own to PracticeSettings.
FIELDS = {*VALID, "max_amount_cents"} - {"max_amount"}


@pytest.fixture
def client(client: AsyncTestClient[Litestar]) -> AsyncTestClient[Litestar]:
    client.follow_redirects = False
    return client


async def stored(maker: async_sessionmaker[AsyncSession]) -> admin.PracticeSettings:
    async with maker() as db:
        return await admin.load_settings(db)


async def settings_events(maker: async_sessionmaker[AsyncSession]) -> list[AuditEvent]:
    async with maker() as db:
        query = select(AuditEvent).where(AuditEvent.action == "settings_changed")
        return list(await db.scalars(query))


async def post_settings(client: AsyncTestClient[Any], csrf: Csrf, **changes: str) -> Any:
    return await client.post(
        "/admin/settings", data={**VALID, **changes, "_csrf_token": await csrf(client)}
    )


async def test_settings_page_shows_the_current_values(
    client: AsyncTestClient[Litestar], login: Any
) -> None:
    await login(client, "admin")

    page = (await client.get("/admin/settings")).text

    assert 'name="practice_name" type="text" value="My practice"' in page
    assert 'value="100,000.00"' in page  # the maximum, in the locale's own way
    assert "<option selected>UTC</option>" in page
    assert '<option value="en" selected>English</option>' in page


async def test_saving_valid_settings_stores_them_and_audits_the_changes(
    client: AsyncTestClient[Litestar], login: Any, csrf: Csrf, maker: Any
) -> None:
    admin_user = await login(client, "admin")

    response = await post_settings(client, csrf)

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/settings?saved=true"
    saved = await stored(maker)
    assert {key: value for key, value in asdict(saved).items() if key in FIELDS} == {
        "practice_name": "Clínica Sol",
        "practice_address": "Rua das Flores, 10\nSão Paulo",
        "currency": "BRL",
        "locale": "pt_BR",
        "language": "pt_BR",
        "timezone": "America/Sao_Paulo",
        "phone_country_code": "55",
        "max_amount_cents": 500_000,
        "due_days": 10,
        "payment_instructions": "Pix: 12.345.678/0001-90",
    }
    [event] = await settings_events(maker)
    assert event.username == admin_user.username
    assert json.loads(event.detail)["changes"]["currency"] == "BRL"
    page = await client.get("/admin/settings?saved=true")
    assert "Configurações salvas." in page.text  # the practice now speaks Portuguese
    # The new locale shows the maximum its own way.
    assert 'value="5.000,00"' in page.text


async def test_saving_the_same_values_again_records_no_change(
    client: AsyncTestClient[Litestar], login: Any, csrf: Csrf, maker: Any
) -> None:
    await login(client, "admin")
    await post_settings(client, csrf)
    await post_settings(client, csrf, max_amount="5.000,00")  # the new locale's way now

    assert (await stored(maker)).max_amount_cents == 500_000
    assert len(await settings_events(maker)) == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("practice_name", "   ", "Enter the practice"),
        ("practice_name", "x" * 201, "at most 200 characters"),
        ("currency", "ZZZ", "Unknown currency code."),
        ("currency", "EURO", "three-letter"),
        ("locale", "xx_YY", "Unknown locale."),
        ("language", "klingon", "Unknown language."),
        ("timezone", "Mars/Olympus", "Unknown time zone."),
        ("timezone", "", "Unknown time zone."),
        ("phone_country_code", "+55", "Digits only"),
        ("max_amount", "lots", "Use digits"),
        ("max_amount", "-5", "must be positive"),
        ("max_amount", "0", "greater than zero"),
        ("due_days", "ten", "A whole number"),
        ("due_days", "400", "Between 0 and 365"),
    ],
)
async def test_a_bad_value_is_refused_next_to_its_field_and_nothing_is_written(
    client: AsyncTestClient[Litestar],
    login: Any,
    csrf: Csrf,
    maker: Any,
    field: str,
    value: str,
    message: str,
) -> None:
    await login(client, "admin")
    before = await stored(maker)

    response = await post_settings(client, csrf, **{field: value})

    assert response.status_code == 422
    assert f'<p class="error" id="e-{field}">' in response.text
    error = response.text.split(f'<p class="error" id="e-{field}">', 1)[1].split("</p>", 1)[0]
    assert message in error.replace("&#39;", "'")
    assert "Nothing was saved." in response.text
    assert await stored(maker) == before
    assert await settings_events(maker) == []
    # What was typed stays in the form, to be corrected.
    assert "Pix: 12.345.678/0001-90" in response.text


async def test_several_bad_values_are_all_reported_at_once(
    client: AsyncTestClient[Litestar], login: Any, csrf: Csrf
) -> None:
    await login(client, "admin")

    response = await post_settings(client, csrf, currency="??", due_days="-1", locale="")

    assert response.status_code == 422
    for field in ("currency", "due_days", "locale"):
        assert f'id="e-{field}"' in response.text


async def test_a_form_posting_only_some_settings_changes_only_those(
    client: AsyncTestClient[Litestar], login: Any, csrf: Csrf, maker: Any
) -> None:
    """Later issues post their own settings forms to the same place."""
    await login(client, "admin")

    response = await client.post(
        "/admin/settings",
        data={"payment_instructions": "Cash only", "_csrf_token": await csrf(client)},
    )

    assert response.status_code == 303
    saved = await stored(maker)
    assert saved.payment_instructions == "Cash only"
    assert saved.practice_name == "My practice"


@pytest.mark.parametrize("role", ["reception", "accountant"])
async def test_only_admins_reach_the_settings(
    client: AsyncTestClient[Litestar], login: Any, csrf: Csrf, maker: Any, role: str
) -> None:
    await login(client, role)

    assert (await client.get("/admin/settings")).status_code == 403
    assert (await post_settings(client, csrf)).status_code == 403
    assert (await stored(maker)).practice_name == "My practice"


async def test_settings_saved_by_another_process_show_on_the_next_page(
    client: AsyncTestClient[Litestar], login: Any, maker: Any
) -> None:
    """Each process keeps the settings it read, and reads them again once they changed.

    ``maker`` stands for another worker process: its save is what this app's
    next page must show, with no restart.
    """
    admin_user = await login(client, "admin")
    statements: list[str] = []
    engine = client.app.state.engine.sync_engine

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    assert ">My practice</a>" in (await client.get("/")).text
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert ">My practice</a>" in (await client.get("/")).text
        # Unchanged: the stamp read with the login session spares reading them.
        assert not [s for s in statements if s.startswith("SELECT settings.key")]

        async with maker() as db:
            await admin.save_settings(db, {"practice_name": "Clínica Lua"}, admin_user, None)
        assert ">Clínica Lua</a>" in (await client.get("/")).text
        async with maker() as db:
            await admin.save_settings(db, {"practice_name": "Clínica Sol"}, admin_user, None)
        assert ">Clínica Sol</a>" in (await client.get("/")).text
    finally:
        event.remove(engine, "before_cursor_execute", record)
