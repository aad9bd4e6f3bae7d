"""Practice settings kept in the database, with their defaults and validation."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import get_timezone
from babel.numbers import is_currency
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Setting
from app.audit import AuditEvent, audit
from app.auth.models import User
from app.db import begin_write
from app.web.i18n import (
    LANGUAGES,
    N_,
    AmountError,
    Formatting,
    _,
    gettext_in,
    parse_amount,
    valid_locale,
)

# The texts a new installation starts with, in English here; load_settings() gives
# them in the installation's language until an admin saves their own.
DEFAULT_TEXTS = {
    "practice_name": N_("My practice"),
    "message_friendly": N_(
        "Hello {client}! Here is the summary of {month} at {practice}: {count} session(s) "
        "on {dates}, {total} in total. {instructions} Thank you!"
    ),
    "message_reminder": N_(
        "Hello {client}, a reminder that {total} for the sessions of {month} ({dates}) "
        "is still open. {instructions} If you have already paid, please ignore this message."
    ),
    "message_final": N_(
        "{client}, the sessions of {month} ({dates}), {total} in total, are still unpaid "
        "and now overdue. Please settle them this week. {instructions}"
    ),
}


@dataclass(frozen=True)
class PracticeSettings:
    practice_name: str = DEFAULT_TEXTS["practice_name"]
    practice_address: str = ""
    currency: str = "USD"
    locale: str = "en_US"
    language: str = "en"
    timezone: str = "UTC"
    phone_country_code: str = "1"
    max_amount_cents: int = 10_000_000  # 100,000.00
    due_days: int = 0
    payment_instructions: str = ""
    # The practice's logo as a data: URL (PNG or JPEG), kept in the database so
    # every app process and machine serves the same one; empty for none.
    logo: str = ""
    default_payment_method: str = "cash"
    # What staff commissions are computed on: money "received" for their sessions, or "billed".
    commission_basis: str = "received"
    # Billing messages for the month review, one per tone. Placeholders:
    # {client} {month} {dates} {count} {total} {instructions} {practice}
    message_friendly: str = DEFAULT_TEXTS["message_friendly"]
    message_reminder: str = DEFAULT_TEXTS["message_reminder"]
    message_final: str = DEFAULT_TEXTS["message_final"]

    @property
    def formatting(self) -> Formatting:
        return Formatting(
            language=self.language,
            locale=self.locale,
            currency=self.currency,
            timezone=self.timezone,
            record_language=self.language,
        )


_FIELDS = {f.name: f for f in fields(PracticeSettings)}


_SETTINGS_ROWS = select(Setting.key, Setting.value)

# Whether the settings changed since a process last read them: every save goes
# through the ORM, which sets updated_at, and settings are never deleted.
SETTINGS_STAMP = (
    select(func.count(Setting.id)).scalar_subquery(),
    select(func.max(Setting.updated_at)).scalar_subquery(),
)


async def load_settings(session: AsyncSession) -> PracticeSettings:
    rows = await session.execute(_SETTINGS_ROWS)
    return _settings_from(tuple(sorted((key, value) for key, value in rows)))


class SettingsCache:
    """The practice settings as this process last read them, and the stamp they were read at.

    Every page needs them; the auth middleware reads the stamp in the same
    statement as the login session, so an unchanged stamp spares a query.
    A stamp read before a concurrent save only makes the next request read again.
    """

    def __init__(self) -> None:
        self._last: tuple[tuple[Any, ...], PracticeSettings] | None = None

    async def get(self, session: AsyncSession, stamp: tuple[Any, ...] | None) -> PracticeSettings:
        if stamp is not None and self._last is not None and self._last[0] == stamp:
            return self._last[1]
        value = await load_settings(session)
        if stamp is not None:
            self._last = (stamp, value)
        return value


@lru_cache(maxsize=8)
def _settings_from(rows: tuple[tuple[str, str], ...]) -> PracticeSettings:
    # Every request reads the settings; parsing them and translating the default
    # texts is done once per distinct set of stored values, not per request.
    values: dict[str, Any] = {}
    for key, raw in rows:
        if key in _FIELDS:
            values[key] = json.loads(raw)
    language = values.get("language", PracticeSettings.language)
    for key, text in DEFAULT_TEXTS.items():
        # A default saved unchanged (the settings form posts every field) stays a default,
        # so it follows the language when the admin changes it.
        if values.get(key) in {gettext_in(other, text) for other in LANGUAGES}:
            del values[key]
        values.setdefault(key, gettext_in(language, text))
    return PracticeSettings(**values)


LOGO_MAX_BYTES = 256 * 1024
_LOGO_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def logo_data_url(content: bytes) -> str:
    """A PNG or JPEG file as a data: URL; refuses big files and other formats (SVG runs scripts)."""
    if not content:
        raise SettingsError({"logo": _("Choose an image file.")})
    if len(content) > LOGO_MAX_BYTES:
        raise SettingsError({"logo": _("The logo must be at most 256 KB.")})
    for magic, mime in _LOGO_TYPES.items():
        if content.startswith(magic):
            return f"data:{mime};base64,{base64.b64encode(content).decode()}"
    raise SettingsError({"logo": _("Use a PNG or JPEG image.")})


def validate(changes: dict[str, Any]) -> dict[str, str]:
    """Field name -> message for each value that cannot be saved."""
    errors: dict[str, str] = {}
    if (
        "logo" in changes
        and changes["logo"]
        and not str(changes["logo"]).startswith(
            ("data:image/png;base64,", "data:image/jpeg;base64,")
        )
    ):
        errors["logo"] = _("Use a PNG or JPEG image.")
    if "currency" in changes:
        # get_currency_name() answers any three letters; is_currency() knows the ISO list.
        if not is_currency(str(changes["currency"]).upper()):
            errors["currency"] = _("Unknown currency code.")
        if len(str(changes["currency"])) != 3:
            errors["currency"] = _("Use a three-letter ISO 4217 code, like BRL or EUR.")
    if "locale" in changes and not valid_locale(str(changes["locale"])):
        errors["locale"] = _("Unknown locale.")
    if "language" in changes and changes["language"] not in LANGUAGES:
        errors["language"] = _("Unknown language.")
    if "timezone" in changes:
        try:
            get_timezone(str(changes["timezone"]))
        except (LookupError, ValueError):  # ValueError: an empty or malformed name
            errors["timezone"] = _("Unknown time zone.")
    if "practice_name" in changes and not str(changes["practice_name"]).strip():
        errors["practice_name"] = _("Enter the practice's name.")
    if "phone_country_code" in changes and not str(changes["phone_country_code"]).isdigit():
        errors["phone_country_code"] = _("Digits only, like 55 or 34.")
    if "due_days" in changes and not 0 <= int(changes["due_days"]) <= 365:
        errors["due_days"] = _("Between 0 and 365 days.")
    if "default_payment_method" in changes and changes["default_payment_method"] not in (
        "cash",
        "card",
        "transfer",
        "pix",
        "other",
    ):
        errors["default_payment_method"] = _("Choose a payment method.")
    if "commission_basis" in changes and changes["commission_basis"] not in ("received", "billed"):
        errors["commission_basis"] = _("Commissions are on money received or on amounts billed.")
    if "max_amount_cents" in changes and int(changes["max_amount_cents"]) <= 0:
        errors["max_amount_cents"] = _("The maximum must be positive.")
    return errors


async def save_settings(
    session: AsyncSession, changes: dict[str, Any], actor: User, ip: str | None
) -> PracticeSettings:
    """Store changed settings (validated first; nothing is written when any is invalid)."""
    unknown = set(changes) - set(_FIELDS)
    if unknown:
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    if errors := validate(changes):
        raise SettingsError(errors)
    await begin_write(session)
    current = await load_settings(session)
    before = asdict(current)
    existing = {s.key: s for s in await session.scalars(select(Setting))}
    changed = {}
    for key, value in changes.items():
        if key == "currency":
            value = str(value).upper()
        if before.get(key) == value:
            continue
        changed[key] = value
        if key in existing:
            existing[key].value = json.dumps(value)
        else:
            session.add(Setting(key=key, value=json.dumps(value)))
    if changed:
        audit(
            session,
            "settings_changed",
            user_id=actor.id,
            username=actor.username,
            ip=ip,
            changes=changed,
        )
    await session.commit()
    return await load_settings(session)


class SettingsError(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("invalid settings")
        self.errors = errors


# Longest text each free-text setting may hold.
_TEXT_LIMITS = {
    "practice_name": 200,
    "practice_address": 500,
    "payment_instructions": 2000,
    "message_friendly": 2000,
    "message_reminder": 2000,
    "message_final": 2000,
}


def settings_from_form(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Read the settings form (strings as typed) into setting values; errors by form field.

    The maximum amount is typed the current locale's way (``max_amount`` in
    the form, ``max_amount_cents`` in the settings); due days as a whole number.
    Only the fields present in the form are returned, so a later issue's
    settings form can post only its own fields.
    """
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in (
        "practice_name",
        "practice_address",
        "currency",
        "locale",
        "language",
        "timezone",
        "phone_country_code",
        "payment_instructions",
        "default_payment_method",
        "commission_basis",
        "message_friendly",
        "message_reminder",
        "message_final",
    ):
        if name in form:
            value = form[name].strip()
            if name == "currency":
                value = value.upper()
            if name == "locale" and valid_locale(value):
                value = str(Locale.parse(value))  # "pt_br" is stored as "pt_BR"
            if name in _TEXT_LIMITS and len(value) > _TEXT_LIMITS[name]:
                errors[name] = _("Use at most %(n)d characters.", n=_TEXT_LIMITS[name])
            changes[name] = value
    if "max_amount" in form:
        try:
            changes["max_amount_cents"] = parse_amount(form["max_amount"])
        except AmountError as exc:
            errors["max_amount"] = str(exc)
    if "due_days" in form:
        raw = form["due_days"].strip()
        if raw.isdigit():
            changes["due_days"] = int(raw)
        else:
            errors["due_days"] = _("A whole number of days, like 0 or 10.")
    for name, message in validate(changes).items():
        errors.setdefault("max_amount" if name == "max_amount_cents" else name, message)
    return changes, errors


AUDIT_PAGE_SIZE = 50


@dataclass
class AuditFilter:
    action: str = ""
    username: str = ""
    date_from: date | None = None
    date_to: date | None = None


@dataclass
class AuditPage:
    events: list[AuditEvent]
    total: int
    page: int
    pages: int
    actions: list[str]


async def audit_events(
    session: AsyncSession, where: AuditFilter, page: int = 1, timezone: str = "UTC"
) -> AuditPage:
    """One page of the audit log, newest first.

    ``username`` matches who acted and whose login was acted on (the
    ``target`` of user changes); the dates are whole days in the
    installation's time zone, both included.
    """
    query = select(AuditEvent)
    if where.action:
        query = query.where(AuditEvent.action == where.action)
    if where.username:
        name = where.username.strip().lower()
        target = json.dumps({"target": name}, ensure_ascii=False)[1:-1]
        query = query.where(
            or_(AuditEvent.username == name, AuditEvent.detail.contains(target, autoescape=True))
        )
    zone = ZoneInfo(timezone)
    if where.date_from is not None:
        start = datetime.combine(where.date_from, time.min, zone)
        query = query.where(AuditEvent.at >= start)
    if where.date_to is not None:
        end = datetime.combine(where.date_to + timedelta(days=1), time.min, zone)
        query = query.where(AuditEvent.at < end)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // AUDIT_PAGE_SIZE))
    page = min(max(1, page), pages)
    events = list(
        await session.scalars(
            query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
            .limit(AUDIT_PAGE_SIZE)
            .offset((page - 1) * AUDIT_PAGE_SIZE)
        )
    )
    actions = list(
        await session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action))
    )
    return AuditPage(events=events, total=total, page=page, pages=pages, actions=actions)
