"""Invoices: one-off drafts, finalizing (number + ledger entry), voiding, adjustments,
reading and listing. Services never commit; the edge owns the transaction.

Ledger entries (DESIGN decision 2):
- finalize: receivable (the owing account) debit = total of the charge lines; revenue
  credit = their net amounts; tax payable credit = their tax. Adjustment lines are left out:
  each adjustment was posted when it was made.
- void: the reversal of the finalize entry (only while nothing is paid); the number stays
  used.
- adjustment: credit = revenue debit, receivable credit; debit the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from billfold import money
from billfold.core import clock, ids, sequences
from billfold.core.db import get_scoped
from billfold.core.errors import Conflict, FieldError, ValidationFailed, invalid
from billfold.core.scope import Scope
from billfold.customers import history
from billfold.customers.models import BillingAccount
from billfold.invoicing import delivery
from billfold.invoicing.models import ADJUSTMENT_KINDS, Adjustment, Invoice, InvoiceLine
from billfold.ledger import service as ledger
from billfold.ledger.models import LedgerEntry
from billfold.ledger.service import AccountRef, PostingLine, SourceRef
from billfold.money import Money
from billfold.tenants import service as tenants
from billfold.tenants.models import PaymentTerm

NUMBER_SERIES = "invoice"
NUMBER_PREFIX = "INV"
MAX_LINES = 500
MAX_MINOR = 10**15


def get_invoice(session: Session, scope: Scope, invoice_id: str, *, for_update: bool = False
                ) -> Invoice:
    invoice: Invoice = get_scoped(session, Invoice, invoice_id, scope, "invoice",
                                  for_update=for_update)
    return invoice


def invoice_lines(session: Session, invoice_ids: Sequence[str]) -> dict[str, list[InvoiceLine]]:
    found: dict[str, list[InvoiceLine]] = {i: [] for i in invoice_ids}
    if invoice_ids:
        for line in session.scalars(select(InvoiceLine).where(
                InvoiceLine.invoice_id.in_(list(invoice_ids))).order_by(
                InvoiceLine.invoice_id, InvoiceLine.position)):
            found[line.invoice_id].append(line)
    return found


def list_invoices(session: Session, scope: Scope, *, limit: int, starting_after: str | None = None,
                  billing_account_id: str | None = None, status: str | None = None,
                  issued_from: date | None = None, issued_to: date | None = None
                  ) -> list[Invoice]:
    stmt = select(Invoice).where(Invoice.tenant_id == scope.tenant_id, Invoice.mode == scope.mode)
    if billing_account_id is not None:
        stmt = stmt.where(Invoice.billing_account_id == billing_account_id)
    if status is not None:
        stmt = stmt.where(Invoice.status == status)
    if issued_from is not None:
        stmt = stmt.where(Invoice.issue_date >= issued_from)
    if issued_to is not None:
        stmt = stmt.where(Invoice.issue_date <= issued_to)
    if starting_after is not None:
        stmt = stmt.where(Invoice.id > starting_after)
    return list(session.scalars(stmt.order_by(Invoice.id).limit(limit)))


def due_date(session: Session, account: BillingAccount, issue_date: date) -> date:
    if account.payment_term_id is None:
        return issue_date  # due on receipt
    term = tenants.reference_row(session, PaymentTerm, account.payment_term_id)
    return issue_date + timedelta(days=term.net_days) if term is not None else issue_date


# -- one-off invoices --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _DraftLine:
    description: str
    quantity: int
    unit_amount_minor: int
    tax_percent: str


def create_draft(session: Session, scope: Scope, *, billing_account_id: str,
                 lines: Sequence[Mapping[str, Any]], assignment_key: str | None = None,
                 memo: str | None = None, actor: str) -> Invoice:
    """A one-off invoice in ``draft``: no number, nothing posted until finalized. Each line
    is {description, quantity, unit_amount_minor, tax_percent?}."""
    problems: list[FieldError] = []
    account = session.get(BillingAccount, billing_account_id) \
        if isinstance(billing_account_id, str) else None
    if account is None or account.tenant_id != scope.tenant_id or account.mode != scope.mode:
        raise invalid("billing_account_id", f"no billing account with id {billing_account_id!r}",
                      "not_found")
    if account.status == "deactivated":
        problems.append(FieldError("billing_account_id", "is deactivated; reactivate it first",
                                   "account_deactivated"))
    if not 1 <= len(lines) <= MAX_LINES:
        problems.append(FieldError("lines", f"give 1 to {MAX_LINES} lines"))
    parsed: list[_DraftLine] = []
    for i, raw in enumerate(lines):
        where = f"lines[{i}]."
        description = raw.get("description")
        if not isinstance(description, str) or not description.strip() or len(description) > 300:
            problems.append(FieldError(where + "description", "must be 1 to 300 characters"))
        quantity = raw.get("quantity", 1)
        if not isinstance(quantity, int) or isinstance(quantity, bool) or not 1 <= quantity <= 10**6:
            problems.append(FieldError(where + "quantity", "must be a whole number from 1 to 1000000"))
        unit = raw.get("unit_amount_minor")
        if not isinstance(unit, int) or isinstance(unit, bool) or not 0 <= unit <= MAX_MINOR:
            problems.append(FieldError(where + "unit_amount_minor",
                                       f"must be a whole number of minor units from 0 to {MAX_MINOR}"))
        percent = raw.get("tax_percent", "0")
        try:
            percent = money.parse_percent(percent) if isinstance(percent, str) else None
        except money.MoneyError:
            percent = None
        if percent is None:
            problems.append(FieldError(where + "tax_percent",
                                       "must be a decimal string from \"0\" to \"100\" with at "
                                       "most 4 decimal places"))
        if not any(p.field.startswith(where) for p in problems):
            # Amounts must fit the 64-bit columns (and the ledger's sums of them).
            if int(unit or 0) * int(quantity) > MAX_MINOR:
                problems.append(FieldError(where + "unit_amount_minor",
                                           f"times the quantity must be at most {MAX_MINOR}"))
            else:
                parsed.append(_DraftLine(str(description).strip(), int(quantity), int(unit or 0),
                                         str(percent)))
    if sum(line.unit_amount_minor * line.quantity for line in parsed) > MAX_MINOR:
        problems.append(FieldError("lines", f"may total at most {MAX_MINOR} minor units"))
    if assignment_key is not None and (not assignment_key.strip() or len(assignment_key) > 100):
        problems.append(FieldError("assignment_key", "must be 1 to 100 characters"))
    if problems:
        raise ValidationFailed(problems)
    invoice = Invoice(
        id=ids.new_id("invoice"), tenant_id=scope.tenant_id, mode=scope.mode, number=None,
        status="draft", billing_account_id=account.id, invoiced_account_id=None,
        customer_id=account.customer_id, currency=account.currency, rendering_type=None,
        bill_date=None, period_start=None, period_end=None, issue_date=None, due_date=None,
        subtotal_minor=0, tax_minor=0, total_minor=0, amount_paid_minor=0,
        assignment_key=assignment_key, bill_run_id=None, memo=memo,
        delivery_status="not_required", created_at=clock.utcnow(),
    )
    session.add(invoice)
    rows = []
    for position, line in enumerate(parsed, start=1):
        amount = line.unit_amount_minor * line.quantity
        tax_minor = money.tax_exclusive(amount, line.tax_percent)
        rows.append(InvoiceLine(
            id=ids.new_id("invoice_line"), tenant_id=scope.tenant_id, mode=scope.mode,
            invoice_id=invoice.id, position=position, kind="manual",
            billing_account_id=account.id, description=line.description,
            quantity=line.quantity, unit_amount_minor=line.unit_amount_minor,
            amount_minor=amount, tax_minor=tax_minor, tax_percent=line.tax_percent,
            tax_inclusive=False))
    invoice.subtotal_minor = sum(r.amount_minor for r in rows)
    invoice.tax_minor = sum(r.tax_minor for r in rows)
    invoice.total_minor = invoice.subtotal_minor + invoice.tax_minor
    session.flush()
    session.add_all(rows)
    session.flush()
    return invoice


# -- finalize and void -------------------------------------------------------------------


def next_numbers(session: Session, scope: Scope, count: int) -> list[str]:
    """Gap-free invoice numbers: the series row stays locked until the caller commits, so
    a number is used exactly when the invoice carrying it is."""
    return [f"{NUMBER_PREFIX}-{value:06d}"
            for value in sequences.next_values(session, scope, NUMBER_SERIES, count)]


def post_invoice(session: Session, scope: Scope, invoice: Invoice,
                 lines: Sequence[InvoiceLine]) -> None:
    """The invoice's ledger entry: receivable against revenue and tax payable."""
    charges = [line for line in lines if line.kind != "adjustment"]
    net = sum(line.amount_minor for line in charges)
    tax_minor = sum(line.tax_minor for line in charges)
    currency = invoice.currency
    postings = [
        PostingLine(AccountRef("receivable", invoice.billing_account_id), Money(net + tax_minor, currency)),
        PostingLine(AccountRef("revenue"), Money(-net, currency)),
        PostingLine(AccountRef("tax_payable"), Money(-tax_minor, currency)),
    ]
    postings = [p for p in postings if p.amount.minor != 0]
    if len(postings) < 2:
        return  # nothing to post: an invoice of zero (or only adjustments, posted already)
    ledger.post(session, scope, source=SourceRef("invoice", invoice.id), lines=postings,
                description=f"Invoice {invoice.number}",
                effective_date=invoice.issue_date or tenants.today(session, scope))


def settle_status(invoice: Invoice) -> None:
    status = settled_status(invoice)
    if status != invoice.status:
        invoice.status = status


def settled_status(invoice: Invoice) -> str:
    """The status the invoice's amounts give it (a draft, void or suppressed one keeps
    its own)."""
    if invoice.status in ("draft", "void", "suppressed"):
        return invoice.status
    owed = invoice.total_minor + invoice.adjustments_minor
    if invoice.amount_due_minor <= 0:
        return "paid"
    if invoice.amount_due_minor >= owed:
        return "open"
    return "partially_paid"


def finalize(session: Session, scope: Scope, *, invoice_id: str, actor: str) -> Invoice:
    invoice = get_invoice(session, scope, invoice_id, for_update=True)
    if invoice.status != "draft":
        raise Conflict(f"invoice {invoice.id} is {invoice.status}; only a draft can be finalized",
                       code="invoice_not_draft")
    account = get_scoped(session, BillingAccount, invoice.billing_account_id, scope,
                         "billing_account")
    today = tenants.today(session, scope)
    invoice.number = next_numbers(session, scope, 1)[0]
    invoice.issue_date = today
    invoice.due_date = due_date(session, account, today)
    invoice.finalized_at = clock.utcnow()
    invoice.status = "open"
    settle_status(invoice)
    post_invoice(session, scope, invoice, invoice_lines(session, [invoice.id])[invoice.id])
    _history(session, scope, invoice, "invoiced", actor)
    delivery.invoice_issued(session, scope, invoice)
    session.flush()
    if invoice.assignment_key:
        for hook in FINALIZED_HOOKS:
            hook(session, scope, [(invoice.id, invoice.assignment_key)])
    return invoice


# Told, in the finalizing transaction, of invoices finalized with an assignment key
# [(invoice id, key)], one-off or by a bill run: prepayment entries (payments) plug in here.
FINALIZED_HOOKS: list[Callable[[Session, Scope, list[tuple[str, str]]], None]] = []


def void(session: Session, scope: Scope, *, invoice_id: str, actor: str) -> Invoice:
    invoice = get_invoice(session, scope, invoice_id, for_update=True)
    if invoice.status in ("void", "suppressed"):
        raise Conflict(f"invoice {invoice.id} is {invoice.status} already",
                       code="invoice_not_voidable")
    if invoice.status != "draft" and (invoice.amount_paid_minor or invoice.adjustments_minor):
        raise Conflict(f"invoice {invoice.id} has payments or adjustments against it; refund or "
                       "reverse those first", code="invoice_has_payments")
    if invoice.status != "draft":
        entry = session.scalars(select(LedgerEntry).where(
            LedgerEntry.tenant_id == scope.tenant_id, LedgerEntry.mode == scope.mode,
            LedgerEntry.source_type == "invoice", LedgerEntry.source_id == invoice.id)).first()
        if entry is not None:
            ledger.reverse(session, scope, entry_id=entry.id,
                           description=f"Void of invoice {invoice.number}",
                           effective_date=tenants.today(session, scope))
    # Account-level adjustments that landed on it wait for the next invoice again.
    session.execute(update(Adjustment).where(Adjustment.applied_invoice_id == invoice.id)
                    .values(applied_invoice_id=None))
    invoice.status = "void"
    invoice.voided_at = clock.utcnow()
    _history(session, scope, invoice, "voided", actor)
    session.flush()
    return invoice


def _history(session: Session, scope: Scope, invoice: Invoice, action: str, actor: str) -> None:
    history.record(session, scope, object_type="billing_account",
                   object_id=invoice.billing_account_id, action=action, actor=actor,
                   before={}, after={"invoice_id": invoice.id, "number": invoice.number,
                                     "total_minor": invoice.total_minor})


# -- adjustments -------------------------------------------------------------------------


def create_adjustment(session: Session, scope: Scope, *, billing_account_id: str,
                      kind: str, amount_minor: int, reason: str,
                      invoice_id: str | None = None, actor: str) -> Adjustment:
    problems: list[FieldError] = []
    account = session.get(BillingAccount, billing_account_id) \
        if isinstance(billing_account_id, str) else None
    if account is None or account.tenant_id != scope.tenant_id or account.mode != scope.mode:
        raise invalid("billing_account_id", f"no billing account with id {billing_account_id!r}",
                      "not_found")
    if kind not in ADJUSTMENT_KINDS:
        problems.append(FieldError("kind", "must be credit or debit"))
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool) \
            or not 1 <= amount_minor <= MAX_MINOR:
        problems.append(FieldError("amount_minor", f"must be a whole number from 1 to {MAX_MINOR}"))
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        problems.append(FieldError("reason", "must be 1 to 500 characters"))
    invoice = None
    if invoice_id is not None:
        found = session.get(Invoice, invoice_id, with_for_update=True) \
            if isinstance(invoice_id, str) else None
        if found is None or found.tenant_id != scope.tenant_id or found.mode != scope.mode:
            problems.append(FieldError("invoice_id", f"no invoice with id {invoice_id!r}", "not_found"))
        elif found.billing_account_id != account.id:
            problems.append(FieldError("invoice_id", "belongs to another billing account"))
        elif found.status not in ("open", "partially_paid", "paid"):
            problems.append(FieldError("invoice_id", f"is {found.status}; adjust an open or paid "
                                                     "invoice", "invoice_not_adjustable"))
        elif kind == "credit" and isinstance(amount_minor, int) \
                and amount_minor > found.amount_due_minor:
            problems.append(FieldError(
                "amount_minor", f"a credit cannot take the invoice below zero: "
                f"{found.amount_due_minor} minor units are due", "credit_exceeds_amount_due"))
        else:
            invoice = found
    if problems:
        raise ValidationFailed(problems)
    adjustment = Adjustment(
        id=ids.new_id("adjustment"), tenant_id=scope.tenant_id, mode=scope.mode,
        billing_account_id=account.id, invoice_id=invoice.id if invoice else None,
        applied_invoice_id=None, kind=kind, amount_minor=amount_minor,
        currency=account.currency, reason=reason.strip(), created_by=actor[:100],
        created_at=clock.utcnow())
    session.add(adjustment)
    session.flush()
    signed = amount_minor if kind == "debit" else -amount_minor
    ledger.post(session, scope, source=SourceRef("adjustment", adjustment.id), lines=[
        PostingLine(AccountRef("receivable", account.id), Money(signed, account.currency)),
        PostingLine(AccountRef("revenue"), Money(-signed, account.currency)),
    ], description=f"{kind.title()} adjustment: {reason.strip()}"[:200],
        effective_date=tenants.today(session, scope))
    if invoice is not None:
        invoice.adjustments_minor += signed
        settle_status(invoice)
    history.record(session, scope, object_type="billing_account", object_id=account.id,
                   action="adjusted", actor=actor, before={},
                   after={"adjustment_id": adjustment.id, "kind": kind, "amount_minor": amount_minor,
                          "invoice_id": adjustment.invoice_id, "reason": adjustment.reason})
    session.flush()
    return adjustment


def list_adjustments(session: Session, scope: Scope, *, limit: int,
                     starting_after: str | None = None,
                     billing_account_id: str | None = None) -> list[Adjustment]:
    stmt = select(Adjustment).where(Adjustment.tenant_id == scope.tenant_id,
                                    Adjustment.mode == scope.mode)
    if billing_account_id is not None:
        stmt = stmt.where(Adjustment.billing_account_id == billing_account_id)
    if starting_after is not None:
        stmt = stmt.where(Adjustment.id > starting_after)
    return list(session.scalars(stmt.order_by(Adjustment.id).limit(limit)))
