"""The dashboard (the page after login), the owner's reports, their CSV files and their API.

Reports are for the admin and the accountant; the day's cash-up is for every
role, since reception counts the drawer. Each page has a period picker; each
table downloads as CSV with the accountant exports' conventions; each report
is also ``GET /api/v1/reports/…`` (amounts as decimal strings).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any

from babel.dates import format_skeleton
from litestar import Controller, Request, get
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import QueryParameter
from litestar.response import Response, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Staff
from app.collecting.services import month_bounds, month_name
from app.exports import csvfmt
from app.ledger.controllers import _practice, _user, method_labels
from app.ledger.services import month_of
from app.reports import services as reports
from app.reports import tables
from app.reports.charts import bar_chart
from app.web import i18n
from app.web.i18n import _, format_day, today

READERS = ("admin", "accountant")
From = Annotated[str | None, QueryParameter(name="from")]
To = Annotated[str | None, QueryParameter(name="to")]


# --- reading the period picker --------------------------------------------------------------


@dataclass
class Period:
    start: date
    end: date
    error: str | None = None

    @property
    def query(self) -> str:
        return f"from={self.start.isoformat()}&to={self.end.isoformat()}"


def _day(text: str | None, default: date) -> date:
    """A ``YYYY-MM-DD`` value, or ``default`` when absent; ``ValueError`` when malformed."""
    return date.fromisoformat(text) if text else default


def api_day(text: str | None) -> date:
    """A ``YYYY-MM-DD`` query value (default: today) for the API and the CSV files; 422 if not."""
    try:
        return _day(text, today())
    except ValueError:
        raise ValidationException(_("Enter a date like 2026-03-31.")) from None


def read_period(start: str | None, end: str | None, default: tuple[date, date]) -> Period:
    """The picker's ``from``/``to``; a malformed or reversed period falls back to ``default``
    with a message for the person who typed it."""
    try:
        period = Period(_day(start, default[0]), _day(end, default[1]))
    except ValueError:
        return Period(*default, error=_("Enter dates like 2026-03-31."))
    if period.end < period.start:
        return Period(*default, error=_("The period ends before it starts."))
    return period


def api_period(start: str | None, end: str | None, default: tuple[date, date]) -> Period:
    period = read_period(start, end, default)
    if period.error:
        raise ValidationException(period.error, extra={"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"})
    return period


def this_month() -> tuple[date, date]:
    day = today()
    return day.replace(day=1), day


def last_month() -> tuple[date, date]:
    first = today().replace(day=1)
    return (first - timedelta(days=1)).replace(day=1), first - timedelta(days=1)


def last_12_months() -> tuple[date, date]:
    day = today()
    first = month_bounds(reports.months_back(month_of(day), 12)[0])[0]
    return first, day


def presets() -> list[tuple[str, Period]]:
    """The picker's one-tap periods."""
    day = today()
    return [
        (_("This month"), Period(*this_month())),
        (_("Last month"), Period(*last_month())),
        (_("This year"), Period(day.replace(month=1, day=1), day)),
        (_("Last 12 months"), Period(*last_12_months())),
    ]


def months_of(period: Period) -> list[str]:
    """The calendar months the period touches, oldest first (at most 36)."""
    months = [month_of(period.start)]
    while months[-1] < month_of(period.end) and len(months) < 36:
        months.append(month_of(month_bounds(months[-1])[1]))
    return months


def _basis(request: Request[Any, Any, Any], basis: str | None) -> str:
    if basis is None:
        return _practice(request).commission_basis
    if basis not in reports.COMMISSION_BASES:
        raise ValidationException(_("The basis is received or billed."))
    return basis


def month_label(month: str) -> str:
    return month_name(month, i18n.current().language)


def short_months(months: list[str]) -> list[tuple[str, str]]:
    """Chart labels: the month's short name, with the year under the first and each January."""
    language = i18n.current().language
    labels = []
    for i, month in enumerate(months):
        first = month_bounds(month)[0]
        name = format_skeleton("MMM", first, locale=language).rstrip(".")
        labels.append((name, str(first.year) if i == 0 or first.month == 1 else ""))
    return labels


# --- charts ---------------------------------------------------------------------------------


def received_chart(months: list[tuple[str, int]]) -> Any:
    """``months``: (month, cents received) pairs."""
    return bar_chart(
        _("Received per month"),
        [month_label(m) for m, _cents in months],
        [(_("Received"), [cents for _m, cents in months])],
        short=short_months([m for m, _cents in months]),
    )


def billed_chart(months: list[reports.MonthFigures]) -> Any:
    return bar_chart(
        _("Billed and received per month"),
        [month_label(m.month) for m in months],
        [
            (_("Billed"), [m.billed_cents for m in months]),
            (_("Received"), [m.received_cents for m in months]),
        ],
        short=short_months([m.month for m in months]),
    )


def method_chart(received: reports.Received) -> Any:
    labels = method_labels()
    return bar_chart(
        _("Received by method"),
        [labels[m] for m in received.by_method],
        [(_("Received"), [t.amount_cents for t in received.by_method.values()])],
    )


# --- pages ----------------------------------------------------------------------------------


@get("/", name="dashboard")
async def dashboard(request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
    """The page after login: today for everyone; the month and its trends for admin and
    accountant. Every figure links to the list behind it."""
    user = _user(request)
    day = today()
    figures = await reports.dashboard(db_session, day)
    context: dict[str, Any] = {
        "d": figures,
        "month_label": month_label(figures.month),
        "previous_label": month_label(figures.previous_month),
        "this_month": Period(*this_month()),
        "last_month": Period(*last_month()),
        "day_label": format_day(day, "full"),
    }
    if user.role in READERS:
        months = await reports.received_by_month(db_session, reports.months_back(figures.month, 12))
        context["chart"] = received_chart(months)
    return Template("dashboard/page.html", context=context)


class ReportPages(Controller):
    path = "/reports"
    tags = ["reports"]

    @get("/", name="reports", opt={"roles": READERS})
    async def overview(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, start: From = None,
        end: To = None,
    ) -> Template:  # fmt: skip
        """The charts: received and billed per month over the period (12 months by default)."""
        period = read_period(start, end, last_12_months())
        months = await reports.billed_vs_received(db_session, months_of(period))
        got = await reports.received(db_session, period.start, period.end, by_staff=False)
        return Template(
            "reports/overview.html",
            context={
                "period": period,
                "presets": presets(),
                "action": "/reports",
                "months": months,
                "received_chart": received_chart([(m.month, m.received_cents) for m in months]),
                "billed_chart": billed_chart(months),
                "method_chart": method_chart(got),
                "received": got,
            },
        )

    @get("/received", name="report_received", opt={"roles": READERS})
    async def received(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, start: From = None,
        end: To = None,
    ) -> Template:  # fmt: skip
        """Money received in the period by day, by method and by staff (payments only)."""
        period = read_period(start, end, this_month())
        got = await reports.received(db_session, period.start, period.end)
        return Template(
            "reports/received.html",
            context={
                "period": period,
                "presets": presets(),
                "action": "/reports/received",
                "r": got,
                "methods": method_labels(),
                "method_chart": method_chart(got),
            },
        )

    @get("/billed", name="report_billed", opt={"roles": READERS})
    async def billed(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, start: From = None,
        end: To = None,
    ) -> Template:  # fmt: skip
        """Billed against received, month by month."""
        period = read_period(start, end, last_12_months())
        months = await reports.billed_vs_received(db_session, months_of(period))
        return Template(
            "reports/billed.html",
            context={
                "period": period,
                "presets": presets(),
                "action": "/reports/billed",
                "months": months,
                "month_label": month_label,
                "chart": billed_chart(months),
            },
        )

    @get("/aging", name="report_aging", opt={"roles": READERS})
    async def aging(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, as_of: str | None = None
    ) -> Template:
        """What was owed at the end of a day, by how late it is."""
        error = None
        try:
            day = _day(as_of, today())
        except ValueError:
            day, error = today(), _("Enter a date like 2026-03-31.")
        return Template(
            "reports/aging.html",
            context={
                "a": await reports.aging(db_session, day, today()),
                "error": error,
                "buckets": aging_labels(),
            },
        )

    @get("/debtors", name="report_debtors", opt={"roles": READERS})
    async def debtors(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        """The clients who owe the most, and those holding the most credit."""
        return Template(
            "reports/debtors.html",
            context={
                "debtors": await reports.top_debtors(db_session, today(), 50),
                "holders": await reports.credit_holders(db_session, 50),
            },
        )

    @get("/daily", name="report_daily")
    async def daily(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, day: str | None = None
    ) -> Template:
        """The day's cash-up: every payment, reversal and refund, and the sessions registered."""
        error = None
        try:
            chosen = _day(day, today())
        except ValueError:
            chosen, error = today(), _("Enter a date like 2026-03-31.")
        return Template(
            "reports/daily.html",
            context={
                "d": await reports.daily_collections(db_session, chosen),
                "sessions": await reports.sessions_of_day(db_session, chosen),
                "error": error,
                "methods": method_labels(),
                "prev_day": chosen - timedelta(days=1),
                "next_day": chosen + timedelta(days=1),
                "kinds": entry_kind_labels(),
            },
        )

    @get("/commissions", name="report_commissions", opt={"roles": READERS})
    async def commissions(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, start: From = None,
        end: To = None, basis: str | None = None,
    ) -> Template:  # fmt: skip
        """Each staff member's commission for the period (default: last month), per rate."""
        period = read_period(start, end, last_month())
        chosen = _basis(request, basis)
        rows = await reports.commission_rows(db_session, period.start, period.end, chosen)
        return Template(
            "reports/commissions.html",
            context={
                "period": period,
                "presets": presets(),
                "action": "/reports/commissions",
                "basis": chosen,
                "default_basis": _practice(request).commission_basis,
                "staff": reports.commissions_by_staff(rows),
                "total_cents": sum(r.commission_cents for r in rows),
                "bases": basis_labels(),
            },
        )

    @get("/commissions/{staff_id:int}", name="report_commission_detail", opt={"roles": READERS})
    async def commission_detail(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, staff_id: int,
        start: From = None, end: To = None, basis: str | None = None,
    ) -> Template:  # fmt: skip
        """The charges behind one staff member's commission."""
        staff = await db_session.get(Staff, staff_id)
        if staff is None:
            raise NotFoundException()
        period = read_period(start, end, last_month())
        chosen = _basis(request, basis)
        rows = await reports.commission_rows(db_session, period.start, period.end, chosen)
        mine = [r for r in rows if r.staff_id == staff_id]
        return Template(
            "reports/commission_detail.html",
            context={
                "period": period,
                "presets": presets(),
                "action": f"/reports/commissions/{staff_id}",
                "basis": chosen,
                "bases": basis_labels(),
                "staff": staff,
                "rows": mine,
                "total_cents": sum(r.commission_cents for r in mine),
                "lines": await reports.commission_detail(
                    db_session, staff_id, period.start, period.end, chosen
                ),
            },
        )

    @get("/{file_name:str}", name="report_csv", opt={"roles": READERS})
    async def download(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, file_name: str,
        start: From = None, end: To = None, as_of: str | None = None, day: str | None = None,
        basis: str | None = None, staff_id: int | None = None, delimiter: str | None = None,
        decimal: str | None = None, encoding: str | None = None,
    ) -> Response[bytes]:  # fmt: skip
        """Any report table as CSV: ``/reports/aging.csv?as_of=…``, ``/reports/daily.csv?day=…``.

        The file's format is the accountant exports': the locale's, or the
        ``delimiter``/``decimal``/``encoding`` asked for.
        """
        what, dot, extension = file_name.partition(".")
        if what not in tables.WRITERS or (dot, extension) != (".", "csv"):
            raise NotFoundException()
        data, label = await _table_data(request, db_session, what, start, end, as_of, day, basis,
                                        staff_id)  # fmt: skip
        practice = _practice(request)
        try:
            fmt = csvfmt.format_for_locale(practice.locale).with_overrides(
                delimiter, decimal, encoding
            )
        except ValueError as exc:
            raise ValidationException(str(exc)) from None
        encoder = csvfmt.CsvEncoder(fmt)
        body = encoder.encode(tables.WRITERS[what](data, fmt, practice.currency))
        name = csvfmt.filename(practice.practice_name, label, what)
        return Response(
            body,
            media_type="text/csv",
            headers={
                "Content-Disposition": csvfmt.content_disposition(name),
                "Cache-Control": "private, no-store",
                "Content-Type": f"text/csv; charset={csvfmt.charset(fmt)}",
            },
        )


async def _table_data(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    what: str,
    start: str | None,
    end: str | None,
    as_of: str | None,
    day: str | None,
    basis: str | None,
    staff_id: int | None,
) -> tuple[Any, str]:
    """The report behind a CSV table, and the period that names its file."""
    if what == "aging":
        chosen = api_day(as_of)
        return await reports.aging(session, chosen, today()), chosen.isoformat()
    if what == "daily":
        chosen = api_day(day)
        return await reports.daily_collections(session, chosen), chosen.isoformat()
    if what == "debtors":
        return await reports.top_debtors(session, today(), 500), today().isoformat()
    defaults = {"billed-vs-received": last_12_months()}
    if what.startswith("commission"):
        defaults[what] = last_month()
    period = api_period(start, end, defaults.get(what, this_month()))
    label = f"{period.start.isoformat()}-{period.end.isoformat()}"
    if what == "billed-vs-received":
        return await reports.billed_vs_received(session, months_of(period)), label
    if what == "commissions":
        chosen = _basis(request, basis)
        return await reports.commission_rows(session, period.start, period.end, chosen), label
    if what == "commission-detail":
        if staff_id is None:
            raise ValidationException(_("Choose a staff member."))
        chosen = _basis(request, basis)
        lines = await reports.commission_detail(session, staff_id, period.start, period.end, chosen)
        return lines, label
    return await reports.received(session, period.start, period.end), label


def aging_labels() -> dict[str, str]:
    return {
        "0_30": _("0–30 days"),
        "31_60": _("31–60 days"),
        "61_90": _("61–90 days"),
        "90_plus": _("Over 90 days"),
    }


def basis_labels() -> dict[str, str]:
    return {"received": _("on money received"), "billed": _("on amounts billed")}


def entry_kind_labels() -> dict[str, str]:
    return {
        "payment": _("Payment"),
        "payment_reversed": _("Payment reversed"),
        "refund": _("Refund"),
        "charge": _("Session"),
        "void": _("Cancelled"),
        "credit_applied": _("Paid from credit"),
    }


# --- API ------------------------------------------------------------------------------------


class ReportApi(Controller):
    path = "/api/v1/reports"
    tags = ["reports"]
    opt = {"roles": READERS}

    @get("/dashboard", summary="This month against last month, owed, overdue, credit held")
    async def dashboard(self, db_session: AsyncSession) -> dict[str, Any]:
        return reports.as_json(await reports.dashboard(db_session, today()))

    @get("/received", summary="Money received by day, method and staff (query from, to)")
    async def received(
        self, db_session: AsyncSession, start: From = None, end: To = None
    ) -> dict[str, Any]:
        period = api_period(start, end, this_month())
        return reports.as_json(await reports.received(db_session, period.start, period.end))

    @get("/billed-vs-received", summary="Billed and received per month (query from, to)")
    async def billed(
        self, db_session: AsyncSession, start: From = None, end: To = None
    ) -> dict[str, Any]:
        period = api_period(start, end, last_12_months())
        months = await reports.billed_vs_received(db_session, months_of(period))
        return {
            "months": [
                {**reports.as_json(m), "difference": i18n.decimal_string(m.difference_cents)}
                for m in months
            ]
        }

    @get("/aging", summary="Open amounts by days past due as of a date (query as_of)")
    async def aging(self, db_session: AsyncSession, as_of: str | None = None) -> dict[str, Any]:
        return reports.as_json(await reports.aging(db_session, api_day(as_of), today()))

    @get("/debtors", summary="The clients who owe the most (query limit)")
    async def debtors(self, db_session: AsyncSession, limit: int = 20) -> dict[str, Any]:
        rows = await reports.top_debtors(db_session, today(), max(1, min(limit, 500)))
        return {"items": reports.as_json(rows)}

    @get("/daily", summary="One day's payments, reversals and refunds (query day)", opt={
        "roles": ("admin", "reception", "accountant")})  # fmt: skip
    async def daily(self, db_session: AsyncSession, day: str | None = None) -> dict[str, Any]:
        d = await reports.daily_collections(db_session, api_day(day))
        return {**reports.as_json(d), "net": i18n.decimal_string(d.net_cents)}

    @get("/commissions", summary="Commissions per staff and rate (query from, to, basis)")
    async def commissions(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, start: From = None,
        end: To = None, basis: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        period = api_period(start, end, last_month())
        chosen = _basis(request, basis)
        rows = await reports.commission_rows(db_session, period.start, period.end, chosen)
        return {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "basis": chosen,
            "staff": reports.as_json(reports.commissions_by_staff(rows)),
            "total": i18n.decimal_string(sum(r.commission_cents for r in rows)),
        }
