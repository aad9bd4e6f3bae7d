"""E-mailing statements through a real SMTP server (aiosmtpd on a free local port)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from app.audit import AuditEvent
from app.main import create_app

SENDER = "billing@clinic.example"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def charge(api: Any, client_id: int, day: str, amount: str) -> None:
    await api("/api/v1/charges", {"client_id": client_id, "amount": amount, "date": day})


async def pay(api: Any, client_id: int, day: str, amount: str) -> None:
    body = {"client_id": client_id, "amount": amount, "method": "pix", "received_on": day}
    await api("/api/v1/payments", body)


async def wait_for_job(client: Any, job_id: int, seconds: float = 240) -> Any:
    """Poll the progress fragment as HTMX does until it says stop (286)."""
    async with asyncio.timeout(seconds):
        while True:
            progress = await client.get(
                f"/statements/jobs/{job_id}/progress", headers={"HX-Request": "true"}
            )
            if progress.status_code == 286:
                return progress
            assert progress.status_code == 200, progress.text
            assert 'hx-trigger="every 1s"' in progress.text
            await asyncio.sleep(0.2)


class Inbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[tuple[list[str], EmailMessage]]:
        return [
            (list(e.rcpt_tos), message_from_bytes(e.original_content, policy=policy.default))
            for e in self.envelopes
        ]


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
async def mail_client(db_url, settings_for, client_for, inbox):  # type: ignore[no-untyped-def]
    """The app with SMTP pointed at the local test server, and a test client for it."""
    _handler, port = inbox
    settings = settings_for(
        db_url, smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False, smtp_from=SENDER
    )
    app = create_app(settings)
    try:
        async with client_for(app) as test_client:
            yield test_client
    finally:
        await app.state.engine.dispose()


@pytest.fixture
async def admin_api(mail_client, login, csrf):  # type: ignore[no-untyped-def]
    await login(mail_client, "admin")
    token = await csrf(mail_client)

    async def post(path: str, body: dict[str, Any]) -> Any:
        response = await mail_client.post(path, json=body, headers={"x-csrftoken": token})
        assert response.status_code in (200, 201), response.text
        return response.json()

    post.token = token  # type: ignore[attr-defined]
    return post


def attachments(message: EmailMessage) -> list[EmailMessage]:
    return [part for part in message.iter_attachments()]


async def test_reception_emails_a_statement_that_arrives_with_the_pdf(
    mail_client, admin_api, make_client, inbox, login, csrf, maker
):
    handler, _port = inbox
    ana = await make_client("Ana Souza", email="ana@example.com")
    await charge(admin_api, ana, "2026-02-03", "120.00")
    await pay(admin_api, ana, "2026-02-10", "20.00")
    await login(mail_client, "reception")
    page = await mail_client.get(f"/clients/{ana}/statement?from=2026-02-01&to=2026-02-28")
    assert "E-mail to the client" in page.text and "E-mail is not set up" not in page.text

    sent = await mail_client.post(
        f"/clients/{ana}/statement/email",
        data={"from": "2026-02-01", "to": "2026-02-28"},
        headers={"x-csrftoken": await csrf(mail_client), "HX-Request": "true"},
    )
    assert sent.status_code == 200, sent.text
    assert "Statement sent to ana@example.com." in sent.text

    [(recipients, message)] = handler.messages()
    assert recipients == ["ana@example.com"]
    assert message["To"].addresses[0].addr_spec == "ana@example.com"
    assert message["From"].addresses[0].addr_spec == SENDER
    assert "My practice" in message["Subject"] and "February 2026" in message["Subject"]
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "Hello Ana Souza," in body and "Amount due: $100.00" in body
    [pdf] = attachments(message)
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == f"statement-{ana}-ana-souza-2026-02-01-2026-02-28.pdf"
    assert pdf.get_content().startswith(b"%PDF-")

    async with maker() as session:
        events = list(
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "statement_emailed")
            )
        )
    assert len(events) == 1 and json.loads(events[0].detail)["to"] == "ana@example.com"


async def test_a_client_without_an_address_is_refused_with_a_reason(
    mail_client, admin_api, make_client, inbox
):
    handler, _port = inbox
    bia = await make_client("Beatriz Lima")
    page = await mail_client.get(f"/clients/{bia}/statement")
    assert "This client has no e-mail address." in page.text
    refused = await mail_client.post(
        f"/clients/{bia}/statement/email",
        data={"from": "2026-02-01", "to": "2026-02-28"},
        headers={"x-csrftoken": admin_api.token},
    )
    assert refused.status_code == 422 and "no e-mail address" in refused.text
    assert handler.envelopes == []


async def test_a_name_with_line_breaks_cannot_add_mail_headers(
    mail_client, admin_api, make_client, inbox
):
    handler, _port = inbox
    eve = await make_client("Eve\r\nBcc: victim@example.com", email="eve@example.com")
    sent = await mail_client.post(
        f"/clients/{eve}/statement/email",
        data={"from": "2026-02-01", "to": "2026-02-28"},
        headers={"x-csrftoken": admin_api.token, "HX-Request": "true"},
    )
    assert sent.status_code == 200, sent.text
    [(recipients, message)] = handler.messages()
    assert recipients == ["eve@example.com"]
    assert message["Bcc"] is None


async def test_admin_emails_a_months_statements_to_every_client_with_an_address(
    mail_client, admin_api, make_client, inbox
):
    handler, _port = inbox
    ana = await make_client("Ana Souza", email="ana@example.com")
    bia = await make_client("Beatriz Lima", email="bia@example.com")
    caio = await make_client("Caio Prado")  # activity but no address: skipped
    dora = await make_client("Dora Reis", email="dora@example.com")  # no activity in February
    for client_id in (ana, bia, caio):
        await charge(admin_api, client_id, "2026-02-05", "80.00")
    await charge(admin_api, dora, "2026-03-05", "80.00")

    page = await mail_client.get("/statements?month=2026-02")
    assert "2 with an e-mail address" in page.text and "E-mail all statements" in page.text
    started = await mail_client.post(
        "/statements/email",
        data={"month": "2026-02"},
        headers={"x-csrftoken": admin_api.token},
        follow_redirects=False,
    )
    assert started.status_code == 303, started.text
    job_id = int(started.headers["location"].rsplit("/", 1)[1])
    done = await wait_for_job(mail_client, job_id)
    assert "2 of 2 statements e-mailed" in done.text and "Done" in done.text
    await asyncio.sleep(0)
    received = {tuple(recipients): m for recipients, m in handler.messages()}
    assert set(received) == {("ana@example.com",), ("bia@example.com",)}
    for message in received.values():
        [pdf] = attachments(message)
        assert pdf.get_content().startswith(b"%PDF-")


async def test_without_smtp_the_buttons_say_so_and_sending_answers_409(
    client, login, csrf, make_client
):
    ana = await make_client("Ana Souza", email="ana@example.com")
    await login(client, "admin")
    page = await client.get(f"/clients/{ana}/statement")
    assert "E-mail is not set up" in page.text
    assert 'disabled aria-describedby="email-blocker"' in page.text
    month_page = await client.get("/statements?month=2026-02")
    assert 'disabled aria-describedby="email-all-blocker"' in month_page.text
    token = await csrf(client)
    one = await client.post(
        f"/clients/{ana}/statement/email",
        data={"from": "2026-02-01", "to": "2026-02-28"},
        headers={"x-csrftoken": token},
    )
    assert one.status_code == 409 and "E-mail is not set up" in one.text
    month = await client.post(
        "/statements/email", data={"month": "2026-02"}, headers={"x-csrftoken": token}
    )
    assert month.status_code == 409


async def test_only_the_admin_emails_a_whole_month(client, login, csrf):
    await login(client, "reception")
    refused = await client.post(
        "/statements/email", data={"month": "2026-02"}, headers={"x-csrftoken": await csrf(client)}
    )
    assert refused.status_code == 403
