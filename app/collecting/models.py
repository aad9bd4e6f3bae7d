"""What the owner sent to whom while collecting a month."""

from __future__ import annotations

from datetime import datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class BillingMessage(Base):
    """A billing message marked as sent to a client for a month."""

    __tablename__ = "billing_messages"
    __table_args__ = (Index("ix_billing_messages_month_client", "month", "client_id"),)

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    tone: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    sent_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    sent_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
