"""Customer and BillingAccount, with notes, contacts and change history.

Search keys (``*_key``) are lowercased copies of the searchable values, indexed so a
case-insensitive prefix search is a range scan; uniqueness of numbers is enforced on them,
so "acme-1" and "ACME-1" cannot both exist.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, true
from sqlalchemy.orm import Mapped, mapped_column

from billfold.core.db import Base, TenantScoped, search_key_type

STATUSES = ("active", "suspended", "deactivated", "pending_collection")
# Who may move an account from one status to another by hand. pending_collection is
# entered only by collections (set_status(..., by_collections=True)).
MANUAL_TRANSITIONS: dict[str, frozenset[str]] = {
    "active": frozenset({"suspended", "deactivated"}),
    "suspended": frozenset({"active", "deactivated"}),
    "pending_collection": frozenset({"active", "suspended", "deactivated"}),
    "deactivated": frozenset({"active"}),
}
COLLECTIONS_TRANSITIONS: dict[str, frozenset[str]] = {
    "active": frozenset({"pending_collection"}),
    "suspended": frozenset({"pending_collection"}),
}
PARENT_STATUSES = ("active", "suspended", "pending_collection")
RENDERING_TYPES = ("aggregated", "per_account")


class Customer(TenantScoped, Base):
    __tablename__ = "customer"
    __table_args__ = (
        Index(None, "tenant_id", "mode", "number_key", unique=True),
        Index(None, "tenant_id", "mode", "external_number_key", unique=True),
        Index(None, "tenant_id", "mode", "name_key"),
        Index(None, "tenant_id", "mode", "email_key"),
        Index(None, "tenant_id", "mode", "tax_key"),
        # Pages in id order: search walks it (customers/search.py).
        Index(None, "tenant_id", "mode", "id"),
        # SQLite settles a new customer's deferred default-account key by searching this
        # column for each billing account inserted; unindexed, that read the whole table
        # for every customer created.
        Index(None, "default_billing_account_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    number: Mapped[str] = mapped_column(String(40))
    external_number: Mapped[str | None] = mapped_column(String(40))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    company_name: Mapped[str | None] = mapped_column(String(200))
    customer_name: Mapped[str] = mapped_column(String(200))
    date_of_birth: Mapped[date | None]
    tax_number: Mapped[str | None] = mapped_column(String(40))
    tax_id_validated: Mapped[bool] = mapped_column(Boolean, default=False)
    phones: Mapped[list[Any]] = mapped_column(JSON)
    primary_email: Mapped[str] = mapped_column(String(254))
    secondary_emails: Mapped[list[Any]] = mapped_column(JSON)
    billing_address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    service_address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    shipping_address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Exactly one default account per customer, by construction: it is this one column.
    # Deferred so a customer and its first account can be inserted in one transaction.
    default_billing_account_id: Mapped[str | None] = mapped_column(
        ForeignKey("billing_account.id", use_alter=True, deferrable=True, initially="DEFERRED")
    )
    number_key: Mapped[str] = mapped_column(search_key_type(40))
    external_number_key: Mapped[str | None] = mapped_column(search_key_type(40))
    name_key: Mapped[str] = mapped_column(search_key_type(200))
    email_key: Mapped[str] = mapped_column(search_key_type(254))
    tax_key: Mapped[str | None] = mapped_column(search_key_type(40))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    @property
    def is_person(self) -> bool:
        return bool(self.first_name and self.last_name) and self.customer_name == person_name(
            self.first_name, self.last_name
        )


def person_name(first: str | None, last: str | None) -> str:
    return f"{first or ''} {last or ''}".strip()


class BillingAccount(TenantScoped, Base):
    __tablename__ = "billing_account"
    __table_args__ = (
        Index(None, "tenant_id", "mode", "number_key", unique=True),
        Index(None, "tenant_id", "mode", "external_number_key", unique=True),
        Index(None, "tenant_id", "mode", "customer_name_key"),
        Index(None, "tenant_id", "mode", "customer_number_key"),
        # Pages in id order: search walks the first; the others end in id so that SQLite,
        # which keeps no statistics, still prefers them to it for a customer's or a
        # status's page.
        Index(None, "tenant_id", "mode", "id"),
        Index(None, "tenant_id", "mode", "customer_id", "id"),
        Index(None, "tenant_id", "mode", "status", "id"),
        # The bill run's question: which active accounts are due by a date.
        Index(None, "tenant_id", "mode", "status", "next_bill_date"),
        Index(None, "responsible_account_id"),
        Index(None, "parent_account_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"))
    number: Mapped[str] = mapped_column(String(40))
    external_number: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    invoice_currency: Mapped[str] = mapped_column(String(3))
    bill_cycle_id: Mapped[str] = mapped_column(ForeignKey("bill_cycle.id"))
    start_date: Mapped[date]
    status: Mapped[str] = mapped_column(String(20))
    taxable: Mapped[bool] = mapped_column(Boolean)
    responsible_account_id: Mapped[str | None] = mapped_column(ForeignKey("billing_account.id"))
    parent_account_id: Mapped[str | None] = mapped_column(ForeignKey("billing_account.id"))
    invoice_rendering_type: Mapped[str | None] = mapped_column(String(12))
    account_category_id: Mapped[str] = mapped_column(ForeignKey("account_category.id"))
    minimum_invoice_amount_minor: Mapped[int]
    preferred_language: Mapped[str] = mapped_column(String(35))
    invoice_type: Mapped[str] = mapped_column(String(16))
    payment_term_id: Mapped[str | None] = mapped_column(ForeignKey("payment_term.id"))
    authorize_auto_payment: Mapped[bool] = mapped_column(Boolean)
    auto_pay_offset_days: Mapped[int] = mapped_column(Integer)
    # The payer is sent a confirmation with the receipt of every payment.
    email_confirmations: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The payer is emailed when a new invoice is ready (paperless or not).
    email_notify: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    number_key: Mapped[str] = mapped_column(search_key_type(40))
    external_number_key: Mapped[str | None] = mapped_column(search_key_type(40))
    # Copies of the owning customer's keys, so account search needs no join.
    customer_name_key: Mapped[str] = mapped_column(search_key_type(200))
    customer_number_key: Mapped[str] = mapped_column(search_key_type(40))
    # The bill date the next bill run invoices; empty until the first invoice, when it is
    # the bill cycle's first bill date on or after start_date (invoicing/billrun.py).
    next_bill_date: Mapped[date | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Note(TenantScoped, Base):
    __tablename__ = "billing_account_note"
    __table_args__ = (Index(None, "billing_account_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    billing_account_id: Mapped[str] = mapped_column(ForeignKey("billing_account.id"))
    body: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class Contact(TenantScoped, Base):
    __tablename__ = "billing_account_contact"
    __table_args__ = (Index(None, "billing_account_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    billing_account_id: Mapped[str] = mapped_column(ForeignKey("billing_account.id"))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(20))
    category: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime]


class ChangeRecord(TenantScoped, Base):
    """One create or change of a customer or billing account, with every field it touched."""

    __tablename__ = "change_record"
    __table_args__ = (Index(None, "tenant_id", "mode", "object_type", "object_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(20))
    object_id: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(10))
    actor: Mapped[str] = mapped_column(String(100))
    # [{"field": ..., "old_value": ..., "new_value": ...}, ...]
    changes: Mapped[list[Any]] = mapped_column(JSON)
    at: Mapped[datetime]
