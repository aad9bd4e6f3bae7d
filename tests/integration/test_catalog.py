"""The admin keeps the catalog: staff with their commission, services with their price.

Admin only (reception and the accountant are refused, reads included, on the
pages; the API lets everyone read and only the admin write). Runs on SQLite
and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin import catalog
from app.admin.models import Service, Staff
from app.admin.services import save_settings

Csrf = Callable[[AsyncTestClient[Any]], Awaitable[str]]


@pytest.fixture(autouse=True)
def answers_as_sent(client: AsyncTestClient[Any]) -> None:
    client.follow_redirects = False


async def post_form(
    client: AsyncTestClient[Any], csrf: Csrf, path: str, data: dict[str, str]
) -> Any:
    return await client.post(path, data={**data, "_csrf_token": await csrf(client)})


async def rows(maker: async_sessionmaker[AsyncSession], model: Any) -> list[Any]:
    async with maker() as session:
        return list(await session.scalars(select(model).order_by(model.id)))


async def count(maker: async_sessionmaker[AsyncSession], model: Any) -> int:
    async with maker() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def test_reception_cannot_see_or_change_staff_and_services(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf, maker: Any
) -> None:
    await login(client, "reception")
    for path in ("/admin/staff", "/admin/services"):
        assert (await client.get(path)).status_code == 403
    assert (await post_form(client, csrf, "/admin/staff", {"name": "X"})).status_code == 403
    assert (
        await post_form(client, csrf, "/admin/services", {"name": "X", "price": "10"})
    ).status_code == 403
    assert await count(maker, Staff) == 0 and await count(maker, Service) == 0


async def test_admin_adds_staff_with_a_commission_percent(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf, maker: Any
) -> None:
    await login(client, "admin")
    page = await client.get("/admin/staff")
    assert page.status_code == 200 and "Add a staff member" in page.text

    for name, typed in (("Dora", "40"), ("Ester", "40,5"), ("Fabi", "12.25"), ("Gil", "")):
        response = await post_form(
            client, csrf, "/admin/staff", {"name": name, "commission": typed}
        )
        assert response.status_code == 303, response.text
    stored = {s.name: s.commission_bp for s in await rows(maker, Staff)}
    assert stored == {"Dora": 4000, "Ester": 4050, "Fabi": 1225, "Gil": 0}
    listing = (await client.get("/admin/staff")).text
    assert "40.5 %" in listing


@pytest.mark.parametrize("typed", ["101", "-5", "40,555", "forty", "100.01"])
async def test_commission_outside_0_to_100_is_refused_next_to_the_field(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf, maker: Any, typed: str
) -> None:
    await login(client, "admin")
    response = await post_form(client, csrf, "/admin/staff", {"name": "Hugo", "commission": typed})
    assert response.status_code == 422
    assert 'id="e-commission"' in response.text
    assert f'value="{typed}"' in response.text
    assert await count(maker, Staff) == 0


async def test_admin_edits_deactivates_and_reactivates_staff(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf, maker: Any
) -> None:
    await login(client, "admin")
    await post_form(client, csrf, "/admin/staff", {"name": "Ivo", "commission": "30"})
    (ivo,) = await rows(maker, Staff)
    form = await client.get(f"/admin/staff/{ivo.id}/edit")
    assert 'value="Ivo"' in form.text and 'value="30"' in form.text
    edited = await post_form(
        client, csrf, f"/admin/staff/{ivo.id}/edit", {"name": "Ivo Reis", "commission": "35"}
    )
    assert edited.status_code == 303
    bad = await post_form(
        client, csrf, f"/admin/staff/{ivo.id}/edit", {"name": "", "commission": "1"}
    )
    assert bad.status_code == 422 and 'id="e-name"' in bad.text

    await post_form(client, csrf, f"/admin/staff/{ivo.id}/deactivate", {})
    (ivo,) = await rows(maker, Staff)
    assert (ivo.name, ivo.commission_bp, ivo.active) == ("Ivo Reis", 3500, False)
    async with maker() as session:
        assert await catalog.active_staff(session) == []
    await post_form(client, csrf, f"/admin/staff/{ivo.id}/activate", {})
    async with maker() as session:
        assert [s.name for s in await catalog.active_staff(session)] == ["Ivo Reis"]


async def test_admin_adds_services_with_prices_typed_the_locales_way(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf, maker: Any
) -> None:
    admin = await login(client, "admin")
    async with maker() as session:
        await save_settings(session, {"locale": "pt_BR", "currency": "BRL"}, actor=admin, ip=None)
    created = await post_form(
        client,
        csrf,
        "/admin/services",
        {"name": "Sessão longa", "price": "1.234,50", "commission": "50"},
    )
    assert created.status_code == 303, created.text
    await post_form(client, csrf, "/admin/services", {"name": "Avaliação", "price": "150"})
    stored = {s.name: (s.price_cents, s.commission_bp) for s in await rows(maker, Service)}
    assert stored == {"Sessão longa": (123450, 5000), "Avaliação": (15000, None)}
    listing = (await client.get("/admin/services")).text
    assert "R$\xa01.234,50" in listing

    (long_session, _) = await rows(maker, Service)
    form = await client.get(f"/admin/services/{long_session.id}/edit")
    assert 'value="1.234,50"' in form.text


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter an amount"),
        ("0", "greater than zero"),
        ("12,345", "two decimals"),
        ("100.000,01", "above the maximum"),
    ],
)
async def test_bad_service_price_is_explained_and_nothing_is_written(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf, maker: Any, typed: str, message: str
) -> None:
    admin = await login(client, "admin")
    async with maker() as session:
        await save_settings(
            session,
            {"locale": "pt_BR", "currency": "BRL", "max_amount_cents": 10_000_000},
            actor=admin,
            ip=None,
        )
    response = await post_form(client, csrf, "/admin/services", {"name": "X", "price": typed})
    assert response.status_code == 422
    assert 'id="e-price"' in response.text
    assert message in response.text
    assert await count(maker, Service) == 0


async def test_services_are_deactivated_never_deleted(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf, maker: Any
) -> None:
    await login(client, "admin")
    await post_form(client, csrf, "/admin/services", {"name": "Massagem", "price": "80"})
    await post_form(client, csrf, "/admin/services", {"name": "Acupuntura", "price": "90"})
    massage = next(s for s in await rows(maker, Service) if s.name == "Massagem")
    assert (
        await post_form(client, csrf, f"/admin/services/{massage.id}/deactivate", {})
    ).status_code == 303
    async with maker() as session:
        assert [s.name for s in await catalog.active_services(session)] == ["Acupuntura"]
        assert len(await catalog.list_services(session)) == 2
    edited = await post_form(
        client,
        csrf,
        f"/admin/services/{massage.id}/edit",
        {"name": "Massagem relaxante", "price": "85.50", "commission": "10"},
    )
    assert edited.status_code == 303
    await post_form(client, csrf, f"/admin/services/{massage.id}/activate", {})
    async with maker() as session:
        assert [
            (s.name, s.price_cents, s.commission_bp) for s in await catalog.active_services(session)
        ] == [
            ("Acupuntura", 9000, None),
            ("Massagem relaxante", 8550, 1000),
        ]


# --------------------------------------------------------------------------- the API


async def test_api_admin_creates_staff_and_services_everyone_reads(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf
) -> None:
    await login(client, "admin")
    headers = {"x-csrftoken": await csrf(client)}
    staff = await client.post(
        "/api/v1/staff", json={"name": "Júlia", "commission_percent": "40.5"}, headers=headers
    )
    assert staff.status_code == 201, staff.text
    assert staff.json() == {
        "id": staff.json()["id"],
        "name": "Júlia",
        "commission_percent": "40.50",
        "active": True,
    }
    service = await client.post(
        "/api/v1/services", json={"name": "Sessão", "price": "150.00"}, headers=headers
    )
    assert service.status_code == 201, service.text
    assert service.json()["price"] == "150.00"
    assert service.json()["commission_percent"] is None

    await login(client, "reception")
    headers = {"x-csrftoken": await csrf(client)}
    listed = (await client.get("/api/v1/staff")).json()
    assert [s["name"] for s in listed["items"]] == ["Júlia"] and listed["total"] == 1
    assert (await client.get("/api/v1/services")).json()["items"][0]["price"] == "150.00"
    assert (await client.get(f"/api/v1/services/{service.json()['id']}")).status_code == 200
    refused = await client.post("/api/v1/staff", json={"name": "X"}, headers=headers)
    assert refused.status_code == 403
    refused = await client.post(
        "/api/v1/services", json={"name": "X", "price": "1"}, headers=headers
    )
    assert refused.status_code == 403


async def test_api_refuses_bad_percent_and_price_with_422(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf, maker: Any
) -> None:
    await login(client, "admin")
    headers = {"x-csrftoken": await csrf(client)}
    bad_percent = await client.post(
        "/api/v1/staff", json={"name": "K", "commission_percent": "120"}, headers=headers
    )
    assert bad_percent.status_code == 422
    assert bad_percent.json()["field"] == "commission_percent"
    bad_price = await client.post(
        "/api/v1/services", json={"name": "K", "price": "1,50"}, headers=headers
    )
    assert bad_price.status_code == 422
    assert bad_price.json()["field"] == "price"
    too_precise = await client.post(
        "/api/v1/services", json={"name": "K", "price": "1.505"}, headers=headers
    )
    assert too_precise.status_code == 422
    assert (await client.get("/api/v1/staff/999")).status_code == 404
    assert await count(maker, Staff) == 0 and await count(maker, Service) == 0


# --------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("typed", "basis_points"),
    [
        ("40", 4000),
        ("40,5", 4050),
        ("40.5", 4050),
        ("40.55", 4055),
        ("40 %", 4000),
        ("0", 0),
        ("100", 10000),
        ("100,00", 10000),
    ],
)
def test_commission_percent_is_read_as_basis_points(typed: str, basis_points: int) -> None:
    assert catalog.parse_percent(typed) == basis_points


@pytest.mark.parametrize("typed", ["", "101", "100.5", "-1", "4.555", "1e2", "40,5,5"])
def test_commission_percent_outside_the_rules_is_refused(typed: str) -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        catalog.parse_percent(typed)


def test_percent_is_shown_as_typed_and_sent_as_a_decimal_string() -> None:
    from app.web.i18n import Formatting

    assert catalog.percent_string(4050) == "40.50"
    assert catalog.percent_string(None) is None
    assert catalog.format_percent(4050, Formatting(locale="pt_BR")) == "40,5"
    assert catalog.format_percent(4000, Formatting(locale="en_US")) == "40"
