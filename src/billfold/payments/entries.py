"""Prepayment entries (JustOn's "entries" with assignment keys): a biller's shop asks for
a payment before any invoice exists. Paid (by card, with an immediate result), the entry
is ``balanced`` and its money is unapplied cash of the billing account. When an invoice
with the same ``assignment_key`` is finalized — one-off, or by a bill run from the
entry's sales order — the money moves onto it in that same transaction: the entry is
``assigned`` and the invoice ``paid`` (as far as the money reaches).

An entry's sales order is placed when the entry is made but waits: bill runs invoice it
once the entry is balanced, on an invoice of its own carrying the key (invoicing.billrun
asks ``order_keys``). Only an invoice of the entry's customer (or of the account
responsible for the entry's account) in the entry's currency takes its money; one that
may not says why on the entry (``views``). An entry whose payment was refunded in full
is ``refunded``: never assigned, its order never invoiced."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from billfold.core import clock, ids
from billfold.core.db import among, get_scoped
from billfold.core.errors import Conflict, FieldError, ValidationFailed
from billfold.core.scope import Scope
from billfold.customers import service as customers
from billfold.customers.models import BillingAccount
from billfold.invoicing import billrun
from billfold.invoicing import service as invoicing
from billfold.invoicing.models import Invoice
from billfold.ledger.service import SourceRef
from billfold.orders import service as orders
from billfold.payments import ledgering, notify, paying, sessions, takeback
from billfold.payments.allocation import Share
from billfold.payments.models import Entry, Payment, PaySession
from billfold.tenants import service as tenants
from billfold.tenants.models import AccountCategory, BillCycle

log = logging.getLogger(__name__)
MAX_MINOR = 10**15
# Payment statuses: the money is held (as unapplied cash, or on the invoice it paid); it
# went back to the payer for good; a chargeback took it (it returns if the biller wins).
HOLDING = ("succeeded", "partially_refunded")
GONE = ("refunded", "voided", "returned")
# Invoices an entry could have been assigned to.
FINALIZED = ("open", "partially_paid", "paid")


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


@dataclass(frozen=True, slots=True)
class EntryView:
    """An entry as the API shows it: its status as of now (a balanced entry whose payment
    has been refunded since is ``refunded``, though the row learns that only when an
    invoice with its key comes), and why a balanced entry is not assigned when an invoice
    with its key exists: {code, message, invoice_id}."""

    entry: Entry
    status: str
    assignment_problem: dict[str, str | None] | None


def views(session: Session, scope: Scope, rows: Sequence[Entry]) -> list[EntryView]:
    """The entries as the API shows them, with a handful of queries for any number."""
    paying_ids = {e.payment_id for e in rows if e.payment_id}
    paid = {str(p): str(s) for p, s in session.execute(select(Payment.id, Payment.status)
                                                       .where(among(session, Payment.id,
                                                                    paying_ids)))
            } if paying_ids else {}
    waiting = [e for e in rows
               if e.status == "balanced" and paid.get(str(e.payment_id)) not in GONE]
    keyed: dict[str, list[Invoice]] = {}
    accounts: dict[str, BillingAccount] = {}
    if waiting:
        for invoice in session.scalars(select(Invoice).where(
                Invoice.tenant_id == scope.tenant_id, Invoice.mode == scope.mode,
                among(session, Invoice.assignment_key, {e.assignment_key for e in waiting}),
                Invoice.status.in_(FINALIZED)).order_by(Invoice.id)):
            keyed.setdefault(str(invoice.assignment_key), []).append(invoice)
        accounts = {a.id: a for a in session.scalars(select(BillingAccount).where(
            among(session, BillingAccount.id, {e.billing_account_id for e in waiting})))}
    found = []
    for entry in rows:
        status, problem = entry.status, None
        if entry.status == "balanced" and paid.get(str(entry.payment_id)) in GONE:
            status = "refunded"
        elif entry.status == "balanced":
            problem = _problem(entry, accounts[entry.billing_account_id],
                               keyed.get(entry.assignment_key, []),
                               paid.get(str(entry.payment_id)))
        found.append(EntryView(entry, status, problem))
    return found


def _problem(entry: Entry, account: BillingAccount, invoices: Sequence[Invoice],
             payment_status: str | None) -> dict[str, str | None] | None:
    """Why a balanced entry is not assigned to the invoices with its key, when none of
    them may take its money (the first one's reason)."""
    if not invoices:
        return None
    if payment_status not in HOLDING:
        return {"code": "payment_disputed", "invoice_id": invoices[0].id,
                "message": "the payment is disputed (charged back); its money is not held"}
    obstacles = [o for o in (_obstacle(entry, account, i) for i in invoices) if o is not None]
    if len(obstacles) < len(invoices):
        return None
    code, message = obstacles[0]
    return {"code": code, "message": message, "invoice_id": invoices[0].id}


def _obstacle(entry: Entry, account: BillingAccount, invoice: Invoice) -> tuple[str, str] | None:
    """Why this invoice may not take the entry's money, if it may not: another currency,
    or another customer's invoice (not the customer's own, nor owed by the account
    responsible for the entry's account)."""
    if invoice.currency != entry.currency:
        return "currency_mismatch", (f"invoice {invoice.number} is in {invoice.currency}, "
                                     f"the entry in {entry.currency}")
    if invoice.customer_id != account.customer_id \
            and invoice.billing_account_id != account.responsible_account_id:
        return "other_customer", (f"invoice {invoice.number} is another customer's than "
                                  f"billing account {account.number}'s")
    return None


def new_payment_link(session: Session, scope: Scope, *, entry_id: str
                     ) -> tuple[Entry, sessions.Created]:
    """A fresh link that pays an open entry, for one whose link expired or was lost: the
    entry's pay session gets a new token and a new expiry, and the link given before stops
    working. The session stays the one session of the entry, so the entry can never be
    paid twice. Refused while a payment of it is being processed."""
    entry: Entry = get_scoped(session, Entry, entry_id, scope, "entry", for_update=True)
    if entry.status != "open":
        raise Conflict(f"entry {entry.id} is {entry.status}; only an open entry has a "
                       "payment link", code="entry_not_open")
    token = secrets.token_urlsafe(24)
    minutes = tenants.get_settings(session, scope).pay_session_minutes
    renewed = session.execute(
        update(PaySession).where(PaySession.id == entry.pay_session_id,
                                 PaySession.status == "open")
        .values(token_hash=sessions.token_hash(token),
                expires_at=tenants.now(session, scope) + timedelta(minutes=minutes))
        .execution_options(synchronize_session=False))
    if not renewed.rowcount:  # type: ignore[attr-defined]
        raise Conflict("a payment of this entry is being processed; ask again if it fails",
                       code="entry_payment_in_progress")
    row = session.get(PaySession, str(entry.pay_session_id), populate_existing=True)
    assert row is not None
    return entry, sessions.Created(row, token)


# -- the hooks -----------------------------------------------------------------------------


def entry_paid(session: Session, scope: Scope, payment: Payment) -> None:
    """A payment of an entry's page settled: the entry is balanced, and assigned at once
    if an invoice with its key that may take the money exists already."""
    if payment.entry_id is None:
        return
    entry = session.get(Entry, payment.entry_id, with_for_update=True)
    if entry is None or entry.status != "open":
        return
    entry.status, entry.payment_id, entry.balanced_at = "balanced", payment.id, clock.utcnow()
    session.flush()
    notify.emit(session, scope, "entry.balanced", notify.entry_data(entry), ("entry", entry.id))
    _assign_to_any(session, scope, entry)


def money_changed(session: Session, scope: Scope, payment: Payment) -> None:
    """A refund, void, return or chargeback of an entry's payment (takeback.CHANGED_HOOKS):
    a balanced entry whose money went back for good is ``refunded``; one whose money came
    back (a chargeback won) is assigned to an invoice with its key finalized meanwhile.
    An assigned entry stays assigned: its invoice is where the money was taken from and
    is given back to."""
    if payment.entry_id is None:
        return
    entry = session.get(Entry, payment.entry_id, with_for_update=True)
    if entry is None or entry.status != "balanced":
        return
    if payment.status in GONE:
        entry.status = "refunded"
        session.flush()
    elif payment.status in HOLDING:
        _assign_to_any(session, scope, entry)


def _assign_to_any(session: Session, scope: Scope, entry: Entry) -> None:
    """Assign the entry to the first payable invoice with its key that may take it."""
    for invoice in list(session.scalars(select(Invoice).where(
            Invoice.tenant_id == scope.tenant_id, Invoice.mode == scope.mode,
            Invoice.assignment_key == entry.assignment_key,
            Invoice.status.in_(sessions.PAYABLE_STATUSES)).order_by(Invoice.id))):
        if _assign(session, scope, entry, invoice):
            return


def invoices_finalized(session: Session, scope: Scope, keyed: list[tuple[str, str]]) -> None:
    """Invoices finalized with assignment keys: each takes the balanced entry of its key."""
    for invoice_id, key in keyed:
        entry = session.scalars(select(Entry).where(
            Entry.tenant_id == scope.tenant_id, Entry.mode == scope.mode,
            Entry.assignment_key == key, Entry.status == "balanced")
            .with_for_update()).one_or_none()
        invoice = session.get(Invoice, invoice_id)
        if entry is not None and invoice is not None:
            _assign(session, scope, entry, invoice)


def order_keys(session: Session, scope: Scope, keys: set[str]) -> dict[str, str]:
    """For bill runs (billrun.ORDER_KEY_HOOKS): an entry's order is held back until the
    entry holds its money, then invoiced on an invoice of its own with the entry's key;
    once the entry is assigned, what is left of the order bills like any other."""
    found = {}
    for key, status, paid in session.execute(
            select(Entry.assignment_key, Entry.status, Payment.status)
            .outerjoin(Payment, Payment.id == Entry.payment_id)
            .where(Entry.tenant_id == scope.tenant_id, Entry.mode == scope.mode,
                   among(session, Entry.assignment_key, keys))):
        if status != "assigned":
            holds = status == "balanced" and paid in HOLDING
            found[str(key)] = billrun.OWN_INVOICE if holds else billrun.HOLD
    return found


def _assign(session: Session, scope: Scope, entry: Entry, invoice: Invoice) -> bool:
    """Move the entry's money onto the invoice: True once assigned. Nothing moves for an
    invoice that may not take it, nor when the money is gone: refunded in full (the
    entry becomes ``refunded``) or charged back (it stays ``balanced``)."""
    account = session.get(BillingAccount, entry.billing_account_id)
    assert account is not None  # a foreign key
    obstacle = _obstacle(entry, account, invoice)
    if obstacle is not None:
        log.warning("entry %s not assigned to invoice %s: %s", entry.id, invoice.id, obstacle[1])
        return False
    payment = session.get(Payment, str(entry.payment_id), with_for_update=True)
    assert payment is not None
    if payment.status in GONE:
        entry.status = "refunded"
        session.flush()
        return False
    held = sum(s.amount_minor for s in ledgering.applied(session, payment.id).shares
               if s.invoice_id is None)
    if payment.status not in HOLDING or held <= 0:
        log.warning("entry %s not assigned to invoice %s: its payment %s holds nothing",
                    entry.id, invoice.id, payment.id)
        return False
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
    return True


paying.SETTLED_HOOKS.append(entry_paid)
takeback.CHANGED_HOOKS.append(money_changed)
invoicing.FINALIZED_HOOKS.append(invoices_finalized)
billrun.ORDER_KEY_HOOKS.append(order_keys)
