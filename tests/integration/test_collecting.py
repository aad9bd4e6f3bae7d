"""The owner's monthly routine: open charges, toggles, batches, voids, refunds, the month review."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from app.clients.models import Client
from app.collecting.models import BillingMessage
from app.ledger import services as ledger
from app.ledger.models import Charge, Entry, Payment, Refund


@pytest.fixture
async def api(client, login, csrf):  # type: ignore[no-untyped-def]
    """A logged-in admin and a helper that POSTs JSON with the CSRF header."""
    await login(client, "admin")
    token = await csrf(client)

    async def post(path: str, body: dict[str, Any], key: str | None = None) -> Any:
        headers = {"x-csrftoken": token}
        if key:
            headers["Idempotency-Key"] = key
        return await client.post(path, json=body, headers=headers)

    return post


async def charge(
    api: Any, client_id: int, day: str, amount: str = "100.00", due: str | None = None
) -> int:
    body = {"client_id": client_id, "amount": amount, "date": day}
    if due:
        body["due_date"] = due
    response = await api("/api/v1/charges", body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def verify_clean(maker: Any) -> None:
    async with maker() as session:
        assert await ledger.verify(session) == []


async def status_of(maker: Any, charge_id: int) -> tuple[str, int]:
    async with maker() as session:
        c = await session.get(Charge, charge_id)
        return c.status, c.paid_cents


def hx(client: Any, token: str) -> dict[str, str]:
    return {"HX-Request": "true", "x-csrftoken": token}


# --- month boundaries -----------------------------------------------------------------------


async def test_month_review_counts_first_and_last_day_and_not_the_next_month(
    api, client, make_client, maker
):
    ana = await make_client("Ana Souza")
    bia = await make_client("Beatriz Lima")
    first = await charge(api, ana, "2026-02-01", "50.00")
    await charge(api, ana, "2026-02-28", "70.00")
    await charge(api, ana, "2026-03-01", "900.00")  # next month: out
    await charge(api, ana, "2026-01-31", "900.00")  # previous month: out
    paid = await charge(api, bia, "2026-02-10", "80.00")
    await api(
        "/api/v1/payments",
        {"client_id": bia, "amount": "80.00", "method": "pix", "charge_ids": [paid]},
    )
    partial = await charge(api, bia, "2026-02-15", "100.00")
    await api(
        "/api/v1/payments",
        {"client_id": bia, "amount": "40.00", "method": "pix", "charge_ids": [partial]},
    )

    report = (await client.get("/api/v1/reports/unpaid?month=2026-02")).json()
    assert report["month"] == "2026-02"
    rows = {r["client_name"]: r for r in report["clients"]}
    assert rows["Ana Souza"]["count"] == 2 and rows["Ana Souza"]["total"] == "120.00"
    assert rows["Ana Souza"]["dates"] == ["2026-02-01", "2026-02-28"]
    assert (
        rows["Beatriz Lima"]["count"] == 1 and rows["Beatriz Lima"]["total"] == "60.00"
    )  # paid one excluded
    assert report["total"] == "180.00"
    assert [r["client_name"] for r in report["clients"]] == [
        "Ana Souza",
        "Beatriz Lima",
    ]  # by total
    assert "02/01 and 02/28" in rows["Ana Souza"]["message"]
    page = await client.get("/collect?month=2026-02")
    assert page.status_code == 200 and "Ana Souza" in page.text and "$180.00" in page.text
    assert first


async def test_a_long_month_review_comes_a_page_at_a_time_biggest_debts_first(
    api, client, make_client
):
    # 52 debtors owing 1.00 … 52.00: the first page shows the 50 largest, all are counted.
    for n in range(1, 53):
        who = await make_client(f"Client {n:02d}")
        await charge(api, who, "2026-02-10", f"{n}.00")
    first = await client.get("/collect?month=2026-02")
    assert first.status_code == 200
    assert "52 clients still owe for this month" in first.text
    assert 'data-testid="collect-total">$1,378.00<' in first.text  # 1 + 2 + … + 52
    assert first.text.count('class="card debtor"') == 50
    assert "Client 52" in first.text and "Client 03" in first.text and "Client 02" not in first.text
    assert "Page 1 of 2" in first.text and "page=2" in first.text
    second = await client.get("/collect?month=2026-02&page=2")
    assert second.text.count('class="card debtor"') == 2
    assert "Client 02" in second.text and "Client 01" in second.text
    assert 'data-testid="collect-total">$1,378.00<' in second.text


async def test_month_review_defaults_to_the_previous_month(api, client):
    report = (await client.get("/api/v1/reports/unpaid")).json()
    assert re.fullmatch(r"\d{4}-\d{2}", report["month"])
    assert report["clients"] == [] and report["total"] == "0.00"


async def test_whatsapp_and_email_links_carry_the_message_and_mark_as_sent(
    api, client, csrf, make_client, maker
):
    ana = await make_client("Ana Souza", phone_digits="5511999990000", email="ana@example.com")
    await charge(api, ana, "2026-02-03")
    page = await client.get("/collect?month=2026-02")
    assert "https://wa.me/5511999990000?text=Hello%20Ana" in page.text
    assert "mailto:ana@example.com?subject=" in page.text
    assert "Not contacted yet this month" in page.text
    token = await csrf(client)
    sent = await client.post(
        "/collect/2026-02/sent",
        data={"client_id": str(ana), "tone": "reminder", "channel": "whatsapp"},
        headers=hx(client, token),
    )
    assert sent.status_code == 200 and "Sent" in sent.text
    async with maker() as session:
        message = await session.scalar(select(BillingMessage))
        assert (message.client_id, message.month, message.tone) == (ana, "2026-02", "reminder")
    assert "Not contacted yet" not in (await client.get("/collect?month=2026-02")).text


# --- inline toggle --------------------------------------------------------------------------


async def test_toggle_marks_paid_then_back_to_open_with_reversing_entries(
    api, client, csrf, make_client, maker
):
    ana = await make_client()
    charge_id = await charge(api, ana, "2026-02-03", "100.00")
    token = await csrf(client)
    row = await client.post(
        f"/charges/{charge_id}/toggle",
        data={"idempotency_key": "t1", "to": "paid"},
        headers=hx(client, token),
    )
    assert row.status_code == 200
    assert row.text.lstrip().startswith(f'<tr id="charge-{charge_id}"')  # only the row is swapped
    assert "Paid" in row.text and "Back to open" in row.text
    assert await status_of(maker, charge_id) == ("paid", 10000)
    # A double tap replays, it does not toggle back.
    again = await client.post(
        f"/charges/{charge_id}/toggle",
        data={"idempotency_key": "t1", "to": "paid"},
        headers=hx(client, token),
    )
    assert again.status_code == 200 and await status_of(maker, charge_id) == ("paid", 10000)

    back = await client.post(
        f"/charges/{charge_id}/toggle",
        data={"idempotency_key": "t2", "to": "open"},
        headers=hx(client, token),
    )
    assert "Mark paid" in back.text and "reversed" in back.text
    assert await status_of(maker, charge_id) == ("open", 0)
    async with maker() as session:
        kinds = list(await session.scalars(select(Entry.kind).order_by(Entry.id)))
        payment = await session.scalar(select(Payment))
        c = await session.get(Client, ana)
    assert kinds == ["charge", "payment", "payment_applied", "unallocated", "payment_reversed"]
    assert payment.reversed_at is not None  # the mistaken payment no longer counts as received
    assert (c.credit_cents, c.owed_cents) == (0, 10000)
    await verify_clean(maker)


async def test_row_shows_who_changed_it_and_when(api, client, csrf, make_client, maker):
    ana = await make_client()
    charge_id = await charge(api, ana, "2026-02-03")
    row = await client.post(
        f"/charges/{charge_id}/toggle",
        data={"idempotency_key": "w"},
        headers=hx(client, await csrf(client)),
    )
    assert "Admin 1" in row.text  # the display name of the user who changed it


# --- batch confirmation ---------------------------------------------------------------------


async def test_batch_including_an_already_paid_charge_skips_it_and_pays_the_rest_once(
    api, client, csrf, make_client, maker
):
    ana = await make_client("Ana Souza")
    bia = await make_client("Beatriz Lima")
    a1 = await charge(api, ana, "2026-02-03", "100.00")
    a2 = await charge(api, ana, "2026-02-10", "100.00")
    b1 = await charge(api, bia, "2026-02-04", "50.00")
    await api(
        "/api/v1/payments",
        {"client_id": ana, "amount": "100.00", "method": "cash", "charge_ids": [a1]},
    )
    token = await csrf(client)
    response = await client.post(
        "/charges/batch",
        data={
            "ids": [str(a1), str(a2), str(b1)],
            "method": "pix",
            "date": "2026-03-02",
            "idempotency_key": "b1",
        },
        headers=hx(client, token),
    )
    assert response.status_code == 200, response.text
    assert (
        "2 charges marked paid." in response.text
        and "1 was already paid or void and was skipped." in response.text
    )
    assert response.headers["hx-trigger"] == "charges-changed"
    assert [await status_of(maker, i) for i in (a1, a2, b1)] == [("paid", 10000)] * 2 + [
        ("paid", 5000)
    ]
    async with maker() as session:
        payments = list(await session.scalars(select(Payment).order_by(Payment.id)))
    # One payment per client for the batch (plus Ana's earlier one); nothing paid twice.
    assert [(p.client_id, p.amount_cents, p.method) for p in payments] == [
        (ana, 10000, "cash"),
        (ana, 10000, "pix"),
        (bia, 5000, "pix"),
    ]
    again = await client.post(
        "/charges/batch",
        data={
            "ids": [str(a1), str(a2), str(b1)],
            "method": "pix",
            "date": "2026-03-02",
            "idempotency_key": "b2",
        },
        headers=hx(client, token),
    )
    assert again.status_code == 422 and "already paid or void" in again.text
    await verify_clean(maker)


# --- partial payments, overpayment, credit ---------------------------------------------------


async def test_partial_then_paid_and_overpayment_rules(api, client, make_client, maker):
    ana = await make_client()
    c1 = await charge(api, ana, "2026-02-03", "100.00")
    r = await api(
        "/api/v1/payments",
        {"client_id": ana, "amount": "30.00", "method": "cash", "charge_ids": [c1]},
    )
    assert r.status_code == 201 and await status_of(maker, c1) == ("partial", 3000)
    refused = await api(
        "/api/v1/payments",
        {"client_id": ana, "amount": "80.00", "method": "cash", "charge_ids": [c1]},
    )
    assert refused.status_code == 409 and refused.json()["owed"] == "70.00"
    assert "70.00" in refused.json()["detail"]
    kept = await api(
        "/api/v1/payments",
        {
            "client_id": ana,
            "amount": "80.00",
            "method": "cash",
            "charge_ids": [c1],
            "remainder_to_credit": True,
        },
    )
    assert kept.status_code == 201 and kept.json()["credit_added"] == "10.00"
    assert await status_of(maker, c1) == ("paid", 10000)
    await verify_clean(maker)


async def test_existing_credit_can_be_applied_to_open_charges(
    api, client, csrf, make_client, maker
):
    ana = await make_client()
    await api("/api/v1/payments", {"client_id": ana, "amount": "150.00", "method": "pix"})
    c1 = await charge(api, ana, "2026-02-03", "100.00")
    c2 = await charge(api, ana, "2026-02-10", "100.00")
    response = await client.post(
        f"/clients/{ana}/apply-credit",
        data={"_csrf_token": await csrf(client), "idempotency_key": "ac"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert [await status_of(maker, c) for c in (c1, c2)] == [("paid", 10000), ("partial", 5000)]
    async with maker() as session:
        c = await session.get(Client, ana)
    assert (c.credit_cents, c.owed_cents) == (0, 5000)
    await verify_clean(maker)


# --- voids and refunds ----------------------------------------------------------------------


async def test_void_after_payment_is_refused_until_reopened(api, client, csrf, make_client, maker):
    ana = await make_client()
    c1 = await charge(api, ana, "2026-02-03", "100.00")
    await api(
        "/api/v1/payments",
        {"client_id": ana, "amount": "100.00", "method": "cash", "charge_ids": [c1]},
    )
    refused = await api(f"/api/v1/charges/{c1}/void", {"reason": "booked twice"})
    assert refused.status_code == 409 and "open first" in refused.json()["detail"]
    assert await status_of(maker, c1) == ("paid", 10000)
    no_reason = await api(f"/api/v1/charges/{c1}/void", {"reason": " "})
    assert no_reason.status_code == 422


async def test_void_writes_a_reversing_entry_and_clears_what_is_owed(
    api, client, csrf, make_client, maker
):
    ana = await make_client()
    c1 = await charge(api, ana, "2026-02-03", "100.00")
    row = await client.post(
        f"/charges/{c1}/void",
        data={"reason": "booked twice", "idempotency_key": "v"},
        headers=hx(client, await csrf(client)),
    )
    assert row.status_code == 200 and "Void" in row.text
    assert (await client.get(f"/api/v1/charges/{c1}")).json()["status"] == "void"
    async with maker() as session:
        entries = list(await session.scalars(select(Entry).order_by(Entry.id)))
        c = await session.get(Client, ana)
    assert [(e.kind, e.amount_cents) for e in entries] == [("charge", -10000), ("void", 10000)]
    assert "booked twice" in entries[-1].description
    assert c.owed_cents == 0
    again = await api(f"/api/v1/charges/{c1}/void", {"reason": "again"})
    assert again.status_code == 409
    await verify_clean(maker)


async def test_refund_hands_back_credit_and_never_more_than_held(
    api, client, csrf, make_client, maker
):
    ana = await make_client()
    await api("/api/v1/payments", {"client_id": ana, "amount": "50.00", "method": "pix"})
    too_much = await api(f"/api/v1/clients/{ana}/refunds", {"amount": "60.00", "method": "pix"})
    assert too_much.status_code == 409 and "50.00" in too_much.json()["detail"]
    ok = await api(f"/api/v1/clients/{ana}/refunds", {"amount": "20.00", "method": "pix"}, key="r1")
    replay = await api(
        f"/api/v1/clients/{ana}/refunds", {"amount": "20.00", "method": "pix"}, key="r1"
    )
    assert ok.status_code == replay.status_code == 201 and ok.json() == replay.json()
    page = await client.get(f"/clients/{ana}/refund")
    assert page.status_code == 200 and "$30.00" in page.text
    async with maker() as session:
        assert await session.scalar(select(func.count(Refund.id))) == 1
        c = await session.get(Client, ana)
    assert c.credit_cents == 3000
    await verify_clean(maker)


# --- the list -------------------------------------------------------------------------------


async def test_open_charges_filter_by_month_status_and_overdue(api, client, make_client, maker):
    ana = await make_client("Ana Souza")
    await charge(api, ana, "2026-02-03", "100.00", due="2026-02-13")  # overdue long ago
    await charge(api, ana, "2099-01-03", "100.00", due="2099-01-13")  # not overdue
    paid = await charge(api, ana, "2026-02-05", "100.00")
    await api(
        "/api/v1/payments",
        {"client_id": ana, "amount": "100.00", "method": "cash", "charge_ids": [paid]},
    )

    everything = await client.get("/charges?status=all")
    assert everything.text.count('class="charge-row') == 3
    unpaid = await client.get("/charges")
    assert unpaid.text.count('class="charge-row') == 2
    overdue = await client.get("/charges?overdue=true")
    assert overdue.text.count('class="charge-row') == 1 and "Overdue" in overdue.text
    february = await client.get(
        "/charges?month=2026-02&status=all",
        headers={"HX-Request": "true", "HX-Target": "charges-table"},
    )
    assert february.text.count('class="charge-row') == 2
    assert "<html" not in february.text  # the filter swaps only the table
    api_overdue = (await client.get("/api/v1/charges?overdue=true")).json()
    assert api_overdue["total"] == 1


async def test_accountant_sees_the_lists_but_cannot_toggle(client, login, csrf, make_client, maker):
    await login(client, "accountant")
    page = await client.get("/charges")
    assert page.status_code == 200 and "Confirm payment" not in page.text
    assert (await client.get("/collect")).status_code == 200
    r = await client.post("/charges/1/toggle", data={}, headers=hx(client, await csrf(client)))
    assert r.status_code == 403
