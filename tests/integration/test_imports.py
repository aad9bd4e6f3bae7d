"""The owner moves the practice's history in from a spreadsheet: upload, map, dry run, import."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from app.admin.models import Setting
from app.admin.services import PracticeSettings
from app.audit import AuditEvent
from app.clients.models import Client
from app.imports import services
from app.imports.parsing import Options
from app.ledger.models import Allocation, Charge, Entry, Payment
from app.ledger.services import verify
from app.statements.models import Period

TODAY = date(2026, 11, 30)
PT = PracticeSettings(locale="pt_BR", currency="BRL", phone_country_code="55")

SPREADSHEET = (
    b"Nome;Telefone;Data;Valor cobrado;Valor pago;Forma de pagamento\n"
    b"Ana Souza;(11) 99999-0000;05/01/2026;150,00;150,00;Pix\n"
    b"Ana Souza;;12/01/2026;150,00;0,00;\n"
    b"Bruno Lima;;13/01/2026;200,00;;\n"
    b"Bruno Lima;;20/01/2026;;300,00;Dinheiro\n"
    b"Carla Dias;;;;;\n"
)


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
async def admin(client: Any, login: Any, csrf: Any, maker: Any) -> str:
    """A Brazilian practice, and the client logged in as its admin; returns its CSRF token."""
    async with maker() as session:
        for key, value in (("locale", "pt_BR"), ("currency", "BRL"), ("phone_country_code", "55")):
            session.add(Setting(key=key, value=json.dumps(value)))
        await session.commit()
    await login(client, "admin")
    return await csrf(client)


async def upload(client: Any, token: str, content: bytes, name: str = "clientes.csv") -> int:
    response = await client.post(
        "/imports",
        files={"file": (name, content, "text/csv")},
        data={"_csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text[:500]
    return int(response.headers["location"].rsplit("/", 1)[-1])


async def dry_run(client: Any, token: str, import_id: int, **form: str) -> Any:
    return await client.post(f"/imports/{import_id}/dry-run", data={"_csrf_token": token, **form})


async def apply(client: Any, token: str, import_id: int, **form: str) -> Any:
    return await client.post(
        f"/imports/{import_id}/apply",
        data={"_csrf_token": token, **form},
        follow_redirects=False,
    )


async def counts(maker: Any) -> dict[str, int]:
    async with maker() as session:
        return {
            model.__tablename__: await session.scalar(select(func.count()).select_from(model))
            for model in (Client, Charge, Payment, Allocation, Entry)
        }


async def clients_by_name(maker: Any) -> dict[str, Client]:
    async with maker() as session:
        return {c.name: c for c in await session.scalars(select(Client))}


async def assert_books_agree(maker: Any) -> None:
    async with maker() as session:
        assert await verify(session) == []


async def plan_for(maker: Any, content: bytes, options: Options | None = None) -> services.Plan:
    async with maker() as session:
        options = options or services.guess_options(content, PT)
        return await services.make_plan(session, content, options, PT, TODAY)


async def import_now(
    maker: Any, actor: Any, content: bytes, options: Options | None = None, **kw: Any
) -> services.Plan:
    async with maker() as session:
        f = await services.store_file(session, actor, "f.csv", content)
        options = options or services.guess_options(content, PT)
        return await services.apply_import(session, actor, PT, f.id, options, today=TODAY, **kw)


def by_line(plan: services.Plan) -> dict[int, services.LineResult]:
    return {r.number: r for r in plan.lines}


# --- the whole story through the pages ----------------------------------------------------------


async def test_owner_imports_clients_sessions_and_payments_from_a_semicolon_file(
    client: Any, admin: str, maker: Any
) -> None:
    import_id = await upload(client, admin, SPREADSHEET)

    page = await client.get(f"/imports/{import_id}")
    assert page.status_code == 200
    # The columns were guessed from the Portuguese headers.
    assert '<option value="charge_amount" selected>' in page.text
    assert '<option value="payment_amount" selected>' in page.text

    result = await dry_run(client, admin, import_id)
    assert result.status_code == 200
    assert 'data-testid="new-clients">3<' in result.text
    assert 'id="import-button"' in result.text

    done = await apply(client, admin, import_id)
    assert done.status_code == 303
    assert done.headers["location"] == f"/imports/{import_id}?done=1"
    assert 'id="import-done"' in (await client.get(done.headers["location"])).text

    clients = await clients_by_name(maker)
    assert set(clients) == {"Ana Souza", "Bruno Lima", "Carla Dias"}
    assert clients["Ana Souza"].phone_digits == "5511999990000"
    # Ana: 300 charged, 150 paid -> owes 150. Bruno: 200 charged, 300 paid -> 100 of credit.
    assert (clients["Ana Souza"].owed_cents, clients["Ana Souza"].credit_cents) == (15000, 0)
    assert (clients["Bruno Lima"].owed_cents, clients["Bruno Lima"].credit_cents) == (0, 10000)
    assert (clients["Carla Dias"].owed_cents, clients["Carla Dias"].credit_cents) == (0, 0)
    async with maker() as session:
        charges = list(await session.scalars(select(Charge).order_by(Charge.date)))
        payments = list(await session.scalars(select(Payment).order_by(Payment.received_on)))
        event = await session.scalar(
            select(AuditEvent).where(AuditEvent.action == "import_applied")
        )
    assert [(c.date, c.status) for c in charges] == [
        (date(2026, 1, 5), "paid"),
        (date(2026, 1, 12), "open"),
        (date(2026, 1, 13), "paid"),
    ]
    assert [(p.method, p.amount_cents) for p in payments] == [("pix", 15000), ("cash", 30000)]
    assert event is not None
    detail = json.loads(event.detail)
    assert (detail["clients"], detail["charges"], detail["payments"]) == (3, 3, 2)
    await assert_books_agree(maker)


async def test_a_dry_run_writes_nothing(client: Any, admin: str, maker: Any) -> None:
    import_id = await upload(client, admin, SPREADSHEET)
    before = await counts(maker)
    response = await dry_run(client, admin, import_id)
    assert response.status_code == 200
    assert (
        await counts(maker)
        == before
        == {
            "clients": 0,
            "charges": 0,
            "payments": 0,
            "allocations": 0,
            "entries": 0,
        }
    )


async def test_the_dry_run_answers_htmx_with_the_work_area_only(client: Any, admin: str) -> None:
    import_id = await upload(client, admin, SPREADSHEET)
    response = await client.post(
        f"/imports/{import_id}/dry-run",
        data={"_csrf_token": admin},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert "<html" not in response.text
    assert 'id="import-work"' in response.text and 'id="dry-run"' in response.text


async def test_importing_the_same_file_twice_creates_nothing_the_second_time(
    client: Any, admin: str, maker: Any
) -> None:
    import_id = await upload(client, admin, SPREADSHEET)
    assert (await apply(client, admin, import_id)).status_code == 303
    after_first = await counts(maker)

    again = await upload(client, admin, SPREADSHEET, name="same file, other name.csv")
    assert again == import_id
    second = await dry_run(client, admin, again)
    assert 'data-testid="new-clients">0<' in second.text
    assert "Nothing new to import" in second.text
    assert (await apply(client, admin, again)).status_code == 303
    assert await counts(maker) == after_first
    await assert_books_agree(maker)


async def test_reception_and_the_accountant_cannot_import(
    client: Any, login: Any, csrf: Any
) -> None:
    for role in ("reception", "accountant"):
        client.cookies.clear()
        await login(client, role)
        token = await csrf(client)
        assert (await client.get("/imports")).status_code == 403
        response = await client.post(
            "/imports",
            files={"file": ("x.csv", SPREADSHEET, "text/csv")},
            data={"_csrf_token": token},
            follow_redirects=False,
        )
        assert response.status_code == 403


async def test_a_workbook_or_an_empty_file_is_refused_next_to_the_field(
    client: Any, admin: str
) -> None:
    for content in (b"", b"PK\x03\x04 not really a zip"):
        response = await client.post(
            "/imports",
            files={"file": ("book.xlsx", content, "application/octet-stream")},
            data={"_csrf_token": admin},
        )
        assert response.status_code == 422
        assert 'id="e-file"' in response.text


# --- the line-by-line report ----------------------------------------------------------------------


async def test_formula_cell_wrong_date_and_duplicate_line_are_reported_with_their_lines(
    maker: Any,
) -> None:
    content = (
        b"Nome;Data;Valor cobrado\n"
        b"Ana Souza;05/01/2026;150,00\n"
        b'"=HYPERLINK(""http://evil.example"";""click"")";06/01/2026;150,00\n'
        b"Bruno Lima;31/02/2026;80,00\n"
        b"Ana Souza;05/01/2026;150,00\n"
        b"Carla Dias;07/01/2026;+cmd|'/C calc'!A0\n"
    )
    lines = by_line(await plan_for(maker, content))
    assert lines[2].status == "create"
    assert lines[3].status == "invalid" and "formula" in " ".join(lines[3].notes)
    assert lines[4].status == "invalid" and "31/02/2026" in " ".join(lines[4].notes)
    assert lines[5].status == "duplicate" and "line 2" in " ".join(lines[5].notes)
    assert lines[6].status == "invalid" and "formula" in " ".join(lines[6].notes)


async def test_the_wrong_date_shows_in_the_dry_run_table_at_its_line(
    client: Any, admin: str
) -> None:
    content = b"name,date,amount\nAna,2026-01-05,10.00\nBruno,2026-13-01,20.00\n"
    import_id = await upload(client, admin, content)
    response = await dry_run(client, admin, import_id)
    row = response.text.split('id="line-3"', 1)[1].split("</tr>", 1)[0]
    assert "Invalid" in row and "2026-13-01" in row


async def test_an_existing_client_is_reused_ignoring_case_and_accents(
    maker: Any, make_client: Any, make_user: Any
) -> None:
    existing = await make_client("João Conceição")
    content = b"Nome;Data;Valor\njoao CONCEICAO;05/01/2026;100,00\n"
    lines = by_line(await plan_for(maker, content))
    assert lines[2].status == "create"
    assert f"#{existing}" in " ".join(lines[2].notes)

    await import_now(maker, await make_user("admin"), content)
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(Client)) == 1
        charge = await session.scalar(select(Charge))
    assert charge is not None and charge.client_id == existing


async def test_a_charge_already_in_the_books_is_a_duplicate_of_that_record(
    maker: Any, make_user: Any
) -> None:
    admin = await make_user("admin")
    await import_now(maker, admin, b"name,date,charge\nAna,2026-01-05,100.00\n")
    async with maker() as session:
        charge_id = await session.scalar(select(Charge.id))
    # Another file with the same session plus a new one.
    content = b"client,date,charge\nANA,2026-01-05,100.00\nAna,2026-01-06,100.00\n"
    lines = by_line(await plan_for(maker, content))
    assert lines[2].status == "duplicate" and f"#{charge_id}" in " ".join(lines[2].notes)
    assert lines[3].status == "create"


async def test_comma_file_with_decimal_points_and_iso_dates(maker: Any, make_user: Any) -> None:
    content = b'name,date,amount charged,amount paid\nAna,2026-01-05,"1,234.50",1234.50\n'
    options = services.guess_options(content, PT)
    assert (options.delimiter, options.decimal_mark, options.date_format) == (",", ".", "iso")
    await import_now(maker, await make_user("admin"), content)
    ana = (await clients_by_name(maker))["Ana"]
    assert (ana.owed_cents, ana.credit_cents) == (0, 0)
    async with maker() as session:
        charge = await session.scalar(select(Charge))
    assert charge is not None and (charge.amount_cents, charge.status) == (123450, "paid")


async def test_day_first_and_month_first_dates_are_read_as_chosen(maker: Any) -> None:
    content = b"name;date;charge\nAna;03/04/2026;10,00\n"
    day_first = Options(["name", "date", "charge_amount"], ";", ",", "dmy")
    month_first = Options(["name", "date", "charge_amount"], ";", ",", "mdy")
    assert (await plan_for(maker, content, day_first)).lines[0].day == date(2026, 4, 3)
    assert (await plan_for(maker, content, month_first)).lines[0].day == date(2026, 3, 4)


async def test_a_line_dated_in_a_closed_month_is_invalid(maker: Any, make_user: Any) -> None:
    async with maker() as session:
        session.add(Period(month="2026-01", closed_at=datetime.now(UTC)))
        await session.commit()
    content = b"name;date;charge\nAna;31/01/2026;10,00\nAna;01/02/2026;10,00\n"
    lines = by_line(await plan_for(maker, content))
    assert lines[2].status == "invalid" and "2026-01 is closed" in " ".join(lines[2].notes)
    assert lines[3].status == "create"


async def test_invalid_lines_block_the_import_until_the_owner_chooses_to_skip_them(
    client: Any, admin: str, maker: Any
) -> None:
    content = b"name;date;charge\nAna;05/01/2026;10,00\nBruno;05/01/2026;abc\n"
    import_id = await upload(client, admin, content)
    refused = await apply(client, admin, import_id)
    assert refused.status_code == 422
    assert 'id="e-skip_invalid"' in refused.text
    assert (await counts(maker))["charges"] == 0

    assert (await apply(client, admin, import_id, skip_invalid="1")).status_code == 303
    assert set(await clients_by_name(maker)) == {"Ana"}


async def test_a_payment_pays_the_oldest_open_charges_and_the_rest_becomes_credit(
    maker: Any, make_user: Any
) -> None:
    content = (
        "name;date;kind;amount\n"
        "Ana;05/01/2026;sessão;100,00\n"
        "Ana;12/01/2026;sessão;100,00\n"
        "Ana;19/01/2026;sessão;100,00\n"
        "Ana;20/01/2026;pagamento;250,00\n"
        "Ana;21/01/2026;pagamento;100,00\n"
    ).encode()
    await import_now(maker, await make_user("admin"), content)
    async with maker() as session:
        statuses = [c.status for c in await session.scalars(select(Charge).order_by(Charge.date))]
    assert statuses == ["paid", "paid", "paid"]
    ana = (await clients_by_name(maker))["Ana"]
    assert (ana.owed_cents, ana.credit_cents) == (0, 5000)
    await assert_books_agree(maker)


async def test_the_imported_history_is_in_the_journal_with_its_line(
    maker: Any, make_user: Any
) -> None:
    await import_now(maker, await make_user("admin"), b"name;date;charge\nAna;05/01/2026;10,00\n")
    async with maker() as session:
        entry = await session.scalar(select(Entry))
    assert entry is not None
    assert (entry.kind, entry.effective_date, entry.amount_cents) == (
        "charge",
        date(2026, 1, 5),
        -1000,
    )
    assert entry.idempotency_key is not None and entry.idempotency_key.endswith("-line-2")


# --- a real practice's size -----------------------------------------------------------------


def big_file(rows: int = 5000) -> bytes:
    """1,000 clients, five lines each: sessions paid, unpaid, partly paid, and top-ups."""
    out = ["Nome;Data;Valor cobrado;Valor pago;Forma de pagamento"]
    for i in range(rows):
        client = f"Cliente {i // 5:04d}"
        day = date(2026, 1 + (i % 10), 1 + (i % 28))
        charged, paid = [
            ("150,00", "150,00"),
            ("150,00", ""),
            ("200,00", "120,50"),
            ("", "300,00"),
            ("90,00", "0"),
        ][i % 5]
        out.append(f"{client};{day:%d/%m/%Y};{charged};{paid};{'Pix' if i % 2 else 'Cartão'}")
    return ("\n".join(out) + "\n").encode()


async def test_a_5000_line_file_is_dry_run_and_imported_and_the_books_agree(
    maker: Any, make_user: Any, capsys: Any
) -> None:
    content = big_file()
    started = time.perf_counter()
    plan = await plan_for(maker, content)
    dry_run_seconds = time.perf_counter() - started
    assert (plan.totals.lines, plan.totals.invalid) == (5000, 0)
    assert (plan.totals.clients, plan.totals.charges, plan.totals.payments) == (1000, 4000, 3000)

    started = time.perf_counter()
    await import_now(maker, await make_user("admin"), content)
    import_seconds = time.perf_counter() - started
    with capsys.disabled():
        print(f"\n5,000 lines: dry run {dry_run_seconds:.2f} s, import {import_seconds:.2f} s")

    assert (await counts(maker))["charges"] == 4000
    await assert_books_agree(maker)
    # And a second time: every line is a duplicate, nothing is written.
    again = await plan_for(maker, content)
    assert (again.totals.create, again.totals.duplicate) == (0, 5000)
    assert dry_run_seconds < 30 and import_seconds < 300


async def test_two_imports_of_the_same_file_at_once_record_it_once(
    maker: Any, make_user: Any
) -> None:
    """A double tap on "Import", or two admins: one import waits for the other, then finds
    everything already there."""
    admin = await make_user("admin")
    async with maker() as session:
        f = await services.store_file(session, admin, "f.csv", SPREADSHEET)
    options = services.guess_options(SPREADSHEET, PT)

    async def go() -> services.Plan:
        async with maker() as session:
            return await services.apply_import(session, admin, PT, f.id, options, today=TODAY)

    first, second = await asyncio.gather(go(), go())
    assert sorted([first.totals.create, second.totals.create]) == [0, 5]
    assert (await counts(maker))["charges"] == 3
    await assert_books_agree(maker)
