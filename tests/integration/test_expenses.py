"""Expenses and the month's summary: received − commissions − expenses = net."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from app.admin.models import Setting, Staff
from app.audit import AuditEvent
from app.expenses import services as expenses
from app.expenses.models import Expense
from app.statements.models import Period

# --- helpers --------------------------------------------------------------------------------


async def set_practice(maker: Any, **values: Any) -> None:
    async with maker() as session:
        for key, value in values.items():
            session.add(Setting(key=key, value=json.dumps(value)))
        await session.commit()


async def close_month(maker: Any, month: str) -> None:
    async with maker() as session:
        session.add(Period(month=month, closed_at=datetime.now(UTC)))
        await session.commit()


async def expense_rows(maker: Any) -> list[Expense]:
    async with maker() as session:
        return list(await session.scalars(select(Expense).order_by(Expense.id)))


@pytest.fixture
def make_staff(maker):  # type: ignore[no-untyped-def]
    async def make(name: str, commission_bp: int) -> int:
        async with maker() as session:
            staff = Staff(name=name, commission_bp=commission_bp, active=True)
            session.add(staff)
            await session.commit()
            return staff.id

    return make


@pytest.fixture
async def admin(client, login, csrf):  # type: ignore[no-untyped-def]
    """The client logged in as admin; returns its CSRF token."""
    await login(client, "admin")
    return await csrf(client)


def expense_form(token: str, **values: str) -> dict[str, str]:
    return {
        "_csrf_token": token,
        "amount": "45.90",
        "spent_on": "2026-02-10",
        "method": "cash",
        "category": "Supplies",
        "note": "",
        "idempotency_key": values.pop("idempotency_key", "k-" + values.get("amount", "x")),
        **values,
    }


async def record(client: Any, token: str, **values: str) -> Any:
    return await client.post(
        "/expenses", data=expense_form(token, **values), follow_redirects=False
    )


# --- recording ------------------------------------------------------------------------------


async def test_reception_records_an_expense_typed_the_locale_way(client, login, csrf, maker):
    await set_practice(maker, locale="pt_BR", currency="BRL", language="pt_BR")
    await login(client, "reception")
    token = await csrf(client)
    response = await record(
        client, token, amount="1.234,50", category="Aluguel", method="transfer", note="Fevereiro"
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/expenses?month=2026-02#expense-")
    [row] = await expense_rows(maker)
    assert (row.spent_on, row.amount_cents, row.method, row.category, row.note) == (
        date(2026, 2, 10),
        123450,
        "transfer",
        "Aluguel",
        "Fevereiro",
    )
    page = await client.get("/expenses?month=2026-02")
    assert page.status_code == 200
    assert "Aluguel" in page.text and "R$\xa01.234,50" in page.text


async def test_double_tap_records_one_expense(client, admin, maker):
    first = await record(client, admin, idempotency_key="same")
    again = await record(client, admin, idempotency_key="same")
    assert first.status_code == again.status_code == 303
    assert len(await expense_rows(maker)) == 1


async def test_same_key_with_other_content_is_refused(client, admin, maker):
    await record(client, admin, idempotency_key="same")
    other = await record(client, admin, idempotency_key="same", amount="99.00")
    assert other.status_code == 422 and "different request" in other.text
    assert len(await expense_rows(maker)) == 1


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("", "Enter an amount."),
        ("abc", "Use digits"),
        ("0", "greater than zero"),
        ("-5", "must be positive"),
        ("1.2.3", "Use digits"),
        ("12.345", "at most two decimals"),
        ("200000.00", "above the maximum"),
    ],
)
async def test_bad_amounts_are_refused_and_nothing_is_written(
    client, admin, maker, amount, message
):
    response = await record(client, admin, amount=amount)
    assert response.status_code == 422
    assert message in response.text
    assert await expense_rows(maker) == []


async def test_category_and_method_are_required(client, admin, maker):
    no_category = await record(client, admin, category="   ")
    assert no_category.status_code == 422 and "Say what the expense was for" in no_category.text
    bad_method = await record(client, admin, method="cheque", idempotency_key="m")
    assert bad_method.status_code == 422 and "Choose how the money was paid" in bad_method.text
    assert await expense_rows(maker) == []


async def test_expense_dated_in_a_closed_month_is_refused(client, admin, maker):
    await close_month(maker, "2026-01")
    response = await record(client, admin, spent_on="2026-01-31")
    assert response.status_code == 409
    assert "2026-01 is closed" in response.text
    assert await expense_rows(maker) == []
    # The day after is in an open month.
    assert (await record(client, admin, spent_on="2026-02-01")).status_code == 303


async def test_categories_are_suggested_and_keep_one_spelling(client, admin, maker):
    await record(client, admin, category="Supplies", idempotency_key="a")
    await record(client, admin, category="  supplies ", amount="12.10", idempotency_key="b")
    await record(client, admin, category="Rent", amount="300.00", idempotency_key="c")
    rows = await expense_rows(maker)
    assert [r.category for r in rows] == ["Supplies", "Supplies", "Rent"]
    page = await client.get("/expenses?month=2026-02")
    assert '<datalist id="expense-categories"><option value="Supplies"><option value="Rent">' in (
        page.text
    )
    async with maker() as session:
        month = await expenses.month_expenses(session, "2026-02")
    assert month.by_category == [("Rent", 30000), ("Supplies", 5800)]
    assert month.total_cents == 35800


async def test_accountant_reads_expenses_but_cannot_record(client, login, csrf, maker):
    await login(client, "accountant")
    page = await client.get("/expenses?month=2026-02")
    assert page.status_code == 200 and 'id="expense-form"' not in page.text
    response = await record(client, await csrf(client))
    assert response.status_code == 403
    assert await expense_rows(maker) == []


async def test_expenses_page_defaults_to_this_month(client, admin):
    page = await client.get("/expenses")
    assert page.status_code == 200
    this_month = date.today().strftime("%Y-%m")
    assert f'name="month" value="{this_month}"' in page.text


# --- deleting ---------------------------------------------------------------------------------


async def test_admin_deletes_an_expense_in_an_open_month_and_it_is_audited(client, admin, maker):
    await record(client, admin, note="typed twice")
    [row] = await expense_rows(maker)
    response = await client.post(
        f"/expenses/{row.id}/delete", data={"_csrf_token": admin}, follow_redirects=False
    )
    assert response.status_code == 303
    assert await expense_rows(maker) == []
    async with maker() as session:
        event = await session.scalar(
            select(AuditEvent).where(AuditEvent.action == "expense_deleted")
        )
    detail = json.loads(event.detail)
    assert detail["expense"]["amount"] == "45.90" and detail["expense"]["note"] == "typed twice"
    missing = await client.post(f"/expenses/{row.id}/delete", data={"_csrf_token": admin})
    assert missing.status_code == 404


async def test_expense_in_a_closed_month_cannot_be_deleted(client, admin, maker):
    await record(client, admin, spent_on="2026-01-20")
    await close_month(maker, "2026-01")
    [row] = await expense_rows(maker)
    response = await client.post(
        f"/expenses/{row.id}/delete", data={"_csrf_token": admin, "month": "2026-01"}
    )
    assert response.status_code == 409 and "2026-01 is closed" in response.text
    assert len(await expense_rows(maker)) == 1


async def test_reception_cannot_delete_an_expense(
    client, app, admin, client_for, login, csrf, maker
):
    await record(client, admin)
    [row] = await expense_rows(maker)
    async with client_for(app) as desk:
        await login(desk, "reception")
        response = await desk.post(
            f"/expenses/{row.id}/delete", data={"_csrf_token": await csrf(desk)}
        )
    assert response.status_code == 403
    assert len(await expense_rows(maker)) == 1


# --- the month's summary --------------------------------------------------------------------


@pytest.fixture
async def february(client, admin, csrf, make_client, make_staff, maker):  # type: ignore[no-untyped-def]
    """A hand-computed February 2026 (see each line's comment).

    Read from the journal by date, so February never changes once closed:
    received: pix 50 + pix 200 + card 103 + cash 120 + transfer 80 + cash 300 =
    853.00 (the cash 120 is reversed today, which takes it off today's month, not
    February). Paid of staff sessions: Ana 40 %: 50 + 200 + 120 = 370.00; Bruno
    35.5 %: 103.00, plus 60.00 from prepaid credit for commissions; unassigned:
    the 80 for a session without staff and the 300 top-up.
    """
    ana = await make_staff("Ana Terapeuta", 4000)
    bruno = await make_staff("Bruno", 3550)
    carla = await make_client("Carla")
    davi = await make_client("Davi")
    headers = {"x-csrftoken": admin}

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code == 201, response.text
        return response.json()

    async def charge(client_id: int, day: str, amount: str, staff: int | None) -> int:
        body = {"client_id": client_id, "date": day, "amount": amount, "staff_id": staff}
        return (await post("/api/v1/charges", body))["id"]

    async def pay(client_id: int, day: str, amount: str, method: str, charges: list[int]) -> int:
        body = {
            "client_id": client_id,
            "amount": amount,
            "method": method,
            "received_on": day,
            "charge_ids": charges or None,
        }
        return (await post("/api/v1/payments", body))["id"]

    january = await charge(carla, "2026-01-15", "50.00", ana)  # billed in January
    await pay(carla, "2026-02-02", "50.00", "pix", [january])  # received in February: Ana
    c1 = await charge(carla, "2026-02-03", "200.00", ana)
    await pay(carla, "2026-02-03", "200.00", "pix", [c1])  # Ana
    c2 = await charge(carla, "2026-02-10", "150.00", bruno)
    await pay(carla, "2026-02-10", "103.00", "card", [c2])  # Bruno, partly paid
    c3 = await charge(davi, "2026-02-12", "120.00", ana)
    await pay(davi, "2026-02-12", "120.00", "cash", [c3])  # reversed below: not received
    back = await client.post(
        f"/charges/{c3}/toggle",
        data={"to": "open", "idempotency_key": "reopen-c3"},
        headers={"HX-Request": "true", **headers},
    )
    assert back.status_code == 200 and "reversed" in back.text
    c4 = await charge(davi, "2026-02-20", "80.00", None)
    await pay(davi, "2026-02-20", "80.00", "transfer", [c4])  # no staff: unassigned
    await pay(davi, "2026-02-25", "300.00", "cash", [])  # top-up: unassigned
    c5 = await charge(carla, "2026-02-26", "90.00", bruno)
    void = await client.post(
        f"/api/v1/charges/{c5}/void", json={"reason": "not held"}, headers=headers
    )
    assert void.status_code in (200, 201), void.text
    body = {
        "client_id": davi,
        "date": "2026-02-27",
        "amount": "60.00",
        "staff_id": bruno,
        "pay_from_credit": True,
    }
    await post("/api/v1/charges", body)  # paid from credit: no money received for Bruno
    march = await charge(carla, "2026-03-02", "100.00", ana)
    await pay(carla, "2026-03-02", "100.00", "pix", [march])  # another month
    for key, (amount, category, method) in enumerate(
        [
            ("300.00", "Rent", "transfer"),
            ("45.90", "Supplies", "cash"),
            ("12.10", "supplies", "pix"),
        ]
    ):
        response = await record(
            client, admin, amount=amount, category=category, method=method, idempotency_key=str(key)
        )
        assert response.status_code == 303, response.text
    await record(client, admin, spent_on="2026-03-01", amount="999.00", idempotency_key="mar")
    return {"ana": ana, "bruno": bruno}


async def test_month_summary_counts_money_received_and_nets_commissions_and_expenses(
    february, maker
):
    async with maker() as session:
        s = await expenses.month_summary(session, "2026-02")
    assert s["commission_basis"] == "received"
    assert s["received_cents"] == 85300
    assert {m: v["cents"] for m, v in s["received_by_method"].items()} == {
        "cash": 42000,
        "card": 10300,
        "transfer": 8000,
        "pix": 25000,
        "other": 0,
    }
    assert s["received_by_method"]["pix"]["count"] == 2
    assert [(r["staff_name"], r["cents"]) for r in s["received_by_staff"]] == [
        ("Ana Terapeuta", 37000),
        ("Bruno", 10300),
    ]
    assert s["received_unassigned_cents"] == 38000
    # 370.00 × 40 % = 148.00; the session paid from credit earns its commission too:
    # (103.00 + 60.00) × 35.5 % = 57.865, half-up to 57.87.
    assert [(r["staff_name"], r["base_cents"], r["cents"]) for r in s["commissions_by_staff"]] == [
        ("Ana Terapeuta", 37000, 14800),
        ("Bruno", 16300, 5787),
    ]
    assert s["commissions_cents"] == 20587
    assert s["expenses_by_category"] == [("Rent", 30000), ("Supplies", 5800)]
    assert s["expenses_cents"] == 35800
    assert s["net_cents"] == 85300 - 20587 - 35800 == 28913
    # Billed: charges dated in February (200 + 150 + 120 + 80 + 90 + 60); the 90 is
    # cancelled today, which lowers today's month.
    assert s["billed_cents"] == 70000


async def test_commissions_on_the_billed_basis(february, maker):
    async with maker() as session:
        s = await expenses.month_summary(session, "2026-02", "billed")
    # Ana: (200 + 120) × 40 % = 128.00; Bruno: (150 + 90 + 60) × 35.5 % = 106.50
    # (the 90 is voided today, in another month).
    assert [(r["staff_name"], r["base_cents"], r["cents"]) for r in s["commissions_by_staff"]] == [
        ("Ana Terapeuta", 32000, 12800),
        ("Bruno", 30000, 10650),
    ]
    assert s["commissions_cents"] == 23450
    assert s["received_cents"] == 85300  # received does not depend on the basis
    assert s["net_cents"] == 85300 - 23450 - 35800


async def test_summary_page_labels_received_commissions_expenses_and_net(february, client, maker):
    page = await client.get("/expenses/summary?month=2026-02")
    assert page.status_code == 200
    text = page.text
    for label, amount in [
        ("received", "$853.00"),
        ("commissions", "$205.87"),
        ("expenses", "$358.00"),
        ("net", "$289.13"),
        ("unassigned", "$380.00"),
        ("billed", "$700.00"),
    ]:
        assert f'data-testid="{label}">{amount}<' in text, label
    assert "Received" in text and "Commissions" in text and "Net" in text
    assert "Billed is not money received" in text
    assert "35.5%" in text
    billed = await client.get("/expenses/summary?month=2026-02&basis=billed")
    assert 'data-testid="commissions">$234.50<' in billed.text


async def test_admin_makes_billed_the_default_basis(february, client, admin, maker):
    response = await client.post(
        "/expenses/summary/basis",
        data={"_csrf_token": admin, "basis": "billed", "month": "2026-02"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    async with maker() as session:
        assert (await expenses.month_summary(session, "2026-02"))["commissions_cents"] == 23450
        audited = await session.scalar(
            select(func.count()).where(AuditEvent.action == "settings_changed")
        )
    assert audited == 1
    wrong = await client.post(
        "/expenses/summary/basis", data={"_csrf_token": admin, "basis": "profit"}
    )
    assert wrong.status_code == 422


async def test_summary_is_for_admin_and_accountant_only(client, app, client_for, login):
    async with client_for(app) as desk:
        await login(desk, "reception")
        assert (await desk.get("/expenses/summary")).status_code == 403
    await login(client, "accountant")
    assert (await client.get("/expenses/summary?month=2026-02")).status_code == 200


def test_commission_rounds_half_up_to_the_cent() -> None:
    assert expenses.commission_of(10300, 3550) == 3657  # 36.565
    assert expenses.commission_of(10000, 3333) == 3333
    assert expenses.commission_of(1, 5000) == 1  # 0.5 cent
    assert expenses.commission_of(0, 4000) == 0
