"""A tenant is a biller. Each tenant has a test mode and a live mode; settings and
reference data exist separately in each."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column

from billfold.core.db import Base, TenantScoped

DISTRIBUTION_OPTIONS = ("none", "email", "paper", "paper_and_email")
FREQUENCIES = ("weekly", "monthly", "quarterly", "semiannual", "annual")
CUSTOM_FIELD_OBJECTS = ("customer", "billing_account")
CUSTOM_FIELD_TYPES = ("text", "number", "date", "boolean", "dropdown")


class Tenant(Base):
    __tablename__ = "tenant"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class TenantSettings(Base):
    """GTV's system settings, one row per tenant and mode."""

    __tablename__ = "tenant_settings"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id"), primary_key=True)
    mode: Mapped[str] = mapped_column(String(4), primary_key=True)
    allow_multi_customer_accounts: Mapped[bool] = mapped_column(Boolean, default=False)
    enable_responsible_account_management: Mapped[bool] = mapped_column(Boolean, default=False)
    enable_account_hierarchy_management: Mapped[bool] = mapped_column(Boolean, default=False)
    require_same_bill_cycle_for_account_hierarchy: Mapped[bool] = mapped_column(
        Boolean, default=False
    )
    invoice_distribution_options: Mapped[list[Any]] = mapped_column(JSON)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    updated_at: Mapped[datetime]
    # Raised with every new custom field definition: caches of the definitions key on it.
    custom_fields_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Origins (scheme://host[:port]) that ReturnURL, PostBackURL and CssUrl may point to
    # and that may frame the payment page.
    allowed_origins: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")
    # Test mode only: postbacks and webhooks may go to loopback and private addresses
    # (a developer's machine). Ignored in live mode.
    allow_private_postback_targets: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false())
    # How long a pay session stays payable.
    pay_session_minutes: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    # Charged to the payer's account when a bank payment is returned (0: no fee), in minor
    # units of the payment's currency.
    ach_return_fee_minor: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Days the test-mode clock runs ahead of real time (POST /v1/test_clock/advance);
    # always 0 in live mode.
    clock_offset_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The payer portal (billtrust-invoice-sso.txt): invoice history on or off, SSO from the
    # biller's site, and the preferences SSO applies unless payers control their own.
    invoice_history_enabled: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=true())
    sso_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    paper_bill: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    email_notify: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    email_confirmations: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=true())
    payer_controlled_preferences: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false())
    # How long a rotated SSO key keeps working beside the new one.
    sso_key_overlap_minutes: Mapped[int] = mapped_column(
        Integer, default=1440, server_default="1440")
    # What a self-registering payer proves besides the account number:
    # "postal_code" (of the billing address) or "last_invoice_amount".
    registration_check: Mapped[str] = mapped_column(
        String(20), default="postal_code", server_default="postal_code")
    # The days after the due date an autopay charge may be set to run.
    autopay_min_offset_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    autopay_max_offset_days: Mapped[int] = mapped_column(Integer, default=10, server_default="10")


class BillCycle(TenantScoped, Base):
    __tablename__ = "bill_cycle"
    __table_args__ = (UniqueConstraint("tenant_id", "mode", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    currency: Mapped[str | None] = mapped_column(String(3))
    frequency: Mapped[str] = mapped_column(String(12))
    # ISO weekday (1 = Monday) for weekly cycles, day of month (1-31) otherwise.
    bill_day: Mapped[int] = mapped_column(Integer)
    start_date: Mapped[date]
    created_at: Mapped[datetime]


class AccountCategory(TenantScoped, Base):
    __tablename__ = "account_category"
    __table_args__ = (UniqueConstraint("tenant_id", "mode", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class PaymentTerm(TenantScoped, Base):
    __tablename__ = "payment_term"
    __table_args__ = (UniqueConstraint("tenant_id", "mode", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    net_days: Mapped[int] = mapped_column(Integer)  # 0 = due on receipt
    created_at: Mapped[datetime]

    def due_date(self, issue_date: date) -> date:
        return issue_date + timedelta(days=self.net_days)


class CustomFieldDefinition(TenantScoped, Base):
    __tablename__ = "custom_field_definition"
    __table_args__ = (
        UniqueConstraint("tenant_id", "mode", "object_type", "key"),
        Index(None, "tenant_id", "mode", "object_type"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    field_type: Mapped[str] = mapped_column(String(10))
    options: Mapped[list[Any] | None] = mapped_column(JSON)
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
