"""The accountant's downloads: a page to choose the month and format, and the CSV files.

Admin and accountant only. ``GET /exports/{entries|payments|charges|commissions|expenses}.csv``
takes ``month=YYYY-MM`` (default: the previous month) and may override the
locale's format with ``delimiter=comma|semicolon|tab``, ``decimal=point|comma``
and ``encoding=utf-8|utf-8-sig|latin-1``; ``commissions.csv`` also takes
``basis=received|billed``.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.background_tasks import BackgroundTask
from litestar.exceptions import NotFoundException, ValidationException
from litestar.response import Stream, Template

from app.collecting.services import month_name, previous_month, valid_month
from app.expenses.services import COMMISSION_BASES
from app.exports import csvfmt
from app.exports.services import EXPORTS, Export, stream_csv
from app.ledger.controllers import _practice
from app.web import i18n
from app.web.i18n import _, today

READERS = ("admin", "accountant")


class ExportController(Controller):
    tags = ["exports"]

    @get("/exports", name="exports", opt={"roles": READERS})
    async def page(self, request: Request[Any, Any, Any], month: str | None = None) -> Template:
        """Month picker, the five downloads and the format, preset for the locale."""
        practice = _practice(request)
        if not valid_month(month):
            month = previous_month(today())
        return Template(
            "exports/page.html",
            context={
                "month": month,
                "month_label": month_name(month, i18n.current().language),
                "fmt": csvfmt.format_for_locale(practice.locale),
                "exports": EXPORTS,
                "basis": practice.commission_basis,
            },
        )

    @get("/exports/{file_name:str}", name="export_csv", opt={"roles": READERS})
    async def download(
        self,
        request: Request[Any, Any, Any],
        file_name: str,
        month: str | None = None,
        delimiter: str | None = None,
        decimal: str | None = None,
        encoding: str | None = None,
        basis: str | None = None,
    ) -> Stream:
        """One month's CSV, streamed from a database session of its own."""
        what, dot, extension = file_name.partition(".")
        if what not in EXPORTS or (dot, extension) != (".", "csv"):
            raise NotFoundException()
        if month is None:
            month = previous_month(today())
        if not valid_month(month):
            raise ValidationException(_("Months are written YYYY-MM."))
        if basis is not None and basis not in COMMISSION_BASES:
            raise ValidationException(_("The basis is received or billed."))
        practice = _practice(request)
        try:
            fmt = csvfmt.format_for_locale(practice.locale).with_overrides(
                delimiter, decimal, encoding
            )
        except ValueError as exc:
            raise ValidationException(str(exc)) from None
        job = Export(
            what=what,
            month=month,
            fmt=fmt,
            currency=practice.currency,
            commission_basis=basis or practice.commission_basis,
        )
        name = csvfmt.filename(practice.practice_name, month, what)
        body = stream_csv(request.app.state.session_maker, job)

        async def close_body() -> None:
            # Runs also when the client leaves midway, which leaves the generator
            # suspended: closing it gives its database connection back at once.
            await body.aclose()

        return Stream(
            body,
            background=BackgroundTask(close_body),
            media_type="text/csv",
            encoding=csvfmt.charset(fmt),
            headers={
                "Content-Disposition": csvfmt.content_disposition(name),
                "Cache-Control": "private, no-store",
            },
        )
