"""The practice's catalog: staff (who performs services) and services (what is sold).

Neither is ever deleted: old charges name them, and commission reports need
them. An admin deactivates them instead, which takes them off the choices of
the charge form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from advanced_alchemy.exceptions import NotFoundError
from babel.numbers import format_decimal
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Service, Staff
from app.db import begin_write
from app.web.i18n import AmountError, Formatting, _, current, parse_amount, parse_decimal_amount

NAME_MAX = 200
_PERCENT = re.compile(r"^(\d{1,3})(?:[.,](\d{1,2}))?$")


class CatalogError(ValueError):
    """Input that cannot be saved: field name -> message to show next to it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("invalid catalog item")
        self.errors = errors


def parse_percent(text: str) -> int:
    """A percent typed as "40", "40,5", "40.5" or "40 %" in basis points (4050).

    Refuses (ValueError with the message to show) anything else, more than two
    decimals, and values above 100.
    """
    raw = (text or "").replace("%", "").replace(" ", "").strip()
    match = _PERCENT.match(raw)
    if not match:
        raise ValueError(_("Enter a percent between 0 and 100, like 40 or 40.5."))
    whole, fraction = match.group(1), (match.group(2) or "").ljust(2, "0")
    basis_points = int(whole) * 100 + int(fraction)
    if basis_points > 10_000:
        raise ValueError(_("Enter a percent between 0 and 100, like 40 or 40.5."))
    return basis_points


def percent_string(basis_points: int | None) -> str | None:
    """The API's form of a percent: ``4050`` -> ``"40.50"``."""
    if basis_points is None:
        return None
    return str((Decimal(basis_points) / 100).quantize(Decimal("0.01")))


def format_percent(basis_points: int | None, fmt: Formatting | None = None) -> str:
    """A percent as a form shows it in the installation's locale: ``4050`` -> "40,5" in pt_BR."""
    if basis_points is None:
        return ""
    fmt = fmt or current()
    return format_decimal(Decimal(basis_points) / 100, format="#,##0.##", locale=fmt.locale)


@dataclass
class StaffInput:
    name: str
    commission_bp: int


@dataclass
class ServiceInput:
    name: str
    price_cents: int
    commission_bp: int | None  # None: the staff member's own rate applies


def _name(text: str, errors: dict[str, str]) -> str:
    name = " ".join((text or "").split())
    if not name:
        errors["name"] = _("Enter a name.")
    elif len(name) > NAME_MAX:
        errors["name"] = _("Use at most %(n)d characters.", n=NAME_MAX)
    return name


def read_staff(name: str, commission: str) -> StaffInput:
    """Staff details as typed in a form or sent to the API. Raises CatalogError."""
    errors: dict[str, str] = {}
    clean_name = _name(name, errors)
    commission_bp = 0
    if (commission or "").strip():
        try:
            commission_bp = parse_percent(commission)
        except ValueError as exc:
            errors["commission"] = str(exc)
    if errors:
        raise CatalogError(errors)
    return StaffInput(clean_name, commission_bp)


def read_service(
    name: str, price: str, commission: str, max_cents: int, *, decimal_price: bool = False
) -> ServiceInput:
    """Service details as typed. Raises CatalogError.

    The price is read in the installation's locale ("1.234,50" in pt_BR), or
    as a decimal string ("1234.50") when ``decimal_price`` (the API); it must
    be positive and at most ``max_cents``. An empty commission means none of
    the service's own.
    """
    errors: dict[str, str] = {}
    clean_name = _name(name, errors)
    price_cents = 0
    try:
        if decimal_price:
            price_cents = parse_decimal_amount(price, max_cents=max_cents)
        else:
            price_cents = parse_amount(price, max_cents=max_cents)
    except AmountError as exc:
        errors["price"] = str(exc)
    commission_bp = None
    if (commission or "").strip():
        try:
            commission_bp = parse_percent(commission)
        except ValueError as exc:
            errors["commission"] = str(exc)
    if errors:
        raise CatalogError(errors)
    return ServiceInput(clean_name, price_cents, commission_bp)


async def list_staff(session: AsyncSession) -> list[Staff]:
    """Every staff member, active first, then by name."""
    return list(await session.scalars(select(Staff).order_by(Staff.active.desc(), Staff.name)))


async def active_staff(session: AsyncSession) -> list[Staff]:
    """The staff a charge can name, by name."""
    return list(await session.scalars(select(Staff).where(Staff.active).order_by(Staff.name)))


async def get_staff(session: AsyncSession, staff_id: int) -> Staff:
    """Raises NotFoundError for an unknown id."""
    staff = await session.get(Staff, staff_id)
    if staff is None:
        raise NotFoundError(f"staff {staff_id} not found")
    return staff


async def create_staff(session: AsyncSession, data: StaffInput) -> Staff:
    """Add an active staff member."""
    await begin_write(session)
    staff = Staff(name=data.name, commission_bp=data.commission_bp, active=True)
    session.add(staff)
    await session.commit()
    return staff


async def update_staff(session: AsyncSession, staff_id: int, data: StaffInput) -> Staff:
    """Change a staff member's name and commission.

    Charges already registered keep the rate they were registered with.
    """
    await begin_write(session)
    staff = await get_staff(session, staff_id)
    staff.name, staff.commission_bp = data.name, data.commission_bp
    await session.commit()
    return staff


async def set_staff_active(session: AsyncSession, staff_id: int, active: bool) -> Staff:
    """Deactivate (off the charge form; history kept) or reactivate a staff member."""
    await begin_write(session)
    staff = await get_staff(session, staff_id)
    staff.active = active
    await session.commit()
    return staff


async def list_services(session: AsyncSession) -> list[Service]:
    """Every service, active first, then by name."""
    return list(
        await session.scalars(select(Service).order_by(Service.active.desc(), Service.name))
    )


async def active_services(session: AsyncSession) -> list[Service]:
    """The services a charge can name, by name."""
    return list(await session.scalars(select(Service).where(Service.active).order_by(Service.name)))


async def get_service(session: AsyncSession, service_id: int) -> Service:
    """Raises NotFoundError for an unknown id."""
    service = await session.get(Service, service_id)
    if service is None:
        raise NotFoundError(f"service {service_id} not found")
    return service


async def create_service(session: AsyncSession, data: ServiceInput) -> Service:
    """Add an active service."""
    await begin_write(session)
    service = Service(
        name=data.name, price_cents=data.price_cents, commission_bp=data.commission_bp, active=True
    )
    session.add(service)
    await session.commit()
    return service


async def update_service(session: AsyncSession, service_id: int, data: ServiceInput) -> Service:
    """Change a service's name, default price and commission.

    Charges already registered keep their own amount and rate.
    """
    await begin_write(session)
    service = await get_service(session, service_id)
    service.name, service.price_cents = data.name, data.price_cents
    service.commission_bp = data.commission_bp
    await session.commit()
    return service


async def set_service_active(session: AsyncSession, service_id: int, active: bool) -> Service:
    """Deactivate (off the charge form; history kept) or reactivate a service."""
    await begin_write(session)
    service = await get_service(session, service_id)
    service.active = active
    await session.commit()
    return service
