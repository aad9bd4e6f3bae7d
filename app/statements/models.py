"""Calendar months and their closing: totals, per-client snapshots and a chained digest."""

from __future__ import annotations

from datetime import datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class Period(Base):
    __tablename__ = "periods"

    month: Mapped[str] = mapped_column(String(7), unique=True)  # YYYY-MM
    closed_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    closed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    totals: Mapped[str] = mapped_column(Text, default="{}")  # JSON, amounts as decimal strings
    digest: Mapped[str | None] = mapped_column(String(64), default=None)
    previous_digest: Mapped[str | None] = mapped_column(String(64), default=None)
    reopened_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    reopen_reason: Mapped[str | None] = mapped_column(Text, default=None)


class PeriodStatement(Base):
    """A client's statement for a closed month, frozen at closing."""

    __tablename__ = "period_statements"
    __table_args__ = (UniqueConstraint("period_id", "client_id", name="period_client"),)

    period_id: Mapped[int] = mapped_column(ForeignKey("periods.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    opening_cents: Mapped[int] = mapped_column(BigInteger)
    closing_cents: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[str] = mapped_column(Text)  # JSON of the statement's lines
