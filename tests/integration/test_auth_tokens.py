"""API tokens: POST /api/v1/auth/token, bearer authentication, expiry and revocation.

Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit import AuditEvent
from app.auth.models import ApiToken

PASSWORD = "correct horse battery"  # what the make_user and login fixtures use
Csrf = Callable[[AsyncTestClient[Any]], Awaitable[str]]


@pytest.fixture
def client(client: AsyncTestClient[Litestar]) -> AsyncTestClient[Litestar]:
    client.follow_redirects = False
    return client


def api_route(app: Litestar, method: str) -> str:
    """A /api/v1 route without path parameters for ``method`` that every role may call
    (not the token endpoint itself)."""
    for route in app.routes:
        if (
            isinstance(route, HTTPRoute)
            and route.path.startswith("/api/v1/")
            and route.path != "/api/v1/auth/token"
            and "{" not in route.path
            and method in route.methods
            and all(h.opt.get("roles") is None for h in route.route_handlers)
        ):
            return route.path
    raise AssertionError(f"no {method} route under /api/v1 to try a token on")


async def get_token(client: AsyncTestClient[Any], username: str, **extra: str) -> Any:
    return await client.post(
        "/api/v1/auth/token", json={"username": username, "password": PASSWORD, **extra}
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_token_endpoint_answers_201_with_a_bearer_token_for_30_days(
    client: AsyncTestClient[Litestar], make_user: Any
) -> None:
    user = await make_user("reception")

    response = await get_token(client, user.username)

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_at"}
    assert body["token_type"] == "bearer"
    assert len(body["access_token"]) >= 40
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(days=29, hours=23) < expires - datetime.now(UTC) <= timedelta(days=30)


@pytest.mark.parametrize(
    "body",
    [
        {"username": "reception1", "password": "not the password"},
        {"username": "nobody", "password": PASSWORD},
    ],
)
async def test_token_endpoint_answers_401_on_bad_credentials(
    client: AsyncTestClient[Litestar], make_user: Any, body: dict[str, str]
) -> None:
    await make_user("reception", "reception1")

    response = await client.post("/api/v1/auth/token", json=body)

    assert response.status_code == 401
    assert response.json() == {"detail": "Wrong username or password."}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_token_endpoint_refuses_a_body_without_credentials(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.post("/api/v1/auth/token", json={"username": "x"})
    assert response.status_code in (400, 422)
    assert "detail" in response.json()


async def test_token_is_stored_hashed_and_works_as_bearer(
    client: AsyncTestClient[Litestar], make_user: Any, maker: async_sessionmaker[AsyncSession]
) -> None:
    user = await make_user("accountant")
    token = (await get_token(client, user.username, name="exports")).json()["access_token"]

    response = await client.get(api_route(client.app, "GET"), headers=bearer(token))

    assert response.status_code == 200
    async with maker() as db:
        row = await db.scalar(select(ApiToken))
        assert row is not None
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert row.name == "exports" and row.user_id == user.id
        assert row.last_used_at is not None
        # The token itself is nowhere in the database.
        dump = []
        for table in ("api_tokens", "audit_events", "auth_sessions"):
            rows = (await db.execute(text(f"SELECT * FROM {table}"))).all()  # noqa: S608
            dump += [str(value) for row in rows for value in row]
        assert not [value for value in dump if token in value]
        created = await db.scalar(select(AuditEvent).where(AuditEvent.action == "token_created"))
        assert created is not None and created.username == user.username


async def test_a_wrong_or_missing_bearer_token_gets_json_401(
    client: AsyncTestClient[Litestar],
) -> None:
    path = api_route(client.app, "GET")
    for headers in ({}, bearer("not-a-real-token"), {"Authorization": "Bearer "}):
        response = await client.get(path, headers=headers)
        assert response.status_code == 401
        assert "detail" in response.json()


async def test_a_revoked_token_is_refused(
    client: AsyncTestClient[Litestar], make_user: Any, maker: async_sessionmaker[AsyncSession]
) -> None:
    user = await make_user("reception")
    token = (await get_token(client, user.username)).json()["access_token"]
    path = api_route(client.app, "GET")
    assert (await client.get(path, headers=bearer(token))).status_code == 200
    async with maker() as db:
        await db.execute(update(ApiToken).values(revoked_at=datetime.now(UTC)))
        await db.commit()

    assert (await client.get(path, headers=bearer(token))).status_code == 401


async def test_an_expired_token_is_refused(
    client: AsyncTestClient[Litestar], make_user: Any, maker: async_sessionmaker[AsyncSession]
) -> None:
    user = await make_user("reception")
    token = (await get_token(client, user.username)).json()["access_token"]
    async with maker() as db:
        await db.execute(
            update(ApiToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await db.commit()

    assert (await client.get(api_route(client.app, "GET"), headers=bearer(token))).status_code == (
        401
    )


async def test_bearer_requests_need_no_csrf_token_but_cookie_requests_do(
    client: AsyncTestClient[Litestar], login: Any, csrf: Csrf
) -> None:
    """Only bearer-authenticated requests skip CSRF: a browser cannot forge that header."""
    user = await login(client, "reception")
    token = (await get_token(client, user.username)).json()["access_token"]
    path = api_route(client.app, "POST")

    with_cookie = await client.post(path, json={})
    with_cookie_and_token = await client.post(
        path, json={}, headers={"x-csrftoken": await csrf(client)}
    )
    with_bearer = await client.post(path, json={}, headers=bearer(token))

    assert with_cookie.status_code == 403
    assert with_cookie.json() == {"detail": "This form has expired. Reload the page and try again."}
    # Past CSRF and the role check: refused only for the empty body.
    assert with_cookie_and_token.status_code in (400, 422)
    assert with_bearer.status_code in (400, 422)


async def test_a_junk_bearer_header_does_not_let_a_cookie_skip_csrf(
    client: AsyncTestClient[Litestar], login: Any
) -> None:
    """The header skips the CSRF check, so the session cookie must then be ignored."""
    await login(client, "admin")
    path = api_route(client.app, "POST")

    response = await client.post(path, json={}, headers=bearer("junk"))

    assert response.status_code == 401


async def test_the_accountants_token_cannot_change_anything(
    client: AsyncTestClient[Litestar], make_user: Any
) -> None:
    user = await make_user("accountant")
    token = (await get_token(client, user.username)).json()["access_token"]

    response = await client.post(api_route(client.app, "POST"), json={}, headers=bearer(token))

    assert response.status_code == 403
