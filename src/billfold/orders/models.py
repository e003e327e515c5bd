"""Orders and what they become: a one-time line becomes a pending charge that waits for the
next invoice; a recurring line becomes a service billed every period until it ends.

Both copy the amount, currency, description and tax treatment at order time, so later
changes to the catalog never reprice what was already sold.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from billfold.core.db import Base, TenantScoped

# active: no end date. cancelled: an end date is set; the service bills through it
# (inclusive) and the end date may still move. ended: closed by end_services once its end
# date has passed; it changes no more.
SERVICE_STATUSES = ("active", "cancelled", "ended")
LINE_KINDS = ("one_time", "recurring")


class Order(TenantScoped, Base):
    __tablename__ = "order"
    __table_args__ = (
        Index(None, "tenant_id", "mode", "id"),
        Index(None, "tenant_id", "mode", "billing_account_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    billing_account_id: Mapped[str] = mapped_column(ForeignKey("billing_account.id"))
    currency: Mapped[str] = mapped_column(String(3))
    placed_by: Mapped[str] = mapped_column(String(100))
    # Set for an order placed with a prepayment entry: bill runs hold the order until the
    # entry is paid, then bill it on an invoice of its own carrying the key, where the
    # entry finds it (payments.entries, invoicing.billrun).
    assignment_key: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]


class OrderLine(TenantScoped, Base):
    """One line as ordered, and the service or pending charge it became (exactly one)."""

    __tablename__ = "order_line"
    __table_args__ = (Index(None, "tenant_id", "mode", "order_id", "line_number", unique=True),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("order.id"))
    line_number: Mapped[int] = mapped_column(Integer)  # 1, 2, ... in the order's own order
    kind: Mapped[str] = mapped_column(String(12))
    product_id: Mapped[str] = mapped_column(ForeignKey("product.id"))
    price_id: Mapped[str] = mapped_column(ForeignKey("price.id"))
    quantity: Mapped[int]
    start_date: Mapped[date]
    unit_amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    service_id: Mapped[str | None] = mapped_column(ForeignKey("service.id"))
    pending_charge_id: Mapped[str | None] = mapped_column(ForeignKey("pending_charge.id"))


class Service(TenantScoped, Base):
    """A recurring line on a billing account. ``unit_amount_minor`` is the price of one unit
    for one whole bill period; its quantity over time is in ServiceQuantity."""

    __tablename__ = "service"
    __table_args__ = (
        Index(None, "tenant_id", "mode", "id"),
        Index(None, "tenant_id", "mode", "billing_account_id", "id"),
        Index(None, "tenant_id", "mode", "status", "id"),
        # Pages half full on PostgreSQL: each bill run rewrites every service's
        # billed_through, and with room on its page no index changes (migration 0014).
        {"postgresql_with": {"fillfactor": 50}},
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    billing_account_id: Mapped[str] = mapped_column(ForeignKey("billing_account.id"))
    order_id: Mapped[str] = mapped_column(ForeignKey("order.id"))
    product_id: Mapped[str] = mapped_column(ForeignKey("product.id"))
    price_id: Mapped[str] = mapped_column(ForeignKey("price.id"))
    description: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    unit_amount_minor: Mapped[int]
    billing_timing: Mapped[str] = mapped_column(String(12))
    tax_category: Mapped[str] = mapped_column(String(40))
    tax_inclusive: Mapped[bool] = mapped_column(Boolean)
    start_date: Mapped[date]
    end_date: Mapped[date | None]  # last day billed, inclusive
    status: Mapped[str] = mapped_column(String(12))
    # The last day a bill run has charged (invoicing sets it in the invoice's transaction).
    billed_through: Mapped[date | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ServiceQuantity(TenantScoped, Base):
    """The service's quantity from ``effective_date`` until the next row's date (or the
    service's end). The first row is dated the service's start date."""

    __tablename__ = "service_quantity"
    __table_args__ = (
        Index(None, "tenant_id", "mode", "service_id", "effective_date", unique=True),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("service.id"))
    effective_date: Mapped[date]
    quantity: Mapped[int]
    created_at: Mapped[datetime]


class PendingCharge(TenantScoped, Base):
    """A one-time charge waiting for an invoice. ``invoice_id`` stays empty until the bill
    run that invoices it sets it; a charge with one is no longer pending."""

    __tablename__ = "pending_charge"
    __table_args__ = (
        Index(None, "tenant_id", "mode", "billing_account_id", "id"),
        Index(None, "invoice_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    billing_account_id: Mapped[str] = mapped_column(ForeignKey("billing_account.id"))
    order_id: Mapped[str] = mapped_column(ForeignKey("order.id"))
    product_id: Mapped[str] = mapped_column(ForeignKey("product.id"))
    price_id: Mapped[str] = mapped_column(ForeignKey("price.id"))
    description: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int]
    unit_amount_minor: Mapped[int]
    amount_minor: Mapped[int]  # unit_amount_minor * quantity
    currency: Mapped[str] = mapped_column(String(3))
    tax_category: Mapped[str] = mapped_column(String(40))
    tax_inclusive: Mapped[bool] = mapped_column(Boolean)
    charge_date: Mapped[date]
    invoice_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
