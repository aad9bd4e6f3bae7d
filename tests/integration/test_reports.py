"""The owner's dashboard and reports, checked against a practice computed by hand.

``practice`` records, through the real API, last month (L) and today (T):

L day 3   Carla  c1 200.00 Ana 40 %            paid now, pix
L day 5   Davi   c2 150.00 Bruno 30 %          left open (due the same day)
          -- Bruno's rate becomes 35 % --
L day 10  Davi   c3 100.00 Bruno 35 %          paid now, card
L day 11  Eva    top-up 300.00 cash            credit 300
L day 12  Eva    c4 120.00 Ana, Tattoo 50 %    paid from credit (credit 180)
L day 15  Carla  c5  80.00 Bruno 35 %          voided today
L day 20  Carla  c6  90.00 no staff            paid by transfer on the same day
T         void c5; refund Eva 50.00 cash (credit 130); c3 back to open (card 100 reversed);
          Davi c7 60.00 Ana 40 % paid now cash; Davi pays 50.00 pix towards c2.

Received L: pix 200 + card 100 + cash 300 + transfer 90 = 690.00 (Ana 200, Bruno 100,
unassigned 390). Received T: cash 60 + pix 50 − card 100 = 10.00, refunded 50.00.
Billed L: 200 + 150 + 100 + 120 + 80 + 90 = 740.00; T: 60 − 80 (c5 cancelled) = −20.00.
Owed now: Davi c2 100 + c3 100 = 200.00; credit held: Eva 130.00.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from app.admin.models import Service, Setting, Staff
from app.ledger.services import month_of
from app.reports import services as reports
from app.statements.services import aging_bucket
from app.web.i18n import today as local_today


@dataclass
class Practice:
    today: date
    last: date  # first day of last month
    ids: dict[str, int]

    def day(self, n: int) -> date:
        return self.last.replace(day=n)

    @property
    def last_end(self) -> date:
        return self.today.replace(day=1) - timedelta(days=1)


@pytest.fixture
async def admin(client, login, csrf):  # type: ignore[no-untyped-def]
    await login(client, "admin")
    return await csrf(client)


@pytest.fixture
async def practice(client, admin, maker, make_client) -> Practice:  # type: ignore[no-untyped-def]
    today = local_today()
    last = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    p = Practice(today, last, {})
    headers = {"x-csrftoken": admin}

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code in (200, 201), response.text
        return response.json()

    async with maker() as session:
        ana = Staff(name="Ana", commission_bp=4000, active=True)
        bruno = Staff(name="Bruno", commission_bp=3000, active=True)
        tattoo = Service(name="Tattoo", price_cents=12000, commission_bp=5000, active=True)
        session.add_all([ana, bruno, tattoo])
        await session.commit()
        p.ids.update(ana=ana.id, bruno=bruno.id, tattoo=tattoo.id)
    carla, davi, eva = [await make_client(name) for name in ("Carla", "Davi", "Eva")]
    p.ids.update(carla=carla, davi=davi, eva=eva)

    async def charge(who: int, day: date, amount: str, staff: str | None, **extra: Any) -> int:
        body = {"client_id": who, "date": day.isoformat(), "amount": amount, **extra}
        if staff:
            body["staff_id"] = p.ids[staff]
        return (await post("/api/v1/charges", body))["id"]

    p.ids["c1"] = await charge(carla, p.day(3), "200.00", "ana", pay_now_method="pix")
    p.ids["c2"] = await charge(davi, p.day(5), "150.00", "bruno")
    async with maker() as session:
        await session.execute(
            update(Staff).where(Staff.id == p.ids["bruno"]).values(commission_bp=3500)
        )
        await session.commit()
    p.ids["c3"] = await charge(davi, p.day(10), "100.00", "bruno", pay_now_method="card")
    await post("/api/v1/payments", {"client_id": eva, "amount": "300.00", "method": "cash",
                                    "received_on": p.day(11).isoformat()})  # fmt: skip
    p.ids["c4"] = await charge(eva, p.day(12), "120.00", "ana", service_id=p.ids["tattoo"],
                               pay_from_credit=True)  # fmt: skip
    p.ids["c5"] = await charge(carla, p.day(15), "80.00", "bruno")
    p.ids["c6"] = await charge(carla, p.day(20), "90.00", None, pay_now_method="transfer")
    # Today:
    await post(f"/api/v1/charges/{p.ids['c5']}/void", {"reason": "did not happen"})
    await post(f"/api/v1/clients/{eva}/refunds", {"amount": "50.00", "method": "cash"})
    back = await client.post(
        f"/charges/{p.ids['c3']}/toggle",
        data={"to": "open", "idempotency_key": "reopen-c3"},
        headers={"HX-Request": "true", **headers},
    )
    assert back.status_code == 200 and "reversed" in back.text
    p.ids["c7"] = await charge(davi, today, "60.00", "ana", pay_now_method="cash")
    await post("/api/v1/payments", {"client_id": davi, "amount": "50.00", "method": "pix",
                                    "charge_ids": [p.ids["c2"]]})  # fmt: skip
    return p


# --- the numbers ----------------------------------------------------------------------------


async def test_received_counts_payments_less_reversals_by_method_day_and_staff(practice, maker):
    p = practice
    async with maker() as session:
        last = await reports.received(session, p.last, p.last_end)
        now = await reports.received(session, p.today.replace(day=1), p.today)
    assert last.total_cents == 69000
    assert {m: (t.amount_cents, t.count) for m, t in last.by_method.items()} == {
        "cash": (30000, 1),
        "card": (10000, 1),
        "transfer": (9000, 1),
        "pix": (20000, 1),
        "other": (0, 0),
    }
    assert [(d.day, d.total_cents) for d in last.by_day] == [
        (p.day(3), 20000),
        (p.day(10), 10000),
        (p.day(11), 30000),
        (p.day(20), 9000),
    ]
    assert [(s.staff_name, s.amount_cents) for s in last.by_staff] == [
        ("Ana", 20000),
        ("Bruno", 10000),
    ]
    assert last.unassigned_cents == 39000 and last.refunded_cents == 0
    # Today the card payment of last month is reversed: it lowers this month, not last.
    assert now.total_cents == 6000 + 5000 - 10000 == 1000
    assert now.by_method["card"].amount_cents == -10000
    assert [(s.staff_name, s.amount_cents) for s in now.by_staff] == [
        ("Ana", 6000),
        ("Bruno", -5000),
    ]
    assert now.unassigned_cents == 0 and now.refunded_cents == 5000


async def test_billed_vs_received_counts_a_void_in_the_month_it_is_recorded(practice, maker):
    p = practice
    months = [month_of(p.last), month_of(p.today)]
    async with maker() as session:
        figures = await reports.billed_vs_received(session, months)
    assert [(f.month, f.billed_cents, f.cancelled_cents, f.received_cents) for f in figures] == [
        (months[0], 74000, 0, 69000),
        (months[1], 6000 - 8000, 8000, 1000),
    ]
    assert figures[0].difference_cents == -5000


async def test_aging_now_and_at_the_end_of_last_month(practice, maker):
    p = practice
    async with maker() as session:
        now = await reports.aging(session, p.today, p.today)
        # The same day read from the journal gives the same answer as the charges.
        replayed = await reports.aging(session, p.today, p.today + timedelta(days=1))
        then = await reports.aging(session, p.last_end, p.today)
    assert now == replayed
    assert now.total_cents == 20000
    [davi] = now.clients
    assert (davi.client_name, davi.total_cents, davi.oldest_due) == ("Davi", 20000, p.day(5))
    expected = dict.fromkeys(("0_30", "31_60", "61_90", "90_plus"), 0)
    expected[aging_bucket((p.today - p.day(5)).days)] += 10000  # c2: 150 − 50
    expected[aging_bucket((p.today - p.day(10)).days)] += 10000  # c3, reopened
    assert now.buckets_cents == expected
    # At the end of last month: c2 wholly open, c3 still paid, c5 not yet voided.
    assert then.total_cents == 15000 + 8000
    assert [(c.client_name, c.total_cents) for c in then.clients] == [
        ("Davi", 15000),
        ("Carla", 8000),
    ]
    assert then.buckets_cents["0_30"] == 23000


async def test_top_debtors_and_clients_holding_credit(practice, maker):
    p = practice
    async with maker() as session:
        [davi] = await reports.top_debtors(session, p.today)
        holders = await reports.credit_holders(session)
    assert (davi.client_name, davi.owed_cents, davi.overdue_cents, davi.open_count) == (
        "Davi",
        20000,
        20000,
        2,
    )
    assert davi.oldest_due == p.day(5) and davi.last_payment_on == p.today
    assert [(h.client_name, h.credit_cents) for h in holders] == [("Eva", 13000)]


async def test_daily_cash_up_lists_every_movement_and_what_each_method_holds(practice, maker):
    p = practice
    async with maker() as session:
        day = await reports.daily_collections(session, p.today)
        sessions = await reports.sessions_of_day(session, p.today)
    assert sorted((x.kind, x.client_name, x.method, x.amount_cents) for x in day.lines) == [
        ("payment", "Davi", "cash", 6000),
        ("payment", "Davi", "pix", 5000),
        ("payment_reversed", "Davi", "card", -10000),
        ("refund", "Eva", "cash", -5000),
    ]
    assert day.by_method_cents == {
        "cash": 1000,
        "card": -10000,
        "transfer": 0,
        "pix": 5000,
        "other": 0,
    }
    assert (day.received_cents, day.refunded_cents, day.net_cents) == (1000, 5000, -4000)
    assert [(s.client_name, s.amount_cents, s.status) for s in sessions] == [("Davi", 6000, "paid")]


async def test_commissions_keep_each_charges_rate_and_count_sessions_paid_from_credit(
    practice, maker
):
    p = practice
    async with maker() as session:
        received = await reports.commission_rows(session, p.last, p.last_end, "received")
        billed = await reports.commission_rows(session, p.last, p.last_end, "billed")
        now = await reports.commission_rows(session, p.today.replace(day=1), p.today, "received")
        detail = await reports.commission_detail(
            session, p.ids["bruno"], p.last, p.last_end, "billed"
        )
    rows = [(r.staff_name, r.commission_bp, r.base_cents, r.commission_cents) for r in received]
    assert rows == [
        ("Ana", 4000, 20000, 8000),  # c1
        ("Ana", 5000, 12000, 6000),  # c4: the Tattoo's own rate, paid from credit
        ("Bruno", 3500, 10000, 3500),  # c3 at the rate in force when registered
    ]
    rows = [(r.staff_name, r.commission_bp, r.base_cents, r.commission_cents) for r in billed]
    assert rows == [
        ("Ana", 4000, 20000, 8000),
        ("Ana", 5000, 12000, 6000),
        ("Bruno", 3000, 15000, 4500),  # c2, registered before the rate changed
        ("Bruno", 3500, 18000, 6300),  # c3 + c5 (voided only this month)
    ]
    assert sum(r.commission_cents for r in billed) == 24800
    # This month: Ana's c7; Bruno's 50 on c2, and c3's reversal takes back its commission.
    rows = [(r.staff_name, r.commission_bp, r.base_cents, r.commission_cents) for r in now]
    assert rows == [
        ("Ana", 4000, 6000, 2400),
        ("Bruno", 3000, 5000, 1500),
        ("Bruno", 3500, -10000, -3500),
    ]
    totals = reports.commissions_by_staff(now)
    assert [(t.staff_name, t.base_cents, t.commission_cents) for t in totals] == [
        ("Ana", 6000, 2400),
        ("Bruno", -5000, -2000),
    ]
    assert [(x.charge_id, x.base_cents, x.commission_bp) for x in detail] == [
        (p.ids["c2"], 15000, 3000),
        (p.ids["c3"], 10000, 3500),
        (p.ids["c5"], 8000, 3500),
    ]


async def test_dashboard_figures(practice, maker):
    p = practice
    async with maker() as session:
        d = await reports.dashboard(session, p.today)
    same_day = min(p.today.day, p.last_end.day)
    by_then = sum(
        c for day, c in [(3, 20000), (10, 10000), (11, 30000), (20, 9000)] if day <= same_day
    )
    assert (d.received_today_cents, d.sessions_today) == (1000, 1)
    assert (d.received_month_cents, d.received_previous_cents) == (1000, 69000)
    assert d.received_previous_to_date_cents == by_then
    assert (d.owed_cents, d.overdue_cents, d.overdue_count) == (20000, 20000, 2)
    assert (d.credit_cents, d.clients_in_credit) == (13000, 1)
    assert (d.sessions_month, d.clients_to_collect, d.to_collect_cents) == (1, 1, 20000)
    assert d.activity[0].kind == "payment" and d.activity[0].client_name == "Davi"
    assert {a.kind for a in d.activity} >= {"payment", "refund", "void", "payment_reversed"}


# --- the pages ------------------------------------------------------------------------------


async def test_admin_dashboard_links_every_number_to_the_list_behind_it(practice, client):
    page = await client.get("/")
    assert page.status_code == 200
    text = page.text
    for testid, href in [
        ("received-today", "/reports/daily"),
        ("overdue", "/charges?overdue=true"),
        ("to-collect", "/collect"),
        ("received-month", "/reports/received?from="),
        ("owed", "/charges?status=unpaid"),
        ("credit", "/reports/debtors#credit"),
        ("sessions-month", "/charges?month="),
    ]:
        assert f'href="{href}' in text and f'data-testid="{testid}"' in text, testid
    assert "$200.00" in text and "$130.00" in text and "$690.00" in text
    assert "<svg" in text and 'role="img"' in text  # the 12-month chart, with its table
    assert "Recent activity" in text and "Davi" in text


async def test_reception_dashboard_shows_today_and_not_the_books(practice, client, login):
    await login(client, "reception")
    page = await client.get("/")
    assert page.status_code == 200
    assert 'data-testid="received-today"' in page.text and "Register session" in page.text
    assert 'data-testid="received-month"' not in page.text and "<svg" not in page.text
    assert (await client.get("/reports/daily")).status_code == 200
    assert (await client.get("/reports/received")).status_code == 403


@pytest.mark.parametrize("role", ["admin", "accountant"])
async def test_every_report_page_renders_its_numbers(practice, client, login, role):
    p = practice
    await login(client, role)
    last = f"from={p.last.isoformat()}&to={p.last_end.isoformat()}"
    expectations = {
        f"/reports?{last}": ["$690.00", "$740.00", "<svg"],
        f"/reports/received?{last}": [
            'data-testid="received">$690.00',
            'data-testid="unassigned">$390.00',
        ],
        f"/reports/billed?{last}": ["$740.00", "$690.00"],
        "/reports/aging": ['data-testid="aging-total">$200.00', "Davi"],
        f"/reports/aging?as_of={p.last_end.isoformat()}": ['data-testid="aging-total">$230.00'],
        "/reports/debtors": ["Davi", "$200.00", "Eva", "$130.00"],
        "/reports/daily": ['data-testid="net">-$40.00', "Eva"],
        f"/reports/commissions?{last}&basis=received": [
            'data-testid="commissions-total">$175.00',
            "50%",
        ],
        f"/reports/commissions?{last}&basis=billed": ['data-testid="commissions-total">$248.00'],
        f"/reports/commissions/{p.ids['bruno']}?{last}&basis=billed": ["$108.00", "$45.00"],
    }
    for path, needles in expectations.items():
        page = await client.get(path)
        assert page.status_code == 200, path
        for needle in needles:
            assert needle in page.text, (path, needle)


async def test_a_bad_period_says_so_next_to_the_picker(practice, client):
    page = await client.get("/reports/received?from=31/12/2026&to=2026-01-01")
    assert page.status_code == 200 and "Enter dates like 2026-03-31." in page.text
    page = await client.get("/reports/received?from=2026-03-01&to=2026-02-01")
    assert "The period ends before it starts." in page.text
    api = await client.get("/api/v1/reports/received?from=yesterday")
    assert api.status_code == 422


# --- CSV and API ----------------------------------------------------------------------------


def read(response: Any, delimiter: str) -> list[dict[str, str]]:
    text = response.content.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))


async def test_every_report_table_downloads_as_csv_the_locales_way(practice, client, maker):
    p = practice
    async with maker() as session:
        for key, value in {
            "locale": "pt_BR",
            "currency": "BRL",
            "practice_name": "Clínica Sol",
        }.items():
            session.add(Setting(key=key, value=f'"{value}"'))
        await session.commit()
    last = f"from={p.last.isoformat()}&to={p.last_end.isoformat()}"
    response = await client.get(f"/reports/received-by-method.csv?{last}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert (
        f"clinica-sol-{p.last.isoformat()}-{p.last_end.isoformat()}-received-by-method.csv"
        in (response.headers["content-disposition"])
    )
    rows = read(response, ";")
    assert {r["method"]: r["amount"] for r in rows}["pix"] == "200,00"
    downloads = {
        f"received-by-day.csv?{last}": ("total", ["200,00", "100,00", "300,00", "90,00"]),
        f"received-by-staff.csv?{last}": ("amount", ["200,00", "100,00", "390,00"]),
        f"billed-vs-received.csv?{last}": ("billed", ["740,00"]),
        "aging.csv": ("total", ["200,00"]),
        "debtors.csv": ("owed", ["200,00"]),
        "daily.csv": ("amount", ["-100,00", "-50,00", "60,00", "50,00"]),
        f"commissions.csv?{last}&basis=received": ("commission", ["80,00", "60,00", "35,00"]),
        f"commission-detail.csv?{last}&basis=billed&staff_id={p.ids['bruno']}": (
            "base_amount",
            ["150,00", "100,00", "80,00"],
        ),
    }
    for path, (column, values) in downloads.items():
        response = await client.get(f"/reports/{path}")
        assert response.status_code == 200, (path, response.text)
        assert sorted(r[column] for r in read(response, ";")) == sorted(values), path
    assert (await client.get("/reports/nothing.csv")).status_code == 404
    # The exports' overrides, for a spreadsheet that wants something else.
    comma = await client.get(
        f"/reports/billed-vs-received.csv?{last}&delimiter=comma&decimal=point"
    )
    assert read(comma, ",")[0]["billed"] == "740.00"
    assert (await client.get("/reports/aging.csv?delimiter=pipe")).status_code == 422


async def test_reports_api_gives_decimal_strings(practice, client):
    p = practice
    last = f"from={p.last.isoformat()}&to={p.last_end.isoformat()}"
    got = (await client.get(f"/api/v1/reports/received?{last}")).json()
    assert got["total"] == "690.00" and got["by_method"]["pix"] == {"amount": "200.00", "count": 1}
    assert got["by_staff"][0] == {"staff_id": p.ids["ana"], "staff_name": "Ana", "amount": "200.00"}
    months = (await client.get(f"/api/v1/reports/billed-vs-received?{last}")).json()["months"]
    assert months == [
        {
            "month": month_of(p.last),
            "billed": "740.00",
            "cancelled": "0.00",
            "received": "690.00",
            "difference": "-50.00",
        }
    ]
    aging = (await client.get("/api/v1/reports/aging")).json()
    assert aging["total"] == "200.00" and set(aging["buckets"]) == {
        "0_30",
        "31_60",
        "61_90",
        "90_plus",
    }
    debtors = (await client.get("/api/v1/reports/debtors")).json()["items"]
    assert [(d["client_name"], d["owed"], d["overdue"]) for d in debtors] == [
        ("Davi", "200.00", "200.00")
    ]
    daily = (await client.get("/api/v1/reports/daily")).json()
    assert (daily["received"], daily["refunded"], daily["net"]) == ("10.00", "50.00", "-40.00")
    commissions = (await client.get(f"/api/v1/reports/commissions?{last}&basis=received")).json()
    assert commissions["total"] == "175.00"
    assert [(s["staff_name"], s["commission"]) for s in commissions["staff"]] == [
        ("Ana", "140.00"),
        ("Bruno", "35.00"),
    ]
    dashboard = (await client.get("/api/v1/reports/dashboard")).json()
    assert (dashboard["owed"], dashboard["credit"], dashboard["received_previous"]) == (
        "200.00",
        "130.00",
        "690.00",
    )
    bad = await client.get(f"/api/v1/reports/commissions?{last}&basis=profit")
    assert bad.status_code == 422


async def test_a_closed_month_reports_what_was_frozen_when_it_closed(practice, maker):
    from app.statements import services as statements

    p = practice
    months = [month_of(p.last), month_of(p.today)]
    async with maker() as session:
        before = await reports.billed_vs_received(session, months)
        await statements.close_month(session, months[0], None)
    async with maker() as session:
        after = await reports.billed_vs_received(session, months)
        received = await reports.received_by_month(session, months)
    assert after == before
    assert received == [(months[0], 69000), (months[1], 1000)]
