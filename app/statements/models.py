"""Calendar months and their closing: totals, per-client snapshots and a chained digest."""

from __future__ import annotations

from datetime import datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
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


class DocumentJob(Base):
    """A long document task (all statements of a month as a ZIP, or e-mailing them).

    Kept in the database so any worker can report its progress and serve the
    result, whichever worker runs it.
    """

    __tablename__ = "document_jobs"

    kind: Mapped[str] = mapped_column(String(16))  # zip | email
    month: Mapped[str] = mapped_column(String(7))
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued running done failed
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    filename: Mapped[str | None] = mapped_column(String(200), default=None)
    content: Mapped[bytes | None] = mapped_column(LargeBinary, default=None, deferred=True)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
