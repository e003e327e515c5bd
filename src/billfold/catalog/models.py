"""Products and their prices.

A price holds one amount per currency, so an account orders it in the account's own
currency. A recurring price's amount is for one whole bill period of the ordering
account's bill cycle; a part period is prorated (orders/proration.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from billfold.core.db import Base, TenantScoped, search_key_type

PRICE_KINDS = ("one_time", "recurring")
BILLING_TIMINGS = ("in_advance", "in_arrears")


class Product(TenantScoped, Base):
    __tablename__ = "product"
    __table_args__ = (
        # SKUs are unique whatever their case: "WID-1" and "wid-1" are one SKU.
        Index(None, "tenant_id", "mode", "sku_key", unique=True),
        Index(None, "tenant_id", "mode", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    sku: Mapped[str] = mapped_column(String(64))
    sku_key: Mapped[str] = mapped_column(search_key_type(64))
    # Matched against tax rates' categories ("standard", "exempt_goods", ...).
    tax_category: Mapped[str] = mapped_column(String(40))
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Price(TenantScoped, Base):
    """What a product costs. Amounts never change once a price exists: orders copy them,
    and a different amount is a new price. Only ``active`` may change."""

    __tablename__ = "price"
    __table_args__ = (
        Index(None, "tenant_id", "mode", "id"),
        Index(None, "tenant_id", "mode", "product_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("product.id"))
    kind: Mapped[str] = mapped_column(String(12))
    # {"USD": 2500, "MXN": 45000}: minor units per ISO 4217 code, each >= 0.
    amounts_minor: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Recurring prices only: bill a period at its start or after its end.
    billing_timing: Mapped[str | None] = mapped_column(String(12))
    tax_inclusive: Mapped[bool] = mapped_column(Boolean)
    nickname: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    def amount_in(self, currency: str) -> int | None:
        """The amount in ``currency`` in minor units, None when the price has none."""
        amount = self.amounts_minor.get(currency)
        return amount if isinstance(amount, int) else None
