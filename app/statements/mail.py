"""E-mailing statements: one client's, or every client's of a month, PDF attached.

Sent with the standard library (``smtplib`` in a thread) to the server named
by the ``SMTP_*`` settings. Nothing about an e-mail touches the money tables;
each statement sent is an audit event (``statement_emailed``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import smtplib
import ssl
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from functools import partial
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit import audit
from app.auth.models import User
from app.clients.models import Client
from app.collecting.services import month_bounds
from app.config import Settings
from app.db import begin_write
from app.statements.documents import (
    JobRun,
    Letterhead,
    StatementDocument,
    active_clients,
    bulk_renderer,
    environment,
    in_formatting,
    month_documents,
    pdf,
    period_label,
)
from app.statements.models import DocumentJob
from app.statements.services import statement
from app.web.i18n import _, ngettext

log = logging.getLogger("saldo.mail")

SMTP_TIMEOUT_SECONDS = 30
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class MailError(Exception):
    """A statement that cannot be e-mailed; the message is for the person who asked."""

    status_code = 422

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


def smtp_configured(settings: Settings) -> bool:
    return bool(settings.smtp_host)


def not_configured_message() -> str:
    return _("E-mail is not set up: the server needs SMTP_HOST (and usually SMTP_FROM).")


def sender(settings: Settings) -> str:
    return settings.smtp_from or settings.smtp_user or "saldo@localhost"


def address_of(client: Client) -> str:
    """The client's e-mail address, or "" when there is none to send to."""
    return (client.email or "").strip()


def _header_text(text: str) -> str:
    """Header-safe text: no line breaks or control characters, whatever a name holds."""
    return _CONTROL.sub(" ", text).strip()


def _message(doc: StatementDocument, content: bytes, recipient: str, from_: str) -> EmailMessage:
    st, letterhead = doc.statement, doc.letterhead
    period = period_label(st.start, st.end)
    body = (
        environment()
        .get_template("statements/email_body.txt")
        .render(st=st, letterhead=letterhead, period=period)
    )
    message = EmailMessage()
    message["Subject"] = _header_text(
        _(
            "%(practice)s · statement for %(period)s",
            practice=letterhead.practice_name,
            period=period,
        )
    )
    message["From"] = formataddr((_header_text(letterhead.practice_name), from_))
    message["To"] = formataddr((_header_text(st.client_name), recipient))
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=from_.rpartition("@")[2] or None)
    message.set_content(re.sub(r"\n{3,}", "\n\n", body).strip() + "\n")
    message.add_attachment(
        content, maintype="application", subtype="pdf", filename=doc.filename("pdf")
    )
    return message


def statement_message(
    doc: StatementDocument, content: bytes, recipient: str, from_: str
) -> EmailMessage:
    """The e-mail for one statement, in the practice's language, with the PDF attached."""
    return in_formatting(doc.letterhead.formatting, _message, doc, content, recipient, from_)


class Mailer:
    """One SMTP connection for one or many messages. Blocking: use it from a thread.

    Port 465 speaks TLS from the start; otherwise STARTTLS unless
    ``SMTP_STARTTLS=false``. Logs in when ``SMTP_USER`` is set.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.smtp: smtplib.SMTP | None = None

    def connect(self) -> smtplib.SMTP:
        s = self.settings
        assert s.smtp_host
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.smtp_port == 465:
            smtp = smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=SMTP_TIMEOUT_SECONDS, context=context
            )
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=SMTP_TIMEOUT_SECONDS)
            if s.smtp_starttls:
                smtp.starttls(context=context)
        if s.smtp_user:
            smtp.login(s.smtp_user, s.smtp_password or "")
        return smtp

    def send(self, message: EmailMessage) -> None:
        if self.smtp is None:
            self.smtp = self.connect()
        try:
            self.smtp.send_message(message)
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPSenderRefused, OSError):
            self.close()  # the next message starts on a fresh connection
            raise

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                self.smtp.close()
            self.smtp = None

    def __enter__(self) -> Mailer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _send_one(settings: Settings, message: EmailMessage) -> None:
    with Mailer(settings) as mailer:
        mailer.send(message)


def _audit_sent(
    session: AsyncSession,
    actor: User | None,
    ip: str | None,
    client_id: int,
    recipient: str,
    start: date,
    end: date,
    job_id: int | None = None,
) -> None:
    audit(
        session,
        "statement_emailed",
        user_id=actor.id if actor else None,
        username=actor.username if actor else "",
        ip=ip,
        client_id=client_id,
        to=recipient,
        start=start.isoformat(),
        end=end.isoformat(),
        job_id=job_id,
    )


async def email_statement(
    session: AsyncSession,
    settings: Settings,
    letterhead: Letterhead,
    client_id: int,
    start: date,
    end: date,
    actor: User,
    ip: str | None = None,
) -> str:
    """E-mail the client's statement for [start, end] to the client; returns the address.

    Refuses when SMTP is not configured (409), an unknown client
    (``LookupError``), a client without an e-mail address (422), and reports
    a mail server that does not take the message (502). Audited.
    """
    if not smtp_configured(settings):
        raise MailError(not_configured_message(), 409)
    st = await statement(session, client_id, start, end)
    client = await session.get(Client, client_id)
    assert client is not None
    recipient = address_of(client)
    await session.commit()  # nothing below needs the read transaction
    if not recipient:
        raise MailError(_("This client has no e-mail address."))
    doc = StatementDocument(st, letterhead, datetime.now(UTC))
    message = statement_message(doc, await pdf(doc), recipient, sender(settings))
    try:
        await asyncio.to_thread(_send_one, settings, message)
    except (smtplib.SMTPException, OSError) as exc:
        log.warning("statement e-mail to client %s failed: %s", client_id, exc)
        raise MailError(
            _("The mail server did not take the message: %(why)s", why=str(exc)[:200]), 502
        ) from exc
    await begin_write(session)
    _audit_sent(session, actor, ip, client_id, recipient, start, end)
    await session.commit()
    return recipient


async def run_email_job(
    maker: async_sessionmaker[AsyncSession],
    settings: Settings,
    job_id: int,
    letterhead: Letterhead,
    actor: User,
    ip: str | None = None,
) -> None:
    """E-mail every client with activity in the job's month (and an address) their statement.

    PDFs are rendered on all cores while the ones ready are sent over one
    SMTP connection. A message the server refuses is counted and named in the
    job's notes; the others still go out.
    """
    run = JobRun(maker, job_id)
    failures: list[str] = []
    try:
        async with maker() as session:
            job = await session.get(DocumentJob, job_id)
            assert job is not None
            month = job.month
            clients = [c for c in await active_clients(session, month) if address_of(c)]
        addresses = {c.id: address_of(c) for c in clients}
        first, nxt = month_bounds(month)
        end = nxt - timedelta(days=1)
        from_ = sender(settings)
        await run.start(total=len(clients))
        mailer = Mailer(settings)
        try:
            with bulk_renderer() as pool:
                async for doc, content in month_documents(maker, month, letterhead, clients, pool):
                    client_id = doc.statement.client_id
                    recipient = addresses[client_id]
                    message = statement_message(doc, content, recipient, from_)
                    try:
                        await asyncio.to_thread(mailer.send, message)
                    except (smtplib.SMTPException, OSError) as exc:
                        failures.append(f"{doc.statement.client_name} <{recipient}>: {exc}")
                        await run.advance()
                        continue
                    await run.advance(
                        partial(
                            _audit_sent,
                            actor=actor,
                            ip=ip,
                            client_id=client_id,
                            recipient=recipient,
                            start=first,
                            end=end,
                            job_id=job_id,
                        )
                    )
        finally:
            await asyncio.to_thread(mailer.close)
        if failures and len(failures) == len(clients):
            await run.fail(_("No statement could be sent.") + " " + "; ".join(failures[:5]))
            return
        notes = None
        if failures:
            notes = ngettext(
                "%(num)d statement could not be sent: %(who)s",
                "%(num)d statements could not be sent: %(who)s",
                len(failures),
                who="; ".join(failures[:20]),
            )
        await run.finish(error=notes)
    except Exception as exc:
        log.exception("statement e-mail job %s failed", job_id)
        await run.fail(f"{type(exc).__name__}: {exc}")
