"""Admin pages and API for the catalog: staff and services. Admin only, reads included."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Redirect, Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin import catalog
from app.admin.catalog import CatalogError
from app.admin.models import Service, Staff
from app.auth.guards import ADMIN
from app.clients.controllers import FORM, invalid_input
from app.web.i18n import decimal_string, format_amount


def _max_cents(request: Request[Any, Any, Any]) -> int:
    return request.state.practice.max_amount_cents


class StaffForm(Struct):
    name: str = ""
    commission: str = ""


class ServiceForm(Struct):
    name: str = ""
    price: str = ""
    commission: str = ""


def _staff_page(
    staff: list[Staff], form: StaffForm, errors: dict[str, str], status_code: int = 200
) -> Template:
    return Template(
        "admin/staff.html",
        context={
            "staff": staff,
            "form": form,
            "errors": errors,
            "percent": catalog.format_percent,
        },
        status_code=status_code,
    )


def _services_page(
    services: list[Service], form: ServiceForm, errors: dict[str, str], status_code: int = 200
) -> Template:
    return Template(
        "admin/services.html",
        context={
            "services": services,
            "form": form,
            "errors": errors,
            "percent": catalog.format_percent,
        },
        status_code=status_code,
    )


class CatalogController(Controller):
    path = "/admin"
    tags = ["admin"]
    opt = {"roles": ADMIN}
    include_in_schema = False

    @get("/staff", name="admin_staff")
    async def staff_list(self, db_session: AsyncSession) -> Template:
        return _staff_page(await catalog.list_staff(db_session), StaffForm(), {})

    @post("/staff", status_code=303)
    async def staff_create(
        self, db_session: AsyncSession, data: Annotated[StaffForm, FORM]
    ) -> Template | Redirect:
        try:
            await catalog.create_staff(db_session, catalog.read_staff(data.name, data.commission))
        except CatalogError as exc:
            staff = await catalog.list_staff(db_session)
            return _staff_page(staff, data, exc.errors, status_code=422)
        return Redirect(path="/admin/staff", status_code=303)

    @get("/staff/{staff_id:int}/edit", name="admin_staff_edit")
    async def staff_edit_form(self, db_session: AsyncSession, staff_id: int) -> Template:
        staff = await catalog.get_staff(db_session, staff_id)
        form = StaffForm(name=staff.name, commission=catalog.format_percent(staff.commission_bp))
        return Template(
            "admin/staff_edit.html", context={"member": staff, "form": form, "errors": {}}
        )

    @post("/staff/{staff_id:int}/edit", status_code=303)
    async def staff_update(
        self, db_session: AsyncSession, staff_id: int, data: Annotated[StaffForm, FORM]
    ) -> Template | Redirect:
        try:
            changes = catalog.read_staff(data.name, data.commission)
            await catalog.update_staff(db_session, staff_id, changes)
        except CatalogError as exc:
            staff = await catalog.get_staff(db_session, staff_id)
            return Template(
                "admin/staff_edit.html",
                context={"member": staff, "form": data, "errors": exc.errors},
                status_code=422,
            )
        return Redirect(path="/admin/staff", status_code=303)

    @post("/staff/{staff_id:int}/deactivate", status_code=303)
    async def staff_deactivate(self, db_session: AsyncSession, staff_id: int) -> Redirect:
        await catalog.set_staff_active(db_session, staff_id, False)
        return Redirect(path="/admin/staff", status_code=303)

    @post("/staff/{staff_id:int}/activate", status_code=303)
    async def staff_activate(self, db_session: AsyncSession, staff_id: int) -> Redirect:
        await catalog.set_staff_active(db_session, staff_id, True)
        return Redirect(path="/admin/staff", status_code=303)

    @get("/services", name="admin_services")
    async def services_list(self, db_session: AsyncSession) -> Template:
        return _services_page(await catalog.list_services(db_session), ServiceForm(), {})

    @post("/services", status_code=303)
    async def service_create(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        data: Annotated[ServiceForm, FORM],
    ) -> Template | Redirect:
        try:
            service = catalog.read_service(
                data.name, data.price, data.commission, _max_cents(request)
            )
            await catalog.create_service(db_session, service)
        except CatalogError as exc:
            services = await catalog.list_services(db_session)
            return _services_page(services, data, exc.errors, status_code=422)
        return Redirect(path="/admin/services", status_code=303)

    @get("/services/{service_id:int}/edit", name="admin_service_edit")
    async def service_edit_form(self, db_session: AsyncSession, service_id: int) -> Template:
        service = await catalog.get_service(db_session, service_id)
        form = ServiceForm(
            name=service.name,
            price=format_amount(service.price_cents),
            commission=catalog.format_percent(service.commission_bp),
        )
        return Template(
            "admin/services_edit.html", context={"service": service, "form": form, "errors": {}}
        )

    @post("/services/{service_id:int}/edit", status_code=303)
    async def service_update(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        service_id: int,
        data: Annotated[ServiceForm, FORM],
    ) -> Template | Redirect:
        try:
            changes = catalog.read_service(
                data.name, data.price, data.commission, _max_cents(request)
            )
            await catalog.update_service(db_session, service_id, changes)
        except CatalogError as exc:
            service = await catalog.get_service(db_session, service_id)
            return Template(
                "admin/services_edit.html",
                context={"service": service, "form": data, "errors": exc.errors},
                status_code=422,
            )
        return Redirect(path="/admin/services", status_code=303)

    @post("/services/{service_id:int}/deactivate", status_code=303)
    async def service_deactivate(self, db_session: AsyncSession, service_id: int) -> Redirect:
        await catalog.set_service_active(db_session, service_id, False)
        return Redirect(path="/admin/services", status_code=303)

    @post("/services/{service_id:int}/activate", status_code=303)
    async def service_activate(self, db_session: AsyncSession, service_id: int) -> Redirect:
        await catalog.set_service_active(db_session, service_id, True)
        return Redirect(path="/admin/services", status_code=303)


class StaffCreate(Struct):
    name: str
    commission_percent: str | int | float = "0"


class StaffOut(Struct):
    id: int
    name: str
    commission_percent: str
    active: bool

    @classmethod
    def of(cls, staff: Staff) -> StaffOut:
        return cls(
            id=staff.id,
            name=staff.name,
            commission_percent=catalog.percent_string(staff.commission_bp) or "0.00",
            active=staff.active,
        )


class ServiceCreate(Struct):
    name: str
    price: str | int | float
    commission_percent: str | int | float | None = None


class ServiceOut(Struct):
    id: int
    name: str
    price: str
    commission_percent: str | None
    active: bool

    @classmethod
    def of(cls, service: Service) -> ServiceOut:
        return cls(
            id=service.id,
            name=service.name,
            price=decimal_string(service.price_cents),
            commission_percent=catalog.percent_string(service.commission_bp),
            active=service.active,
        )


class StaffList(Struct):
    items: list[StaffOut]
    total: int


class ServiceList(Struct):
    items: list[ServiceOut]
    total: int


def _text(value: str | float | None) -> str:
    return "" if value is None else str(value)


class CatalogApiController(Controller):
    """Everyone logged in may read the catalog (the charge form needs it); only admins change it."""

    path = "/api/v1"
    tags = ["catalog"]

    @get("/staff", summary="Every staff member, active first.")
    async def list_staff(self, db_session: AsyncSession) -> StaffList:
        staff = await catalog.list_staff(db_session)
        return StaffList(items=[StaffOut.of(s) for s in staff], total=len(staff))

    @get("/staff/{staff_id:int}", summary="One staff member.")
    async def get_staff(self, db_session: AsyncSession, staff_id: int) -> StaffOut:
        return StaffOut.of(await catalog.get_staff(db_session, staff_id))

    @post("/staff", opt={"roles": ADMIN}, status_code=201, summary="Add a staff member.")
    async def create_staff(self, db_session: AsyncSession, data: StaffCreate) -> Response[StaffOut]:
        try:
            staff_input = catalog.read_staff(data.name, _text(data.commission_percent))
        except CatalogError as exc:
            return invalid_input(_api_fields(exc.errors))
        staff = await catalog.create_staff(db_session, staff_input)
        return Response(StaffOut.of(staff), status_code=201)

    @get("/services", summary="Every service, active first.")
    async def list_services(self, db_session: AsyncSession) -> ServiceList:
        services = await catalog.list_services(db_session)
        return ServiceList(items=[ServiceOut.of(s) for s in services], total=len(services))

    @get("/services/{service_id:int}", summary="One service.")
    async def get_service(self, db_session: AsyncSession, service_id: int) -> ServiceOut:
        return ServiceOut.of(await catalog.get_service(db_session, service_id))

    @post("/services", opt={"roles": ADMIN}, status_code=201, summary="Add a service.")
    async def create_service(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, data: ServiceCreate
    ) -> Response[ServiceOut]:
        try:
            service_input = catalog.read_service(
                data.name,
                _text(data.price),
                _text(data.commission_percent),
                _max_cents(request),
                decimal_price=True,
            )
        except CatalogError as exc:
            return invalid_input(_api_fields(exc.errors))
        service = await catalog.create_service(db_session, service_input)
        return Response(ServiceOut.of(service), status_code=201)


def _api_fields(errors: dict[str, str]) -> dict[str, str]:
    """Form field names as the API calls them."""
    return {("commission_percent" if k == "commission" else k): v for k, v in errors.items()}
