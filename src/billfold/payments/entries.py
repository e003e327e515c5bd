"""Prepayment entries (JustOn's "entries" with assignment keys): a biller's shop asks for
a payment before any invoice exists. Paid (by card, with an immediate result), the entry
is ``balanced`` and its money is unapplied cash of the billing account. When an invoice
with the same ``assignment_key`` is finalized — one-off, or by a bill run from the
entry's sales order — the money moves onto it in that same transaction: the entry is
``assigned`` and the invoice ``paid`` (as far as the money reaches)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billfold.core import clock, ids
from billfold.core.db import get_scoped
from billfold.core.errors import FieldError, ValidationFailed
from billfold.core.scope import Scope
from billfold.customers import service as customers
from billfold.customers.models import BillingAccount
from billfold.invoicing import service as invoicing
from billfold.invoicing.models import Invoice
from billfold.ledger.service import SourceRef
from billfold.orders import service as orders
from billfold.payments import ledgering, notify, paying, sessions
from billfold.payments.allocation import Share
from billfold.payments.models import Entry, Payment
from billfold.tenants import service as tenants
from billfold.tenants.models import AccountCategory, BillCycle

log = logging.getLogger(__name__)
MAX_MINOR = 10**15


def create_entry(session: Session, scope: Scope, *, assignment_key: str, amount_minor: int,
                 currency: str, billing_account_id: str | None = None,
                 customer: Mapping[str, Any] | None = None, description: str | None = None,
                 sales_order: Sequence[Mapping[str, Any]] | None = None,
                 return_url: str | None = None, postback_url: str | None = None,
                 actor: str) -> tuple[Entry, sessions.Created]:
    """An open entry and the payment page that pays it (card only)."""
    problems = sessions.check_urls(session, scope, {"return_url": return_url,
                                                    "postback_url": postback_url})
    key = assignment_key.strip() if isinstance(assignment_key, str) else ""
    if not key or len(key) > 100:
        problems.append(FieldError("assignment_key", "must be 1 to 100 characters"))
    elif session.scalar(select(Entry.id).where(
            Entry.tenant_id == scope.tenant_id, Entry.mode == scope.mode,
            Entry.assignment_key == key)) is not None:
        problems.append(FieldError("assignment_key", "is used by another entry already",
                                   "assignment_key_taken"))
    if not isinstance(amount_minor, int) or not 1 <= amount_minor <= MAX_MINOR:
        problems.append(FieldError("amount_minor", f"must be from 1 to {MAX_MINOR}"))
    account = _account(session, scope, billing_account_id, customer, currency, problems, actor)
    if account is not None and account.currency != currency:
        problems.append(FieldError("currency", f"must be the billing account's currency, "
                                   f"{account.currency}", "currency_mismatch"))
    if problems or account is None:
        raise ValidationFailed(problems)
    order_id = _order(session, scope, account, sales_order, key, actor)
    entry = Entry(id=ids.new_id("entry"), tenant_id=scope.tenant_id, mode=scope.mode,
                  assignment_key=key, status="open", amount_minor=amount_minor,
                  currency=currency, billing_account_id=account.id, description=description,
                  order_id=order_id, pay_session_id=None, payment_id=None, invoice_id=None,
                  return_url=return_url, postback_url=postback_url, created_at=clock.utcnow())
    session.add(entry)
    session.flush()
    line = {"key": "1", "invoice_id": None, "invoice_number": key,
            "billing_account_id": account.id, "account_number": account.number,
            "type_id": None, "invoice_date": None, "due_date": None,
            "balance_due_minor": amount_minor, "cc_fee_minor": 0, "ach_fee_minor": 0,
            "minimum_amount_due_minor": None, "allow_partial": False,
            "description": description}
    created = sessions.new_session(
        session, scope, kind="entry", currency=currency, lines=[line],
        payers=sessions.payers_of(session, [account]), allow_card=True, allow_ach=False,
        options={"allow_remove": False}, return_url=return_url, entry_id=entry.id)
    entry.pay_session_id = created.session.id
    session.flush()
    return entry, created


def _account(session: Session, scope: Scope, billing_account_id: str | None,
             customer: Mapping[str, Any] | None, currency: str, problems: list[FieldError],
             actor: str) -> BillingAccount | None:
    if (billing_account_id is None) == (customer is None):
        problems.append(FieldError("billing_account_id", "give a billing_account_id or the "
                                   "customer's details, one of the two", "required"))
        return None
    if billing_account_id is not None:
        found = session.get(BillingAccount, billing_account_id)
        if found is None or found.tenant_id != scope.tenant_id or found.mode != scope.mode:
            problems.append(FieldError("billing_account_id", "no such billing account",
                                       "not_found"))
            return None
        return found
    assert customer is not None
    cycle = sessions.first_of(session, scope, BillCycle)
    category = sessions.first_of(session, scope, AccountCategory)
    if cycle is None or category is None:
        problems.append(FieldError("customer", "creating a customer needs a bill cycle and an "
                                   "account category: create them first",
                                   "reference_data_missing"))
        return None
    data = {**customer, "billing_account": {
        "currency": currency, "bill_cycle_id": cycle.id, "account_category_id": category.id,
        "start_date": tenants.today(session, scope), "invoice_type": "email"}}
    try:
        with session.begin_nested():
            _, account = customers.create_customer(session, scope, data=data, actor=actor)
    except ValidationFailed as exc:
        problems += [FieldError(f"customer.{e.field}", e.message, e.code) for e in exc.errors]
        return None
    return account



def _order(session: Session, scope: Scope, account: BillingAccount,
           sales_order: Sequence[Mapping[str, Any]] | None, key: str, actor: str) -> str | None:
    if not sales_order:
        return None
    try:
        order = orders.create_order(session, scope, billing_account_id=account.id,
                                    lines=sales_order, actor=actor, assignment_key=key)
    except ValidationFailed as exc:
        raise ValidationFailed([FieldError(f"sales_order.{e.field}", e.message, e.code)
                                for e in exc.errors]) from None
    return order.id


def get_entry(session: Session, scope: Scope, entry_id: str) -> Entry:
    entry: Entry = get_scoped(session, Entry, entry_id, scope, "entry")
    return entry


def list_entries(session: Session, scope: Scope, *, limit: int,
                 starting_after: str | None = None) -> list[Entry]:
    stmt = select(Entry).where(Entry.tenant_id == scope.tenant_id, Entry.mode == scope.mode)
    if starting_after:
        stmt = stmt.where(Entry.id > starting_after)
    return list(session.scalars(stmt.order_by(Entry.id).limit(limit)))


# -- the hooks -----------------------------------------------------------------------------


def entry_paid(session: Session, scope: Scope, payment: Payment) -> None:
    """A payment of an entry's page settled: the entry is balanced, and assigned at once
    if its invoice exists already."""
    if payment.entry_id is None:
        return
    entry = session.get(Entry, payment.entry_id, with_for_update=True, populate_existing=True)
    if entry is None or entry.status != "open":
        return
    entry.status, entry.payment_id, entry.balanced_at = "balanced", payment.id, clock.utcnow()
    session.flush()
    notify.emit(session, scope, "entry.balanced", notify.entry_data(entry), ("entry", entry.id))
    invoice = session.scalars(select(Invoice).where(
        Invoice.tenant_id == scope.tenant_id, Invoice.mode == scope.mode,
        Invoice.assignment_key == entry.assignment_key,
        Invoice.status.in_(sessions.PAYABLE_STATUSES)).order_by(Invoice.id).limit(1)).first()
    if invoice is not None:
        _assign(session, scope, entry, invoice)


def invoices_finalized(session: Session, scope: Scope, keyed: list[tuple[str, str]]) -> None:
    """Invoices finalized with assignment keys: each takes the balanced entry of its key."""
    for invoice_id, key in keyed:
        entry = session.scalars(select(Entry).where(
            Entry.tenant_id == scope.tenant_id, Entry.mode == scope.mode,
            Entry.assignment_key == key, Entry.status == "balanced")
            .with_for_update().execution_options(populate_existing=True)).one_or_none()
        invoice = session.get(Invoice, invoice_id)
        if entry is not None and invoice is not None:
            _assign(session, scope, entry, invoice)


def _assign(session: Session, scope: Scope, entry: Entry, invoice: Invoice) -> None:
    payment = session.get(Payment, str(entry.payment_id), with_for_update=True,
                          populate_existing=True)
    if payment is None or invoice.currency != payment.currency:
        log.warning("entry %s cannot be assigned to invoice %s", entry.id, invoice.id)
        return
    held = sum(s.amount_minor for s in ledgering.applied(session, payment.id).shares
               if s.invoice_id is None)
    paying.lock_accounts(session, {entry.billing_account_id, invoice.billing_account_id})
    session.refresh(invoice, with_for_update=True)
    amount = min(held, invoice.amount_due_minor)
    if amount > 0:
        ledgering.post(session, scope, payment, source=SourceRef("entry_assignment", entry.id),
                       shares=[Share(None, entry.billing_account_id, -amount),
                               Share(invoice.id, invoice.billing_account_id, amount)],
                       external=[], fee_minor=0, kind="payment",
                       description=f"Entry {entry.assignment_key} assigned to invoice "
                                   f"{invoice.number}")
    entry.status, entry.invoice_id, entry.assigned_at = "assigned", invoice.id, clock.utcnow()
    session.flush()
    notify.entry_event(session, scope, entry, "entry.assigned")
    if invoice.status == "paid":
        notify.emit(session, scope, "invoice.paid", {
            "id": invoice.id, "object": "invoice", "number": invoice.number,
            "billing_account_id": invoice.billing_account_id, "status": invoice.status,
            "total_minor": invoice.total_minor, "currency": invoice.currency,
            "payment_id": payment.id}, ("invoice", invoice.id))


paying.SETTLED_HOOKS.append(entry_paid)
invoicing.FINALIZED_HOOKS.append(invoices_finalized)
