"""The practice's catalog (staff, services) and its settings."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import AuditBase


class Staff(AuditBase):
    """Someone who performs services; may or may not have a login."""

    __tablename__ = "staff"
    __table_args__ = (
        CheckConstraint("commission_bp BETWEEN 0 AND 10000", name="commission_range"),
    )

    name: Mapped[str] = mapped_column(String(200))
    # Commission in basis points (40.5 % = 4050): exact without a decimal type.
    commission_bp: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class Service(AuditBase):
    __tablename__ = "services"
    __table_args__ = (
        CheckConstraint("price_cents >= 0", name="price_not_negative"),
        CheckConstraint(
            "commission_bp IS NULL OR commission_bp BETWEEN 0 AND 10000", name="commission_range"
        ),
    )

    name: Mapped[str] = mapped_column(String(200))
    price_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    # Overrides the staff's own rate for this service when set.
    commission_bp: Mapped[int | None] = mapped_column(Integer, default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Setting(AuditBase):
    """One practice setting; the value is JSON text."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), unique=True)
    value: Mapped[str] = mapped_column(Text)
