"""The accountant's CSV files open cleanly, add up to the database and cannot run formulas."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from app.admin.models import Setting, Staff
from app.clients.models import Client
from app.clients.services import search_fields
from app.expenses import services as expenses
from app.exports import services as exports
from app.exports.csvfmt import CsvFormat
from app.ledger.models import Charge, Entry, Payment
from app.web.i18n import today

MONTH = "2026-02"
FEB = (date(2026, 2, 1), date(2026, 3, 1))
HOSTILE_NAMES = ('=HYPERLINK("x")', "+1", "-2", "@x")


# --- helpers --------------------------------------------------------------------------------


async def set_practice(maker: Any, **values: Any) -> None:
    async with maker() as session:
        for key, value in values.items():
            session.add(Setting(key=key, value=json.dumps(value)))
        await session.commit()


async def new_client(maker: Any, name: str) -> int:
    async with maker() as session:
        name_key, search_text = search_fields(name, None, None)
        client = Client(name=name, name_key=name_key, search_text=search_text, active=True)
        session.add(client)
        await session.commit()
        return client.id


async def new_staff(maker: Any, name: str, commission_bp: int) -> int:
    async with maker() as session:
        staff = Staff(name=name, commission_bp=commission_bp, active=True)
        session.add(staff)
        await session.commit()
        return staff.id


def read_csv(response: Any, delimiter: str, encoding: str) -> list[dict[str, str]]:
    """The file as a spreadsheet would read it: decoded, split, one dict per row."""
    text = response.content.decode(encoding)
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))


def number(cell: str, decimal: str) -> Decimal:
    assert "'" not in cell and " " not in cell, cell  # a raw number, never guarded or grouped
    return Decimal(cell.replace(decimal, ".")) if decimal == "," else Decimal(cell)


def cents(value: Decimal) -> int:
    return int(value * 100)


async def db_sum(maker: Any, column: Any, *where: Any) -> int:
    async with maker() as session:
        return int(await session.scalar(select(func.coalesce(func.sum(column), 0)).where(*where)))


@pytest.fixture
async def admin(client, login, csrf):  # type: ignore[no-untyped-def]
    await login(client, "admin")
    return await csrf(client)


@pytest.fixture
async def month_data(client, admin, maker):  # type: ignore[no-untyped-def]
    """February 2026 with sessions, payments (one reversed), a top-up, a void and expenses."""
    ana = await new_staff(maker, "Ana Terapeuta", 4000)
    bruno = await new_staff(maker, "Bruno", 3550)
    carla = await new_client(maker, "Carla Conceição")
    davi = await new_client(maker, "Davi")
    hostile = [await new_client(maker, name) for name in HOSTILE_NAMES]
    headers = {"x-csrftoken": admin}

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code in (200, 201), response.text
        return response.json()

    async def charge(client_id: int, day: str, amount: str, staff: int | None = None) -> int:
        body = {"client_id": client_id, "date": day, "amount": amount, "staff_id": staff}
        return (await post("/api/v1/charges", body))["id"]

    async def pay(client_id: int, day: str, amount: str, method: str, ids: list[int]) -> None:
        body = {
            "client_id": client_id,
            "amount": amount,
            "method": method,
            "received_on": day,
            "charge_ids": ids or None,
            "reference": "=cmd|' /C calc'!A0" if method == "transfer" else None,
        }
        await post("/api/v1/payments", body)

    c1 = await charge(carla, "2026-02-03", "200.00", ana)
    await pay(carla, "2026-02-03", "200.00", "pix", [c1])
    c2 = await charge(carla, "2026-02-10", "150.00", bruno)
    await pay(carla, "2026-02-10", "103.00", "card", [c2])
    c3 = await charge(davi, "2026-02-12", "120.00", ana)
    await pay(davi, "2026-02-12", "120.00", "cash", [c3])
    reopened = await client.post(
        f"/charges/{c3}/toggle",
        data={"to": "open", "idempotency_key": "reopen"},
        headers={"HX-Request": "true", **headers},
    )
    assert "reversed" in reopened.text
    await pay(davi, "2026-02-25", "300.00", "transfer", [])
    c5 = await charge(carla, "2026-02-26", "90.00", bruno)
    await post(f"/api/v1/charges/{c5}/void", {"reason": "not held"})
    for i, client_id in enumerate(hostile):
        await charge(client_id, f"2026-02-1{i}", "1234.56")
    await charge(carla, "2026-03-01", "999.00", ana)  # another month
    for key, (amount, category, note) in enumerate(
        [("300.00", "Rent", ""), ("45.90", "=SUM(A1:A9)", "-note"), ("12.10", "Supplies", "ç")]
    ):
        response = await client.post(
            "/expenses",
            data={
                "_csrf_token": admin,
                "amount": amount,
                "spent_on": "2026-02-14",
                "method": "cash",
                "category": category,
                "note": note,
                "idempotency_key": f"e{key}",
            },
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
    return {"carla": carla, "hostile": hostile}


async def download(client: Any, what: str, query: str = "") -> Any:
    response = await client.get(f"/exports/{what}.csv?month={MONTH}{query}")
    assert response.status_code == 200, response.text
    return response


async def assert_files_add_up(
    client: Any, maker: Any, delimiter: str, decimal: str, currency: str
) -> None:
    """Every file read back with the csv module gives the database's totals."""

    def total(rows: list[dict[str, str]], column: str) -> int:
        return sum(cents(number(r[column], decimal)) for r in rows)

    encoding = "utf-8-sig"
    entries = read_csv(await download(client, "entries"), delimiter, encoding)
    in_feb = (Entry.effective_date >= FEB[0], Entry.effective_date < FEB[1])
    async with maker() as session:
        n_entries = await session.scalar(select(func.count(Entry.id)).where(*in_feb))
    assert len(entries) == n_entries > 0
    for column, db_column in [
        ("amount", Entry.amount_cents),
        ("credit_delta", Entry.credit_delta_cents),
        ("owed_delta", Entry.owed_delta_cents),
    ]:
        assert total(entries, column) == await db_sum(maker, db_column, *in_feb), column

    payments = read_csv(await download(client, "payments"), delimiter, encoding)
    received = [p for p in payments if p["reversed"] == "no"]
    assert [p["reversed"] for p in payments].count("yes") == 1
    async with maker() as session:
        summary = await expenses.month_summary(session, MONTH)
    assert total(received, "amount") == 60300
    # The reversal is recorded today, so it lowers today's month: February keeps the 120.
    assert total(payments, "amount") == summary["received_cents"] == 72300
    assert total(payments, "amount") == await db_sum(
        maker, Payment.amount_cents, Payment.received_on >= FEB[0], Payment.received_on < FEB[1]
    )

    charges = read_csv(await download(client, "charges"), delimiter, encoding)
    in_month = (Charge.date >= FEB[0], Charge.date < FEB[1])
    assert len(charges) == 8
    assert total(charges, "amount") == await db_sum(maker, Charge.amount_cents, *in_month)
    assert total(charges, "paid") == await db_sum(maker, Charge.paid_cents, *in_month)
    not_void = (*in_month, Charge.status != "void")
    open_cents = await db_sum(maker, Charge.amount_cents - Charge.paid_cents, *not_void)
    assert total(charges, "open") == open_cents
    assert {c["status"] for c in charges} == {"paid", "partial", "open", "void"}

    commissions = read_csv(await download(client, "commissions"), delimiter, encoding)
    assert total(commissions, "commission") == summary["commissions_cents"] == 12800 + 3657
    assert [(c["staff"], c["basis"], c["rate_percent"]) for c in commissions] == [
        ("Ana Terapeuta", "received", f"40{decimal}00"),
        ("Bruno", "received", f"35{decimal}50"),
    ]
    billed = read_csv(await download(client, "commissions", "&basis=billed"), delimiter, encoding)
    async with maker() as session:
        on_billed = await expenses.month_summary(session, MONTH, "billed")
    assert total(billed, "commission") == on_billed["commissions_cents"] == 12800 + 8520
    assert {c["basis"] for c in billed} == {"billed"}

    spent = read_csv(await download(client, "expenses"), delimiter, encoding)
    assert total(spent, "amount") == summary["expenses_cents"] == 35800
    for rows in (entries, payments, charges, commissions, spent):
        assert {r["currency"] for r in rows} == {currency}


# --- formats --------------------------------------------------------------------------------


async def test_pt_br_files_use_semicolons_decimal_comma_and_a_bom(client, month_data, maker):
    await set_practice(maker, locale="pt_BR", currency="BRL", practice_name="Clínica Bem-Estar")
    response = await download(client, "payments")
    assert response.content.startswith(b"\xef\xbb\xbf")
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="clinica-bem-estar-2026-02-payments.csv"'
    )
    header = response.content.decode("utf-8-sig").splitlines()[0]
    assert header == (
        "received_on;payment_id;client_id;client_name;method;amount;currency;reference;"
        "reversed;recorded_by"
    )
    rows = read_csv(response, ";", "utf-8-sig")
    assert rows[0]["received_on"] == "2026-02-03" and rows[0]["amount"] == "200,00"
    assert rows[0]["client_name"] == "Carla Conceição"
    await assert_files_add_up(client, maker, ";", ",", "BRL")


async def test_english_files_use_commas_and_decimal_points(client, month_data, maker):
    await set_practice(maker, locale="en_US", currency="USD", practice_name="Ink & Co")
    response = await download(client, "charges")
    assert response.headers["content-disposition"] == (
        'attachment; filename="ink-co-2026-02-charges.csv"'
    )
    assert response.content.decode("utf-8-sig").splitlines()[0] == (
        "date,charge_id,client_id,client_name,service,staff,description,amount,paid,open,"
        "status,due_date,currency"
    )
    await assert_files_add_up(client, maker, ",", ".", "USD")


async def test_each_download_can_override_delimiter_decimal_and_encoding(client, month_data, maker):
    await set_practice(maker, locale="pt_BR", currency="BRL")
    response = await download(client, "payments", "&delimiter=tab&decimal=point&encoding=latin-1")
    assert response.headers["content-type"] == "text/csv; charset=iso-8859-1"
    assert not response.content.startswith(b"\xef\xbb\xbf")
    rows = read_csv(response, "\t", "latin-1")
    assert rows[0]["amount"] == "200.00" and rows[0]["client_name"] == "Carla Conceição"
    plain = await download(client, "payments", "&encoding=utf-8&delimiter=comma&decimal=comma")
    assert not plain.content.startswith(b"\xef\xbb\xbf")
    rows = read_csv(plain, ",", "utf-8")
    assert rows[0]["amount"] == "200,00"  # quoted by the csv module, read back whole
    for bad in ("&delimiter=pipe", "&decimal=dot", "&encoding=utf-16", "&basis=profit"):
        assert (await client.get(f"/exports/payments.csv?month={MONTH}{bad}")).status_code == 422


async def test_formula_cells_are_neutralised_and_numbers_stay_numbers(client, month_data, maker):
    await set_practice(maker, locale="en_US")
    charges = read_csv(await download(client, "charges"), ",", "utf-8-sig")
    names = {r["client_name"] for r in charges}
    for name in HOSTILE_NAMES:
        assert "'" + name in names and name not in names
    entries = read_csv(await download(client, "entries"), ",", "utf-8-sig")
    hostile = [e for e in entries if e["client_name"].startswith("'")]
    assert {e["amount"] for e in hostile} == {"-1234.56"}  # a number, not guarded
    payments = read_csv(await download(client, "payments"), ",", "utf-8-sig")
    assert "'=cmd|' /C calc'!A0" in {p["reference"] for p in payments}
    spent = read_csv(await download(client, "expenses"), ",", "utf-8-sig")
    assert ("'=SUM(A1:A9)", "'-note") in {(e["category"], e["note"]) for e in spent}
    for rows in (charges, entries, payments, spent):
        for row in rows:
            for value in row.values():
                assert not value.startswith(("=", "+", "@", "\t", "\r")), value


# --- who may download, and what ---------------------------------------------------------------


async def test_reception_gets_403_on_exports(client, app, client_for, login):
    async with client_for(app) as desk:
        await login(desk, "reception")
        assert (await desk.get("/exports")).status_code == 403
        assert (await desk.get(f"/exports/payments.csv?month={MONTH}")).status_code == 403


async def test_accountant_downloads_in_the_browser_and_with_a_bearer_token(
    client, app, client_for, login, make_user
):
    await login(client, "accountant")
    page = await client.get("/exports")
    assert page.status_code == 200
    for what in exports.EXPORTS:
        assert f'formaction="/exports/{what}.csv"' in page.text
    assert (await client.get(f"/exports/entries.csv?month={MONTH}")).status_code == 200
    user = await make_user("accountant")
    async with client_for(app) as program:
        token = await program.post(
            "/api/v1/auth/token",
            json={"username": user.username, "password": "correct horse battery"},
        )
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        response = await program.get(f"/exports/expenses.csv?month={MONTH}", headers=bearer)
    assert response.status_code == 200
    assert response.content.decode("utf-8-sig").startswith("date,category,method,amount")


async def test_exports_page_presets_the_locale_format(client, admin, maker):
    await set_practice(maker, locale="pt_BR")
    page = (await client.get("/exports?month=2026-01")).text
    assert '<option value="semicolon" selected>' in page
    assert '<option value="comma" selected>' in page  # the decimal comma
    assert '<option value="utf-8-sig" selected>' in page
    assert 'name="month" value="2026-01"' in page


async def test_unknown_files_and_bad_months_are_refused_and_the_default_is_last_month(
    client, admin
):
    assert (await client.get("/exports/secrets.csv")).status_code == 404
    assert (await client.get("/exports/payments.txt")).status_code == 404
    assert (await client.get("/exports/payments.csv?month=2026-13")).status_code == 422
    response = await client.get("/exports/payments.csv")
    last = (today().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    assert f"-{last}-payments.csv" in response.headers["content-disposition"]
    assert response.content.decode("utf-8-sig").count("\r\n") == 1  # the header row only


# --- streaming ------------------------------------------------------------------------------


async def test_a_big_month_is_streamed_in_chunks_with_every_row(client, admin, app, maker):
    client_id = await new_client(maker, "Bulk")
    n = 3000
    async with maker() as session:
        await session.execute(
            insert(Charge),
            [
                {
                    "client_id": client_id,
                    "date": date(2026, 2, 1 + i % 28),
                    "due_date": date(2026, 2, 28),
                    "description": f"session {i}",
                    "amount_cents": 1000 + i,
                    "paid_cents": 0,
                    "status": "open",
                    "commission_bp": 0,
                }
                for i in range(n)
            ],
        )
        await session.commit()
    response = await download(client, "charges")
    rows = read_csv(response, ",", "utf-8-sig")
    assert len(rows) == n
    assert sum(cents(Decimal(r["amount"])) for r in rows) == sum(1000 + i for i in range(n))

    job = exports.Export(what="charges", month=MONTH, fmt=CsvFormat(), currency="USD")
    chunks = [chunk async for chunk in exports.stream_csv(maker, job)]
    copying = app.state.engine.dialect.name == "postgresql"
    if copying:
        # The header, then the rows as COPY hands them over: whole rows, a network read at a time.
        assert len(chunks) >= 2 and all(chunk.endswith(b"\r\n") for chunk in chunks)
    else:
        # The header, then one chunk per server-side cursor batch of CHUNK_ROWS rows.
        assert len(chunks) == 1 + -(-n // exports.CHUNK_ROWS)
    assert b"".join(chunks) == response.content

    # On the wire: no Content-Length, the body sent as those chunks (COPY's fall where
    # the network reads fall, so only the header is the same message each time).
    start, bodies = await asgi_get(app, client, "/exports/charges.csv", f"month={MONTH}")
    assert start["status"] == 200
    assert b"content-length" not in {name for name, _value in start["headers"]}
    sent = [b for b in bodies if b]
    assert b"".join(sent) == response.content
    if copying:
        assert len(sent) >= 2 and sent[0] == chunks[0]
    else:
        assert sent == chunks


async def test_a_download_abandoned_midway_gives_its_connection_back(client, admin, app, maker):
    client_id = await new_client(maker, "Bulk")
    async with maker() as session:
        rows = [
            {
                "client_id": client_id,
                "date": date(2026, 2, 1 + i % 28),
                "due_date": date(2026, 2, 28),
                "amount_cents": 1000,
                "paid_cents": 0,
                "status": "open",
                "commission_bp": 0,
            }
            for i in range(5000)
        ]
        await session.execute(insert(Charge), rows)
        await session.commit()
    _start, bodies = await asgi_get(app, client, "/exports/charges.csv", f"month={MONTH}", 2)
    assert len(bodies) < 4  # the header, the first rows, and nothing after the client left
    assert app.state.engine.pool.checkedout() == 0


async def asgi_get(
    app: Any, client: Any, path: str, query: str, leave_after: int | None = None
) -> tuple[dict, list[bytes]]:
    """GET through the bare ASGI interface: the start message and each body message.

    ``leave_after``: the client disconnects after that many body messages.
    """
    cookie = "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver.local"), (b"cookie", cookie.encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver.local", 80),
        "extensions": {},
    }
    messages: list[dict[str, Any]] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await done.wait()  # as a server does: the client is gone once the body is complete
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)
        if message["type"] != "http.response.body":
            return
        received = sum(m["type"] == "http.response.body" for m in messages)
        if not message.get("more_body") or received == leave_after:
            done.set()
        if received == leave_after:
            await asyncio.sleep(0.05)  # the server notices the disconnect while we wait

    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    bodies = [m.get("body", b"") for m in messages if m["type"] == "http.response.body"]
    return start, bodies


# --- PostgreSQL writes the same bytes ---------------------------------------------------------

AWKWARD_NAMES = (
    'Ana "Aninha" Souza',
    "Souza; Filhos",
    "Souza, Filhos",
    '=HYPERLINK("x")',
    "+55 11",
    "-2",
    "@x",
    "\ttabbed",
    "\rreturned",
    "Zoë Conceição ñ",
    "Line\nbreak",
    "Crlf\r\nbreak",
    "Emoji 😀 Ω",
)
FORMATS = (
    CsvFormat(),
    CsvFormat(delimiter=";", decimal=",", encoding="utf-8-sig"),
    CsvFormat(delimiter=",", decimal=",", encoding="utf-8"),
    CsvFormat(delimiter="\t", decimal=".", encoding="latin-1"),
)


@pytest.fixture
async def awkward_month(maker):  # type: ignore[no-untyped-def]
    """February with every awkward cell: signs, zero, 0.05, formulas, quotes, breaks, accents."""
    from datetime import UTC, datetime

    from app.admin.models import Service
    from app.auth.models import User
    from app.expenses.models import Expense

    now = datetime(2026, 2, 20, 12, tzinfo=UTC)
    async with maker() as session:
        users = [
            User(username=name, display_name=name, role="admin", password_hash="-")
            for name in ("desk", "=boss", "-dash")
        ]
        staff = [Staff(name=n, commission_bp=1000, active=True) for n in ("-Bruno", "Ana; Lima")]
        services = [Service(name=n, active=True) for n in ('Massagem "50", min', "@Yoga\nduo")]
        clients = []
        for name in AWKWARD_NAMES:
            name_key, search_text = search_fields(name, None, None)
            clients.append(
                Client(name=name, name_key=name_key, search_text=search_text, active=True)
            )
        session.add_all([*users, *staff, *services, *clients])
        await session.flush()
        texts = ["", "plain", 'a "quoted" word', "semi;colon, comma", "line1\nline2"]
        texts += ["crlf\r\nend", "=1+1", "\tx", "ção", "trailing space ", "\\.", "'already"]
        amounts = [5, 100, 1, 99, 123456, 1000000]
        charges = []
        for i, client in enumerate(clients * 2):
            cents = amounts[i % len(amounts)]
            status = ("open", "partial", "paid", "void")[i % 4]
            paid = {"open": 0, "partial": cents // 2, "paid": cents, "void": 0}[status]
            charges.append(
                Charge(
                    client_id=client.id,
                    date=date(2026, 2, 1 + i % 28),
                    due_date=date(2026, 3, 1 + i % 28),
                    service_id=services[i % 2].id if i % 3 else None,
                    staff_id=staff[i % 2].id if i % 4 else None,
                    description=texts[i % len(texts)],
                    amount_cents=cents,
                    paid_cents=paid,
                    status=status,
                    commission_bp=0,
                )
            )
        session.add_all(charges)
        payments = [
            Payment(
                client_id=clients[i].id,
                amount_cents=amounts[i % len(amounts)],
                method=("cash", "card", "transfer", "pix", "other")[i % 5],
                received_on=date(2026, 2, 1 + i),
                reference=[None, "", "=cmd|' /C calc'!A0", 'ref "1"', "a;b\nc", "ok"][i % 6],
                created_by_id=users[i % 3].id if i % 4 else None,
                created_at=now,
                reversed_at=now if i % 5 == 1 else None,
            )
            for i in range(len(clients))
        ]
        session.add_all(payments)
        await session.flush()
        deltas = [(0, 5), (-100, -100), (12345, 0), (0, -1), (-5, 0), (0, 0), (99, 1)]
        for i, charge in enumerate(charges):
            credit, owed = deltas[i % len(deltas)]
            session.add(
                Entry(
                    client_id=charge.client_id,
                    kind=["charge", "payment", "=kind", "allocation"][i % 4],
                    amount_cents=credit - owed,
                    credit_delta_cents=credit,
                    owed_delta_cents=owed,
                    effective_date=date(2026, 2, 1 + i % 28),
                    description=texts[(i + 3) % len(texts)],
                    charge_id=charge.id if i % 2 else None,
                    payment_id=payments[i % len(payments)].id if i % 3 == 0 else None,
                    user_id=users[i % 3].id if i % 5 else None,
                    created_at=now,
                )
            )
        for i, text in enumerate(texts):
            session.add(
                Expense(
                    spent_on=date(2026, 2, 1 + i),
                    amount_cents=amounts[i % len(amounts)],
                    method="cash",
                    category=text or "none",
                    note=[None, text][i % 2],
                    created_at=now,
                )
            )
        await session.commit()


async def whole_file(maker: Any, job: exports.Export, use_copy: bool | None = None) -> bytes:
    return b"".join([chunk async for chunk in exports.stream_csv(maker, job, use_copy=use_copy)])


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_postgresql_copy_writes_the_same_bytes_as_python(maker, awkward_month):
    for fmt in FORMATS:
        for what in exports.EXPORTS:
            job = exports.Export(what=what, month=MONTH, fmt=fmt, currency="BRL")
            copied = await whole_file(maker, job, use_copy=True)
            formatted = await whole_file(maker, job, use_copy=False)
            assert copied.count(b"\r\n") > 1 or what == "commissions", (what, fmt)
            assert copied == formatted, (what, fmt)
    # With no currency code the column is empty in both, not quoted.
    job = exports.Export(what="expenses", month=MONTH, fmt=CsvFormat(), currency="")
    assert await whole_file(maker, job, True) == await whole_file(maker, job, False)


async def test_awkward_cells_are_written_exactly(maker, awkward_month):
    """The bytes themselves, on either path: quotes, breaks, guards, signs and empty cells."""
    fmt = CsvFormat(delimiter=";", decimal=",", encoding="utf-8-sig")
    job = exports.Export(what="charges", month=MONTH, fmt=fmt, currency="BRL")
    charges = await whole_file(maker, job)
    assert charges.startswith(b"\xef\xbb\xbfdate;charge_id;client_id;client_name;service;")
    text = charges.decode("utf-8-sig")
    rows = read_csv_text(text, ";")
    assert [r["amount"] for r in rows[:6]] == [
        "0,05",
        "1,00",
        "0,01",
        "0,99",
        "1234,56",
        "10000,00",
    ]
    assert [r["open"] for r in rows[:4]] == ["0,05", "0,50", "0,00", "0,00"]
    assert rows[0]["client_name"] == 'Ana "Aninha" Souza' and rows[0]["service"] == ""
    assert rows[0]["staff"] == "" and rows[0]["description"] == ""
    assert rows[3]["client_name"] == '\'=HYPERLINK("x")'
    assert rows[9]["client_name"] == "Zoë Conceição ñ"
    assert rows[10]["client_name"] == "Line\nbreak" and rows[11]["client_name"] == "Crlf\r\nbreak"
    line = f";{rows[0]['charge_id']};{rows[0]['client_id']};"
    assert f'\r\n2026-02-01{line}"Ana ""Aninha"" Souza";;;;0,05;0,00;0,05;open;' in text
    assert '"Line\nbreak"' in text and '"Crlf\r\nbreak"' in text
    assert ";'\ttabbed;" in text and ';"\'\rreturned";' in text
    entries = read_csv(await download_job(maker, "entries", CsvFormat()), ",", "utf-8-sig")
    assert {e["amount"] for e in entries} == {"-0.05", "0.00", "123.45", "0.01", "0.98"}
    assert "'=kind" in {e["kind"] for e in entries}
    assert {e["user"] for e in entries} == {"", "desk", "'=boss", "'-dash"}
    latin = await download_job(maker, "charges", CsvFormat(delimiter="\t", encoding="latin-1"))
    assert "Zoë Conceição ñ".encode("latin-1") in latin.content
    assert b"Emoji ? ?" in latin.content


def read_csv_text(text: str, delimiter: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))


async def download_job(maker: Any, what: str, fmt: CsvFormat) -> Any:
    """The file from the service, shaped like a response (``.content``)."""

    class File:
        def __init__(self, content: bytes) -> None:
            self.content = content

    job = exports.Export(what=what, month=MONTH, fmt=fmt, currency="BRL")
    return File(await whole_file(maker, job))
