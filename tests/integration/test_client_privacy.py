"""A client's data rights: the admin downloads everything held about them, or anonymises them.

The story: Ana Souza had a session last month, paid part of it, topped up her
credit, got some of it refunded, was sent a billing message and her statement
by e-mail, and last month was closed. Then she asks for her data, and then to
be forgotten.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from app.audit import AuditEvent, audit
from app.clients.models import Client
from app.clients.services import ClientError, ClientInput, ClientService
from app.collecting.models import BillingMessage
from app.collecting.services import month_bounds, previous_month
from app.ledger.models import Allocation, Charge, Entry, Payment, Refund
from app.ledger.services import verify
from app.statements import mail
from app.statements import services as statements
from app.statements.models import DocumentJob, Period, PeriodStatement
from app.web.i18n import today

NAME, PHONE, EMAIL, NOTES = "Ana Souza", "+55 11 99999-0000", "ana@example.com", "Allergic to latex"


@pytest.fixture
async def admin(client, login, csrf):  # type: ignore[no-untyped-def]
    user = await login(client, "admin")
    token = await csrf(client)

    async def post(path: str, body: dict[str, Any] | None = None, **kw: Any) -> Any:
        if "data" in kw:
            return await client.post(
                path, data={"_csrf_token": token, **kw["data"]}, follow_redirects=False
            )
        return await client.post(path, json=body or {}, headers={"x-csrftoken": token})

    post.user = user  # type: ignore[attr-defined]
    post.token = token  # type: ignore[attr-defined]
    return post


async def ana_story(admin: Any, maker: Any) -> dict[str, Any]:
    """Ana, with a charge, a partial payment, a top-up, a refund and messages; last month closed."""
    created = await admin(
        "/api/v1/clients", {"name": NAME, "phone": PHONE, "email": EMAIL, "notes": NOTES}
    )
    assert created.status_code == 201, created.text
    client_id = created.json()["id"]
    month = previous_month(today())
    first, _next = month_bounds(month)
    charge = await admin(
        "/api/v1/charges",
        {
            "client_id": client_id,
            "amount": "100.00",
            "date": first.replace(day=5).isoformat(),
            "description": "Session with Ana Souza",
        },
    )
    assert charge.status_code == 201, charge.text
    charge_id = charge.json()["id"]
    partial = await admin(
        "/api/v1/payments",
        {
            "client_id": client_id,
            "amount": "40.00",
            "method": "pix",
            "received_on": first.replace(day=10).isoformat(),
            "charge_ids": [charge_id],
        },
    )
    assert partial.status_code == 201, partial.text
    topup = await admin(
        "/api/v1/payments",
        {
            "client_id": client_id,
            "amount": "25.00",
            "method": "cash",
            "received_on": first.replace(day=12).isoformat(),
        },
    )
    assert topup.status_code == 201, topup.text
    refund = await admin(
        f"/api/v1/clients/{client_id}/refunds", {"amount": "5.00", "method": "cash"}
    )
    assert refund.status_code == 201, refund.text
    sent = await admin(
        f"/collect/{month}/sent",
        data={"client_id": str(client_id), "tone": "friendly", "channel": "whatsapp"},
    )
    assert sent.status_code == 200, sent.text
    async with maker() as session:  # what e-mailing her statement writes (see test_mail_statements)
        mail._audit_sent(
            session, admin.user, "127.0.0.1", client_id, EMAIL, first, first.replace(day=28)
        )
        await session.commit()
    closed = await admin(f"/api/v1/periods/{month}/close")
    assert closed.status_code == 201, closed.text
    return {
        "client_id": client_id,
        "charge_id": charge_id,
        "month": month,
        "digest": closed.json()["digest"],
    }


def read_csv(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    text = archive.read(name).decode("utf-8-sig")
    delimiter = ";" if text.splitlines()[0].count(";") else ","
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter))


async def test_admin_downloads_everything_held_about_a_client(admin, client, maker) -> None:
    story = await ana_story(admin, maker)
    client_id = story["client_id"]

    response = await client.get(f"/clients/{client_id}/data.zip")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/zip")
    assert (
        f'filename="client-{client_id}-data-{today().isoformat()}.zip"'
        in (response.headers["content-disposition"])
    )
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = set(archive.namelist())
    for base in ("charges", "payments", "allocations", "refunds", "entries", "messages"):
        assert {f"{base}.json", f"{base}.csv"} <= names
    assert {"README.txt", "client.json", "statement.csv", "statement.pdf"} <= names
    assert archive.read("statement.pdf").startswith(b"%PDF")
    assert "client.json" in archive.read("README.txt").decode()

    profile = json.loads(archive.read("client.json"))
    assert (profile["name"], profile["email"], profile["notes"]) == (NAME, EMAIL, NOTES)
    assert profile["phone_digits"] == "5511999990000"
    # owed 60, credit 25 - 5 = 20
    assert (profile["owed"], profile["credit"], profile["balance"]) == ("60.00", "20.00", "-40.00")

    charges = json.loads(archive.read("charges.json"))
    assert [(c["charge_id"], c["amount"], c["paid"], c["open"], c["status"]) for c in charges] == [
        (story["charge_id"], "100.00", "40.00", "60.00", "partial")
    ]
    payments = json.loads(archive.read("payments.json"))
    assert [(p["amount"], p["method"], p["allocated"]) for p in payments] == [
        ("40.00", "pix", "40.00"),
        ("25.00", "cash", "0.00"),
    ]
    assert [(a["charge_id"], a["amount"]) for a in payments[0]["allocations"]] == [
        (story["charge_id"], "40.00")
    ]
    assert payments[1]["allocations"] == []
    refunds = json.loads(archive.read("refunds.json"))
    assert [(r["amount"], r["method"]) for r in refunds] == [("5.00", "cash")]

    async with maker() as session:
        entry_ids = list(
            await session.scalars(
                select(Entry.id).where(Entry.client_id == client_id).order_by(Entry.id)
            )
        )
    entries = read_csv(archive, "entries.csv")
    assert sorted(int(e["entry_id"]) for e in entries) == entry_ids
    fmt_decimal = "," if any("," in e["amount"] for e in entries) else "."
    by_kind = {e["kind"]: e["amount"].replace(fmt_decimal, ".") for e in entries}
    assert by_kind["charge"] == "-100.00" and by_kind["refund"] == "-5.00"
    charges_csv = read_csv(archive, "charges.csv")
    assert [c["description"] for c in charges_csv] == ["Session with Ana Souza"]
    payments_csv = read_csv(archive, "payments.csv")
    assert [p["method"] for p in payments_csv] == ["pix", "cash"]

    messages = json.loads(archive.read("messages.json"))
    assert [(m["what"], m["channel"]) for m in messages] == [
        ("billing_message", "whatsapp"),
        ("statement_emailed", "email"),
    ]
    assert messages[0]["month"] == story["month"] and messages[1]["to"] == EMAIL
    assert len(read_csv(archive, "messages.csv")) == 2

    statement_rows = read_csv(archive, "statement.csv")
    assert statement_rows[-1]["balance"] == "-40.00"

    async with maker() as session:
        events = list(
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "client_data_exported")
            )
        )
    assert len(events) == 1
    detail = json.loads(events[0].detail)
    assert detail["client_id"] == client_id and events[0].username == admin.user.username
    assert NAME not in events[0].detail and EMAIL not in events[0].detail


async def recomputed_digest(maker: Any, month: str) -> str:
    """The month's digest computed again from what is stored: previous digest, totals, snapshots."""
    async with maker() as session:
        period = await session.scalar(select(Period).where(Period.month == month))
        assert period is not None
        digest = hashlib.sha256((period.previous_digest or "").encode())
        digest.update(period.totals.encode())
        for data in await session.scalars(
            select(PeriodStatement.data)
            .where(PeriodStatement.period_id == period.id)
            .order_by(PeriodStatement.client_id)
        ):
            digest.update(data.encode())
        return digest.hexdigest()


async def snapshot(maker: Any, client_id: int) -> dict[str, Any]:
    """The client's money as every part of the app sees it."""
    async with maker() as session:
        c = await session.get(Client, client_id)
        assert c is not None
        first = await session.scalar(
            select(Entry.effective_date)
            .where(Entry.client_id == client_id)
            .order_by(Entry.effective_date)
            .limit(1)
        )
        st = await statements.statement(session, client_id, first, today())
        rows = {}
        for model in (Charge, Payment, Refund, Entry):
            rows[model.__name__] = [
                (r.id, r.amount_cents)
                for r in await session.scalars(
                    select(model).where(model.client_id == client_id).order_by(model.id)
                )
            ]
        rows["Allocation"] = [
            (a.id, a.amount_cents)
            for a in await session.scalars(
                select(Allocation)
                .join(Charge, Charge.id == Allocation.charge_id)
                .where(Charge.client_id == client_id)
            )
        ]
        periods = [
            (p.month, p.digest, p.totals)
            for p in await session.scalars(select(Period).order_by(Period.month))
        ]
        frozen = [
            (s.period_id, s.opening_cents, s.closing_cents, s.data)
            for s in await session.scalars(
                select(PeriodStatement).where(PeriodStatement.client_id == client_id)
            )
        ]
        return {
            "money": (c.credit_cents, c.owed_cents),
            "statement": (
                st.opening_cents,
                st.closing_cents,
                [(line.entry_id, line.amount_cents, line.balance_cents) for line in st.lines],
            ),
            "rows": rows,
            "periods": periods,
            "frozen": frozen,
        }


async def test_anonymising_erases_personal_data_and_keeps_the_money(admin, client, maker) -> None:
    story = await ana_story(admin, maker)
    client_id = story["client_id"]
    before = await snapshot(maker, client_id)

    page = await client.get(f"/clients/{client_id}/anonymise")
    assert page.status_code == 200 and "cannot be undone" in page.text
    wrong = await admin(f"/clients/{client_id}/anonymise", data={"confirmation": "Ana"})
    assert wrong.status_code == 422 and "Type the client" in wrong.text
    async with maker() as session:
        assert (await session.get(Client, client_id)).name == NAME  # nothing written

    done = await admin(f"/clients/{client_id}/anonymise", data={"confirmation": " ana  SOUZA "})
    assert done.status_code == 303 and done.headers["location"] == f"/clients/{client_id}"

    async with maker() as session:
        c = await session.get(Client, client_id)
        assert c is not None
        assert c.name == f"Anonymised client #{client_id}"
        assert (c.phone, c.phone_digits, c.email, c.notes) == (None, None, None, None)
        assert not c.active and c.anonymised_at is not None
        assert "ana" not in c.search_text and "5511" not in c.search_text
        service = ClientService(session)
        for query in ("Ana Souza", "souza", "99999", "ana@example.com"):
            assert (await service.search(query, archived=True)).items == []
        assert [x.id for x in (await service.search("anonymised", archived=True)).items] == [
            client_id
        ]
        assert await verify(session) == []
        events = list(await session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        messages = list(
            await session.scalars(
                select(BillingMessage).where(BillingMessage.client_id == client_id)
            )
        )
    # The money, the statement, the closed month and its frozen snapshot are exactly as before.
    assert await snapshot(maker, client_id) == before
    assert before["periods"][-1][1] == story["digest"]
    assert await recomputed_digest(maker, story["month"]) == story["digest"]
    # The billing message keeps when and how it was sent (its text was never stored).
    assert [(m.channel, m.tone) for m in messages] == [("whatsapp", "friendly")]
    # No audit line keeps her e-mail or name; the anonymisation itself names the id only.
    for event in events:
        assert EMAIL not in event.detail and NAME not in event.detail, event.action
    emailed = next(e for e in events if e.action == "statement_emailed")
    assert json.loads(emailed.detail)["to"] == "[removed]"
    (anonymised,) = [e for e in events if e.action == "client_anonymised"]
    assert json.loads(anonymised.detail)["client_id"] == client_id
    assert anonymised.username == admin.user.username

    shown = await client.get(f"/clients/{client_id}")
    assert f"<h1>Anonymised client #{client_id} <span" in shown.text
    assert PHONE not in shown.text and EMAIL not in shown.text and NOTES not in shown.text
    # What staff typed into a money record is part of that record and stays as typed.
    assert "Session with Ana Souza" in shown.text
    assert f"/clients/{client_id}/anonymise" not in shown.text
    # The export afterwards holds what is left: the money, no personal data.
    archive = zipfile.ZipFile(
        io.BytesIO((await client.get(f"/clients/{client_id}/data.zip")).content)
    )
    profile = json.loads(archive.read("client.json"))
    assert profile["email"] is None and profile["balance"] == "-40.00"


async def test_anonymising_twice_is_refused_with_a_clear_message(admin, client, maker) -> None:
    created = await admin("/api/v1/clients", {"name": NAME, "email": EMAIL})
    client_id = created.json()["id"]
    first = await admin(f"/clients/{client_id}/anonymise", data={"confirmation": NAME})
    assert first.status_code == 303
    pseudonym = f"Anonymised client #{client_id}"

    again = await admin(f"/clients/{client_id}/anonymise", data={"confirmation": pseudonym})

    assert again.status_code == 409
    assert "already anonymised" in again.text
    async with maker() as session:
        actions = list(
            await session.scalars(
                select(AuditEvent.action).where(AuditEvent.action == "client_anonymised")
            )
        )
    assert actions == ["client_anonymised"]
    # Nor can her details be typed back in.
    async with maker() as session:
        with pytest.raises(ClientError) as refused:
            await ClientService(session).update(client_id, ClientInput(name=NAME, email=EMAIL))
        assert "anonymised" in refused.value.errors["name"]
        assert (await session.get(Client, client_id)).name == pseudonym


@pytest.mark.parametrize("role", ["reception", "accountant"])
async def test_only_the_admin_exports_or_anonymises(
    client, login, csrf, make_client, maker, role
) -> None:
    client_id = await make_client(NAME, email=EMAIL)
    await login(client, role)
    token = await csrf(client)

    assert (await client.get(f"/clients/{client_id}/data.zip")).status_code == 403
    assert (await client.get(f"/clients/{client_id}/anonymise")).status_code == 403
    refused = await client.post(
        f"/clients/{client_id}/anonymise", data={"_csrf_token": token, "confirmation": NAME}
    )
    assert refused.status_code == 403
    page = await client.get(f"/clients/{client_id}")
    assert "data.zip" not in page.text and "/anonymise" not in page.text
    async with maker() as session:
        assert (await session.get(Client, client_id)).name == NAME


async def test_anonymising_removes_her_from_stored_documents_and_audit_notes(
    admin, maker, make_client
) -> None:
    client_id = await make_client(NAME, email=EMAIL, phone_digits="5511999990000")
    other_id = await make_client("Bruno Lima")

    def month_zip(*client_ids: int) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for cid in client_ids:
                archive.writestr(f"statement-{cid}-someone-2026-10-01-2026-10-31.pdf", b"%PDF")
        return buffer.getvalue()

    async with maker() as session:
        now = datetime.now(UTC)
        jobs = [
            DocumentJob(
                kind="zip",
                month="2026-10",
                status="done",
                content=month_zip(client_id, other_id),
                created_at=now,
            ),
            DocumentJob(
                kind="zip",
                month="2026-09",
                status="done",
                content=month_zip(other_id),
                created_at=now,
            ),
            DocumentJob(
                kind="email",
                month="2026-10",
                status="done",
                error=f"1 not sent: {NAME} <{EMAIL}>: mailbox full; Banana Split <b@x.io>: no",
                created_at=now,
            ),
        ]
        session.add_all(jobs)
        audit(session, "note", username="admin", text="called ana souza on 5511999990000")
        audit(session, "note", username="admin", text="Banana order")
        await session.commit()
        job_ids = [j.id for j in jobs]

    done = await admin(f"/clients/{client_id}/anonymise", data={"confirmation": NAME})
    assert done.status_code == 303

    async with maker() as session:
        zipped, untouched, emailed = [await session.get(DocumentJob, i) for i in job_ids]
        contents = [
            await session.scalar(select(DocumentJob.content).where(DocumentJob.id == i))
            for i in job_ids[:2]
        ]
        notes = list(
            await session.scalars(
                select(AuditEvent.detail).where(AuditEvent.action == "note").order_by(AuditEvent.id)
            )
        )
        anonymised = await session.scalar(
            select(AuditEvent.detail).where(AuditEvent.action == "client_anonymised")
        )
    # Her month's ZIP is gone (it held her statement); one without her stays.
    assert contents[0] is None and "anonymised" in zipped.error
    assert contents[1] is not None and untouched.error is None
    assert NAME not in emailed.error and EMAIL not in emailed.error
    assert "Banana Split <b@x.io>" in emailed.error
    assert json.loads(notes[0])["text"] == (f"called Anonymised client #{client_id} on [removed]")
    assert json.loads(notes[1])["text"] == "Banana order"
    detail = json.loads(anonymised)
    assert detail == {
        "audit_events_redacted": 1,
        "client_id": client_id,
        "document_jobs_redacted": 2,
    }


async def test_a_client_without_money_records_exports_empty_tables(
    admin, client, make_client
) -> None:
    client_id = await make_client("Carla Dias", email="carla@example.com")

    response = await client.get(f"/clients/{client_id}/data.zip")

    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert json.loads(archive.read("charges.json")) == []
    assert read_csv(archive, "entries.csv") == []
    assert archive.read("entries.csv").decode("utf-8-sig").startswith("entry_id")
    assert json.loads(archive.read("client.json"))["email"] == "carla@example.com"
    assert archive.read("statement.pdf").startswith(b"%PDF")
