"""Practice settings kept in the database, with their defaults and validation."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from babel.dates import get_timezone
from babel.numbers import UnknownCurrencyError, get_currency_name
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Setting
from app.audit import audit
from app.auth.models import User
from app.db import begin_write
from app.web.i18n import LANGUAGES, Formatting, _, valid_locale


@dataclass
class PracticeSettings:
    practice_name: str = "My practice"
    practice_address: str = ""
    currency: str = "USD"
    locale: str = "en_US"
    language: str = "en"
    timezone: str = "UTC"
    phone_country_code: str = "1"
    max_amount_cents: int = 10_000_000  # 100,000.00
    due_days: int = 0
    payment_instructions: str = ""

    @property
    def formatting(self) -> Formatting:
        return Formatting(
            language=self.language,
            locale=self.locale,
            currency=self.currency,
            timezone=self.timezone,
        )


_FIELDS = {f.name: f for f in fields(PracticeSettings)}


async def load_settings(session: AsyncSession) -> PracticeSettings:
    rows = await session.execute(select(Setting.key, Setting.value))
    values: dict[str, Any] = {}
    for key, raw in rows:
        if key in _FIELDS:
            values[key] = json.loads(raw)
    return PracticeSettings(**values)


def validate(changes: dict[str, Any]) -> dict[str, str]:
    """Field name -> message for each value that cannot be saved."""
    errors: dict[str, str] = {}
    if "currency" in changes:
        try:
            get_currency_name(str(changes["currency"]).upper())
        except UnknownCurrencyError:
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
        except LookupError:
            errors["timezone"] = _("Unknown time zone.")
    if "practice_name" in changes and not str(changes["practice_name"]).strip():
        errors["practice_name"] = _("Enter the practice's name.")
    if "phone_country_code" in changes and not str(changes["phone_country_code"]).isdigit():
        errors["phone_country_code"] = _("Digits only, like 55 or 34.")
    if "due_days" in changes and not 0 <= int(changes["due_days"]) <= 365:
        errors["due_days"] = _("Between 0 and 365 days.")
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
