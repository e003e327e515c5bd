"""From stored invoices to the documents the renderer lays out (invoicing/document.py).

The document is in the owing account's preferred language and names the tenant as the
biller and the owing account's customer as the payer. An invoice whose lines are for more
than one account (an aggregated invoice of a responsible account), or for another account
than the one owing it (a per-account invoice of a managed account), groups its lines under
"<account number> · <customer name>" per account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billfold.core.db import among, by_ids, chunks
from billfold.core.errors import NotFound
from billfold.core.scope import Scope
from billfold.customers.models import BillingAccount, Customer
from billfold.invoicing.document import DocumentLine, InvoiceDocument, Party, PostalAddress
from billfold.invoicing.models import Invoice, InvoiceLine
from billfold.tenants import service as tenants
from billfold.tenants.models import Tenant


@dataclass(frozen=True, slots=True)
class _Loaded:
    biller: Party
    accounts: dict[str, BillingAccount]
    customers: dict[str, Customer]
    lines: dict[str, list[InvoiceLine]]


def document_for(session: Session, scope: Scope, invoice: Invoice) -> InvoiceDocument:
    """The document of one invoice of ``scope``."""
    return documents_for(session, scope, [invoice])[0]


def documents_for(session: Session, scope: Scope, invoices: Sequence[Invoice]
                  ) -> list[InvoiceDocument]:
    """The documents of many invoices of ``scope``, in their order, read with a fixed
    number of queries whatever their count (a print batch has thousands)."""
    for invoice in invoices:
        if invoice.tenant_id != scope.tenant_id or invoice.mode != scope.mode:
            raise NotFound("invoice", invoice.id)
    if not invoices:
        return []
    loaded = _load(session, scope, invoices)
    today = tenants.today(session, scope)
    return [_document(invoice, loaded, today) for invoice in invoices]


def _load(session: Session, scope: Scope, invoices: Sequence[Invoice]) -> _Loaded:
    lines: dict[str, list[InvoiceLine]] = {i.id: [] for i in invoices}
    for chunk in chunks(lines):
        for line in session.scalars(select(InvoiceLine).where(
                among(session, InvoiceLine.invoice_id, chunk))
                .order_by(InvoiceLine.invoice_id, InvoiceLine.position)):
            lines[line.invoice_id].append(line)
    account_ids = {i.billing_account_id for i in invoices}
    account_ids |= {line.billing_account_id for group in lines.values() for line in group}
    accounts = {a.id: a for a in by_ids(session, BillingAccount, account_ids)}
    customers = {c.id: c for c in by_ids(
        session, Customer, {a.customer_id for a in accounts.values()})}
    tenant = session.get(Tenant, scope.tenant_id)
    if tenant is None:
        raise NotFound("tenant", scope.tenant_id)
    return _Loaded(Party(name=tenant.name), accounts, customers, lines)


def _document(invoice: Invoice, loaded: _Loaded, today: Any) -> InvoiceDocument:
    account = loaded.accounts[invoice.billing_account_id]
    customer = loaded.customers[account.customer_id]
    lines = loaded.lines[invoice.id]
    grouped = any(line.billing_account_id != account.id for line in lines)
    due = invoice.amount_due_minor
    # The document prints Total, Amount paid, Amount due and nothing between them, so
    # "paid" is what closes that sum: payments and credits applied (less debits).
    paid = (invoice.amount_paid_minor if invoice.status in ("void", "suppressed")
            else invoice.total_minor - due)
    return InvoiceDocument(
        invoice_id=invoice.id, number=invoice.number, status=invoice.status,
        language=account.preferred_language or "en", currency=invoice.currency,
        issue_date=invoice.issue_date or today, due_date=invoice.due_date,
        period_start=invoice.period_start, period_end=invoice.period_end,
        biller=loaded.biller, bill_to=payer(customer), account_number=account.number,
        lines=tuple(_line(line, _group(line, loaded) if grouped else None) for line in lines),
        subtotal_minor=invoice.subtotal_minor, tax_minor=invoice.tax_minor,
        total_minor=invoice.total_minor, amount_paid_minor=paid, amount_due_minor=due,
        notes=(invoice.memo,) if invoice.memo else (),
    )


def _group(line: InvoiceLine, loaded: _Loaded) -> str:
    account = loaded.accounts[line.billing_account_id]
    return f"{account.number} · {loaded.customers[account.customer_id].customer_name}"


def _line(line: InvoiceLine, group: str | None) -> DocumentLine:
    return DocumentLine(
        description=line.description, quantity=line.quantity, amount_minor=line.amount_minor,
        tax_minor=line.tax_minor, unit_amount_minor=line.unit_amount_minor,
        tax_percent=line.tax_percent, tax_inclusive=line.tax_inclusive,
        period_start=line.period_start, period_end=line.period_end, group=group)


def payer(customer: Customer) -> Party:
    """The customer as the invoice's "Bill to": name, billing address, primary email,
    first phone and tax number."""
    phones = [p.get("number") for p in customer.phones or [] if isinstance(p, dict)]
    return Party(name=customer.customer_name, address=postal_address(customer.billing_address),
                 email=customer.primary_email or None, phone=phones[0] if phones else None,
                 tax_number=customer.tax_number)


def postal_address(stored: dict[str, Any] | None) -> PostalAddress | None:
    if not stored or not stored.get("line1"):
        return None
    return PostalAddress(line1=stored["line1"], line2=stored.get("line2"),
                         city=stored.get("city"), region=stored.get("region"),
                         postal_code=stored.get("postal_code"), country=stored.get("country"))
