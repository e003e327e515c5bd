"""Invoices and their lines, bill runs and what each did to each account, adjustments.

An invoice is owed by ``billing_account_id`` (whose receivable it posts to); its lines say
which account each charge was for, so an aggregated invoice of a responsible account shows
its managed accounts' charges grouped. ``invoiced_account_id`` is the account whose period
a bill-run invoice covers: the responsible account for an aggregated invoice, the managed
account for a per-account one, the account itself otherwise.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billfold.core.db import Base, BigInteger, TenantScoped, UTCDateTime

INVOICE_STATUSES = ("draft", "open", "partially_paid", "paid", "void", "suppressed")
LINE_KINDS = ("recurring", "one_time", "adjustment", "manual")
DELIVERY_STATUSES = ("not_required", "pending", "sent", "failed")
BILL_RUN_STATUSES = ("running", "completed")
OUTCOMES = ("invoiced", "suppressed", "nothing_to_bill")
ADJUSTMENT_KINDS = ("credit", "debit")


class Invoice(TenantScoped, Base):
    __tablename__ = "invoice"
    __table_args__ = (
        Index(None, "tenant_id", "mode", "number", unique=True),
        Index(None, "tenant_id", "mode", "id"),
        Index(None, "tenant_id", "mode", "billing_account_id", "id"),
        # A payer's invoices (the portal's history and what it leaves due), read in
        # proportion to that payer's invoices, not the tenant's.
        Index(None, "tenant_id", "mode", "billing_account_id", "status", "issue_date"),
        Index(None, "tenant_id", "mode", "status", "id"),
        Index(None, "tenant_id", "mode", "issue_date", "id"),
        Index(None, "tenant_id", "mode", "assignment_key"),
        Index(None, "bill_run_id"),
        # Suppressed invoices whose charges still wait for the next invoice.
        Index(None, "tenant_id", "mode", "invoiced_account_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    number: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    billing_account_id: Mapped[str] = mapped_column(ForeignKey("billing_account.id"))
    invoiced_account_id: Mapped[str | None] = mapped_column(ForeignKey("billing_account.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"))
    currency: Mapped[str] = mapped_column(String(3))
    rendering_type: Mapped[str | None] = mapped_column(String(20))
    bill_date: Mapped[date | None]
    period_start: Mapped[date | None]
    period_end: Mapped[date | None]
    issue_date: Mapped[date | None]
    due_date: Mapped[date | None]
    subtotal_minor: Mapped[int] = mapped_column(BigInteger)
    tax_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    # Payments applied, and adjustments made against this invoice (debits +, credits -);
    # amount due = total + adjustments - paid. Kept in the transaction of every ledger
    # entry that changes them.
    amount_paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    adjustments_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    assignment_key: Mapped[str | None] = mapped_column(String(100))
    bill_run_id: Mapped[str | None] = mapped_column(String(40))
    carried_to_invoice_id: Mapped[str | None] = mapped_column(String(40))
    memo: Mapped[str | None] = mapped_column(Text)
    pdf_key: Mapped[str | None] = mapped_column(String(300))
    delivery_status: Mapped[str] = mapped_column(String(20), default="not_required")
    delivery_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def amount_due_minor(self) -> int:
        if self.status in ("void", "suppressed"):
            return 0
        return self.total_minor + self.adjustments_minor - self.amount_paid_minor


class InvoiceLine(TenantScoped, Base):
    __tablename__ = "invoice_line"
    __table_args__ = (Index(None, "invoice_id", "position"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoice.id"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    billing_account_id: Mapped[str] = mapped_column(ForeignKey("billing_account.id"))
    description: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # net of tax
    tax_minor: Mapped[int] = mapped_column(BigInteger)
    tax_percent: Mapped[str | None] = mapped_column(String(12))
    tax_rate_id: Mapped[str | None] = mapped_column(String(40))
    tax_exemption_certificate: Mapped[str | None] = mapped_column(String(100))
    tax_inclusive: Mapped[bool] = mapped_column(default=False)
    tax_category: Mapped[str | None] = mapped_column(String(40))
    period_start: Mapped[date | None]
    period_end: Mapped[date | None]
    service_id: Mapped[str | None] = mapped_column(String(40))
    pending_charge_id: Mapped[str | None] = mapped_column(String(40))
    adjustment_id: Mapped[str | None] = mapped_column(String(40))
    carried_from_invoice_id: Mapped[str | None] = mapped_column(String(40))


class BillRun(TenantScoped, Base):
    __tablename__ = "bill_run"
    __table_args__ = (Index(None, "tenant_id", "mode", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    bill_cycle_id: Mapped[str | None] = mapped_column(ForeignKey("bill_cycle.id"))
    as_of_date: Mapped[date]
    status: Mapped[str] = mapped_column(String(20))
    accounts_total: Mapped[int] = mapped_column(Integer)
    chunks_total: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BillRunChunk(TenantScoped, Base):
    """A slice of a run's accounts that one worker claims (as a job) and bills."""

    __tablename__ = "bill_run_chunk"
    __table_args__ = (UniqueConstraint("bill_run_id", "position"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    bill_run_id: Mapped[str] = mapped_column(ForeignKey("bill_run.id"))
    position: Mapped[int] = mapped_column(Integer)
    account_ids: Mapped[list[Any]] = mapped_column(JSON)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BilledPeriod(TenantScoped, Base):
    """The guard of exactly-once billing: one row per account and bill date, written in the
    transaction that invoiced it. A rerun or a second worker finds it and moves on."""

    __tablename__ = "billed_period"
    __table_args__ = (
        UniqueConstraint("tenant_id", "mode", "billing_account_id", "bill_date"),
        Index(None, "bill_run_id", "outcome"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    billing_account_id: Mapped[str] = mapped_column(ForeignKey("billing_account.id"))
    bill_date: Mapped[date]
    bill_run_id: Mapped[str | None] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(20))
    invoice_ids: Mapped[list[Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class BillRunFailure(TenantScoped, Base):
    __tablename__ = "bill_run_failure"
    __table_args__ = (Index(None, "bill_run_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    bill_run_id: Mapped[str] = mapped_column(ForeignKey("bill_run.id"))
    billing_account_id: Mapped[str] = mapped_column(ForeignKey("billing_account.id"))
    bill_date: Mapped[date | None]
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Adjustment(TenantScoped, Base):
    """A credit or debit posted to the ledger when made. Against an invoice it changes that
    invoice's open amount; on the account it waits (``invoice_id`` empty) for the next
    invoice, which shows it as a line."""

    __tablename__ = "adjustment"
    __table_args__ = (
        Index(None, "tenant_id", "mode", "id"),
        Index(None, "tenant_id", "mode", "billing_account_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    billing_account_id: Mapped[str] = mapped_column(ForeignKey("billing_account.id"))
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoice.id"))
    # Set when an account-level adjustment lands on an invoice.
    applied_invoice_id: Mapped[str | None] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(10))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class InvoiceDistributionRule(TenantScoped, Base):
    """GTV's "Distribute Invoice" notification, enabled for all accounts (both columns
    empty), for one billing account, for a contact category on every account, or for a
    category on one account. Without a rule that covers an account, its invoices are not
    emailed (invoicing/delivery.py says who receives them)."""

    __tablename__ = "invoice_distribution_rule"
    # NULLs never collide in a unique index, so uniqueness is on ``applies_to``, a
    # non-null copy of (account, category): "all", "account:<id>", "category:<name>",
    # "account:<id>/category:<name>".
    __table_args__ = (UniqueConstraint("tenant_id", "mode", "applies_to"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    billing_account_id: Mapped[str | None] = mapped_column(ForeignKey("billing_account.id"))
    contact_category: Mapped[str | None] = mapped_column(String(50))
    applies_to: Mapped[str] = mapped_column(String(120))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
