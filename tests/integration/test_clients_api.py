"""The clients API: search with items/total, create, read, patch, archive; 422 and 404.

Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.services import save_settings
from app.clients.models import Client

Csrf = Callable[[AsyncTestClient[Any]], Awaitable[str]]


@pytest.fixture
async def api(client: AsyncTestClient[Any], login: Any, csrf: Csrf) -> AsyncTestClient[Any]:
    """A reception user's browser session, sending the CSRF header like the pages do."""
    client.follow_redirects = False
    await login(client, "reception")
    client.headers["x-csrftoken"] = await csrf(client)
    return client


async def count_clients(maker: async_sessionmaker[AsyncSession]) -> int:
    async with maker() as session:
        return await session.scalar(select(func.count()).select_from(Client)) or 0


async def test_create_then_read_a_client_with_balance_fields(api: AsyncTestClient[Any]) -> None:
    created = await api.post(
        "/api/v1/clients",
        json={"name": "João Conceição", "phone": "+55 11 99999-0000", "email": "joao@x.com.br"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "João Conceição"
    assert body["phone"] == "+55 11 99999-0000"
    assert body["phone_digits"] == "5511999990000"
    assert body["email"] == "joao@x.com.br"
    assert body["active"] is True
    assert (body["balance"], body["credit"], body["owed"]) == ("0.00", "0.00", "0.00")

    read = await api.get(f"/api/v1/clients/{body['id']}")
    assert read.status_code == 200
    assert read.json() == body


async def test_invalid_input_is_a_422_naming_each_field_and_writes_nothing(
    api: AsyncTestClient[Any], maker: Any
) -> None:
    response = await api.post(
        "/api/v1/clients", json={"name": "Ana", "phone": "12", "email": "not-an-email"}
    )
    assert response.status_code == 422
    body = response.json()
    assert set(body["errors"]) == {"phone", "email"}
    assert body["field"] in {"phone", "email"}
    assert body["detail"]
    empty_name = await api.post("/api/v1/clients", json={"name": " "})
    assert empty_name.status_code == 422
    assert empty_name.json()["field"] == "name"
    missing = await api.post("/api/v1/clients", json={"phone": "123"})
    assert missing.status_code in (400, 422)
    assert await count_clients(maker) == 0


async def test_search_pages_with_items_and_total(api: AsyncTestClient[Any]) -> None:
    for n in range(5):
        await api.post("/api/v1/clients", json={"name": f"Sérgio {n}"})
    await api.post("/api/v1/clients", json={"name": "Other Person"})

    first = (await api.get("/api/v1/clients", params={"search": "sergio", "limit": 2})).json()
    assert first["total"] == 5
    assert [c["name"] for c in first["items"]] == ["Sérgio 0", "Sérgio 1"]
    rest = await api.get("/api/v1/clients", params={"search": "SERGIO", "limit": 2, "offset": 4})
    assert [c["name"] for c in rest.json()["items"]] == ["Sérgio 4"]
    assert (await api.get("/api/v1/clients")).json()["total"] == 6
    assert (await api.get("/api/v1/clients", params={"limit": 0})).status_code in (400, 422)


async def test_patch_changes_only_what_is_sent_and_null_clears(api: AsyncTestClient[Any]) -> None:
    created = (
        await api.post(
            "/api/v1/clients",
            json={"name": "Bruna", "email": "bruna@x.com", "notes": "VIP"},
        )
    ).json()
    patched = await api.patch(
        f"/api/v1/clients/{created['id']}", json={"name": "Bruna Alves", "email": None}
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["email"], body["notes"]) == ("Bruna Alves", None, "VIP")
    found = (await api.get("/api/v1/clients", params={"search": "alves"})).json()
    assert [c["id"] for c in found["items"]] == [created["id"]]

    bad = await api.patch(f"/api/v1/clients/{created['id']}", json={"email": "nope"})
    assert bad.status_code == 422
    assert bad.json()["field"] == "email"


async def test_archive_hides_a_client_from_search_unless_asked(api: AsyncTestClient[Any]) -> None:
    created = (await api.post("/api/v1/clients", json={"name": "Arquivada"})).json()
    archived = await api.post(f"/api/v1/clients/{created['id']}/archive")
    assert archived.status_code == 200
    assert archived.json()["active"] is False
    assert (await api.get("/api/v1/clients", params={"search": "arquivada"})).json()["total"] == 0
    shown = await api.get("/api/v1/clients", params={"search": "arquivada", "archived": "true"})
    assert shown.json()["total"] == 1
    back = await api.post(f"/api/v1/clients/{created['id']}/unarchive")
    assert back.json()["active"] is True


async def test_unknown_client_is_a_json_404(api: AsyncTestClient[Any]) -> None:
    for response in (
        await api.get("/api/v1/clients/424242"),
        await api.patch("/api/v1/clients/424242", json={"name": "X"}),
        await api.post("/api/v1/clients/424242/archive"),
    ):
        assert response.status_code == 404
        assert "detail" in response.json()


async def test_accountant_reads_but_cannot_write_through_the_api(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf
) -> None:
    client.follow_redirects = False
    await login(client, "accountant")
    headers = {"x-csrftoken": await csrf(client)}
    assert (await client.get("/api/v1/clients")).status_code == 200
    refused = await client.post("/api/v1/clients", json={"name": "X"}, headers=headers)
    assert refused.status_code == 403


async def test_api_phone_uses_the_practice_country(
    client: AsyncTestClient[Any], login: Any, csrf: Csrf, maker: Any
) -> None:
    client.follow_redirects = False
    admin = await login(client, "admin")
    async with maker() as session:
        await save_settings(session, {"phone_country_code": "34"}, actor=admin, ip=None)
    response = await client.post(
        "/api/v1/clients",
        json={"name": "Lucía", "phone": "612 34 56 78"},
        headers={"x-csrftoken": await csrf(client)},
    )
    assert response.status_code == 201, response.text
    assert response.json()["phone_digits"] == "34612345678"
