"""The test gateway's own records, as a real processor keeps its own: they belong to the
gateway, not to Billfold's payments, and no card number or CVC is ever among them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billfold.core.db import Base, TenantScoped

# A card charge is "captured" at once; a bank charge is "pending" until its settlement
# date has been reached by ``events`` and then "settled" or "returned", unless voided first.
CHARGE_STATES = ("captured", "pending", "settled", "returned", "voided", "declined")
EVENT_STATUSES = ("scheduled", "acknowledged", "cancelled")


class TestGatewayCharge(TenantScoped, Base):
    """One charge request, declined ones included, so a repeated idempotency key answers
    with the first result. The id is the charge's reference."""

    __test__ = False
    __tablename__ = "test_gateway_charge"
    __table_args__ = (
        UniqueConstraint("tenant_id", "mode", "idempotency_key"),
        Index(None, "tenant_id", "mode", "token"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(100))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(500))
    charge_date: Mapped[date]
    kind: Mapped[str | None] = mapped_column(String(4))  # "card" | "bank"; None: unknown token
    state: Mapped[str] = mapped_column(String(10))
    decline_code: Mapped[str | None] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(String(200))
    settle_date: Mapped[date | None]
    # Summed by a conditional UPDATE so concurrent refunds cannot exceed amount_minor.
    refunded_minor: Mapped[int]
    # The instrument, present unless the charge was declined.
    token: Mapped[str | None] = mapped_column(String(40))
    brand: Mapped[str | None] = mapped_column(String(20))
    last4: Mapped[str | None] = mapped_column(String(4))
    exp_month: Mapped[int | None] = mapped_column(Integer)
    exp_year: Mapped[int | None] = mapped_column(Integer)
    routing_number: Mapped[str | None] = mapped_column(String(9))
    account_type: Mapped[str | None] = mapped_column(String(8))
    holder_name: Mapped[str | None] = mapped_column(String(200))
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    # What the test number asked for ("ok", "dispute_lost", "return_R01", ...), kept so a
    # saved-instrument charge behaves like the first one without keeping the number.
    behaviour: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime]


class TestGatewayEvent(TenantScoped, Base):
    """A notification scheduled when its charge was made, due on ``event_date``."""

    __test__ = False
    __tablename__ = "test_gateway_event"
    __table_args__ = (
        Index(None, "tenant_id", "mode", "status", "event_date"),
        Index(None, "charge_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    charge_id: Mapped[str] = mapped_column(String(40), ForeignKey("test_gateway_charge.id"))
    kind: Mapped[str] = mapped_column(String(16))
    event_date: Mapped[date]
    return_code: Mapped[str | None] = mapped_column(String(3))
    amount_minor: Mapped[int | None]
    fee_minor: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(12))


class TestGatewayRefund(TenantScoped, Base):
    """One refund request against a charge, refused ones included, so a repeated
    idempotency key answers with the first result."""

    __test__ = False
    __tablename__ = "test_gateway_refund"
    __table_args__ = (
        UniqueConstraint("tenant_id", "mode", "idempotency_key"),
        Index(None, "charge_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    charge_id: Mapped[str] = mapped_column(String(40), ForeignKey("test_gateway_charge.id"))
    idempotency_key: Mapped[str] = mapped_column(String(100))
    amount_minor: Mapped[int]
    status: Mapped[str] = mapped_column(String(10))  # "succeeded" | "refused"
    message: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
