"""The people a practice bills."""

from __future__ import annotations

from datetime import datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Boolean, CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import AuditBase


class Client(AuditBase):
    __tablename__ = "clients"
    __table_args__ = (
        # The database itself refuses negative credit, whatever the code does.
        CheckConstraint("credit_cents >= 0", name="credit_not_negative"),
        CheckConstraint("owed_cents >= 0", name="owed_not_negative"),
        Index("ix_clients_name_key", "name_key"),
        # The search walks names in order and filters on search_text read from this
        # index alone (migration 0007; SQLite has search_text as a last key column).
        Index(
            "ix_clients_active_name", "active", "name_key", "id", postgresql_include=["search_text"]
        ),
    )

    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40), default=None)
    # International digits only (country code first), for WhatsApp links.
    phone_digits: Mapped[str | None] = mapped_column(String(20), default=None)
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    notes: Mapped[str | None] = mapped_column(Text, default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Lower-case, accent-free name: duplicate detection and sorting.
    name_key: Mapped[str] = mapped_column(String(200))
    # name_key + phone digits + e-mail, searched with LIKE '%word%' (trigram index on PostgreSQL,
    # and in ix_clients_active_name for the walk in name order).
    search_text: Mapped[str] = mapped_column(Text)
    # Running totals kept by the ledger in the same transaction as each Entry.
    credit_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    owed_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    # Set when the client's personal data was replaced by a pseudonym (app/clients/privacy.py).
    anonymised_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)

    @property
    def balance_cents(self) -> int:
        return self.credit_cents - self.owed_cents
