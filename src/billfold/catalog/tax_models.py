"""Tax rates and the tax exemptions of billing accounts.

A percentage is stored as its canonical decimal text ("8.25", see money.parse_percent),
never as a float or a Decimal column. Validity periods are dates in the tenant's time zone;
``valid_to`` is the last day a row applies (inclusive) and None means until further notice.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billfold.catalog import tax
from billfold.core.db import Base, TenantScoped

VALID_PERIOD = "valid_to IS NULL OR valid_to >= valid_from"


class TaxRate(TenantScoped, Base):
    """The percentage charged on one tax category in a country, or in one of its regions,
    over a period. Periods of the same country, region and category never overlap
    (tax_service checks it), so at most one rate applies on any day."""

    __tablename__ = "tax_rate"
    __table_args__ = (
        # Named by hand: the conventional name would pass PostgreSQL's 63-character limit.
        UniqueConstraint("tenant_id", "mode", "country", "region", "tax_category", "valid_from",
                         name="uq_tax_rate_tenant_id_mode_rule_valid_from"),
        CheckConstraint(VALID_PERIOD, name="valid_period"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    region: Mapped[str | None] = mapped_column(String(6))  # ISO 3166-2 ("US-TX"); None = whole country
    tax_category: Mapped[str] = mapped_column(String(40))  # matches products' tax_category
    percent: Mapped[str] = mapped_column(String(8))  # canonical text, "0" to "100.0000"
    name: Mapped[str] = mapped_column(String(100))  # shown on invoices: "Texas sales tax"
    valid_from: Mapped[date]
    valid_to: Mapped[date | None]
    created_at: Mapped[datetime]

    def to_rule(self) -> tax.RateRule:
        return tax.RateRule(id=self.id, country=self.country, region=self.region,
                            tax_category=self.tax_category, percent=self.percent, name=self.name,
                            valid_from=self.valid_from, valid_to=self.valid_to)


class TaxExemption(TenantScoped, Base):
    """A billing account's exemption certificate: no tax in the country, or in one region
    of it, over a period."""

    __tablename__ = "tax_exemption"
    __table_args__ = (
        UniqueConstraint("tenant_id", "mode", "billing_account_id", "certificate_number",
                         "country", "region", "valid_from",
                         name="uq_tax_exemption_tenant_id_mode_certificate_valid_from"),
        Index(None, "tenant_id", "mode", "billing_account_id", "id"),
        CheckConstraint(VALID_PERIOD, name="valid_period"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    billing_account_id: Mapped[str] = mapped_column(ForeignKey("billing_account.id"))
    certificate_number: Mapped[str] = mapped_column(String(60))
    country: Mapped[str] = mapped_column(String(2))
    region: Mapped[str | None] = mapped_column(String(6))
    valid_from: Mapped[date]
    valid_to: Mapped[date | None]
    created_at: Mapped[datetime]

    def to_rule(self) -> tax.ExemptionRule:
        return tax.ExemptionRule(id=self.id, certificate_number=self.certificate_number,
                                 country=self.country, region=self.region,
                                 valid_from=self.valid_from, valid_to=self.valid_to)
