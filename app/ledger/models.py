"""Money records: charges, payments, allocations, refunds and the append-only journal.

Amounts are integer minor units (``*_cents``): exact on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import date, datetime

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import AuditBase, Base

PAYMENT_METHODS = ("cash", "card", "transfer", "pix", "other")
CHARGE_STATUSES = ("open", "partial", "paid", "void")
_METHODS_SQL = ", ".join(f"'{m}'" for m in PAYMENT_METHODS)


class Charge(AuditBase):
    """One session, service or invoice line owed by a client."""

    __tablename__ = "charges"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint("paid_cents >= 0 AND paid_cents <= amount_cents", name="paid_within"),
        CheckConstraint("status IN ('open', 'partial', 'paid', 'void')", name="status"),
        Index("ix_charges_client_date", "client_id", "date"),
        Index("ix_charges_date", "date"),
        Index("ix_charges_status_date", "status", "date"),
        Index("ix_charges_staff_date", "staff_id", "date"),
    )

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    date: Mapped[date] = mapped_column(Date)
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"), default=None)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), default=None)
    description: Mapped[str] = mapped_column(String(300), default="")
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    paid_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    due_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(8), default="open")
    # The commission rate in force when the charge was registered (basis points).
    commission_bp: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    status_changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    status_changed_at: Mapped[datetime | None] = mapped_column(
        DateTimeUTC(timezone=True), default=None
    )
    void_reason: Mapped[str | None] = mapped_column(Text, default=None)

    @property
    def open_cents(self) -> int:
        return 0 if self.status == "void" else self.amount_cents - self.paid_cents


class Payment(Base):
    """Money received from a client."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint(f"method IN ({_METHODS_SQL})", name="method"),
        Index("ix_payments_client_received", "client_id", "received_on"),
        Index("ix_payments_received_on", "received_on"),
    )

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(16))
    received_on: Mapped[date] = mapped_column(Date)
    reference: Mapped[str | None] = mapped_column(String(200), default=None)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    # Set when a payment recorded by mistake is reversed (a "payment_reversed" entry).
    # Reversed payments are not money received.
    reversed_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    reversed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)


class Allocation(Base):
    """Part of a payment, or of the client's credit, applied to a charge.

    Append-only: undoing one adds a row with the opposite sign.
    """

    __tablename__ = "allocations"
    __table_args__ = (
        CheckConstraint("amount_cents <> 0", name="amount_not_zero"),
        Index("ix_allocations_charge", "charge_id"),
        Index("ix_allocations_payment", "payment_id"),
    )

    charge_id: Mapped[int] = mapped_column(ForeignKey("charges.id"))
    # None when the money came from credit the client already held.
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), default=None)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))


class Refund(Base):
    """Credit handed back to the client."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        CheckConstraint(f"method IN ({_METHODS_SQL})", name="method"),
        Index("ix_refunds_client", "client_id"),
    )

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(16))
    refunded_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))


class Entry(Base):
    """The journal: one row per money event, never updated or deleted (triggers enforce it).

    ``credit_delta_cents`` and ``owed_delta_cents`` are what the event did to the
    client's credit and owed; ``amount_cents`` is its effect on the balance
    (credit - owed), signed as statements show it.
    """

    __tablename__ = "entries"
    __table_args__ = (
        CheckConstraint(
            "amount_cents = credit_delta_cents - owed_delta_cents", name="amount_is_delta"
        ),
        Index("ix_entries_client_date", "client_id", "effective_date", "id"),
        Index("ix_entries_effective_date", "effective_date"),
        # Reports sum one kind over a period from this index alone (migration 0005).
        Index("ix_entries_kind_date", "kind", "effective_date", "amount_cents"),
    )

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    kind: Mapped[str] = mapped_column(String(24))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    credit_delta_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    owed_delta_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    effective_date: Mapped[date] = mapped_column(Date)
    description: Mapped[str] = mapped_column(String(300), default="")
    charge_id: Mapped[int | None] = mapped_column(ForeignKey("charges.id"), default=None)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), default=None)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"), default=None)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("entries.id"), default=None)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))


class IdempotencyKey(Base):
    """The first answer to a money request, replayed when the same key comes again."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key", name="user_key"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    # NULL while the first request is still in progress.
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    response_body: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
