"""Pay sessions, payments and what they were applied to, refunds, disputes, the gateway
notifications already handled, blocked bank accounts, and prepayment entries.

A payment's money is in the ledger (DESIGN decision 2); the rows here say why: which
invoices a payment paid (``payment_allocation``, signed, append-only in practice), and
what happened to it afterwards. ``Invoice.amount_paid_minor`` is the sum of an invoice's
allocations, kept in the same transaction as the entry that moves it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billfold.core.db import Base, BigInteger, TenantScoped, UTCDateTime

SESSION_KINDS = ("native", "cloudpayments_v2", "entry")
SESSION_STATUSES = ("open", "paid")  # "expired" is derived from expires_at
METHODS = ("card", "ach")
PAYMENT_STATUSES = ("processing", "unknown", "pending", "succeeded", "failed", "refunded",
                    "partially_refunded", "voided", "returned", "disputed")
ALLOCATION_KINDS = ("payment", "refund", "void", "return", "dispute", "reinstate")
DISPUTE_STATUSES = ("open", "won", "lost")
ENTRY_STATUSES = ("open", "balanced", "assigned")


class PaySession(TenantScoped, Base):
    """A hosted payment page handed to a payer: what may be paid, how, and where to go
    afterwards. Its URL carries a random token; only the token's hash is stored."""

    __tablename__ = "pay_session"
    __table_args__ = (
        UniqueConstraint("token_hash"),
        Index(None, "tenant_id", "mode", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10))
    currency: Mapped[str] = mapped_column(String(3))
    # [{key, invoice_id, invoice_number, billing_account_id, account_number, type_id,
    #   invoice_date, due_date, balance_due_minor, cc_fee_minor, ach_fee_minor,
    #   minimum_amount_due_minor, allow_partial}] — what the payer sees and may pay.
    lines: Mapped[list[Any]] = mapped_column(JSON)
    # [{account_number, display_account_number, billing_account_id, name, address, city,
    #   state, zip, email}] — the payers as the request described them.
    payers: Mapped[list[Any]] = mapped_column(JSON)
    create_customer_record: Mapped[bool] = mapped_column(Boolean)
    allow_card: Mapped[bool] = mapped_column(Boolean)
    allow_ach: Mapped[bool] = mapped_column(Boolean)
    # PageResultOptions of Cloud Payments V2: allow_remove, allow_view_statement,
    # allow_view_related, allow_remind_me, allow_register_account.
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    return_url: Mapped[str | None] = mapped_column(String(2000))
    postback_url: Mapped[str | None] = mapped_column(String(2000))
    css_url: Mapped[str | None] = mapped_column(String(2000))
    biller_reference: Mapped[str | None] = mapped_column(String(200))
    view_mode: Mapped[int] = mapped_column(Integer)
    page_load_override: Mapped[int | None] = mapped_column(Integer)
    locale: Mapped[str | None] = mapped_column(String(20))
    entry_id: Mapped[str | None] = mapped_column(String(40))
    payment_id: Mapped[str | None] = mapped_column(String(40))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Payment(TenantScoped, Base):
    __tablename__ = "payment"
    __table_args__ = (
        # One payment per submission of a page (or API call): a double submit finds it.
        UniqueConstraint("tenant_id", "mode", "submission_key"),
        Index(None, "tenant_id", "mode", "receipt_number", unique=True),
        Index(None, "tenant_id", "mode", "id"),
        Index(None, "tenant_id", "mode", "billing_account_id", "id"),
        Index(None, "tenant_id", "mode", "status", "id"),
        Index(None, "gateway", "gateway_reference"),
        Index(None, "pay_session_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    submission_key: Mapped[str] = mapped_column(String(200))
    pay_session_id: Mapped[str | None] = mapped_column(ForeignKey("pay_session.id"))
    entry_id: Mapped[str | None] = mapped_column(String(40))
    # The account whose money it is (the first account paid); None for a Cloud Payments
    # session that keeps no records.
    billing_account_id: Mapped[str | None] = mapped_column(ForeignKey("billing_account.id"))
    method: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20))
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # applied to invoices or held; no fee
    fee_minor: Mapped[int] = mapped_column(BigInteger)  # service fee: fee revenue
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # of amount_minor
    currency: Mapped[str] = mapped_column(String(3))
    gateway: Mapped[str] = mapped_column(String(20))
    gateway_reference: Mapped[str | None] = mapped_column(String(100))
    # What may be kept of the instrument: never a card number or CVC.
    instrument_token: Mapped[str | None] = mapped_column(String(100))
    brand: Mapped[str | None] = mapped_column(String(20))
    last4: Mapped[str | None] = mapped_column(String(4))
    exp_month: Mapped[int | None] = mapped_column(Integer)
    exp_year: Mapped[int | None] = mapped_column(Integer)
    routing_number: Mapped[str | None] = mapped_column(String(9))
    account_type: Mapped[str | None] = mapped_column(String(10))
    holder_name: Mapped[str | None] = mapped_column(String(200))
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    failure_code: Mapped[str | None] = mapped_column(String(40))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    return_code: Mapped[str | None] = mapped_column(String(3))
    receipt_number: Mapped[str | None] = mapped_column(String(40))
    payer_name: Mapped[str | None] = mapped_column(String(200))
    payer_email: Mapped[str | None] = mapped_column(String(320))
    remote_ip: Mapped[str | None] = mapped_column(String(45))
    description: Mapped[str | None] = mapped_column(String(500))
    # What the payer chose: [{key, invoice_id, invoice_number, billing_account_id,
    # pay_minor}], applied once the gateway says yes (against the balances of that moment).
    lines: Mapped[list[Any]] = mapped_column(JSON)
    payment_date: Mapped[date]  # the tenant's business date of the payment
    settles_on: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PaymentAllocation(TenantScoped, Base):
    """Money of a payment put on (positive) or taken off (negative) an invoice, or held
    as unapplied cash of a billing account (``invoice_id`` None), or, for a session that
    keeps no records, paid on an invoice known only by number."""

    __tablename__ = "payment_allocation"
    __table_args__ = (
        Index(None, "payment_id"),
        Index(None, "invoice_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payment.id"))
    kind: Mapped[str] = mapped_column(String(10))
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoice.id"))
    invoice_number: Mapped[str | None] = mapped_column(String(100))
    billing_account_id: Mapped[str | None] = mapped_column(ForeignKey("billing_account.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Refund(TenantScoped, Base):
    __tablename__ = "refund"
    __table_args__ = (
        UniqueConstraint("tenant_id", "mode", "idempotency_key"),
        Index(None, "payment_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payment.id"))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # principal refunded
    fee_minor: Mapped[int] = mapped_column(BigInteger)  # service fee given back with it
    status: Mapped[str] = mapped_column(String(10))  # pending | succeeded | failed
    reason: Mapped[str | None] = mapped_column(String(500))
    gateway_reference: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Dispute(TenantScoped, Base):
    __tablename__ = "dispute"
    __table_args__ = (Index(None, "payment_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payment.id"))
    status: Mapped[str] = mapped_column(String(10))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    fee_minor: Mapped[int] = mapped_column(BigInteger)
    opened_on: Mapped[date]
    closed_on: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class GatewayNotification(TenantScoped, Base):
    """A gateway event already handled: the same event delivered twice changes nothing."""

    __tablename__ = "gateway_notification"
    __table_args__ = (UniqueConstraint("tenant_id", "mode", "gateway", "event_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    gateway: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    payment_id: Mapped[str | None] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BlockedBankAccount(TenantScoped, Base):
    """A bank account returned R02 (closed), R03 (no account) or R04 (invalid number):
    never debited again."""

    __tablename__ = "blocked_bank_account"
    __table_args__ = (UniqueConstraint("tenant_id", "mode", "fingerprint"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    return_code: Mapped[str] = mapped_column(String(3))
    payment_id: Mapped[str] = mapped_column(String(40))
    last4: Mapped[str | None] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Entry(TenantScoped, Base):
    """A prepayment taken before its invoice exists (JustOn's entry): paid, it holds the
    money as unapplied cash; the invoice finalized with the same assignment key gets it."""

    __tablename__ = "entry"
    __table_args__ = (
        UniqueConstraint("tenant_id", "mode", "assignment_key"),
        Index(None, "tenant_id", "mode", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    assignment_key: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    billing_account_id: Mapped[str] = mapped_column(ForeignKey("billing_account.id"))
    description: Mapped[str | None] = mapped_column(Text)
    order_id: Mapped[str | None] = mapped_column(String(40))
    pay_session_id: Mapped[str | None] = mapped_column(String(40))
    payment_id: Mapped[str | None] = mapped_column(String(40))
    invoice_id: Mapped[str | None] = mapped_column(String(40))
    return_url: Mapped[str | None] = mapped_column(String(2000))
    postback_url: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    balanced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SavedMethod(TenantScoped, Base):
    """A payment method a payer chose to keep: the gateway's token and what may be shown
    of it, never a card or account number. Owned by a payer user of the portal; usable on
    the billing accounts that user may pay."""

    __tablename__ = "saved_method"
    __table_args__ = (
        Index(None, "payer_user_id", "fingerprint", unique=True),
        Index(None, "tenant_id", "mode", "payer_user_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payer_user_id: Mapped[str] = mapped_column(ForeignKey("payer_user.id"))
    gateway: Mapped[str] = mapped_column(String(20))
    token: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))  # "card" | "ach"
    brand: Mapped[str | None] = mapped_column(String(20))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int | None] = mapped_column(Integer)
    exp_year: Mapped[int | None] = mapped_column(Integer)
    account_type: Mapped[str | None] = mapped_column(String(10))
    holder_name: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
