"""Credit never goes negative and a key records once, across two real worker processes.

The app runs under uvicorn with ``--workers 2`` against a SQLite file and
against PostgreSQL; requests arrive concurrently over real HTTP.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.auth.services import hash_password
from app.clients.models import Client
from app.clients.services import search_fields
from app.ledger import services as ledger
from app.ledger.models import Entry, Payment
from tests.conftest import uvicorn_workers

ADMIN_PASSWORD = "concurrency test password"


@pytest.fixture
def two_workers(db_url: str, tmp_path: Path) -> Iterator[str]:
    env = {
        "DATABASE_URL": db_url,
        "SALDO_DATA_DIR": str(tmp_path),
        "SECRET_KEY": "concurrency-secret",
        "ADMIN_USER": "admin",
        "ADMIN_PASS_HASH": hash_password(ADMIN_PASSWORD),
    }
    with uvicorn_workers(tmp_path, env) as (base, log):
        yield base
    output = log.read_text()
    assert "database is locked" not in output, output[-3000:]


async def _token(http: httpx.AsyncClient) -> dict[str, str]:
    response = await http.post(
        "/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _client_with_credit(
    maker: Any, http: httpx.AsyncClient, headers: dict[str, str], amount: str
) -> int:
    async with maker() as session:
        name_key, search_text = search_fields("Concorrência Teste", None, None)
        client = Client(
            name="Concorrência Teste", name_key=name_key, search_text=search_text, active=True
        )
        session.add(client)
        await session.commit()
        client_id = client.id
    topup = await http.post(
        "/api/v1/payments",
        json={"client_id": client_id, "amount": amount, "method": "cash"},
        headers=headers,
    )
    assert topup.status_code == 201, topup.text
    return client_id


async def test_two_hundred_concurrent_charges_against_500_credit_exactly_50_succeed(
    two_workers, maker
):
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=two_workers, limits=limits, timeout=60) as http:
        headers = await _token(http)
        client_id = await _client_with_credit(maker, http, headers, "500.00")

        async def charge() -> httpx.Response:
            return await http.post(
                "/api/v1/charges",
                json={"client_id": client_id, "amount": "10.00", "pay_from_credit": True},
                headers=headers,
            )

        responses = await asyncio.gather(*(charge() for _ in range(200)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 50, 409: 150}, statuses
    refused = next(r for r in responses if r.status_code == 409)
    assert "Not enough credit" in refused.json()["detail"]
    async with maker() as session:
        client = await session.get(Client, client_id)
        assert client.credit_cents == 0 and client.owed_cents == 0
        assert await ledger.verify(session) == []


async def test_twenty_concurrent_requests_with_one_key_record_one_payment(two_workers, maker):
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=two_workers, limits=limits, timeout=60) as http:
        headers = await _token(http)
        client_id = await _client_with_credit(maker, http, headers, "1.00")

        async def pay() -> httpx.Response:
            return await http.post(
                "/api/v1/payments",
                json={"client_id": client_id, "amount": "75.00", "method": "pix"},
                headers={**headers, "Idempotency-Key": "one-tap"},
            )

        responses = await asyncio.gather(*(pay() for _ in range(20)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    async with maker() as session:
        assert await session.scalar(select(func.count(Payment.id))) == 2  # the 1.00 top-up + one
        keyed = await session.scalar(
            select(func.count(Entry.id)).where(Entry.idempotency_key == "one-tap")
        )
        assert keyed == 1
        client = await session.get(Client, client_id)
        assert client.credit_cents == 7600
        assert await ledger.verify(session) == []
