"""The audit log: who did what, when, from where. Written in the caller's transaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_at", "at"), Index("ix_audit_events_action", "action"))

    at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    username: Mapped[str] = mapped_column(String(64), default="")
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="{}")


def audit(
    session: AsyncSession,
    action: str,
    *,
    user_id: int | None = None,
    username: str = "",
    ip: str | None = None,
    **detail: Any,
) -> None:
    """Add an audit event to the session; it lands with the caller's commit."""
    session.add(
        AuditEvent(
            at=datetime.now(UTC),
            user_id=user_id,
            username=username,
            ip=ip,
            action=action,
            detail=json.dumps(detail, default=str, ensure_ascii=False, sort_keys=True),
        )
    )
