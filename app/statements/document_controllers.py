"""Statement pages and files: a client's statement as HTML, PDF and CSV, e-mailed to the
client, and all statements of a month as a ZIP or by e-mail (long jobs with progress).

Every role may read statements and download files (the accountant included,
who may also start a month's ZIP: building a file changes no money record).
E-mailing one client is for admin and reception, e-mailing a whole month for
the admin.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.services import PracticeSettings
from app.auth.controllers import client_ip
from app.auth.guards import ADMIN, STAFF
from app.auth.models import User
from app.clients.models import Client
from app.collecting.services import month_bounds, month_name, previous_month, valid_month
from app.config import Settings
from app.statements import documents, mail
from app.statements.documents import Letterhead, StatementDocument
from app.statements.services import Statement, StatementError, statement
from app.web.errors import is_htmx
from app.web.i18n import _, current, today

FromDate = Annotated[str | None, QueryParameter(name="from", required=False)]
ToDate = Annotated[str | None, QueryParameter(name="to", required=False)]


def _practice(request: Request[Any, Any, Any]) -> PracticeSettings:
    return request.state.practice


def _user(request: Request[Any, Any, Any]) -> User:
    return request.scope["user"]


def _period(start: str | None, end: str | None) -> tuple[date, date]:
    """[from, to] as asked; by default the current month so far (installation's time zone)."""
    day = today()
    try:
        first = date.fromisoformat(start) if start else day.replace(day=1)
        last = date.fromisoformat(end) if end else day
    except ValueError:
        raise ValidationException(_("Dates are written YYYY-MM-DD, like 2026-03-31.")) from None
    if last < first:
        raise ValidationException(_("The period ends before it starts."))
    return first, last


async def _statement(session: AsyncSession, client_id: int, start: date, end: date) -> Statement:
    try:
        return await statement(session, client_id, start, end)
    except LookupError:
        raise NotFoundException() from None
    except StatementError as exc:
        raise ValidationException(str(exc)) from None


def _presets(day: date) -> list[tuple[str, date, date]]:
    this_month = day.replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    three_months = (last_month - timedelta(days=1)).replace(day=1)
    return [
        (_("This month"), this_month, day),
        (_("Last month"), last_month, this_month - timedelta(days=1)),
        (_("Last 3 months"), three_months, day),
        (_("This year"), day.replace(month=1, day=1), day),
    ]


def _attachment(content: bytes, media_type: str, filename: str, inline: bool = False) -> Response:
    disposition = "inline" if inline else "attachment"
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f'{disposition}; filename="{filename}"'},
    )


def _refusal(request: Request[Any, Any, Any], status: int, message: str) -> Template:
    """A refused action: a toast for HTMX, the error page otherwise, with the real reason."""
    if is_htmx(request):
        return Template(
            "_toast.html",
            context={"level": "error", "message": message},
            status_code=status,
            headers={"HX-Retarget": "#toasts", "HX-Reswap": "beforeend"},
        )
    return Template(
        "errors/page.html",
        context={"status": status, "title": _("Not sent"), "message": message},
        status_code=status,
    )


def _month_or_last(month: str | None) -> str:
    """The month asked for (YYYY-MM), or last month when none or no valid one is."""
    return month if month and valid_month(month) else previous_month(today())


def _job_context(job: Any) -> dict[str, Any]:
    kinds, states = documents.job_labels()
    return {
        "job": job,
        "job_state": documents.job_state,
        "kind_labels": kinds,
        "status_labels": states,
    }


class StatementDocuments(Controller):
    tags = ["statements"]

    # --- one client's statement ---------------------------------------------------------

    @get("/clients/{client_id:int}/statement", name="client_statement", include_in_schema=False)
    async def page(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        settings: Settings,
        client_id: int,
        start: FromDate = None,
        end: ToDate = None,
        emailed: bool = False,
    ) -> Template:
        """The statement for a period; changing the period swaps only its body (HTMX)."""
        client = await db_session.get(Client, client_id)
        if client is None:
            raise NotFoundException()
        practice = _practice(request)
        context: dict[str, Any] = {
            "client": client,
            "letterhead": Letterhead.of(practice),
            "presets": _presets(today()),
            "emailed": emailed,
            "errors": {},
            "error": None,
            "values": {"from": start or "", "to": end or ""},
            "can_email": _user(request).role in STAFF,
            "email_blocker": None,
            "kinds": documents.kind_labels(),
        }
        status = 200
        try:
            first, last = _period(start, end)
            st = await _statement(db_session, client_id, first, last)
        except ValidationException as exc:
            status = 422
            context["error"] = exc.detail
            context["errors"] = {"to": exc.detail}
        else:
            context["values"] = {"from": first.isoformat(), "to": last.isoformat()}
            context.update(
                st=st,
                period=documents.period_label(first, last),
                number=StatementDocument(st, context["letterhead"], datetime.now(UTC)).number,
            )
            if not mail.smtp_configured(settings):
                context["email_blocker"] = mail.not_configured_message()
            elif not mail.address_of(client):
                context["email_blocker"] = _("This client has no e-mail address.")
        fragment = is_htmx(request) and request.headers.get("hx-target") == "statement-body"
        name = "statements/_statement_body.html" if fragment else "statements/statement.html"
        return Template(name, context=context, status_code=status)

    @get(
        "/clients/{client_id:int}/statement.pdf",
        name="client_statement_pdf",
        summary="A client's statement as an A4 PDF (from, to: YYYY-MM-DD)",
    )
    async def pdf_file(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        client_id: int,
        start: FromDate = None,
        end: ToDate = None,
    ) -> Response:
        """The statement as an A4 PDF, in the practice's language (it is for the client)."""
        first, last = _period(start, end)
        st = await _statement(db_session, client_id, first, last)
        await db_session.commit()  # give the connection back while the PDF renders
        doc = StatementDocument(st, Letterhead.of(_practice(request)), datetime.now(UTC))
        content = await documents.pdf(doc)
        return _attachment(content, "application/pdf", doc.filename("pdf"), inline=True)

    @get(
        "/clients/{client_id:int}/statement.csv",
        name="client_statement_csv",
        summary="A client's statement as CSV (from, to: YYYY-MM-DD)",
    )
    async def csv_file(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        client_id: int,
        start: FromDate = None,
        end: ToDate = None,
    ) -> Response:
        first, last = _period(start, end)
        st = await _statement(db_session, client_id, first, last)
        practice = _practice(request)
        doc = StatementDocument(st, Letterhead.of(practice), datetime.now(UTC))
        content = documents.statement_csv(st, practice.currency)
        return _attachment(content, "text/csv; charset=utf-8", doc.filename("csv"))

    @post(
        "/clients/{client_id:int}/statement/email",
        opt={"roles": STAFF},
        status_code=200,
        include_in_schema=False,
    )
    async def email_one(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        settings: Settings,
        client_id: int,
    ) -> Template | Redirect:
        """E-mail the statement of the period to the client (409 when e-mail is not set up)."""
        form = await request.form()
        first, last = _period(form.get("from"), form.get("to"))
        try:
            recipient = await mail.email_statement(
                db_session,
                settings,
                Letterhead.of(_practice(request)),
                client_id,
                first,
                last,
                _user(request),
                client_ip(request),
            )
        except LookupError:
            raise NotFoundException() from None
        except StatementError as exc:
            raise ValidationException(str(exc)) from None
        except mail.MailError as exc:
            return _refusal(request, exc.status_code, exc.message)
        if is_htmx(request):
            return Template(
                "_toast.html",
                context={"level": "ok", "message": _("Statement sent to %(to)s.", to=recipient)},
            )
        return Redirect(
            f"/clients/{client_id}/statement?from={first.isoformat()}&to={last.isoformat()}"
            "&emailed=true",
            status_code=303,
        )

    # --- all statements of a month ------------------------------------------------------

    @get("/statements", name="statements", include_in_schema=False)
    async def month_page(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        settings: Settings,
        month: str | None = None,
    ) -> Template:
        """A month's statements: ZIP, e-mail to all, and the recent jobs (default: last month)."""
        month = _month_or_last(month)
        first, nxt = month_bounds(month)
        count, with_email = await documents.active_client_counts(db_session, month)
        kinds, states = documents.job_labels()
        email_blocker = None
        if not mail.smtp_configured(settings):
            email_blocker = mail.not_configured_message()
        elif not with_email:
            email_blocker = _("No client with entries in this month has an e-mail address.")
        return Template(
            "statements/bulk.html",
            context={
                "month": month,
                "month_label": month_name(month, current().language),
                "prev_month": previous_month(first),
                "next_month": f"{nxt:%Y-%m}",
                "count": count,
                "with_email": with_email,
                "can_email_all": _user(request).role in ADMIN,
                "email_blocker": email_blocker,
                "jobs": await documents.recent_jobs(db_session),
                "job_state": documents.job_state,
                "kind_labels": kinds,
                "status_labels": states,
            },
        )

    @get("/statements/clients", name="statement_month_clients", include_in_schema=False)
    async def month_clients(self, db_session: AsyncSession, month: str | None = None) -> Template:
        """The month's clients, each linked to their statement: asked when the list is opened.

        Not part of the month's page, which a large practice would fill with some
        13,000 links (1.6 MB) at every visit.
        """
        month = _month_or_last(month)
        first, nxt = month_bounds(month)
        return Template(
            "statements/_month_clients.html",
            context={
                "clients": await documents.active_clients(db_session, month),
                "first": first,
                "last": nxt - timedelta(days=1),
            },
        )

    async def _start(
        self,
        request: Request[Any, Any, Any],
        session: AsyncSession,
        kind: str,
        clients: list[Client],
        month: str,
    ) -> tuple[int, bool]:
        try:
            job, new = await documents.start_job(session, kind, month, len(clients), _user(request))
        except documents.JobError as exc:
            raise ValidationException(str(exc)) from None
        return job.id, new

    @post("/statements/bulk", opt={"self_service": True}, status_code=303, include_in_schema=False)
    async def start_zip(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        session_maker: async_sessionmaker[AsyncSession],
    ) -> Redirect:
        """Start rendering a month's statements into one ZIP; follow it on the job's page."""
        month = (await request.form()).get("month")
        if not valid_month(month):
            raise ValidationException(_("Months are written YYYY-MM."))
        clients = await documents.active_clients(db_session, month)
        job_id, new = await self._start(request, db_session, "zip", clients, month)
        if new:
            work = documents.run_zip_job(session_maker, job_id, Letterhead.of(_practice(request)))
            documents.launch(work, name=f"statement-zip-{job_id}")
        return Redirect(f"/statements/jobs/{job_id}", status_code=303)

    @post("/statements/email", opt={"roles": ADMIN}, status_code=303, include_in_schema=False)
    async def start_email(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        session_maker: async_sessionmaker[AsyncSession],
        settings: Settings,
    ) -> Template | Redirect:
        """E-mail every client with entries in the month (and an address) their statement."""
        if not mail.smtp_configured(settings):
            return _refusal(request, 409, mail.not_configured_message())
        month = (await request.form()).get("month")
        if not valid_month(month):
            raise ValidationException(_("Months are written YYYY-MM."))
        clients = [
            c for c in await documents.active_clients(db_session, month) if mail.address_of(c)
        ]
        job_id, new = await self._start(request, db_session, "email", clients, month)
        if new:
            work = mail.run_email_job(
                session_maker,
                settings,
                job_id,
                Letterhead.of(_practice(request)),
                _user(request),
                client_ip(request),
            )
            documents.launch(work, name=f"statement-email-{job_id}")
        return Redirect(f"/statements/jobs/{job_id}", status_code=303)

    @get("/statements/jobs/{job_id:int}", name="statement_job", include_in_schema=False)
    async def job_page(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, job_id: int
    ) -> Template:
        job = await documents.get_job(db_session, job_id)
        if job is None:
            raise NotFoundException()
        language = _practice(request).formatting.language
        return Template(
            "statements/bulk_job.html",
            context={**_job_context(job), "month_label": month_name(job.month, language)},
        )

    @get(
        "/statements/jobs/{job_id:int}/progress",
        name="statement_job_progress",
        include_in_schema=False,
    )
    async def job_progress(self, db_session: AsyncSession, job_id: int) -> Template:
        """The progress fragment HTMX polls; 286 (stop polling) once the job has ended."""
        job = await documents.get_job(db_session, job_id)
        if job is None:
            raise NotFoundException()
        ended = documents.job_state(job) not in documents.ACTIVE_STATUSES
        return Template(
            "statements/_job_progress.html",
            context=_job_context(job),
            status_code=286 if ended else 200,
        )

    @get(
        "/statements/jobs/{job_id:int}/download",
        name="statement_job_download",
        include_in_schema=False,
    )
    async def job_download(self, db_session: AsyncSession, job_id: int) -> Response:
        found = await documents.job_file(db_session, job_id)
        if found is None:
            raise NotFoundException()
        filename, content = found
        return _attachment(content, "application/zip", filename)
