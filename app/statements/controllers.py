"""Month close (admin) and the statement and periods API."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.controllers import client_ip
from app.auth.guards import ADMIN
from app.collecting.services import previous_month
from app.statements import services
from app.web.i18n import _, today


def parse_period(start: str | None, end: str | None) -> tuple[date, date]:
    """``from``/``to`` query values; default: this month so far."""
    try:
        to_day = date.fromisoformat(end) if end else today()
        from_day = date.fromisoformat(start) if start else to_day.replace(day=1)
    except ValueError:
        raise ValidationException(
            _("Dates are YYYY-MM-DD."), extra={"from": "YYYY-MM-DD"}
        ) from None
    if to_day < from_day:
        raise ValidationException(_("The period ends before it starts."))
    return from_day, to_day


def _totals_cents(period: Any) -> dict[str, int]:
    """The stored totals (decimal strings) as cents, for the money filter."""
    totals = services.period_json(period)["totals"]
    return {
        k: int(Decimal(totals[k]) * 100)
        for k in ("received", "billed", "owed_at_end")
        if k in totals
    }


class PeriodPages(Controller):
    path = "/periods"
    tags = ["statements"]

    @get("/", name="periods")
    async def index(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        rows = await services.periods(db_session)
        return Template(
            "statements/periods.html",
            context={
                "periods": rows,
                "suggested": previous_month(today()),
                "totals": {p.month: _totals_cents(p) for p in rows},
                "error": None,
            },
        )

    @post("/close", opt={"roles": ADMIN}, status_code=303)
    async def close(
        self, request: Request[Any, Any, Any], db_session: AsyncSession
    ) -> Template | Redirect:
        form = await request.form()
        month = form.get("month", "")
        try:
            await services.close_month(db_session, month, request.scope["user"], client_ip(request))
        except services.StatementError as exc:
            return Template(
                "statements/periods.html",
                context={
                    "periods": await services.periods(db_session),
                    "suggested": month,
                    "totals": {},
                    "error": str(exc),
                },
                status_code=exc.status_code,
            )
        return Redirect("/periods", status_code=303)

    @post("/{month:str}/reopen", opt={"roles": ADMIN}, status_code=303)
    async def reopen(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, month: str
    ) -> Template | Redirect:
        form = await request.form()
        try:
            await services.reopen_month(
                db_session, month, form.get("reason", ""), request.scope["user"], client_ip(request)
            )
        except services.StatementError as exc:
            return Template(
                "statements/periods.html",
                context={
                    "periods": await services.periods(db_session),
                    "suggested": previous_month(today()),
                    "totals": {},
                    "error": str(exc),
                },
                status_code=exc.status_code,
            )
        return Redirect("/periods", status_code=303)


class StatementApi(Controller):
    path = "/api/v1"
    tags = ["statements"]

    @get("/clients/{client_id:int}/statement", summary="A client's statement for a period")
    async def statement(
        self,
        db_session: AsyncSession,
        client_id: int,
        start: Annotated[str | None, QueryParameter(name="from")] = None,
        end: Annotated[str | None, QueryParameter(name="to")] = None,
    ) -> dict[str, Any]:
        """Query `from`, `to` (YYYY-MM-DD). Signed amounts: charges negative, payments positive."""
        from_day, to_day = parse_period(start, end)
        try:
            result = await services.statement(db_session, client_id, from_day, to_day)
        except LookupError:
            raise NotFoundException() from None
        return result.json()

    @get("/periods", summary="Months and whether they are closed")
    async def periods(self, db_session: AsyncSession) -> dict[str, Any]:
        return {"items": [services.period_json(p) for p in await services.periods(db_session)]}

    @post(
        "/periods/{month:str}/close", opt={"roles": ADMIN}, status_code=201, summary="Close a month"
    )
    async def close(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, month: str
    ) -> Response[Any]:
        try:
            period = await services.close_month(
                db_session, month, request.scope["user"], client_ip(request)
            )
        except services.StatementError as exc:
            return Response({"detail": str(exc)}, status_code=exc.status_code)
        return Response(services.period_json(period), status_code=201)
