"""Reception's money stories, end to end through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from app.admin.models import Service, Setting, Staff
from app.clients.models import Client
from app.ledger import services as ledger
from app.ledger.models import Allocation, Charge, Entry, IdempotencyKey, Payment
from app.statements.models import Period


async def topup_via_api(
    client: Any, csrf: Any, client_id: int, amount: str, key: str | None = None
) -> Any:
    headers = {"x-csrftoken": await csrf(client)}
    if key:
        headers["Idempotency-Key"] = key
    return await client.post(
        "/api/v1/payments",
        json={"client_id": client_id, "amount": amount, "method": "cash"},
        headers=headers,
    )


async def totals(maker: Any, client_id: int) -> tuple[int, int]:
    async with maker() as session:
        row = await session.get(Client, client_id)
        return row.credit_cents, row.owed_cents


async def count(maker: Any, model: Any) -> int:
    async with maker() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def assert_verify_clean(maker: Any) -> None:
    async with maker() as session:
        assert await ledger.verify(session) == []


async def form_page(client: Any, path: str) -> dict[str, str]:
    """GET a money form and read its hidden fields (CSRF token, one-time idempotency key)."""
    page = await client.get(path)
    assert page.status_code == 200
    fields = dict(re.findall(r'name="(_csrf_token|idempotency_key)" value="([^"]+)"', page.text))
    assert set(fields) == {"_csrf_token", "idempotency_key"}
    return fields


# --- top-ups and charging against credit ----------------------------------------------------


async def test_topup_becomes_credit_and_writes_one_entry(client, login, csrf, make_client, maker):
    await login(client, "reception")
    client_id = await make_client()
    response = await topup_via_api(client, csrf, client_id, "500.00")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["credit_added"] == "500.00" and body["allocations"] == []
    assert await totals(maker, client_id) == (50000, 0)
    async with maker() as session:
        entries = list(await session.scalars(select(Entry).where(Entry.client_id == client_id)))
    assert [(e.kind, e.amount_cents, e.credit_delta_cents) for e in entries] == [
        ("payment", 50000, 50000)
    ]
    await assert_verify_clean(maker)


async def test_topup_page_shows_balance_before_confirm(client, login, csrf, make_client, maker):
    await login(client, "reception")
    client_id = await make_client("João Conceição")
    await topup_via_api(client, csrf, client_id, "80.00")
    # Choosing the client swaps in its box with balance and credit, before any amount is typed.
    box = await client.get(
        f"/ledger/client-box?client_id={client_id}", headers={"HX-Request": "true"}
    )
    assert box.status_code == 200
    assert 'data-testid="balance"' in box.text and "$80.00" in box.text
    assert "<html" not in box.text  # a fragment, not a page
    page = await client.get(f"/payments/new?client_id={client_id}")
    assert "$80.00" in page.text and "João Conceição" in page.text


async def test_register_session_paid_from_credit(client, login, csrf, make_client, maker):
    await login(client, "reception")
    client_id = await make_client()
    await topup_via_api(client, csrf, client_id, "100.00")
    fields = await form_page(client, f"/charges/new?client_id={client_id}")
    response = await client.post(
        "/charges/new",
        data={
            **fields,
            "client_id": str(client_id),
            "amount": "60.00",
            "date": "2026-03-10",
            "settle": "credit",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text[:500]
    detail = await client.get(response.headers["location"])
    assert "$40.00" in detail.text  # credit left
    assert await totals(maker, client_id) == (4000, 0)
    async with maker() as session:
        charge = await session.scalar(select(Charge).where(Charge.client_id == client_id))
        assert (charge.status, charge.paid_cents) == ("paid", 6000)
    await assert_verify_clean(maker)


async def test_credit_short_is_refused_with_a_clear_message_and_writes_nothing(
    client, login, csrf, make_client, maker
):
    await login(client, "reception")
    client_id = await make_client("Bruno Lima")
    await topup_via_api(client, csrf, client_id, "10.00")
    before = (
        await count(maker, Entry),
        await count(maker, Charge),
        await count(maker, IdempotencyKey),
    )
    fields = await form_page(client, f"/charges/new?client_id={client_id}")
    response = await client.post(
        "/charges/new",
        data={
            **fields,
            "client_id": str(client_id),
            "amount": "60,00",
            "date": "2026-03-10",
            "settle": "credit",
        },
        follow_redirects=False,
    )
    assert response.status_code == 409
    assert "Not enough credit" in response.text and "$10.00" in response.text
    after = (
        await count(maker, Entry),
        await count(maker, Charge),
        await count(maker, IdempotencyKey),
    )
    assert after == before
    assert await totals(maker, client_id) == (1000, 0)


async def test_register_session_pay_now_prints_a_receipt(client, login, csrf, make_client, maker):
    await login(client, "reception")
    client_id = await make_client("Carla Dias")
    fields = await form_page(client, f"/charges/new?client_id={client_id}")
    response = await client.post(
        "/charges/new",
        data={
            **fields,
            "client_id": str(client_id),
            "amount": "150",
            "date": "2026-03-11",
            "settle": "pay_now",
            "method": "pix",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert re.fullmatch(r"/payments/\d+/receipt", response.headers["location"])
    receipt = await client.get(response.headers["location"])
    assert receipt.status_code == 200
    assert "Carla Dias" in receipt.text and "$150.00" in receipt.text and "Pix" in receipt.text
    narrow = await client.get(response.headers["location"] + "?size=80mm")
    assert "receipt-80mm.css" in narrow.text
    assert await totals(maker, client_id) == (0, 0)
    async with maker() as session:
        kinds = list(
            await session.scalars(
                select(Entry.kind).where(Entry.client_id == client_id).order_by(Entry.id)
            )
        )
    assert kinds == ["charge", "payment", "payment_applied"]
    await assert_verify_clean(maker)


# A service's own commission, when it has one, wins over the staff member's.
@pytest.mark.parametrize(("service_bp", "commission_bp"), [(None, 4000), (2500, 2500)])
async def test_register_session_left_open_is_owed(
    client, login, csrf, make_client, maker, service_bp, commission_bp
):
    await login(client, "admin")
    client_id = await make_client()
    async with maker() as session:
        staff = Staff(name="Dra. Marina", commission_bp=4000, active=True)
        service = Service(
            name="Sessão individual", price_cents=20000, commission_bp=service_bp, active=True
        )
        session.add_all([staff, service])
        await session.commit()
        staff_id, service_id = staff.id, service.id
    page = await client.get(f"/charges/new?client_id={client_id}")
    assert 'data-price="200.00"' in page.text  # the service fills in its default price
    fields = await form_page(client, f"/charges/new?client_id={client_id}")
    response = await client.post(
        "/charges/new",
        data={
            **fields,
            "client_id": str(client_id),
            "amount": "200.00",
            "date": "2026-03-12",
            "settle": "open",
            "service_id": str(service_id),
            "staff_id": str(staff_id),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert await totals(maker, client_id) == (0, 20000)
    async with maker() as session:
        charge = await session.scalar(select(Charge).where(Charge.client_id == client_id))
    assert (charge.status, charge.description, charge.commission_bp) == (
        "open",
        "Sessão individual",
        commission_bp,
    )


@pytest.mark.parametrize(
    ("field", "message"),
    [("service_id", "Unknown service."), ("staff_id", "Unknown staff member.")],
)
async def test_an_unknown_service_or_staff_member_is_refused_beside_its_field(
    client, login, make_client, maker, field, message
):
    await login(client, "reception")
    client_id = await make_client()
    fields = await form_page(client, f"/charges/new?client_id={client_id}")
    response = await client.post(
        "/charges/new",
        data={
            **fields,
            "client_id": str(client_id),
            "amount": "80.00",
            "date": "2026-03-12",
            "settle": "open",
            field: "987654",
        },
        follow_redirects=False,
    )
    assert response.status_code == 422
    assert f'<p class="error">{message}</p>' in response.text
    assert await count(maker, Charge) == 0 and await count(maker, Entry) == 0
    assert await totals(maker, client_id) == (0, 0)


async def test_double_tap_records_one_payment(client, login, csrf, make_client, maker):
    await login(client, "reception")
    client_id = await make_client()
    fields = await form_page(client, f"/payments/new?client_id={client_id}")
    data = {
        **fields,
        "client_id": str(client_id),
        "amount": "50.00",
        "method": "cash",
        "received_on": "2026-03-01",
    }
    first = await client.post("/payments", data=data, follow_redirects=False)
    second = await client.post("/payments", data=data, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert await count(maker, Payment) == 1
    assert await totals(maker, client_id) == (5000, 0)


# --- amounts as people type them ------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter an amount"),
        ("-5", "must be positive"),
        ("0", "greater than zero"),
        ("12.345", "two decimals"),
        ("abc", "digits"),
        ("1000000", "maximum"),
    ],
)
async def test_bad_amount_is_explained_next_to_the_field_and_nothing_is_written(
    client, login, make_client, maker, typed, message
):
    await login(client, "reception")
    client_id = await make_client()
    fields = await form_page(client, f"/payments/new?client_id={client_id}")
    response = await client.post(
        "/payments",
        data={
            **fields,
            "client_id": str(client_id),
            "amount": typed,
            "method": "cash",
            "received_on": "2026-03-01",
        },
        follow_redirects=False,
    )
    assert response.status_code == 422
    assert 'id="e-amount"' in response.text and message in response.text
    assert await count(maker, Payment) == 0 and await count(maker, Entry) == 0


async def test_amounts_are_read_in_the_installations_locale(client, login, make_client, maker):
    async with maker() as session:
        session.add_all(
            [
                Setting(key="locale", value=json.dumps("pt_BR")),
                Setting(key="currency", value=json.dumps("BRL")),
            ]
        )
        await session.commit()
    await login(client, "reception")
    client_id = await make_client()
    fields = await form_page(client, f"/payments/new?client_id={client_id}")
    response = await client.post(
        "/payments",
        data={
            **fields,
            "client_id": str(client_id),
            "amount": "1.234,50",
            "method": "pix",
            "received_on": "2026-03-01",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert await totals(maker, client_id) == (123450, 0)
    receipt = await client.get(response.headers["location"])
    assert "R$\xa01.234,50" in receipt.text


# --- idempotency through the API ------------------------------------------------------------


async def test_api_replays_the_first_answer_for_the_same_key(
    client, login, csrf, make_client, maker
):
    await login(client, "reception")
    client_id = await make_client()
    first = await topup_via_api(client, csrf, client_id, "25.00", key="tap-1")
    again = await topup_via_api(client, csrf, client_id, "25.00", key="tap-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert await count(maker, Payment) == 1


async def test_same_key_with_different_content_is_refused(client, login, csrf, make_client, maker):
    await login(client, "reception")
    client_id = await make_client()
    assert (await topup_via_api(client, csrf, client_id, "25.00", key="k")).status_code == 201
    other = await topup_via_api(client, csrf, client_id, "26.00", key="k")
    assert other.status_code == 422
    assert "different request" in other.json()["detail"]
    assert await count(maker, Payment) == 1


async def test_a_refused_request_stores_no_key(client, login, csrf, make_client, maker):
    await login(client, "reception")
    client_id = await make_client()
    body = {
        "client_id": client_id,
        "amount": "30.00",
        "pay_from_credit": True,
        "date": "2026-03-05",
    }
    headers = {"x-csrftoken": await csrf(client), "Idempotency-Key": "charge-1"}
    refused = await client.post("/api/v1/charges", json=body, headers=headers)
    assert refused.status_code == 409
    assert await count(maker, IdempotencyKey) == 0
    await topup_via_api(client, csrf, client_id, "30.00")
    accepted = await client.post("/api/v1/charges", json=body, headers=headers)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["status"] == "paid"


async def test_api_charges_and_payments_follow_the_contract(
    client, login, csrf, make_client, maker
):
    await login(client, "admin")
    client_id = await make_client()
    headers = {"x-csrftoken": await csrf(client)}
    charge = await client.post(
        "/api/v1/charges",
        json={
            "client_id": client_id,
            "amount": "120.00",
            "date": "2026-02-03",
            "due_date": "2026-02-13",
        },
        headers=headers,
    )
    assert charge.status_code == 201, charge.text
    c = charge.json()
    assert {
        k: c[k] for k in ("amount", "date", "due_date", "status", "paid_amount", "open_amount")
    } == {
        "amount": "120.00",
        "date": "2026-02-03",
        "due_date": "2026-02-13",
        "status": "open",
        "paid_amount": "0.00",
        "open_amount": "120.00",
    }
    partial = await client.post(
        "/api/v1/payments",
        json={"client_id": client_id, "amount": "50.00", "method": "card", "charge_ids": [c["id"]]},
        headers=headers,
    )
    assert partial.status_code == 201
    assert partial.json()["allocations"] == [{"charge_id": c["id"], "amount": "50.00"}]
    assert (await client.get(f"/api/v1/charges/{c['id']}")).json()["status"] == "partial"
    too_much = await client.post(
        "/api/v1/payments",
        json={
            "client_id": client_id,
            "amount": "100.00",
            "method": "card",
            "charge_ids": [c["id"]],
        },
        headers=headers,
    )
    assert too_much.status_code == 409 and too_much.json()["owed"] == "70.00"
    rest = await client.post(
        "/api/v1/payments",
        json={
            "client_id": client_id,
            "amount": "100.00",
            "method": "card",
            "charge_ids": [c["id"]],
            "remainder_to_credit": True,
        },
        headers=headers,
    )
    assert rest.status_code == 201 and rest.json()["credit_added"] == "30.00"
    listed = (await client.get(f"/api/v1/charges?client_id={client_id}&month=2026-02")).json()
    assert listed["total"] == 1 and listed["items"][0]["status"] == "paid"
    bad = await client.post(
        "/api/v1/payments",
        json={"client_id": client_id, "amount": "1.001", "method": "card"},
        headers=headers,
    )
    assert bad.status_code == 422
    await assert_verify_clean(maker)


async def test_accountant_cannot_move_money(client, login, csrf, make_client, maker):
    await login(client, "accountant")
    client_id = await make_client()
    response = await topup_via_api(client, csrf, client_id, "10.00")
    assert response.status_code == 403
    assert await count(maker, Payment) == 0


# --- the journal's guarantees ---------------------------------------------------------------


@pytest.mark.parametrize(
    "settle", [{}, {"pay_now_method": "pix"}, {"pay_from_credit": True}], ids=str
)
async def test_closed_month_accepts_no_new_entries(client, login, csrf, make_client, maker, settle):
    """Whichever way the charge is settled, the month is checked (now by the balance
    UPDATE, after every row was written) and the refusal leaves nothing behind."""
    await login(client, "reception")
    client_id = await make_client()
    assert (await topup_via_api(client, csrf, client_id, "10.00")).status_code == 201
    async with maker() as session:
        from datetime import UTC, datetime

        session.add(Period(month="2026-01", closed_at=datetime.now(UTC)))
        await session.commit()
    response = await client.post(
        "/api/v1/charges",
        json={"client_id": client_id, "amount": "10.00", "date": "2026-01-31", **settle},
        headers={"x-csrftoken": await csrf(client)},
    )
    assert response.status_code == 409, response.text
    assert "2026-01 is closed" in response.json()["detail"]
    assert await count(maker, Charge) == 0 and await count(maker, Allocation) == 0
    assert await count(maker, Payment) == 1  # the top-up alone
    assert await count(maker, Entry) == 1
    async with maker() as session:
        client_row = await session.get(Client, client_id)
        assert (client_row.credit_cents, client_row.owed_cents) == (1000, 0)


@pytest.mark.parametrize("what", ["charge", "payment"])
async def test_money_racing_a_month_close_waits_for_it_and_is_refused(
    client, login, csrf, make_client, maker, what
):
    """The close holds the journal (SHARE on PostgreSQL, the write lock on SQLite) while
    it marks the month closed; a charge or payment dated in that month sent meanwhile
    must wait, then see the month closed: checked before the journal was held, it would
    slip in."""
    import asyncio
    from datetime import UTC, datetime

    from app.db import begin_write
    from app.statements.services import _lock_journal

    await login(client, "reception")
    client_id = await make_client()
    token = await csrf(client)
    path, body, model = {
        "charge": ("/api/v1/charges", {"date": "2026-01-31"}, Charge),
        "payment": ("/api/v1/payments", {"method": "cash", "received_on": "2026-01-31"}, Payment),
    }[what]
    async with maker() as closing:
        await begin_write(closing)
        await _lock_journal(closing)
        closing.add(Period(month="2026-01", closed_at=datetime.now(UTC)))
        await closing.flush()
        money = asyncio.create_task(
            client.post(
                path,
                json={"client_id": client_id, "amount": "10.00", **body},
                headers={"x-csrftoken": token},
            )
        )
        await asyncio.sleep(0.5)
        assert not money.done()  # waiting for the close
        await closing.commit()
    response = await money
    assert response.status_code == 409 and "closed" in response.json()["detail"]
    assert await count(maker, model) == 0
    await assert_verify_clean(maker)


@pytest.mark.parametrize("pays_the_charge", [False, True], ids=["top-up", "paying a charge"])
async def test_a_payment_in_a_closed_month_is_refused_and_leaves_nothing(
    client, login, csrf, make_client, maker, pays_the_charge
):
    """The month is checked by the balance UPDATE, after the payment, its journal lines,
    its allocation and the charge's new status were written: all of them roll back."""
    await login(client, "reception")
    client_id = await make_client()
    headers = {"x-csrftoken": await csrf(client)}
    charge = await client.post(
        "/api/v1/charges",
        json={"client_id": client_id, "amount": "30.00", "date": "2026-01-10"},
        headers=headers,
    )
    assert charge.status_code == 201, charge.text
    async with maker() as session:
        from datetime import UTC, datetime

        session.add(Period(month="2026-02", closed_at=datetime.now(UTC)))
        await session.commit()
    body = {"client_id": client_id, "amount": "30.00", "method": "pix", "received_on": "2026-02-03"}
    if pays_the_charge:
        body["charge_ids"] = [charge.json()["id"]]
    response = await client.post("/api/v1/payments", json=body, headers=headers)
    assert response.status_code == 409, response.text
    assert "2026-02 is closed" in response.json()["detail"]
    assert await count(maker, Payment) == 0 and await count(maker, Allocation) == 0
    assert await count(maker, Entry) == 1  # the charge's
    async with maker() as session:
        row = await session.get(Charge, charge.json()["id"])
        assert (row.status, row.paid_cents) == ("open", 0)
        client_row = await session.get(Client, client_id)
        assert (client_row.credit_cents, client_row.owed_cents) == (0, 3000)


async def test_entries_and_allocations_cannot_be_changed(client, login, csrf, make_client, maker):
    await login(client, "reception")
    client_id = await make_client()
    await topup_via_api(client, csrf, client_id, "10.00")
    async with maker() as session:
        with pytest.raises(Exception, match="append-only"):
            await session.execute(update(Entry).values(amount_cents=1))
        await session.rollback()
        with pytest.raises(Exception, match="append-only"):
            await session.execute(text("DELETE FROM entries"))
        await session.rollback()


async def test_verify_finds_a_balance_that_disagrees_with_the_journal(
    client, login, csrf, make_client, maker
):
    await login(client, "reception")
    client_id = await make_client()
    await topup_via_api(client, csrf, client_id, "10.00")
    await assert_verify_clean(maker)
    async with maker() as session:
        await session.execute(update(Client).where(Client.id == client_id).values(credit_cents=999))
        await session.commit()
        diffs = await ledger.verify(session)
    assert {d.what for d in diffs} == {
        "credit (journal)",
        "credit (payments - allocations - refunds)",
    }
    assert all(d.client_id == client_id and d.stored == 999 and d.computed == 1000 for d in diffs)


async def test_allocations_sum_to_what_each_charge_has_paid(
    client, login, csrf, make_client, maker
):
    await login(client, "reception")
    client_id = await make_client()
    headers = {"x-csrftoken": await csrf(client)}
    ids = []
    for day in ("2026-02-01", "2026-02-08", "2026-02-15"):
        r = await client.post(
            "/api/v1/charges",
            json={"client_id": client_id, "amount": "40.00", "date": day},
            headers=headers,
        )
        ids.append(r.json()["id"])
    r = await client.post(
        "/api/v1/payments",
        json={"client_id": client_id, "amount": "100.00", "method": "pix", "charge_ids": ids},
        headers=headers,
    )
    # Oldest first: 40 + 40 + 20.
    assert [a["amount"] for a in r.json()["allocations"]] == ["40.00", "40.00", "20.00"]
    async with maker() as session:
        statuses = list(await session.scalars(select(Charge.status).order_by(Charge.date)))
        assert statuses == ["paid", "paid", "partial"]
        assert await session.scalar(select(func.sum(Allocation.amount_cents))) == 10000
    assert await totals(maker, client_id) == (0, 2000)
    await assert_verify_clean(maker)
