"""Paying a pay session: check what the payer chose, charge through the gateway, apply
the money.

The gateway is an outside system, so a payment takes three steps and two transactions:
(1) claim the session and record the payment as ``processing``, commit; (2) charge, with
no transaction open (a slow gateway holds no locks); (3) record the outcome and apply the
money, commit. A gateway that never answers leaves the payment ``unknown`` with the
session still claimed, so nobody pays twice; the janitor settles it by lookup. The same
form submitted twice names the same payment (its submission key) and charges once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import LABEL_STYLE_TABLENAME_PLUS_COL, bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from billfold.core import clock, ids, sequences, txcache
from billfold.core.db import (
    Direct,
    DirectAmong,
    columns_of,
    holds_any,
    is_postgres,
    loaded,
    read_together,
    send_writes_together,
    transaction,
)
from billfold.core.errors import Conflict, FieldError, ValidationFailed
from billfold.core.scope import Scope
from billfold.customers.models import BillingAccount, Customer
from billfold.invoicing.models import Invoice
from billfold.ledger import service as ledger
from billfold.ledger.service import SourceRef
from billfold.notifications import webhooks
from billfold.payments import ledgering, notify, sessions
from billfold.payments.allocation import Payable, Share, allocate
from billfold.payments.gateways.base import (
    BankDetails,
    CardDetails,
    ChargeRequest,
    ChargeResult,
    Gateway,
    GatewayTimeout,
    SavedInstrument,
)
from billfold.payments.gateways.checks import card_brand
from billfold.payments.models import BlockedBankAccount, Payment, PaySession
from billfold.tenants import service as tenants
from billfold.tenants.models import Tenant, TenantSettings

RECEIPT_SERIES = "receipt"


@dataclass(frozen=True, slots=True)
class Submission:
    nonce: str  # one per rendered form: a double submit sends the same one
    amounts: Mapping[str, int]  # line key -> minor units paid now on that line
    method: str  # "card" | "ach"
    details: CardDetails | BankDetails | SavedInstrument
    payer_email: str | None = None
    remote_ip: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    lines: list[dict[str, Any]]  # the lines paid, each with "pay_minor"
    amount_minor: int
    fee_minor: int

    @property
    def total_minor(self) -> int:
        return self.amount_minor + self.fee_minor


def plan(row: PaySession, lines: list[dict[str, Any]], amounts: Mapping[str, int],
         method: str) -> Plan:
    """What the payer pays on each line and the service fee, or ValidationFailed naming
    the line (``amounts[<key>]``) and what is wrong with it."""
    problems: list[FieldError] = []
    if method not in ("card", "ach") or (method == "card" and not row.allow_card) \
            or (method == "ach" and not row.allow_ach):
        allowed = [m for m, on in (("card", row.allow_card), ("ach", row.allow_ach)) if on]
        problems.append(FieldError("method", f"must be one of {', '.join(allowed)}",
                                   "method_not_allowed"))
    by_key = {line["key"]: line for line in lines}
    for key in amounts:
        if key not in by_key:
            problems.append(FieldError(f"amounts[{key}]", "is not an invoice of this payment "
                                       "(or it has been paid meanwhile)", "not_payable"))
    chosen = []
    for line in lines:
        if line["key"] not in amounts:
            if not row.options.get("allow_remove", True):
                problems.append(FieldError(f"amounts[{line['key']}]",
                                           "every invoice of this payment must be paid",
                                           "invoice_required"))
            continue
        pay, due = amounts[line["key"]], line["balance_due_minor"]
        where = f"amounts[{line['key']}]"
        minimum = line.get("minimum_amount_due_minor") or 1
        if pay > due:
            problems.append(FieldError(where, f"is more than the balance of {due}",
                                       "amount_over_balance"))
        elif pay != due and not line.get("allow_partial"):
            problems.append(FieldError(where, "must be the whole balance: this invoice cannot "
                                       "be paid in part", "partial_not_allowed"))
        elif pay < minimum:
            problems.append(FieldError(where, f"must be at least the minimum of {minimum}",
                                       "amount_below_minimum"))
        else:
            chosen.append({**line, "pay_minor": pay})
    if not chosen and not problems:
        problems.append(FieldError("amounts", "choose at least one invoice to pay", "required"))
    if problems:
        raise ValidationFailed(problems)
    fee_field = "cc_fee_minor" if method == "card" else "ach_fee_minor"
    return Plan(chosen, sum(line["pay_minor"] for line in chosen),
                sum(int(line.get(fee_field) or 0) for line in chosen))


def pay(factory: sessionmaker[Session], gateway: Gateway, token: str,
        submission: Submission) -> Payment:
    """Pay the session ``token`` names. Returns the payment in its resulting state
    (``succeeded``, ``pending``, ``failed`` or ``unknown``); bad input raises before
    anything is charged."""
    started = _start(factory, token, submission)
    if started.status != "processing":
        return started  # a double submit: the first one's payment
    scope = Scope(started.tenant_id, started.mode)  # type: ignore[arg-type]
    try:
        result = gateway.charge(scope, ChargeRequest(
            idempotency_key=started.id, amount_minor=started.amount_minor + started.fee_minor,
            currency=started.currency, method=submission.details,
            description=f"Payment {started.id}", on_date=started.payment_date))
    except GatewayTimeout:
        with factory() as session, transaction(session):
            payment = _locked(session, started.id)
            payment.status, payment.updated_at = "unknown", clock.utcnow()
        return _reloaded(factory, started.id)
    result = unless_blocked(factory, gateway, scope, result)
    with factory() as session, transaction(session):
        send_writes_together(session)
        record_outcome(session, gateway, _locked(session, started.id), result)
    return _reloaded(factory, started.id)


def read_ahead(session: Session, scope: Scope, payment: Payment) -> None:
    """Read what settling ``payment`` reads before it writes, in one round trip on
    PostgreSQL (``db.read_together``) where each read took one and sent the writes made
    so far ahead of it: the tenant's settings (its clock), the billing accounts (locked,
    in id order, with their customers and tenant: the receipt email's), the invoices
    (locked, in id order), the pay session (locked), the webhook endpoints and the ledger
    accounts. Locks are taken in the order settling takes them; rows the session holds
    already are left to settling's own reads, which refresh them."""
    params = {"tenant": scope.tenant_id, "mode": scope.mode}
    account_ids = sorted({str(line["billing_account_id"]) for line in payment.lines
                          if line.get("billing_account_id")})
    invoice_ids = sorted({str(line["invoice_id"]) for line in payment.lines
                          if line.get("invoice_id")})
    reads: dict[str, tuple[Any, dict[str, Any]]] = {"settings": (_SETTINGS, params)}
    if account_ids and not holds_any(session, BillingAccount, account_ids):
        reads["accounts"] = (ACCOUNTS_WITH_PAYERS, {**params, "ids": account_ids})
    if invoice_ids and not holds_any(session, Invoice, invoice_ids):
        reads["invoices"] = (_INVOICES, {**params, "ids": invoice_ids})
    if payment.pay_session_id and not holds_any(session, PaySession, [payment.pay_session_id]):
        reads["session"] = (_PAY_SESSION, {"id": payment.pay_session_id})
    reads["endpoints"] = webhooks.endpoints_read(scope)
    reads["ledger"] = ledgering.accounts_read(scope, payment)
    found = dict(zip(reads, read_together(session, list(reads.values())), strict=True))
    for row in found["settings"]:
        tenants.remember_settings(session, scope, loaded(session, (TenantSettings,), row)[0])
    if "accounts" in found:
        # Held while the transaction lasts: the session keeps only the objects something
        # refers to, and settling reads them again (the receipt email).
        held: list[Any] = txcache.cached(session, _HELD, list)
        for row in found["accounts"]:
            held += loaded(session, ACCOUNT_MODELS, row)
        locked_already(session, {row.billing_account_id for row in found["accounts"]})
    if "invoices" in found:
        ledgering.invoices_locked(session, [
            loaded(session, (Invoice,), row)[0] for row in found["invoices"]])
    for row in found.get("session", ()):
        txcache.cached(session, _LOCKED_SESSIONS, dict)[row.id] = \
            loaded(session, (PaySession,), row)[0]
    webhooks.endpoints_known(session, scope, found["endpoints"])
    ledger.accounts_known(session, scope, found["ledger"])


_SETTINGS = Direct(select(*columns_of(TenantSettings)).where(
    TenantSettings.tenant_id == bindparam("tenant"), TenantSettings.mode == bindparam("mode")))
ACCOUNT_MODELS = (BillingAccount, Customer, Tenant)
# Billing accounts with what settling reads of their customer and tenant (the receipt
# email's address and biller), locked in id order as lock_accounts locks them: locked
# before anything is written, since inserting a payment has PostgreSQL take a key share of
# its account row (the foreign key), and two payments on one account that both held that
# and then asked to lock the account deadlocked.
ACCOUNTS_WITH_PAYERS = DirectAmong(lambda _dialect, among: (
    select(*columns_of(*ACCOUNT_MODELS))
    .join_from(BillingAccount, Customer, Customer.id == BillingAccount.customer_id)
    .join(Tenant, Tenant.id == BillingAccount.tenant_id)
    .where(BillingAccount.tenant_id == bindparam("tenant"), BillingAccount.mode == bindparam("mode"),
           among(BillingAccount.id))
    .order_by(BillingAccount.id)
    .with_for_update(of=BillingAccount)
    .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)), "ids")
_INVOICES = ledgering.INVOICES_LOCKED
_PAY_SESSION = Direct(select(*columns_of(PaySession)).where(PaySession.id == bindparam("id"))
                      .with_for_update())
_LOCKED_SESSIONS = "billfold.locked_pay_sessions"
_HELD = "billfold.read_ahead"


def unless_blocked(factory: Callable[[], Session], gateway: Gateway, scope: Scope,
                   result: ChargeResult) -> ChargeResult:
    """A bank account returned as closed or invalid is never debited again: the debit
    the gateway just accepted is voided before it goes anywhere. (The fingerprint that
    recognises the account is only known once the gateway has seen it.)"""
    found = result.instrument
    if result.status != "pending" or found is None or found.kind != "bank":
        return result
    with factory() as session:
        blocked = session.scalar(select(BlockedBankAccount.id).where(
            BlockedBankAccount.tenant_id == scope.tenant_id, BlockedBankAccount.mode == scope.mode,
            BlockedBankAccount.fingerprint == found.fingerprint)) is not None
    if not blocked:
        return result
    gateway.void(scope, reference=str(result.reference))
    return ChargeResult("declined", result.reference, found, "bank_account_blocked",
                        "This bank account cannot be debited: an earlier debit from it was "
                        "returned. Use another account or a card.", None)


def _start(factory: sessionmaker[Session], token: str, submission: Submission) -> Payment:
    with factory() as session, transaction(session):
        row = sessions.find(session, token)
        key = f"{row.id}:{submission.nonce}"[:200]
        earlier = session.scalars(select(Payment).where(
            Payment.tenant_id == row.tenant_id, Payment.mode == row.mode,
            Payment.submission_key == key)).one_or_none()
        if earlier is not None:
            return earlier
        if row.status == "paid":
            raise sessions.SessionPaid()
        if sessions.is_expired(session, row):
            raise sessions.SessionExpired()
        scope = Scope(row.tenant_id, row.mode)  # type: ignore[arg-type]
        chosen = plan(row, sessions.current_lines(session, row), submission.amounts,
                      submission.method)
        if not sessions.claim(session, row):
            raise Conflict("A payment on this page is already being processed.",
                           code="pay_session_busy")
        payment = _new_payment(session, scope, row, chosen, submission, key)
        session.add(payment)
    return _reloaded(factory, payment.id)


def _new_payment(session: Session, scope: Scope, row: PaySession, chosen: Plan,
                 submission: Submission, key: str) -> Payment:
    now = clock.utcnow()
    first = chosen.lines[0]
    payer: dict[str, Any] = next((p for p in row.payers
                  if p.get("account_number") == first.get("account_number")), {})
    details = submission.details
    return Payment(
        id=ids.new_id("payment"), tenant_id=scope.tenant_id, mode=scope.mode,
        submission_key=key, pay_session_id=row.id, entry_id=row.entry_id,
        billing_account_id=first.get("billing_account_id"), method=submission.method,
        status="processing", amount_minor=chosen.amount_minor, fee_minor=chosen.fee_minor,
        refunded_minor=0, currency=row.currency, gateway="", gateway_reference=None,
        holder_name=getattr(details, "name", None) or getattr(details, "holder_name", None),
        # The card's network and last four, from what the payer typed: a declined card's
        # payment shows them too (the gateway's answer names them only for a charge made).
        brand=card_brand(details.number) if isinstance(details, CardDetails) else None,
        last4=details.number[-4:] if isinstance(details, CardDetails) else None,
        payer_name=payer.get("name"), payer_email=submission.payer_email or payer.get("email"),
        remote_ip=submission.remote_ip,
        description=", ".join(str(line["invoice_number"]) for line in chosen.lines)[:500],
        payment_date=tenants.today(session, scope), created_at=now, updated_at=now,
        lines=[{"key": line["key"], "invoice_id": line.get("invoice_id"),
                "invoice_number": line.get("invoice_number"),
                "account_number": line.get("account_number"),
                # The number the page showed the payer (Cloud Payments V2), for the receipt.
                **({"display_account_number": line["display_account_number"]}
                   if line.get("display_account_number") else {}),
                "billing_account_id": line.get("billing_account_id"),
                "pay_minor": line["pay_minor"]} for line in chosen.lines])


def _locked(session: Session, payment_id: str) -> Payment:
    payment = session.get(Payment, payment_id, with_for_update=True)
    assert payment is not None
    return payment


def _reloaded(factory: sessionmaker[Session], payment_id: str) -> Payment:
    with factory() as session:
        payment = session.get(Payment, payment_id)
        assert payment is not None
        session.expunge(payment)
        return payment


def record_outcome(session: Session, gateway: Gateway, payment: Payment,
                   result: ChargeResult) -> None:
    """Step 3: the gateway's answer for a ``processing`` (or ``unknown``) payment. Applied
    once: a payment that has an outcome already is left alone."""
    if payment.status not in ("processing", "unknown"):
        return
    scope = Scope(payment.tenant_id, payment.mode)  # type: ignore[arg-type]
    if result.status in ("succeeded", "pending"):
        read_ahead(session, scope, payment)  # before anything is written: it is settled below
    payment.gateway, payment.gateway_reference = gateway.name, result.reference
    payment.updated_at = clock.utcnow()
    if result.instrument is not None:
        found = result.instrument
        payment.instrument_token, payment.brand, payment.last4 = found.token, found.brand, found.last4
        payment.exp_month, payment.exp_year = found.exp_month, found.exp_year
        payment.routing_number, payment.account_type = found.routing_number, found.account_type
        payment.holder_name, payment.fingerprint = found.holder_name, found.fingerprint
    if result.status not in ("succeeded", "pending"):
        payment.status = "failed"
        payment.failure_code = result.decline_code
        payment.failure_message = result.message[:500]
        if payment.pay_session_id:
            sessions.release(session, payment.pay_session_id)
        session.flush()
        notify.payment_failed(session, scope, payment)
        return
    payment.status = result.status
    payment.settles_on = result.settles_on
    settle(session, scope, payment)


def settle(session: Session, scope: Scope, payment: Payment) -> None:
    """A payment the gateway took (or money received outside it): give it a receipt
    number, apply it, mark its session paid and its entry balanced, and tell the biller."""
    # Not flushed first: a payment still to be inserted goes in with its number, not
    # inserted and then updated.
    with session.no_autoflush:
        number = sequences.next_values(session, scope, RECEIPT_SERIES, 1, gap_free=False)[0]
    payment.receipt_number = f"RCT-{number:06d}"
    with ledgering.posting_last(session, scope):
        paid = apply(session, scope, payment)
        if payment.pay_session_id:
            row = _locked_session(session, payment.pay_session_id)
            row.status, row.payment_id, row.paid_at = "paid", payment.id, clock.utcnow()
        session.flush()
        for hook in SETTLED_HOOKS:
            hook(session, scope, payment)
        notify.payment_succeeded(session, scope, payment, paid)


# Told of every payment settled, in its transaction: entries plug in here.
SETTLED_HOOKS: list[Callable[[Session, Scope, Payment], None]] = []


def apply(session: Session, scope: Scope, payment: Payment) -> list[Any]:
    """Put the payment's money on the invoices the payer chose, as they stand now (an
    invoice paid meanwhile takes less, the rest is unapplied cash), and post it. The
    billing accounts involved are locked first: payments on one account take turns, so
    two of them never over-apply an invoice."""
    on_record = [line for line in payment.lines if line.get("billing_account_id")]
    external = [(line.get("invoice_number"), int(line["pay_minor"]))
                for line in payment.lines if not line.get("billing_account_id")]
    lock_accounts(session, {line["billing_account_id"] for line in on_record})
    wanted: dict[str, int] | None = {line["invoice_id"]: int(line["pay_minor"])
                                     for line in on_record if line.get("invoice_id")}
    chosen = list(wanted or ())
    if not wanted and any(line.get("oldest_first") for line in on_record):
        # Paid on the account with no invoice named: its open invoices, oldest due first.
        chosen, wanted = open_invoice_ids(session, scope, str(payment.billing_account_id)), None
    invoices = ledgering.lock_invoices(session, chosen)
    payables = [Payable(i.id, i.billing_account_id, i.amount_due_minor, i.due_date, i.number)
                for i in invoices.values() if i.status in sessions.PAYABLE_STATUSES]
    shares: list[Share] = []
    if on_record:
        assert payment.billing_account_id is not None
        shares = allocate(sum(int(line["pay_minor"]) for line in on_record), payables,
                          holder_account_id=payment.billing_account_id, wanted=wanted)
    touched = ledgering.post(session, scope, payment, source=SourceRef("payment", payment.id),
                             shares=shares, external=external, fee_minor=payment.fee_minor,
                             kind="payment", description=f"Payment {payment.receipt_number}",
                             invoices=invoices)
    return [i for i in touched if i.status == "paid"]


def _locked_session(session: Session, session_id: str) -> PaySession:
    """The pay session, locked: as read ahead, else read now."""
    held: dict[str, PaySession] = txcache.cached(session, _LOCKED_SESSIONS, dict)
    if session_id in held:
        return held[session_id]
    row = session.get(PaySession, session_id, with_for_update=True)
    assert row is not None
    return row


def open_invoice_ids(session: Session, scope: Scope, billing_account_id: str) -> list[str]:
    return list(session.scalars(select(Invoice.id).where(
        Invoice.tenant_id == scope.tenant_id, Invoice.mode == scope.mode,
        Invoice.billing_account_id == billing_account_id,
        Invoice.status.in_(sessions.PAYABLE_STATUSES))))


def lock_accounts(session: Session, account_ids: set[str]) -> None:
    """Lock billing accounts in id order: what changes an account's money takes turns.
    Accounts this transaction locked already (here, or read FOR UPDATE and noted with
    locked_already) are not asked for again. (SQLite needs no row locks: a transaction
    there holds the one writer's lock from its first statement.)"""
    if not account_ids or not is_postgres(session):
        return
    held: set[str] = txcache.cached(session, _LOCKED_ACCOUNTS, set)
    wanted = sorted(account_ids - held)
    if wanted:
        session.execute(select(BillingAccount.id).where(
            BillingAccount.id.in_(wanted)).order_by(BillingAccount.id).with_for_update())
        held.update(wanted)


def locked_already(session: Session, account_ids: set[str]) -> None:
    """Note accounts this transaction has just read FOR UPDATE: lock_accounts skips them
    for the rest of the transaction (a savepoint's end forgets them, with its locks)."""
    if is_postgres(session):
        held: set[str] = txcache.cached(session, _LOCKED_ACCOUNTS, set)
        held.update(account_ids)


_LOCKED_ACCOUNTS = "billfold.locked_accounts"
