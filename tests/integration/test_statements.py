"""Statements add up across months, and a closed month stays closed."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from app.clients.models import Client
from app.ledger.models import Entry
from app.statements import services as statements
from app.statements.models import Period, PeriodStatement


@pytest.fixture
async def api(client, login, csrf):  # type: ignore[no-untyped-def]
    await login(client, "admin")
    token = await csrf(client)

    async def post(path: str, body: dict[str, Any] | None = None) -> Any:
        return await client.post(path, json=body or {}, headers={"x-csrftoken": token})

    return post


async def backdate(maker: Any, kind: str, day: str) -> None:
    """Voids and refunds take effect on the day they are recorded; move the last one into the story.

    The journal refuses UPDATEs, so the test goes around the trigger on purpose.
    """
    async with maker() as session:
        entry_id = await session.scalar(select(func.max(Entry.id)).where(Entry.kind == kind))
        if session.bind.dialect.name == "postgresql":
            await session.execute(text("ALTER TABLE entries DISABLE TRIGGER entries_append_only"))
            await session.execute(
                update(Entry)
                .where(Entry.id == entry_id)
                .values(effective_date=datetime.fromisoformat(day).date())
            )
            await session.execute(text("ALTER TABLE entries ENABLE TRIGGER entries_append_only"))
        else:
            await session.execute(text("DROP TRIGGER entries_no_update"))
            await session.execute(
                update(Entry)
                .where(Entry.id == entry_id)
                .values(effective_date=datetime.fromisoformat(day).date())
            )
            await session.execute(
                text(
                    "CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries "
                    "BEGIN SELECT RAISE(ABORT, 'entries is append-only: UPDATE refused'); END"
                )
            )
        await session.commit()


async def story(api: Any, maker: Any, client_id: int) -> None:
    """February: two sessions, a partial payment, a void, a top-up and a refund; March: one more."""
    c1 = (
        await api(
            "/api/v1/charges",
            {
                "client_id": client_id,
                "amount": "100.00",
                "date": "2026-02-03",
                "due_date": "2026-02-13",
            },
        )
    ).json()["id"]
    c2 = (
        await api(
            "/api/v1/charges",
            {
                "client_id": client_id,
                "amount": "80.00",
                "date": "2026-02-10",
                "due_date": "2026-02-20",
            },
        )
    ).json()["id"]
    c3 = (
        await api(
            "/api/v1/charges", {"client_id": client_id, "amount": "50.00", "date": "2026-02-12"}
        )
    ).json()["id"]
    assert (
        await api(
            "/api/v1/payments",
            {
                "client_id": client_id,
                "amount": "60.00",
                "method": "pix",
                "received_on": "2026-02-15",
                "charge_ids": [c1],
            },
        )
    ).status_code == 201
    assert (await api(f"/api/v1/charges/{c3}/void", {"reason": "duplicate"})).status_code == 200
    await backdate(maker, "void", "2026-02-16")
    assert (
        await api(
            "/api/v1/payments",
            {
                "client_id": client_id,
                "amount": "30.00",
                "method": "cash",
                "received_on": "2026-02-20",
            },
        )
    ).status_code == 201
    assert (
        await api(f"/api/v1/clients/{client_id}/refunds", {"amount": "10.00", "method": "cash"})
    ).status_code == 201
    await backdate(maker, "refund", "2026-02-25")
    await api(
        "/api/v1/charges",
        {"client_id": client_id, "amount": "70.00", "date": "2026-03-04", "due_date": "2026-03-14"},
    )
    assert c2


async def test_statement_arithmetic_across_month_boundaries(api, client, make_client, maker):
    ana = await make_client()
    await story(api, maker, ana)
    feb = (
        await client.get(f"/api/v1/clients/{ana}/statement?from=2026-02-01&to=2026-02-28")
    ).json()
    mar = (
        await client.get(f"/api/v1/clients/{ana}/statement?from=2026-03-01&to=2026-03-31")
    ).json()
    assert feb["opening_balance"] == "0.00"
    assert [(e["kind"], e["amount"], e["balance"]) for e in feb["entries"]] == [
        ("charge", "-100.00", "-100.00"),
        ("charge", "-80.00", "-180.00"),
        ("charge", "-50.00", "-230.00"),
        ("payment", "60.00", "-170.00"),
        ("void", "50.00", "-120.00"),
        ("payment", "30.00", "-90.00"),
        ("refund", "-10.00", "-100.00"),
    ]
    assert feb["closing_balance"] == "-100.00"
    assert mar["opening_balance"] == feb["closing_balance"]  # one month's close is the next's open
    assert mar["closing_balance"] == "-170.00"
    # At the end of February: 40 left on the first session, 80 on the second; the void is gone.
    assert [(c["amount"], c["open_amount"]) for c in feb["open_charges"]] == [
        ("100.00", "40.00"),
        ("80.00", "80.00"),
    ]
    # 20 credit (30 top-up − 10 refund) and 120 owed: balance −100.
    async with maker() as session:
        c = await session.get(Client, ana)
    assert c.credit_cents - c.owed_cents == -17000


async def test_aging_is_computed_as_of_a_past_end_date(api, client, make_client, maker):
    ana = await make_client()
    await story(api, maker, ana)
    aging = (
        await client.get(f"/api/v1/clients/{ana}/statement?from=2026-01-01&to=2026-04-15")
    ).json()["aging"]
    # As of 15 April: first charge 61 days past due (40 open), second 55 (80), third 32 (70).
    assert aging == {"0_30": "0.00", "31_60": "150.00", "61_90": "40.00", "90_plus": "0.00"}
    later = (
        await client.get(f"/api/v1/clients/{ana}/statement?from=2026-01-01&to=2026-06-01")
    ).json()["aging"]
    assert later == {"0_30": "0.00", "31_60": "0.00", "61_90": "70.00", "90_plus": "120.00"}


async def test_closed_month_refuses_new_and_reversing_entries(api, client, make_client, maker):
    ana = await make_client()
    await story(api, maker, ana)
    closed = await api("/api/v1/periods/2026-02/close")
    assert closed.status_code == 201, closed.text
    body = closed.json()
    assert body["month"] == "2026-02" and len(body["digest"]) == 64
    assert body["totals"]["received"] == "90.00" and body["totals"]["billed"] == "230.00"
    refused = await api(
        "/api/v1/charges", {"client_id": ana, "amount": "10.00", "date": "2026-02-27"}
    )
    assert refused.status_code == 409
    assert (
        "2026-02 is closed" in refused.json()["detail"] and "open month" in refused.json()["detail"]
    )
    late_payment = await api(
        "/api/v1/payments",
        {"client_id": ana, "amount": "10.00", "method": "pix", "received_on": "2026-02-28"},
    )
    assert late_payment.status_code == 409
    again = await api("/api/v1/periods/2026-02/close")
    assert again.status_code == 409
    async with maker() as session:
        snapshots = await session.scalar(select(func.count(PeriodStatement.id)))
    assert snapshots == 1


async def test_a_fault_midway_through_closing_leaves_nothing_written(
    api, client, make_client, maker
):
    ana = await make_client()
    await story(api, maker, ana)
    async with maker() as session:
        with pytest.raises(RuntimeError, match="fault injected"):
            await statements.close_month(session, "2026-02", None, fail_after_snapshots=True)
    async with maker() as session:
        assert await session.scalar(select(func.count(PeriodStatement.id))) == 0
        period = await session.scalar(select(Period).where(Period.month == "2026-02"))
        assert period is None or period.closed_at is None
    ok = await api("/api/v1/charges", {"client_id": ana, "amount": "10.00", "date": "2026-02-27"})
    assert ok.status_code == 201  # the month is still open


async def test_reopen_and_close_again_with_nothing_changed_gives_the_same_digest(
    api, client, make_client, maker
):
    ana = await make_client()
    await story(api, maker, ana)
    jan = (await api("/api/v1/periods/2026-01/close")).json()
    first = (await api("/api/v1/periods/2026-02/close")).json()
    assert first["previous_digest"] == jan["digest"]  # chained to the previous closed month
    reopened = await client.post(
        "/periods/2026-02/reopen",
        data={"reason": "late receipt", "_csrf_token": await _token(client)},
        follow_redirects=False,
    )
    assert reopened.status_code == 303
    second = (await api("/api/v1/periods/2026-02/close")).json()
    assert second["digest"] == first["digest"]
    listed = (await client.get("/api/v1/periods")).json()["items"]
    assert [p["month"] for p in listed] == ["2026-02", "2026-01"]
    assert (await client.get("/periods")).status_code == 200


async def test_reopening_needs_a_reason_and_an_admin(client, login, csrf, make_client, maker):
    async with maker() as session:
        session.add(Period(month="2026-01", closed_at=datetime.now(UTC), digest="x" * 64))
        await session.commit()
    await login(client, "reception")
    token = await csrf(client)
    refused = await client.post(
        "/periods/2026-01/reopen", data={"reason": "x", "_csrf_token": token}
    )
    assert refused.status_code == 403
    close = await client.post(
        "/api/v1/periods/2026-01/close", json={}, headers={"x-csrftoken": token}
    )
    assert close.status_code == 403


async def test_accountant_reads_statements_and_periods(client, login, make_client, maker):
    ana = await make_client()
    await login(client, "accountant")
    assert (await client.get(f"/api/v1/clients/{ana}/statement")).status_code == 200
    assert (await client.get("/api/v1/periods")).status_code == 200
    assert (await client.get("/api/v1/clients/999999/statement")).status_code == 404


def test_close_month_command_defaults_to_last_month_and_is_safe_daily(settings):
    env = {
        "DATABASE_URL": settings.database_url,
        "SALDO_DATA_DIR": str(settings.data_dir),
        "SECRET_KEY": "x" * 20,
    }
    import os

    full_env = {**os.environ, **env}
    first = subprocess.run(
        [sys.executable, "-m", "app", "close-month"],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("closed ")
    second = subprocess.run(
        [sys.executable, "-m", "app", "close-month"],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 0 and "already closed" in second.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "app", "close-month", "2999-01"],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "has not ended" in bad.stderr


async def _token(client: Any) -> str:
    name = client.app.state.settings.csrf_cookie
    for cookie in client.cookies.jar:
        if cookie.name == name:
            return cookie.value
    raise AssertionError("no csrf cookie")
