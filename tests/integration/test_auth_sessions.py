"""Logging in and out, and how long a session lives. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit import AuditEvent
from app.auth import services
from app.auth.models import ApiToken, AuthSession, User
from app.config import Settings
from app.main import create_app

PASSWORD = "correct horse battery"  # what the make_user and login fixtures use
Csrf = Callable[[AsyncTestClient[Any]], Awaitable[str]]


@pytest.fixture
def client(client: AsyncTestClient[Litestar]) -> AsyncTestClient[Litestar]:
    """Redirects are part of what these tests check: never follow them."""
    client.follow_redirects = False
    return client


@pytest.fixture
async def second_client(app: Litestar, client_for: Any) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """Another browser on the same app."""
    async with client_for(app) as other:
        other.follow_redirects = False
        yield other


def session_cookie(client: AsyncTestClient[Any]) -> str | None:
    name = client.app.state.settings.session_cookie
    return next((c.value for c in client.cookies.jar if c.name == name), None)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def sessions_of(maker: async_sessionmaker[AsyncSession], user: User) -> list[AuthSession]:
    async with maker() as db:
        return list(await db.scalars(select(AuthSession).where(AuthSession.user_id == user.id)))


async def actions(maker: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    async with maker() as db:
        rows = await db.execute(
            select(AuditEvent.action, AuditEvent.username).order_by(AuditEvent.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def is_login_redirect(response: Any) -> bool:
    return response.status_code == 303 and response.headers["location"].startswith("/login")


async def post_login(client: AsyncTestClient[Any], csrf: Csrf, username: str, password: str) -> Any:
    await client.get("/login")
    return await client.post(
        "/login",
        data={"username": username, "password": password, "_csrf_token": await csrf(client)},
    )


# --------------------------------------------------------------------------- login and logout


async def test_login_page_is_public_and_every_page_needs_a_login(
    client: AsyncTestClient[Litestar],
) -> None:
    assert (await client.get("/login")).status_code == 200
    response = await client.get("/")
    assert is_login_redirect(response)
    assert response.headers["location"] == "/login?next=/"


async def test_login_sends_the_user_where_they_were_going(
    client: AsyncTestClient[Litestar], make_user: Any, csrf: Csrf
) -> None:
    user = await make_user("reception")
    await client.get("/login?next=/account/password")
    response = await client.post(
        "/login",
        data={
            "username": user.username.upper(),  # usernames are not case-sensitive
            "password": PASSWORD,
            "next": "/account/password",
            "_csrf_token": await csrf(client),
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/account/password"
    assert (await client.get("/account/password")).status_code == 200


async def test_login_never_redirects_to_another_site(
    client: AsyncTestClient[Litestar], make_user: Any, csrf: Csrf
) -> None:
    user = await make_user("reception")
    await client.get("/login")
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        client.cookies.delete(client.app.state.settings.session_cookie)
        response = await client.post(
            "/login",
            data={
                "username": user.username,
                "password": PASSWORD,
                "next": target,
                "_csrf_token": await csrf(client),
            },
        )
        assert response.headers["location"] == "/"


async def test_wrong_password_shows_one_generic_message(
    client: AsyncTestClient[Litestar], make_user: Any, csrf: Csrf
) -> None:
    user = await make_user("reception")
    wrong = await post_login(client, csrf, user.username, "not the password at all")
    unknown = await post_login(client, csrf, "nobody-by-this-name", "not the password at all")

    for response in (wrong, unknown):
        assert response.status_code == 200
        assert "Wrong username or password." in response.text
        assert session_cookie(client) is None
    assert f'value="{user.username}"' in wrong.text  # the username stays typed in


async def test_disabled_user_cannot_log_in(
    client: AsyncTestClient[Litestar], make_user: Any, csrf: Csrf, maker: Any
) -> None:
    user = await make_user("reception")
    async with maker() as db:
        await db.execute(update(User).where(User.id == user.id).values(active=False))
        await db.commit()

    response = await post_login(client, csrf, user.username, PASSWORD)

    assert response.status_code == 200
    assert "Wrong username or password." in response.text


async def test_session_cookie_is_httponly_and_samesite_lax(
    client: AsyncTestClient[Litestar], make_user: Any, csrf: Csrf
) -> None:
    user = await make_user("reception")
    response = await post_login(client, csrf, user.username, PASSWORD)
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("saldo_session="))
    assert "HttpOnly" in session
    assert "SameSite=lax" in session or "SameSite=Lax" in session
    assert "Secure" not in session  # plain http in development; production below
    # The CSRF token is rotated at login: the old one is removed, the next page mints one.
    assert any(c.startswith("saldo_csrf=") and "Max-Age=0" in c for c in cookies)


async def test_logout_ends_the_session_on_the_server(
    client: AsyncTestClient[Litestar], login: Any, csrf: Csrf, maker: Any
) -> None:
    user = await login(client, "accountant")  # even the read-only role can log out
    token = session_cookie(client)
    assert token is not None

    response = await client.post("/logout", data={"_csrf_token": await csrf(client)})

    assert is_login_redirect(response)
    assert await sessions_of(maker, user) == []
    # Replaying the old cookie does not bring the session back.
    client.cookies.set(client.app.state.settings.session_cookie, token)
    assert is_login_redirect(await client.get("/"))
    assert ("logout", user.username) in await actions(maker)


async def test_logout_needs_the_csrf_token(
    client: AsyncTestClient[Litestar], login: Any, maker: Any
) -> None:
    user = await login(client, "reception")

    response = await client.post("/logout")

    assert response.status_code == 403
    assert len(await sessions_of(maker, user)) == 1


async def test_login_and_failures_are_audited_with_the_address(
    client: AsyncTestClient[Litestar], make_user: Any, csrf: Csrf, maker: Any
) -> None:
    user = await make_user("reception")
    await post_login(client, csrf, user.username, "wrong wrong wrong")
    await post_login(client, csrf, user.username, PASSWORD)

    async with maker() as db:
        events = list(await db.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    by_action = {e.action: e for e in events}
    assert by_action["login_failed"].username == user.username
    assert by_action["login"].username == user.username
    assert by_action["login"].user_id == user.id
    assert by_action["login"].ip  # the client's address
    # Never a password, in any form, in the audit log.
    assert all(PASSWORD not in e.detail and "wrong wrong" not in e.detail for e in events)


# --------------------------------------------------------------------------- session fixation


async def test_a_cookie_planted_before_login_does_not_survive_it(
    client: AsyncTestClient[Litestar], client_for: Any, make_user: Any, csrf: Csrf, maker: Any
) -> None:
    user = await make_user("reception")
    name = client.app.state.settings.session_cookie
    planted = "attacker-chose-this-session-id"
    client.cookies.set(name, planted, domain="testserver.local")

    response = await post_login(client, csrf, user.username, PASSWORD)

    assert response.status_code == 303
    fresh = session_cookie(client)
    assert fresh is not None and fresh != planted
    rows = await sessions_of(maker, user)
    assert [r.token_hash for r in rows] == [sha256(fresh)]
    # Whoever planted it cannot ride on the victim's login.
    async with client_for(client.app) as attacker:
        attacker.follow_redirects = False
        attacker.cookies.set(name, planted)
        assert is_login_redirect(await attacker.get("/"))


async def test_logging_in_over_a_live_session_ends_the_old_one(
    client: AsyncTestClient[Litestar],
    client_for: Any,
    login: Any,
    make_user: Any,
    csrf: Csrf,
    maker: Any,
) -> None:
    first = await login(client, "reception")
    old = session_cookie(client)
    second = await make_user("admin")

    await post_login(client, csrf, second.username, PASSWORD)

    assert session_cookie(client) != old
    assert await sessions_of(maker, first) == []
    async with client_for(client.app) as other:
        other.follow_redirects = False
        other.cookies.set(client.app.state.settings.session_cookie, old or "")
        assert is_login_redirect(await other.get("/"))


# --------------------------------------------------------------------------- timeouts


async def age_session(
    maker: async_sessionmaker[AsyncSession],
    user: User,
    *,
    idle: timedelta = timedelta(0),
    age: timedelta = timedelta(0),
) -> None:
    at = datetime.now(UTC)
    async with maker() as db:
        await db.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user.id)
            .values(last_seen_at=at - idle, created_at=at - age)
        )
        await db.commit()


async def test_session_survives_29_idle_minutes_and_is_touched(
    client: AsyncTestClient[Litestar], login: Any, maker: Any, settings: Settings
) -> None:
    assert settings.session_idle_minutes == 30
    user = await login(client, "reception")
    await age_session(maker, user, idle=timedelta(minutes=29), age=timedelta(minutes=29))

    assert (await client.get("/")).status_code == 200
    [row] = await sessions_of(maker, user)
    assert datetime.now(UTC) - row.last_seen_at < timedelta(minutes=1)


async def test_session_ends_after_30_idle_minutes(
    client: AsyncTestClient[Litestar], login: Any, maker: Any
) -> None:
    user = await login(client, "reception")
    await age_session(maker, user, idle=timedelta(minutes=31), age=timedelta(minutes=31))

    assert is_login_redirect(await client.get("/"))


async def test_session_ends_12_hours_after_login_even_when_busy(
    client: AsyncTestClient[Litestar], login: Any, maker: Any, settings: Settings
) -> None:
    assert settings.session_absolute_hours == 12
    user = await login(client, "reception")
    await age_session(maker, user, age=timedelta(hours=11, minutes=58))
    assert (await client.get("/")).status_code == 200

    await age_session(maker, user, age=timedelta(hours=12, minutes=1))
    assert is_login_redirect(await client.get("/"))


async def test_htmx_request_with_an_ended_session_gets_a_client_redirect(
    client: AsyncTestClient[Litestar], login: Any, maker: Any
) -> None:
    user = await login(client, "reception")
    await age_session(maker, user, idle=timedelta(minutes=45))

    response = await client.get("/", headers={"HX-Request": "true"})

    # htmx follows HX-Redirect with a full page load, instead of swapping a
    # login form into whatever table asked.
    assert response.status_code == 200
    assert response.headers["hx-redirect"] == "/login?next=/"
    assert "<form" not in response.text


async def test_api_request_with_no_login_gets_json_401(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post("/api/v1/auth/token", json={"username": "x", "password": "y"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Wrong username or password."}


# --------------------------------------------------------------------------- ending everything


async def issue_token(maker: async_sessionmaker[AsyncSession], user: User) -> str:
    async with maker() as db:
        token, _row = await services.issue_token(db, user, "script", None)
    return token


async def token_works(client: AsyncTestClient[Any], token: str) -> bool:
    response = await client.get("/account/password", headers={"Authorization": f"Bearer {token}"})
    return response.status_code == 200


async def test_changing_my_password_ends_my_other_sessions_and_tokens(
    client: AsyncTestClient[Litestar],
    second_client: AsyncTestClient[Litestar],
    login: Any,
    csrf: Csrf,
    maker: Any,
) -> None:
    user = await login(client, "reception")
    await login(second_client, user.username)
    token = await issue_token(maker, user)
    assert await token_works(client, token)

    response = await client.post(
        "/account/password",
        data={
            "current_password": PASSWORD,
            "new_password": "a brand new long phrase",
            "confirm_password": "a brand new long phrase",
            "_csrf_token": await csrf(client),
        },
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/account/password?changed=true"
    page = await client.get(response.headers["location"])
    assert page.status_code == 200  # this browser stays logged in, on a new session
    assert "Your password was changed" in page.text
    assert is_login_redirect(await second_client.get("/"))
    assert not await token_works(second_client, token)
    assert len(await sessions_of(maker, user)) == 1
    assert ("password_changed", user.username) in await actions(maker)


async def test_password_change_refuses_wrong_current_and_weak_new(
    client: AsyncTestClient[Litestar], login: Any, csrf: Csrf, maker: Any
) -> None:
    user = await login(client, "reception")

    response = await client.post(
        "/account/password",
        data={
            "current_password": "not my password",
            "new_password": "password123",
            "confirm_password": "password123",
            "_csrf_token": await csrf(client),
        },
    )

    assert response.status_code == 422
    assert "Your current password is not right." in response.text
    assert "too common" in response.text
    async with maker() as db:
        stored = await db.get_one(User, user.id)
    assert services.check_password(stored, PASSWORD)


async def test_disabling_a_user_ends_their_sessions_and_tokens(
    client: AsyncTestClient[Litestar],
    second_client: AsyncTestClient[Litestar],
    login: Any,
    csrf: Csrf,
    maker: Any,
) -> None:
    await login(client, "admin")
    victim = await login(second_client, "reception")
    token = await issue_token(maker, victim)

    response = await client.post(
        f"/admin/users/{victim.id}/disable", data={"_csrf_token": await csrf(client)}
    )

    assert response.status_code == 303
    assert is_login_redirect(await second_client.get("/"))
    assert not await token_works(second_client, token)
    assert await sessions_of(maker, victim) == []


async def test_a_session_minted_before_a_password_change_elsewhere_is_refused(
    client: AsyncTestClient[Litestar], login: Any, maker: Any
) -> None:
    """Sessions carry the user's auth epoch: a bump (from any worker) ends them at once."""
    user = await login(client, "reception")
    async with maker() as db:
        await db.execute(
            update(User).where(User.id == user.id).values(auth_epoch=User.auth_epoch + 1)
        )
        await db.commit()

    assert is_login_redirect(await client.get("/"))


# --------------------------------------------------------------------------- passwords


async def test_password_is_stored_as_argon2id_and_rehashed_when_parameters_change(
    client: AsyncTestClient[Litestar], make_user: Any, csrf: Csrf, maker: Any
) -> None:
    user = await make_user("reception")
    async with maker() as db:
        stored = await db.get_one(User, user.id)
        assert stored.password_hash.startswith("$argon2id$")
        weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
        stored.password_hash = weak
        await db.commit()

    response = await post_login(client, csrf, user.username, PASSWORD)

    assert response.status_code == 303
    async with maker() as db:
        rehashed = (await db.get_one(User, user.id)).password_hash
    assert rehashed != weak
    assert rehashed.startswith("$argon2id$")
    assert not services.hasher.check_needs_rehash(rehashed)


# --------------------------------------------------------------------------- production


@pytest.fixture
async def production_client(
    settings: Settings, client_for: Any
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    app = create_app(dataclasses.replace(settings, production=True))
    try:
        async with client_for(app, base_url="https://testserver.local") as client:
            client.follow_redirects = False
            yield client
    finally:
        await app.state.engine.dispose()


async def test_production_cookies_are_secure_host_prefixed_and_hsts_is_sent(
    production_client: AsyncTestClient[Litestar], make_user: Any, maker: Any
) -> None:
    client = production_client
    user = await make_user("reception")
    page = await client.get("/login")
    assert page.headers["strict-transport-security"].startswith("max-age=")
    csrf_cookie = next(c for c in page.headers.get_list("set-cookie") if "csrf" in c)
    assert csrf_cookie.startswith("__Host-saldo_csrf=")
    assert "Secure" in csrf_cookie and "HttpOnly" in csrf_cookie and "Domain" not in csrf_cookie

    token = next(c.value for c in client.cookies.jar if c.name == "__Host-saldo_csrf")
    response = await client.post(
        "/login", data={"username": user.username, "password": PASSWORD, "_csrf_token": token}
    )

    assert response.status_code == 303
    assert response.headers["strict-transport-security"].startswith("max-age=")
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("__Host-saldo_session="))
    assert "Secure" in session and "HttpOnly" in session and "Path=/" in session
    assert "Domain" not in session
    # Removing a __Host- cookie needs Secure too, or the browser ignores the removal.
    removal = next(c for c in cookies if c.startswith("__Host-saldo_csrf="))
    assert "Max-Age=0" in removal and "Secure" in removal

    logout_token = await _fresh_csrf(client)
    out = await client.post("/logout", data={"_csrf_token": logout_token})
    removal = next(
        c for c in out.headers.get_list("set-cookie") if c.startswith("__Host-saldo_session=")
    )
    assert "Max-Age=0" in removal and "Secure" in removal
    async with maker() as db:
        assert await db.scalar(select(func.count(AuthSession.id))) == 0


async def _fresh_csrf(client: AsyncTestClient[Any]) -> str:
    await client.get("/")
    return next(c.value for c in client.cookies.jar if c.name == "__Host-saldo_csrf")


async def test_token_of_a_disabled_user_is_refused(
    client: AsyncTestClient[Litestar], make_user: Any, maker: Any
) -> None:
    user = await make_user("reception")
    token = await issue_token(maker, user)
    async with maker() as db:
        await db.execute(update(User).where(User.id == user.id).values(active=False))
        await db.commit()
    assert not await token_works(client, token)
    async with maker() as db:
        assert await db.scalar(select(func.count(ApiToken.id))) == 1
