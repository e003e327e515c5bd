"""Payments recorded through the API (``POST /v1/payments``): money received outside the
payment page — a check, cash, a wire — applied at once; or a charge of an instrument the
gateway saved earlier (a token, never a card number), in the same three steps as a page
payment. Either way the money goes on the invoices named, in that order, else on the
account's open invoices oldest due first; what is left is unapplied cash."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from billfold.core import clock, ids
from billfold.core.db import (
    get_scoped,
    holds_any,
    loaded,
    read_together,
    send_writes_together,
    transaction,
)
from billfold.core.errors import FieldError, ValidationFailed
from billfold.core.scope import Scope
from billfold.customers.models import BillingAccount
from billfold.invoicing.models import Invoice
from billfold.ledger import service as ledger
from billfold.notifications import webhooks
from billfold.payments import ledgering, paying, sessions
from billfold.payments.gateways.base import ChargeRequest, Gateway, GatewayTimeout, SavedInstrument
from billfold.payments.models import Payment
from billfold.tenants import service as tenants

OFFLINE_METHODS = ("check", "cash", "wire", "other")
GATEWAY_METHODS = ("card", "ach")
MAX_MINOR = 10**15


def record(factory: Callable[[], Session], gateway_for: Any, scope: Scope, *,
           billing_account_id: str, amount_minor: int, method: str,
           instrument_token: str | None = None, invoice_ids: Sequence[str] = (),
           reference: str | None = None, submission_key: str | None = None) -> Payment:
    """Record (or, with a saved instrument, charge) a payment on a billing account.
    ``factory`` gives a session for each transaction, one after another."""
    with factory() as session, transaction(session):
        send_writes_together(session)
        key = submission_key or ids.new_id("payment")
        # Only a submission key given by the caller can have been used before.
        earlier = None if submission_key is None else session.scalars(_BY_SUBMISSION_KEY, {
            "tenant": scope.tenant_id, "mode": scope.mode, "key": key}).one_or_none()
        if earlier is not None:
            session.expunge(earlier)
            return earlier
        # The account, its customer and tenant are held while the transaction lasts: the
        # session keeps only the objects something refers to, and settling reads them
        # again (the receipt email).
        payment, _held = _new(
            session, scope, billing_account_id=billing_account_id, amount_minor=amount_minor,
            method=method, instrument_token=instrument_token, invoice_ids=invoice_ids,
            reference=reference, key=key)
        if method in OFFLINE_METHODS:
            # Received already: written once, as succeeded, when the entry is posted.
            payment.status, payment.gateway = "succeeded", "none"
            paying.settle(session, scope, payment)
            session.flush()
            session.expunge(payment)
            return payment
        payment_id = payment.id
    return _charge(factory, gateway_for(scope), scope, payment_id, str(instrument_token))


# Built once: payments are recorded at a rate, and building a statement costs about what
# running it does.
_BY_SUBMISSION_KEY = select(Payment).where(
    Payment.tenant_id == bindparam("tenant"), Payment.mode == bindparam("mode"),
    Payment.submission_key == bindparam("key"))
# Locked as they are read, in id order after the account (the order paying.apply locks
# in): applying the money then reads them no more (ledgering.lock_invoices). The rows as
# locked replace anything the session held of them.
_INVOICES = (
    select(Invoice).where(
        Invoice.tenant_id == bindparam("tenant"), Invoice.mode == bindparam("mode"),
        Invoice.id.in_(bindparam("ids", expanding=True)))
    .order_by(Invoice.id).with_for_update())
# The same, run directly, when the session holds none of them (nothing to refresh).
_INVOICES_DIRECT = ledgering.INVOICES_LOCKED


def _charge(factory: Callable[[], Session], gateway: Gateway, scope: Scope, payment_id: str,
            token: str) -> Payment:
    with factory() as session:
        payment = get_scoped(session, Payment, payment_id, scope, "payment")
        request = ChargeRequest(idempotency_key=payment.id, amount_minor=payment.amount_minor,
                                currency=payment.currency, method=SavedInstrument(token),
                                description=f"Payment {payment.id}", on_date=payment.payment_date)
    try:
        result = gateway.charge(scope, request)
    except GatewayTimeout:
        with factory() as session, transaction(session):
            found = get_scoped(session, Payment, payment_id, scope, "payment", for_update=True)
            found.status, found.updated_at = "unknown", clock.utcnow()
        return _detached(factory, scope, payment_id)
    result = paying.unless_blocked(factory, gateway, scope, result)  # as on the pay page
    with factory() as session, transaction(session):
        send_writes_together(session)
        found = get_scoped(session, Payment, payment_id, scope, "payment", for_update=True)
        paying.record_outcome(session, gateway, found, result)
    return _detached(factory, scope, payment_id)


def _detached(factory: Callable[[], Session], scope: Scope, payment_id: str) -> Payment:
    with factory() as session:
        payment: Payment = get_scoped(session, Payment, payment_id, scope, "payment")
        session.expunge(payment)
        return payment


def _new(session: Session, scope: Scope, *, billing_account_id: str, amount_minor: int,
         method: str, instrument_token: str | None, invoice_ids: Sequence[str],
         reference: str | None, key: str) -> tuple[Payment, tuple[Any, ...]]:
    problems: list[FieldError] = []
    if not isinstance(billing_account_id, str):
        raise ValidationFailed([FieldError("billing_account_id", "no such billing account",
                                           "not_found")])
    invoice_ids = list(invoice_ids)
    params = {"tenant": scope.tenant_id, "mode": scope.mode}
    # The account with what settling the payment reads of its customer and tenant (the
    # receipt email's address and biller), in one statement: in the session, later reads
    # of them are free.
    reads: list[tuple[Any, dict[str, Any]]] = [
        (paying.ACCOUNTS_WITH_PAYERS, {**params, "ids": [billing_account_id]})]
    # The invoices named, unless the session holds some (they are then read as below).
    invoices_direct = bool(invoice_ids) and not holds_any(session, Invoice, invoice_ids)
    if invoices_direct:
        reads.append((_INVOICES_DIRECT, {**params, "ids": invoice_ids}))
    settles_now = method in OFFLINE_METHODS
    if settles_now:
        # What settling reads before it writes — the endpoints its events go to, the
        # ledger accounts it posts to — read now with the rest: on PostgreSQL the reads
        # are one round trip, and the payment's writes then go together with its COMMIT.
        reads += [webhooks.endpoints_read(scope),
                  ledgering.payment_accounts_read(scope, billing_account_id)]
    results = read_together(session, reads)
    if not results[0]:
        raise ValidationFailed([FieldError("billing_account_id", "no such billing account",
                                           "not_found")])
    found = loaded(session, paying.ACCOUNT_MODELS, results[0][0])
    account = found[0]
    paying.locked_already(session, {account.id})
    if settles_now:
        webhooks.endpoints_known(session, scope, results[-2])
        ledger.accounts_known(session, scope, results[-1])
    if not isinstance(amount_minor, int) or not 1 <= amount_minor <= MAX_MINOR:
        problems.append(FieldError("amount_minor", f"must be from 1 to {MAX_MINOR}"))
    if method not in OFFLINE_METHODS + GATEWAY_METHODS:
        problems.append(FieldError("method", "must be one of "
                                   + ", ".join(OFFLINE_METHODS + GATEWAY_METHODS)))
    elif method in GATEWAY_METHODS and not instrument_token:
        problems.append(FieldError("instrument_token", f"is required to charge a {method}: the "
                                   "token of an instrument the gateway saved", "required"))
    elif method in OFFLINE_METHODS and instrument_token:
        problems.append(FieldError("instrument_token", f"does not go with a {method} payment"))
    invoices = _invoices(session, params, invoice_ids, results[1] if invoices_direct else None)
    lines = _lines(account, invoice_ids, invoices, amount_minor, problems)
    if problems:
        raise ValidationFailed(problems)
    now = clock.utcnow()
    payment = Payment(
        id=ids.new_id("payment"), tenant_id=scope.tenant_id, mode=scope.mode,
        submission_key=key, pay_session_id=None, entry_id=None, billing_account_id=account.id,
        method=method, status="processing", amount_minor=amount_minor, fee_minor=0,
        refunded_minor=0, currency=account.currency, gateway="",
        description=(reference or "")[:500] or None, payment_date=tenants.today(session, scope),
        created_at=now, updated_at=now, lines=lines)
    session.add(payment)
    if method in GATEWAY_METHODS:
        session.flush()  # committed as "processing" before the gateway is called
    return payment, tuple(found)


def _invoices(session: Session, params: dict[str, Any], invoice_ids: list[str],
              rows: list[Any] | None) -> dict[str, Invoice]:
    """The invoices named, locked: made from ``rows`` read directly, else (the session
    held some) read by the ORM query that refreshes them."""
    if not invoice_ids:
        return {}
    if rows is None:
        found = {i.id: i for i in session.scalars(_INVOICES, {**params, "ids": invoice_ids})}
    else:
        found = {invoice.id: invoice for (invoice,) in (
            loaded(session, (Invoice,), row) for row in rows)}
    ledgering.invoices_locked(session, found.values())
    return found


def _lines(account: BillingAccount, invoice_ids: list[str], found: dict[str, Invoice],
           amount_minor: int, problems: list[FieldError]) -> list[dict[str, Any]]:
    holder = {"key": "account", "invoice_id": None, "invoice_number": None,
              "account_number": account.number, "billing_account_id": account.id}
    if not invoice_ids:
        return [{**holder, "pay_minor": amount_minor, "oldest_first": True}]
    lines, left = [], amount_minor if isinstance(amount_minor, int) else 0
    for index, invoice_id in enumerate(invoice_ids):
        invoice = found.get(invoice_id)
        field = f"invoice_ids[{index}]"
        if invoice is None or invoice.billing_account_id != account.id:
            problems.append(FieldError(field, "is not an invoice of this billing account",
                                       "not_found"))
        elif invoice.status not in sessions.PAYABLE_STATUSES:
            problems.append(FieldError(field, f"is {invoice.status}; only open invoices can be "
                                       "paid", "invoice_not_payable"))
        elif invoice_ids.count(invoice_id) > 1:
            problems.append(FieldError(field, "is listed twice"))
        else:
            take = min(left, invoice.amount_due_minor)
            left -= take
            lines.append({**holder, "key": str(index + 1), "invoice_id": invoice.id,
                          "invoice_number": invoice.number, "pay_minor": take})
    if left:
        lines.append({**holder, "pay_minor": left})
    return [line for line in lines if line["pay_minor"]]
