"""The admin's audit log page: newest first, paginated, filtered. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin import services as admin
from app.audit import AuditEvent


@pytest.fixture
def client(client: AsyncTestClient[Litestar]) -> AsyncTestClient[Litestar]:
    client.follow_redirects = False
    return client


async def write_events(
    maker: async_sessionmaker[AsyncSession], events: list[tuple[datetime, str, str, dict]]
) -> None:
    """Only these events in the log: (at, action, username, detail)."""
    async with maker() as db:
        await db.execute(delete(AuditEvent))
        for at, action, username, detail in events:
            db.add(
                AuditEvent(
                    at=at,
                    action=action,
                    username=username,
                    ip="192.0.2.1",
                    detail=json.dumps(detail),
                )
            )
        await db.commit()


def rows(html: str) -> list[str]:
    """The action cell of each row shown, top to bottom."""
    return re.findall(r"<td><code>([^<]+)</code></td>", html)


NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


async def test_audit_page_shows_newest_first_with_who_where_what(
    client: AsyncTestClient[Litestar], login: Any, maker: Any
) -> None:
    await login(client, "admin")
    await write_events(
        maker,
        [
            (NOON, "login", "ana", {}),
            (NOON + timedelta(minutes=5), "role_changed", "ana", {"target": "bob", "new": "admin"}),
        ],
    )

    response = await client.get("/admin/audit")

    assert response.status_code == 200
    assert rows(response.text) == ["role_changed", "login"]
    assert "192.0.2.1" in response.text
    assert "target: bob" in response.text and "new: admin" in response.text
    assert "2 events" in response.text


async def test_audit_page_is_paginated(
    client: AsyncTestClient[Litestar], login: Any, maker: Any
) -> None:
    await login(client, "admin")
    total = admin.AUDIT_PAGE_SIZE + 7
    await write_events(
        maker,
        [(NOON + timedelta(minutes=n), f"event_{n:03d}", "ana", {}) for n in range(total)],
    )

    first = await client.get("/admin/audit")
    second = await client.get("/admin/audit?page=2")
    beyond = await client.get("/admin/audit?page=99")

    assert rows(first.text)[0] == f"event_{total - 1:03d}"
    assert len(rows(first.text)) == admin.AUDIT_PAGE_SIZE
    assert rows(second.text) == [f"event_{n:03d}" for n in range(6, -1, -1)]
    assert "Page 2 of 2" in second.text
    assert rows(beyond.text) == rows(second.text)  # past the end: the last page
    assert 'href="/admin/audit?action=&amp;username=&amp;date_from=&amp;date_to=&amp;page=2"' in (
        first.text
    )


async def test_audit_page_filters_by_action_username_and_dates(
    client: AsyncTestClient[Litestar], login: Any, maker: Any
) -> None:
    await login(client, "admin")
    await write_events(
        maker,
        [
            (NOON - timedelta(days=2), "login", "ana", {}),
            (NOON, "login_failed", "bob", {}),
            (NOON, "user_disabled", "ana", {"target": "bob"}),
            (NOON + timedelta(days=2), "login", "bob", {}),
        ],
    )

    by_action = await client.get("/admin/audit?action=login")
    by_user = await client.get("/admin/audit?username=BOB")
    by_dates = await client.get("/admin/audit?date_from=2026-03-10&date_to=2026-03-10")
    combined = await client.get("/admin/audit?action=login&username=bob&date_from=2026-03-11")

    assert rows(by_action.text) == ["login", "login"]
    # Bob's own actions and what was done to his login.
    assert rows(by_user.text) == ["login", "user_disabled", "login_failed"]
    assert sorted(rows(by_dates.text)) == ["login_failed", "user_disabled"]
    assert rows(combined.text) == ["login"]
    assert '<option value="login" selected>' in by_action.text


async def test_date_filters_use_the_practices_time_zone(
    client: AsyncTestClient[Litestar], login: Any, maker: Any
) -> None:
    admin_user = await login(client, "admin")
    async with maker() as db:
        await admin.save_settings(db, {"timezone": "America/Sao_Paulo"}, admin_user, None)
    # 01:30 UTC on the 11th is still the evening of the 10th in São Paulo (UTC-3).
    late = datetime(2026, 3, 11, 1, 30, tzinfo=UTC)
    await write_events(maker, [(late, "logout", "ana", {})])

    tenth = await client.get("/admin/audit?date_from=2026-03-10&date_to=2026-03-10")
    eleventh = await client.get("/admin/audit?date_from=2026-03-11&date_to=2026-03-11")

    assert rows(tenth.text) == ["logout"]
    assert rows(eleventh.text) == []


async def test_htmx_filtering_swaps_only_the_results(
    client: AsyncTestClient[Litestar], login: Any, maker: Any
) -> None:
    await login(client, "admin")
    await write_events(maker, [(NOON, "login", "ana", {})])

    fragment = await client.get("/admin/audit?action=login", headers={"HX-Request": "true"})
    restore = await client.get(
        "/admin/audit?action=login",
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )

    assert "<html" not in fragment.text and rows(fragment.text) == ["login"]
    assert "<html" in restore.text  # a history restore needs the whole page


async def test_a_malformed_date_filter_is_ignored(
    client: AsyncTestClient[Litestar], login: Any, maker: Any
) -> None:
    await login(client, "admin")
    await write_events(maker, [(NOON, "login", "ana", {})])

    response = await client.get("/admin/audit?date_from=yesterday")

    assert response.status_code == 200
    assert rows(response.text) == ["login"]
