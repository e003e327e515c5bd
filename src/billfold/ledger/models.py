"""Ledger accounts, entries and postings. A posting's amount is signed: debits are
positive, credits negative, so an entry balances when its postings sum to zero."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billfold.core.db import Base, TenantScoped

KINDS = (
    "receivable",
    "unapplied_cash",
    "cash_clearing",
    "revenue",
    "tax_payable",
    "fee_revenue",
    "write_off",
    # Money collected on invoices Billfold does not keep (a Cloud Payments session that
    # creates no records): owed on to the biller's own system.
    "external_payments",
    # What processors charge the biller, such as a chargeback fee.
    "processing_fees",
)
# Kinds kept per billing account; the rest are one per tenant, mode and currency.
PER_BILLING_ACCOUNT = ("receivable", "unapplied_cash")


class LedgerAccount(TenantScoped, Base):
    __tablename__ = "ledger_account"
    __table_args__ = (
        UniqueConstraint("tenant_id", "mode", "currency", "key"),
        Index(None, "tenant_id", "mode", "billing_account_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    billing_account_id: Mapped[str | None] = mapped_column(String(40))
    # "receivable:ba_…" or "revenue": the natural key that makes get-or-create race-free.
    key: Mapped[str] = mapped_column(String(80))
    # Running sum of this account's postings, kept for fast reads; `ledger verify`
    # recomputes it from the postings.
    balance_minor: Mapped[int]
    created_at: Mapped[datetime]


class LedgerEntry(TenantScoped, Base):
    __tablename__ = "ledger_entry"
    __table_args__ = (UniqueConstraint("tenant_id", "mode", "source_type", "source_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    source_type: Mapped[str] = mapped_column(String(40))
    source_id: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(String(200))
    reverses_entry_id: Mapped[str | None] = mapped_column(ForeignKey("ledger_entry.id"))
    effective_date: Mapped[date]
    posted_at: Mapped[datetime]


class LedgerPosting(TenantScoped, Base):
    __tablename__ = "ledger_posting"
    __table_args__ = (
        Index(None, "entry_id"),
        Index(None, "ledger_account_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("ledger_entry.id"))
    ledger_account_id: Mapped[str] = mapped_column(ForeignKey("ledger_account.id"))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))


# Entries and postings are append-only. The application never updates or deletes them;
# these triggers make the database refuse it too.
APPEND_ONLY_TABLES = ("ledger_entry", "ledger_posting")

POSTGRES_GUARD_FUNCTION = """
CREATE OR REPLACE FUNCTION billfold_ledger_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'ledger % rows are append-only: % refused', TG_TABLE_NAME, TG_OP;
END;
$$ LANGUAGE plpgsql
"""


def guard_ddl(dialect: str) -> list[str]:
    """Statements that install the append-only guard on ``dialect``."""
    if dialect == "postgresql":
        statements = [POSTGRES_GUARD_FUNCTION]
        for table in APPEND_ONLY_TABLES:
            statements.append(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION billfold_ledger_append_only()"
            )
        return statements
    statements = []
    for table in APPEND_ONLY_TABLES:
        for op in ("UPDATE", "DELETE"):
            statements.append(
                f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} BEGIN "
                f"SELECT RAISE(ABORT, 'ledger {table} rows are append-only: {op} refused'); END"
            )
    return statements


def drop_guard_ddl(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {t}_append_only ON {t}" for t in APPEND_ONLY_TABLES] + [
            "DROP FUNCTION IF EXISTS billfold_ledger_append_only()"
        ]
    return [
        f"DROP TRIGGER IF EXISTS {t}_no_{op}" for t in APPEND_ONLY_TABLES for op in ("update", "delete")
    ]
