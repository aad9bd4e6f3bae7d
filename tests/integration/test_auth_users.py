"""The admin's users page: create, change role, disable, reset password, revoke tokens.

Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit import AuditEvent
from app.auth import services
from app.auth.models import ApiToken, User

PASSWORD = "correct horse battery"  # what the make_user and login fixtures use
Csrf = Callable[[AsyncTestClient[Any]], Awaitable[str]]


@pytest.fixture
def client(client: AsyncTestClient[Litestar]) -> AsyncTestClient[Litestar]:
    """Redirects are part of what these tests check: never follow them."""
    client.follow_redirects = False
    return client


async def htmx_post(
    client: AsyncTestClient[Any], csrf: Csrf, path: str, data: dict[str, str] | None = None
) -> Any:
    """What the page's hx-post does: the CSRF token rides in the header from <body hx-headers>."""
    return await client.post(
        path, data=data or {}, headers={"HX-Request": "true", "x-csrftoken": await csrf(client)}
    )


async def get_user(maker: async_sessionmaker[AsyncSession], user_id: int) -> User:
    async with maker() as db:
        return await db.get_one(User, user_id)


async def audit_log(maker: async_sessionmaker[AsyncSession]) -> list[tuple[str, str, dict]]:
    async with maker() as db:
        rows = await db.execute(
            select(AuditEvent.action, AuditEvent.username, AuditEvent.detail).order_by(
                AuditEvent.id
            )
        )
        return [(action, who, json.loads(detail)) for action, who, detail in rows]


# --------------------------------------------------------------------------- the page


async def test_users_page_lists_users_with_role_and_status(
    client: AsyncTestClient[Litestar], login: Any, make_user: Any, maker: Any
) -> None:
    await login(client, "admin")
    reception = await make_user("reception", display_name="Rita at the desk")
    gone = await make_user("accountant")
    async with maker() as db:
        await db.execute(update(User).where(User.id == gone.id).values(active=False))
        await db.commit()

    response = await client.get("/admin/users")

    assert response.status_code == 200
    page = response.text
    assert reception.username in page and "Rita at the desk" in page
    assert f'id="user-{gone.id}" class="inactive"' in page
    assert f'action="/admin/users/{gone.id}/enable"' in page
    assert f'action="/admin/users/{reception.id}/disable"' in page
    assert 'name="_csrf_token"' in page


async def test_admin_creates_a_user_who_can_then_log_in(
    client: AsyncTestClient[Litestar],
    client_for: Any,
    login: Any,
    csrf: Csrf,
    maker: Any,
) -> None:
    admin = await login(client, "admin")

    response = await client.post(
        "/admin/users",
        data={
            "username": "Rita",
            "display_name": "Rita Moreno",
            "role": "reception",
            "password": "desk tablet morning",
            "_csrf_token": await csrf(client),
        },
    )

    assert response.status_code == 303
    async with maker() as db:
        rita = await db.scalar(select(User).where(User.username == "rita"))
    assert rita is not None and rita.role == "reception" and rita.display_name == "Rita Moreno"
    assert response.headers["location"] == f"/admin/users?created={rita.id}"
    page = await client.get(response.headers["location"])
    assert "rita can now log in as Reception." in page.text
    assert ("user_created", admin.username, {"role": "reception", "target": "rita"}) in (
        await audit_log(maker)
    )
    async with client_for(client.app) as desk:
        desk.follow_redirects = False
        await login(desk, "rita", password="desk tablet morning")
        assert (await desk.get("/")).status_code == 200


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"username": "", "password": "long enough pass"}, "username", "Enter a username."),
        ({"username": "a b", "password": "long enough pass"}, "username", "Use letters"),
        ({"username": "bob", "password": "short"}, "password", "at least 10 characters"),
        ({"username": "bob", "password": "1234567890"}, "password", "too common"),
        ({"username": "bob", "password": "x" * 129}, "password", "at most 128 characters"),
        ({"username": "bob", "password": "long enough pass", "role": "boss"}, "role", "Unknown"),
    ],
)
async def test_create_user_refuses_bad_input_next_to_the_field(
    client: AsyncTestClient[Litestar],
    login: Any,
    csrf: Csrf,
    maker: Any,
    form: dict[str, str],
    field: str,
    message: str,
) -> None:
    await login(client, "admin")
    data = {"display_name": "", "role": "reception", **form, "_csrf_token": await csrf(client)}

    response = await client.post("/admin/users", data=data)

    assert response.status_code == 422
    assert f'id="e-{field}"' in response.text
    assert message in response.text
    assert 'name="password" type="password" value=""' in response.text  # never echoed back
    async with maker() as db:
        assert await db.scalar(select(User).where(User.username == "bob")) is None


async def test_create_user_refuses_a_taken_username(
    client: AsyncTestClient[Litestar], login: Any, make_user: Any, csrf: Csrf
) -> None:
    await login(client, "admin")
    taken = await make_user("reception")

    response = await client.post(
        "/admin/users",
        data={
            "username": taken.username,
            "role": "reception",
            "password": "a long new password",
            "_csrf_token": await csrf(client),
        },
    )

    assert response.status_code == 422
    assert "That username is taken." in response.text


# --------------------------------------------------------------------------- row actions (HTMX)


async def test_change_role_swaps_the_row_and_is_audited(
    client: AsyncTestClient[Litestar], login: Any, make_user: Any, csrf: Csrf, maker: Any
) -> None:
    admin = await login(client, "admin")
    user = await make_user("reception")

    response = await htmx_post(client, csrf, f"/admin/users/{user.id}/role", {"role": "accountant"})

    assert response.status_code == 200
    assert response.text.lstrip().startswith(f'<tr id="user-{user.id}"')
    assert "Role is now Accountant." in response.text
    assert '<option value="accountant" selected>' in response.text
    assert (await get_user(maker, user.id)).role == "accountant"
    assert (
        "role_changed",
        admin.username,
        {"new": "accountant", "old": "reception", "target": user.username},
    ) in await audit_log(maker)


async def test_change_role_without_htmx_redirects_back(
    client: AsyncTestClient[Litestar], login: Any, make_user: Any, csrf: Csrf, maker: Any
) -> None:
    await login(client, "admin")
    user = await make_user("reception")

    response = await client.post(
        f"/admin/users/{user.id}/role", data={"role": "admin", "_csrf_token": await csrf(client)}
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/users"
    assert (await get_user(maker, user.id)).role == "admin"


async def test_the_last_active_admin_cannot_be_demoted(
    client: AsyncTestClient[Litestar], login: Any, csrf: Csrf, maker: Any
) -> None:
    admin = await login(client, "admin")

    response = await htmx_post(client, csrf, f"/admin/users/{admin.id}/role", {"role": "reception"})

    assert response.status_code == 409
    assert "is the last active admin" in response.text
    assert '<option value="admin" selected>' in response.text  # the row shows the truth
    assert (await get_user(maker, admin.id)).role == "admin"
    assert not [a for a in await audit_log(maker) if a[0] == "role_changed"]


async def test_an_admin_may_step_down_when_another_admin_is_active(
    client: AsyncTestClient[Litestar], login: Any, make_user: Any, csrf: Csrf, maker: Any
) -> None:
    admin = await login(client, "admin")
    await make_user("admin")

    response = await htmx_post(client, csrf, f"/admin/users/{admin.id}/role", {"role": "reception"})

    assert response.status_code == 200
    assert (await get_user(maker, admin.id)).role == "reception"
    # Now a receptionist: the users page is no longer theirs.
    assert (await client.get("/admin/users")).status_code == 403


async def test_a_disabled_admin_does_not_count_as_the_other_admin(
    client: AsyncTestClient[Litestar], login: Any, make_user: Any, csrf: Csrf, maker: Any
) -> None:
    admin = await login(client, "admin")
    other = await make_user("admin")
    async with maker() as db:
        await db.execute(update(User).where(User.id == other.id).values(active=False))
        await db.commit()

    response = await htmx_post(
        client, csrf, f"/admin/users/{admin.id}/role", {"role": "accountant"}
    )

    assert response.status_code == 409


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    maker: async_sessionmaker[AsyncSession], make_user: Any
) -> None:
    first = await make_user("admin")
    second = await make_user("admin")

    async def demote(actor: User, target: User) -> str:
        async with maker() as db:
            try:
                await services.set_role(db, target.id, "reception", actor=actor, ip=None)
            except services.UserChangeRefused:
                return "refused"
            return "done"

    outcomes = await asyncio.gather(demote(first, second), demote(second, first))

    assert sorted(outcomes) == ["done", "refused"]
    async with maker() as db:
        admins = await db.scalars(select(User).where(User.role == "admin", User.active))
        assert len(list(admins)) == 1


async def test_disable_and_enable_a_user(
    client: AsyncTestClient[Litestar], login: Any, make_user: Any, csrf: Csrf, maker: Any
) -> None:
    admin = await login(client, "admin")
    user = await make_user("reception")

    off = await htmx_post(client, csrf, f"/admin/users/{user.id}/disable")
    assert off.status_code == 200
    assert "was logged out everywhere" in off.text
    assert f'hx-post="/admin/users/{user.id}/enable"' in off.text
    disabled = await get_user(maker, user.id)
    assert not disabled.active
    assert disabled.auth_epoch == user.auth_epoch + 1

    on = await htmx_post(client, csrf, f"/admin/users/{user.id}/enable")
    assert on.status_code == 200
    assert (await get_user(maker, user.id)).active
    actions = [(a, who, d.get("target")) for a, who, d in await audit_log(maker)]
    assert ("user_disabled", admin.username, user.username) in actions
    assert ("user_enabled", admin.username, user.username) in actions


async def test_an_admin_cannot_disable_themselves(
    client: AsyncTestClient[Litestar], login: Any, make_user: Any, csrf: Csrf, maker: Any
) -> None:
    admin = await login(client, "admin")
    await make_user("admin")

    response = await htmx_post(client, csrf, f"/admin/users/{admin.id}/disable")

    assert response.status_code == 409
    assert "You cannot disable your own login" in response.text
    assert (await get_user(maker, admin.id)).active


async def test_the_last_active_admin_cannot_be_disabled(
    maker: async_sessionmaker[AsyncSession], make_user: Any
) -> None:
    """Also not by someone who is not the last admin themselves (a rule of the service)."""
    admin = await make_user("admin")
    someone = await make_user("reception")
    async with maker() as db:
        with pytest.raises(services.UserChangeRefused, match="last active admin"):
            await services.set_active(db, admin.id, False, actor=someone, ip=None)


async def test_actions_on_an_unknown_user_are_404(
    client: AsyncTestClient[Litestar], login: Any, csrf: Csrf
) -> None:
    await login(client, "admin")
    for action, data in (("role", {"role": "reception"}), ("disable", {}), ("password", {})):
        response = await htmx_post(client, csrf, f"/admin/users/987654/{action}", data)
        assert response.status_code == 404


async def test_reset_password_sets_it_and_ends_the_users_sessions(
    client: AsyncTestClient[Litestar],
    client_for: Any,
    login: Any,
    csrf: Csrf,
    maker: Any,
) -> None:
    admin = await login(client, "admin")
    async with client_for(client.app) as desk:
        desk.follow_redirects = False
        user = await login(desk, "reception")

        response = await htmx_post(
            client, csrf, f"/admin/users/{user.id}/password", {"new_password": "fresh start now"}
        )

        assert response.status_code == 200
        assert "New password set for" in response.text
        assert (await desk.get("/")).status_code == 303  # logged out
        await login(desk, user.username, password="fresh start now")
    actions = [(a, who, d.get("target")) for a, who, d in await audit_log(maker)]
    assert ("password_reset", admin.username, user.username) in actions


async def test_reset_password_refuses_a_weak_one_inside_the_row(
    client: AsyncTestClient[Litestar], login: Any, make_user: Any, csrf: Csrf, maker: Any
) -> None:
    await login(client, "admin")
    user = await make_user("reception")

    response = await htmx_post(
        client, csrf, f"/admin/users/{user.id}/password", {"new_password": "short"}
    )

    assert response.status_code == 422
    assert response.text.lstrip().startswith(f'<tr id="user-{user.id}"')
    assert "<details open>" in response.text
    assert "at least 10 characters" in response.text
    stored = await get_user(maker, user.id)
    assert services.check_password(stored, PASSWORD)


# --------------------------------------------------------------------------- API tokens


async def make_token(maker: async_sessionmaker[AsyncSession], user: User, name: str) -> ApiToken:
    async with maker() as db:
        _token, row = await services.issue_token(db, user, name, None)
    return row


async def test_tokens_are_listed_on_the_users_page_and_revocable(
    client: AsyncTestClient[Litestar], login: Any, make_user: Any, csrf: Csrf, maker: Any
) -> None:
    admin = await login(client, "admin")
    owner = await make_user("accountant")
    row = await make_token(maker, owner, "monthly export script")

    page = await client.get("/admin/users")
    assert "monthly export script" in page.text
    assert f'hx-post="/admin/users/tokens/{row.id}/revoke"' in page.text

    response = await htmx_post(client, csrf, f"/admin/users/tokens/{row.id}/revoke")

    assert response.status_code == 200
    assert response.text.lstrip().startswith(f'<tr id="token-{row.id}"')
    assert "Revoked" in response.text
    async with maker() as db:
        assert (await db.get_one(ApiToken, row.id)).revoked_at is not None
    revoked = [d for a, who, d in await audit_log(maker) if a == "token_revoked"]
    assert revoked == [
        {"name": "monthly export script", "owner": owner.username, "token_id": row.id}
    ]
    assert admin.username in {who for a, who, _d in await audit_log(maker) if a == "token_revoked"}


async def test_everyone_sees_and_revokes_only_their_own_tokens(
    client: AsyncTestClient[Litestar], login: Any, make_user: Any, csrf: Csrf, maker: Any
) -> None:
    me = await login(client, "accountant")  # read-only, but their own tokens are theirs
    mine = await make_token(maker, me, "my laptop")
    someone = await make_user("reception")
    theirs = await make_token(maker, someone, "their script")

    page = await client.get("/account/password")
    assert "my laptop" in page.text and "their script" not in page.text

    refused = await htmx_post(client, csrf, f"/account/tokens/{theirs.id}/revoke")
    assert refused.status_code == 404
    done = await htmx_post(client, csrf, f"/account/tokens/{mine.id}/revoke")
    assert done.status_code == 200
    assert "Revoked" in done.text
    async with maker() as db:
        assert (await db.get_one(ApiToken, mine.id)).revoked_at is not None
        assert (await db.get_one(ApiToken, theirs.id)).revoked_at is None
