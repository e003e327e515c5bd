"""Autopay: the owner of a billing account lets Billfold charge one of their saved payment
methods for each of the account's invoices, ``offset_days`` after its due date (within the
tenant's ``autopay_min_offset_days``..``autopay_max_offset_days``; enrollment.py).

Exactly one charge per invoice, however many workers run and however often: an attempt
row, unique per invoice, is claimed in a transaction of its own before the gateway is
called, and the charge's submission key is made from the invoice id, so a rerun, a second
worker or the resumption of an attempt a crash left behind finds the same payment instead
of making another. When autopay cannot pay an invoice (a decline, a return, a method gone)
the payer who enrolled is emailed, through the outbox, with a link to pay in the portal.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date, timedelta

from sqlalchemy import select, union, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from billfold.access.models import PayerGrant, PayerUser
from billfold.collections import enrollment as enrolling
from billfold.collections.models import AutopayAttempt, AutopayEnrollment
from billfold.core import clock, ids
from billfold.core.config import Settings
from billfold.core.db import transaction
from billfold.core.errors import BillfoldError, ValidationFailed
from billfold.core.scope import Scope
from billfold.customers.models import BillingAccount
from billfold.invoicing.models import Invoice
from billfold.money import Money
from billfold.notifications import outbox
from billfold.payments import notify, recording, sessions
from billfold.payments.gateways.base import Gateway
from billfold.payments.models import Payment, SavedMethod
from billfold.tenants import service as tenants

log = logging.getLogger(__name__)

GatewayFor = Callable[[Scope], Gateway]
# An attempt still "processing" this long after its claim, with no payment, was left by a
# worker that died between claiming and charging: another run takes it up again.
STALE_AFTER = timedelta(minutes=10)
# What an attempt becomes when its payment is in each state.
_ATTEMPT_STATUS = {"processing": "processing", "unknown": "processing", "pending": "pending",
                   "succeeded": "succeeded", "partially_refunded": "succeeded",
                   "refunded": "succeeded", "disputed": "succeeded", "failed": "failed",
                   "returned": "failed", "voided": "failed"}


@dataclass(frozen=True, slots=True)
class Summary:
    """What one run did: invoices claimed, and the attempts that reached each outcome."""

    claimed: int = 0
    succeeded: int = 0
    pending: int = 0
    failed: int = 0
    skipped: int = 0

    def __add__(self, other: Summary) -> Summary:
        return Summary(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


# -- running ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Charge:
    billing_account_id: str
    invoice_id: str
    invoice_number: str
    amount_minor: int
    kind: str
    token: str


def run(factory: sessionmaker[Session], gateway_for: GatewayFor, scope: Scope, *,
        base_url: str, today: date | None = None) -> Summary:
    """Charge every enrolled invoice of the scope that has come due (its due date plus the
    enrollment's offset on or before ``today``, the tenant's business date by default),
    once; take up attempts a crashed worker left; follow attempts still waiting for their
    payment's outcome. Each step runs in transactions of its own, the gateway outside them.
    ``base_url`` begins the portal link in the emails to payers."""
    gateway = gateway_for(scope)  # before any claim: a scope without one charges nothing
    with factory() as session:
        today = today or tenants.today(session, scope)
        due = _due(session, scope, today)
    counts: Counter[str] = Counter()
    for invoice_id in due:
        attempt_id = _claim(factory, scope, invoice_id, today)
        if attempt_id is not None:
            counts["claimed"] += 1
            counts[_attempt(factory, gateway, scope, attempt_id, today, base_url)] += 1
    for attempt_id in _stale(factory, scope):
        counts[_attempt(factory, gateway, scope, attempt_id, today, base_url)] += 1
    for attempt_id in _waiting(factory, scope):
        with factory() as session, transaction(session):
            counts[_follow(session, scope, _locked(session, attempt_id), base_url)] += 1
    return Summary(**{f.name: counts[f.name] for f in fields(Summary)})


def _due(session: Session, scope: Scope, today: date) -> list[str]:
    rows = session.execute(
        select(Invoice.id, Invoice.due_date, AutopayEnrollment.offset_days)
        .join(AutopayEnrollment, AutopayEnrollment.billing_account_id == Invoice.billing_account_id)
        .outerjoin(AutopayAttempt, AutopayAttempt.invoice_id == Invoice.id)
        .where(Invoice.tenant_id == scope.tenant_id, Invoice.mode == scope.mode,
               AutopayEnrollment.tenant_id == scope.tenant_id,
               AutopayEnrollment.mode == scope.mode,
               Invoice.status.in_(sessions.PAYABLE_STATUSES), Invoice.due_date <= today,
               AutopayAttempt.id.is_(None))
        .order_by(Invoice.due_date, Invoice.id))
    return [invoice_id for invoice_id, due_date, offset in rows
            if due_date is not None and due_date + timedelta(days=offset) <= today]


def _claim(factory: sessionmaker[Session], scope: Scope, invoice_id: str, today: date
           ) -> str | None:
    """Insert the invoice's one attempt and commit it, unless nothing is owed now or
    another worker has (the attempt's unique key then refuses this one)."""
    try:
        with factory() as session, transaction(session):
            invoice = session.get(Invoice, invoice_id)
            assert invoice is not None
            enrollment = enrolling.enrollment_of(session, scope, invoice.billing_account_id)
            due = invoice.amount_due_minor
            if enrollment is None or invoice.status not in sessions.PAYABLE_STATUSES or due <= 0:
                return None
            now = clock.utcnow()
            attempt = AutopayAttempt(
                id=ids.new_id("autopay_attempt"), tenant_id=scope.tenant_id, mode=scope.mode,
                invoice_id=invoice.id, billing_account_id=invoice.billing_account_id,
                enrollment_id=enrollment.id, payment_id=None, amount_minor=due,
                charge_date=today, status="processing", failure_message=None,
                created_at=now, updated_at=now)
            session.add(attempt)
            session.flush()
            return attempt.id
    except IntegrityError:
        return None


def _stale(factory: sessionmaker[Session], scope: Scope) -> list[str]:
    """Attempts claimed long ago that never got as far as a payment (their worker died),
    each taken over by one conditional update, so two runs never both take one."""
    cutoff = clock.utcnow() - STALE_AFTER
    with factory() as session:
        stale = list(session.scalars(select(AutopayAttempt.id).where(
            AutopayAttempt.tenant_id == scope.tenant_id, AutopayAttempt.mode == scope.mode,
            AutopayAttempt.status == "processing", AutopayAttempt.payment_id.is_(None),
            AutopayAttempt.updated_at < cutoff)))
    taken = []
    for attempt_id in stale:
        with factory() as session, transaction(session):
            won = session.execute(update(AutopayAttempt).where(
                AutopayAttempt.id == attempt_id, AutopayAttempt.status == "processing",
                AutopayAttempt.payment_id.is_(None), AutopayAttempt.updated_at < cutoff)
                .values(updated_at=clock.utcnow()).execution_options(synchronize_session=False))
            if won.rowcount:  # type: ignore[attr-defined]
                taken.append(attempt_id)
    return taken


def _attempt(factory: sessionmaker[Session], gateway: Gateway, scope: Scope, attempt_id: str,
             today: date, base_url: str) -> str:
    """Charge a claimed attempt through ``recording.record`` under a submission key made
    from the invoice, and return the status the attempt moved to ("" for none yet)."""
    with factory() as session, transaction(session):
        attempt = _locked(session, attempt_id)
        charge = _prepare(session, scope, attempt, today, base_url)
        if charge is None:
            return "skipped" if attempt.status == "skipped" \
                else _follow(session, scope, attempt, base_url)
    try:
        payment = recording.record(
            factory, lambda _: gateway, scope, billing_account_id=charge.billing_account_id,
            amount_minor=charge.amount_minor, method=charge.kind, instrument_token=charge.token,
            invoice_ids=[charge.invoice_id], reference=f"Autopay of invoice {charge.invoice_number}",
            submission_key=_submission_key(charge.invoice_id))
    except ValidationFailed as refused:  # paid or voided since: nothing was charged
        with factory() as session, transaction(session):
            attempt = _locked(session, attempt_id)
            attempt.status, attempt.updated_at = "skipped", clock.utcnow()
            attempt.failure_message = refused.detail[:500]
        return "skipped"
    with factory() as session, transaction(session):
        attempt = _locked(session, attempt_id)
        attempt.payment_id = payment.id
        return _follow(session, scope, attempt, base_url)


def _prepare(session: Session, scope: Scope, attempt: AutopayAttempt, today: date,
             base_url: str) -> _Charge | None:
    """What the attempt is to charge, or None: when a payment under its key exists
    already (a taken-over attempt whose worker got that far; it is linked, not charged
    again), or when it cannot charge (then it is skipped, and the payer told why)."""
    made = session.scalar(select(Payment.id).where(
        Payment.tenant_id == scope.tenant_id, Payment.mode == scope.mode,
        Payment.submission_key == _submission_key(attempt.invoice_id)))
    if made is not None:
        attempt.payment_id = made
        return None
    invoice = session.get(Invoice, attempt.invoice_id)
    account = session.get(BillingAccount, attempt.billing_account_id)
    enrollment = enrolling.enrollment_of(session, scope, attempt.billing_account_id)
    method = session.get(SavedMethod, enrollment.saved_method_id) if enrollment else None
    assert invoice is not None
    assert account is not None
    amount = min(attempt.amount_minor, invoice.amount_due_minor)
    why = _why_not(session, scope, enrollment, method, account, today)
    if invoice.status not in sessions.PAYABLE_STATUSES or amount <= 0:
        why, tell = "the invoice was paid or voided before autopay charged it", False
    else:
        tell = why is not None and why != _NO_OWNER
    if why is not None or method is None:
        attempt.status, attempt.failure_message = "skipped", why
        attempt.updated_at = clock.utcnow()
        if tell:
            _tell_payer(session, scope, attempt, str(why), base_url, method=method)
        return None
    attempt.amount_minor = amount
    return _Charge(account.id, invoice.id, str(invoice.number or invoice.id), amount,
                   method.kind, method.token)


_NO_OWNER = "the payer who set up autopay no longer owns this account"


def _why_not(session: Session, scope: Scope, enrollment: AutopayEnrollment | None,
             method: SavedMethod | None, account: BillingAccount, today: date) -> str | None:
    """Why the account's enrollment cannot charge now: it is gone, its payer no longer
    owns the account (the money is not theirs to spend any more), or its method cannot
    pay."""
    if enrollment is None or method is None:
        return "autopay was turned off"
    owner = session.scalar(select(PayerGrant.id).where(
        PayerGrant.payer_user_id == enrollment.payer_user_id,
        PayerGrant.billing_account_id == account.id, PayerGrant.role == "owner"))
    if owner is None or method.payer_user_id != enrollment.payer_user_id:
        return _NO_OWNER
    return enrolling.unusable(session, scope, method, account, today)


def _submission_key(invoice_id: str) -> str:
    return f"autopay:{invoice_id}"


def _waiting(factory: sessionmaker[Session], scope: Scope) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(AutopayAttempt.id).where(
            AutopayAttempt.tenant_id == scope.tenant_id, AutopayAttempt.mode == scope.mode,
            AutopayAttempt.status.in_(("processing", "pending")),
            AutopayAttempt.payment_id.is_not(None))))


def _follow(session: Session, scope: Scope, attempt: AutopayAttempt, base_url: str) -> str:
    """Bring the (locked) attempt to its payment's state; the first time it fails
    (declined, returned by the bank), tell the payer. Returns the status it moved to, or
    "" when it stays as it was."""
    payment = session.get(Payment, attempt.payment_id) if attempt.payment_id else None
    if payment is None or attempt.status not in ("processing", "pending"):
        return ""
    status = _ATTEMPT_STATUS.get(payment.status, "processing")
    if status == attempt.status:
        return ""
    attempt.status, attempt.updated_at = status, clock.utcnow()
    if status == "failed":
        attempt.failure_message = _failure(payment)[:500]
        _tell_payer(session, scope, attempt, attempt.failure_message, base_url,
                    method_text=notify.masked_method(payment))
    return status


def _failure(payment: Payment) -> str:
    if payment.status == "returned":
        return f"your bank returned the payment (return code {payment.return_code})"
    if payment.status == "voided":
        return "the bank payment was cancelled before it settled"
    return payment.failure_message or "the payment was declined"


def _locked(session: Session, attempt_id: str) -> AutopayAttempt:
    attempt = session.get(AutopayAttempt, attempt_id, with_for_update=True)
    assert attempt is not None
    return attempt


def _tell_payer(session: Session, scope: Scope, attempt: AutopayAttempt, why: str,
                base_url: str, *, method: SavedMethod | None = None,
                method_text: str | None = None) -> None:
    """Email the payer who enrolled (while the enrollment lasts) that autopay did not pay
    the invoice, why, and where to pay it instead."""
    enrollment = session.get(AutopayEnrollment, attempt.enrollment_id) \
        or enrolling.enrollment_of(session, scope, attempt.billing_account_id)
    user = session.get(PayerUser, enrollment.payer_user_id) if enrollment else None
    invoice = session.get(Invoice, attempt.invoice_id)
    account = session.get(BillingAccount, attempt.billing_account_id)
    if user is None or invoice is None or account is None:
        return
    biller = tenants.get_tenant(session, scope.tenant_id).name
    number = invoice.number or invoice.id
    amount = Money(attempt.amount_minor, invoice.currency).format()
    if method_text is None and method is not None:
        method_text = _method_text(method)
    text = [f"Autopay could not pay invoice {number} of account {account.number}.", "",
            f"Amount:          {amount}"]
    if method_text:
        text.append(f"Payment method:  {method_text}")
    text += [f"Why:             {why}", "",
             "The invoice is still open. You can pay it in the portal:",
             f"{base_url.rstrip('/')}/portal/invoices", "", biller]
    outbox.enqueue_email(session, scope, to=[user.email],
                         subject=f"{biller}: autopay could not pay invoice {number}",
                         text="\n".join(text) + "\n", about=("autopay_attempt", attempt.id))


def _method_text(method: SavedMethod) -> str:
    if method.kind == "card":
        return f"{notify.CARD_TYPES.get(method.brand or '', 'Card')} •••• {method.last4}"
    return f"Bank account •••• {method.last4}"


def run_everywhere(factory: sessionmaker[Session], gateways: GatewayFor,
                   settings: Settings) -> Summary:
    """``run`` for every scope with an enrollment or an attempt still waiting (the worker's
    round). A scope whose gateway is missing (live mode before one is configured) is
    passed over; one whose run fails is logged, and the others still run."""
    with factory() as session:
        scopes = session.execute(union(
            select(AutopayEnrollment.tenant_id, AutopayEnrollment.mode),
            select(AutopayAttempt.tenant_id, AutopayAttempt.mode).where(
                AutopayAttempt.status.in_(("processing", "pending"))))).all()
    total = Summary()
    for tenant_id, mode in scopes:
        scope = Scope(tenant_id, mode)  # type: ignore[arg-type]
        try:
            total += run(factory, gateways, scope, base_url=settings.base_url)
        except BillfoldError as error:
            log.info("autopay passed over tenant %s (%s): %s", tenant_id, mode, error)
        except Exception:
            log.exception("autopay failed for tenant %s (%s)", tenant_id, mode)
    return total
