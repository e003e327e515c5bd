"""What happens to a payment afterwards: refunds, voids, settlement, ACH returns and
chargebacks, and the janitor that settles payments whose outcome was lost.

Each change is one balanced ledger entry (taking back, or putting back, what the payment
had applied) and one event. Gateway notifications are recorded by their event id first,
so the same notification delivered twice changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from billfold.core import clock, ids
from billfold.core.db import get_scoped, transaction
from billfold.core.errors import BillfoldError, Conflict, invalid
from billfold.core.scope import Scope
from billfold.ledger.service import AccountRef, PostingLine, SourceRef
from billfold.money import Money
from billfold.payments import ledgering, notify, paying, sessions
from billfold.payments.allocation import Payable, Share, allocate, take_back
from billfold.payments.gateways.base import Gateway, GatewayEvent, RefundResult
from billfold.payments.models import (
    BlockedBankAccount,
    Dispute,
    GatewayNotification,
    Payment,
    Refund,
)
from billfold.tenants import service as tenants

log = logging.getLogger(__name__)
REFUNDABLE = ("succeeded", "partially_refunded")
# Payments the gateway may still tell us about (settlement, return, dispute) or whose
# outcome we still have to ask for.
WATCHED = ("processing", "unknown", "pending", "succeeded", "partially_refunded", "disputed")
BLOCKING_RETURN_CODES = ("R02", "R03", "R04")
# A payment still "processing" this long after it started lost its outcome (a crash
# between the steps); the janitor asks the gateway what happened.
STUCK_AFTER = timedelta(minutes=10)


def get_payment(session: Session, scope: Scope, payment_id: str, *, for_update: bool = False
                ) -> Payment:
    payment: Payment = get_scoped(session, Payment, payment_id, scope, "payment",
                                  for_update=for_update)
    return payment


# -- refunds -----------------------------------------------------------------------------


def refund(factory: sessionmaker[Session], gateway: Gateway, scope: Scope, *, payment_id: str,
           amount_minor: int | None = None, reason: str | None = None) -> Refund:
    """Refund all (the default) or part of a card payment through the gateway (a payment
    recorded as received outside Billfold — a check — is refunded by recording it). A
    refund of everything left gives the service fee back too. The invoices the payment
    paid last reopen first."""
    with factory() as session, transaction(session):
        payment = get_payment(session, scope, payment_id, for_update=True)
        if payment.status not in REFUNDABLE:
            raise Conflict(f"payment {payment.id} is {payment.status}; only a succeeded payment "
                           "can be refunded" + (" (void a pending bank payment instead)"
                                                if payment.status == "pending" else ""),
                           code="payment_not_refundable")
        left = payment.amount_minor - payment.refunded_minor
        amount = left if amount_minor is None else amount_minor
        if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= left:
            raise invalid("amount_minor", f"must be from 1 to {left}, what is left to refund")
        if reason is not None and len(reason) > 500:
            raise invalid("reason", "must be at most 500 characters")
        pending = session.scalar(select(Refund.id).where(Refund.payment_id == payment.id,
                                                         Refund.status == "pending"))
        if pending is not None:
            raise Conflict(f"refund {pending} of this payment is still being processed",
                           code="refund_in_progress")
        row = Refund(id=ids.new_id("refund"), tenant_id=scope.tenant_id, mode=scope.mode,
                     payment_id=payment.id, idempotency_key="", amount_minor=amount,
                     fee_minor=payment.fee_minor if amount == left else 0, status="pending",
                     reason=reason, created_at=clock.utcnow())
        row.idempotency_key = row.id
        session.add(row)
        reference, refund_id = str(payment.gateway_reference), row.id
        total, outside = amount + row.fee_minor, payment.gateway == "none"
    if outside:  # money received outside Billfold goes back the same way: only recorded
        result = RefundResult("succeeded", None, "recorded")
    else:
        result = gateway.refund(scope, reference=reference, amount_minor=total,
                                idempotency_key=refund_id)
    with factory() as session, transaction(session):
        done = session.get(Refund, refund_id, with_for_update=True)
        assert done is not None
        payment = get_payment(session, scope, done.payment_id, for_update=True)
        if result.status != "succeeded":
            done.status, done.failure_message = "failed", result.message[:500]
        else:
            _refunded(session, scope, payment, done, result.reference)
        session.flush()
        session.expunge(done)
    return done


def _refunded(session: Session, scope: Scope, payment: Payment, row: Refund,
              reference: str | None) -> None:
    row.status, row.gateway_reference = "succeeded", reference
    applied = ledgering.applied(session, payment.id)
    back = take_back(row.amount_minor, applied.shares) if applied.shares else []
    external = [(n, -a) for n, a in _external_back(applied.external, row.amount_minor)]
    paying.lock_accounts(session, {s.billing_account_id for s in back})
    ledgering.post(session, scope, payment, source=SourceRef("refund", row.id), shares=back,
                   external=external, fee_minor=row.fee_minor, kind="refund",
                   description=f"Refund of payment {payment.receipt_number}")
    payment.refunded_minor += row.amount_minor
    payment.status = "refunded" if payment.refunded_minor >= payment.amount_minor \
        else "partially_refunded"
    payment.updated_at = clock.utcnow()
    session.flush()
    notify.payment_changed(session, scope, payment, "payment.refunded",
                           refund={"id": row.id, "amount_minor": row.amount_minor,
                                   "fee_minor": row.fee_minor})


def _external_back(external: list[tuple[str | None, int]], amount: int
                   ) -> list[tuple[str | None, int]]:
    result, left = [], amount
    for number, paid in reversed(external):
        take = min(left, paid)
        if take:
            result.append((number, take))
            left -= take
    return result


def list_refunds(session: Session, scope: Scope, payment_id: str) -> list[Refund]:
    get_payment(session, scope, payment_id)
    return list(session.scalars(select(Refund).where(Refund.payment_id == payment_id)
                                .order_by(Refund.id)))


# -- voids, settlement, returns, disputes -----------------------------------------------


def void(factory: sessionmaker[Session], gateway: Gateway, scope: Scope, *, payment_id: str
         ) -> Payment:
    """Cancel a bank payment that has not settled: the gateway stops the debit, and the
    invoices it paid reopen."""
    with factory() as session:
        payment = get_payment(session, scope, payment_id)
        if payment.status != "pending":
            raise Conflict(f"payment {payment.id} is {payment.status}; only a pending bank "
                           "payment can be voided (refund a settled one)",
                           code="payment_not_voidable")
        reference = str(payment.gateway_reference)
    result = gateway.void(scope, reference=reference)
    if result.status != "voided":
        raise Conflict(f"the gateway refused the void: {result.message}", code="void_refused")
    with factory() as session, transaction(session):
        payment = get_payment(session, scope, payment_id, for_update=True)
        if payment.status == "pending":
            _take_back_all(session, scope, payment, kind="void", source=("void", payment.id),
                           description=f"Void of payment {payment.receipt_number}")
            payment.status = "voided"
            payment.updated_at = clock.utcnow()
            session.flush()
            notify.payment_changed(session, scope, payment, "payment.refunded", voided=True)
        session.expunge(payment)
    return payment


def _take_back_all(session: Session, scope: Scope, payment: Payment, *, kind: str,
                   source: tuple[str, str], description: str,
                   extra: list[PostingLine] | None = None) -> list[Share]:
    """Take back everything the payment still holds, service fee included (less what
    refunds gave back already). Returns the shares taken back, as positive amounts."""
    applied = ledgering.applied(session, payment.id)
    fee_left = payment.fee_minor - _fee_refunded(session, payment.id)
    paying.lock_accounts(session, {s.billing_account_id for s in applied.shares})
    ledgering.post(session, scope, payment, source=SourceRef(*source),
                   shares=[Share(s.invoice_id, s.billing_account_id, -s.amount_minor)
                           for s in applied.shares],
                   external=[(n, -a) for n, a in applied.external], fee_minor=fee_left,
                   kind=kind, description=description, extra=extra or [])
    return applied.shares


def _fee_refunded(session: Session, payment_id: str) -> int:
    return sum(session.scalars(select(Refund.fee_minor).where(
        Refund.payment_id == payment_id, Refund.status == "succeeded")))


def handle_event(session: Session, scope: Scope, gateway: Gateway, event: GatewayEvent) -> bool:
    """Apply one gateway notification. Returns False for one handled before."""
    payment = session.scalars(select(Payment).where(
        Payment.tenant_id == scope.tenant_id, Payment.mode == scope.mode,
        Payment.gateway == gateway.name, Payment.gateway_reference == event.reference)
        .with_for_update()).one_or_none()
    try:
        with session.begin_nested():
            session.add(GatewayNotification(
                id=ids.new_id("gateway_event"), tenant_id=scope.tenant_id, mode=scope.mode,
                gateway=gateway.name, event_id=event.event_id, kind=event.kind,
                payment_id=payment.id if payment else None, received_at=clock.utcnow()))
    except IntegrityError:
        return False
    if payment is None:
        log.warning("gateway %s event %s names no payment (%s)", gateway.name, event.event_id,
                    event.reference)
        return True
    handler = _HANDLERS[event.kind]
    handler(session, scope, payment, event)
    payment.updated_at = clock.utcnow()
    session.flush()
    return True


def _settled(session: Session, scope: Scope, payment: Payment, event: GatewayEvent) -> None:
    if payment.status == "pending":
        payment.status = "succeeded"


def _returned(session: Session, scope: Scope, payment: Payment, event: GatewayEvent) -> None:
    if payment.status not in ("pending", "succeeded", "partially_refunded"):
        return
    code = event.return_code or "R??"
    fee = tenants.get_settings(session, scope).ach_return_fee_minor
    extra = []
    if fee and payment.billing_account_id:
        extra = [PostingLine(AccountRef("receivable", payment.billing_account_id),
                             Money(fee, payment.currency)),
                 PostingLine(AccountRef("fee_revenue"), Money(-fee, payment.currency))]
    _take_back_all(session, scope, payment, kind="return", source=("ach_return", payment.id),
                   description=f"ACH return {code} of payment {payment.receipt_number}",
                   extra=extra)
    payment.status, payment.return_code = "returned", code[:3]
    if code in BLOCKING_RETURN_CODES and payment.fingerprint:
        try:
            with session.begin_nested():
                session.add(BlockedBankAccount(
                    id=ids.new_id("blocked_bank_account"), tenant_id=scope.tenant_id,
                    mode=scope.mode, fingerprint=payment.fingerprint, return_code=code,
                    payment_id=payment.id, last4=payment.last4, created_at=clock.utcnow()))
        except IntegrityError:
            pass  # blocked already by an earlier return
    session.flush()
    notify.payment_changed(session, scope, payment, "payment.returned", return_code=code,
                           return_fee_minor=fee)


def _dispute_opened(session: Session, scope: Scope, payment: Payment, event: GatewayEvent
                    ) -> None:
    if payment.status not in REFUNDABLE:
        return
    fee = event.fee_minor or 0
    dispute = Dispute(id=ids.new_id("dispute"), tenant_id=scope.tenant_id, mode=scope.mode,
                      payment_id=payment.id, status="open",
                      amount_minor=payment.amount_minor - payment.refunded_minor,
                      fee_minor=fee, opened_on=event.on_date, closed_on=None,
                      created_at=clock.utcnow())
    session.add(dispute)
    extra = [PostingLine(AccountRef("processing_fees"), Money(fee, payment.currency)),
             PostingLine(AccountRef("cash_clearing"), Money(-fee, payment.currency))] if fee else []
    _take_back_all(session, scope, payment, kind="dispute", source=("dispute", dispute.id),
                   description=f"Chargeback of payment {payment.receipt_number}", extra=extra)
    payment.status = "disputed"
    session.flush()
    notify.payment_changed(session, scope, payment, "payment.disputed",
                           dispute={"id": dispute.id, "status": "open", "fee_minor": fee})


def _dispute_closed(session: Session, scope: Scope, payment: Payment, event: GatewayEvent
                    ) -> None:
    dispute = session.scalars(select(Dispute).where(
        Dispute.payment_id == payment.id, Dispute.status == "open")
        .with_for_update()).one_or_none()
    if dispute is None:
        return
    dispute.closed_on = event.on_date
    if event.kind == "dispute_lost":
        dispute.status = "lost"  # final: the invoices stay reopened, nothing to post
    else:
        dispute.status = "won"
        _reinstate(session, scope, payment, dispute)
        payment.status = "succeeded" if not payment.refunded_minor else "partially_refunded"
    session.flush()
    notify.payment_changed(session, scope, payment, "payment.disputed",
                           dispute={"id": dispute.id, "status": dispute.status,
                                    "fee_minor": dispute.fee_minor})


def _reinstate(session: Session, scope: Scope, payment: Payment, dispute: Dispute) -> None:
    """The money is back: apply it again to the invoices it had paid, as they stand now
    (one paid meanwhile takes less; the rest is unapplied cash)."""
    taken = [line for line in payment.lines if line.get("billing_account_id")]
    external = [(line.get("invoice_number"), int(line["pay_minor"]))
                for line in payment.lines if not line.get("billing_account_id")]
    paying.lock_accounts(session, {line["billing_account_id"] for line in taken})
    invoices = ledgering.lock_invoices(session, [line["invoice_id"] for line in taken
                                                 if line.get("invoice_id")])
    payables = [Payable(i.id, i.billing_account_id, i.amount_due_minor, i.due_date, i.number)
                for i in invoices.values() if i.status in sessions.PAYABLE_STATUSES]
    shares: list[Share] = []
    if taken and payment.billing_account_id:
        shares = allocate(dispute.amount_minor - sum(a for _, a in external), payables,
                          holder_account_id=payment.billing_account_id,
                          wanted={line["invoice_id"]: int(line["pay_minor"]) for line in taken
                                  if line.get("invoice_id")})
    ledgering.post(session, scope, payment, source=SourceRef("dispute_won", dispute.id),
                   shares=shares, external=external,
                   fee_minor=payment.fee_minor - _fee_refunded(session, payment.id),
                   kind="reinstate", description=f"Chargeback reversed: payment "
                                                 f"{payment.receipt_number}")


_HANDLERS = {"settled": _settled, "returned": _returned, "dispute_opened": _dispute_opened,
             "dispute_won": _dispute_closed, "dispute_lost": _dispute_closed}


def process_events(factory: sessionmaker[Session], gateway: Gateway, scope: Scope, *,
                   through: date) -> int:
    """Fetch the gateway's due notifications for ``scope`` and apply each in a
    transaction of its own; acknowledge them once committed. Returns how many changed
    something."""
    changed = 0
    events = gateway.events(scope, through=through)
    for event in events:
        with factory() as session, transaction(session):
            changed += handle_event(session, scope, gateway, event)
    gateway.acknowledge(scope, [e.event_id for e in events])
    return changed


# -- janitor ------------------------------------------------------------------------------


def resolve_unknown(factory: sessionmaker[Session], gateway: Gateway, scope: Scope) -> int:
    """Settle payments whose outcome was lost (a gateway timeout, or a crash between the
    steps) by asking the gateway. A payment it never charged fails, and its session can
    be paid again. Never charges."""
    with factory() as session:
        cutoff = clock.utcnow() - STUCK_AFTER
        stuck = list(session.scalars(select(Payment.id).where(
            Payment.tenant_id == scope.tenant_id, Payment.mode == scope.mode,
            (Payment.status == "unknown")
            | ((Payment.status == "processing") & (Payment.created_at < cutoff)))))
    resolved = 0
    for payment_id in stuck:
        result = gateway.lookup(scope, idempotency_key=payment_id)
        with factory() as session, transaction(session):
            payment = get_payment(session, scope, payment_id, for_update=True)
            if payment.status not in ("unknown", "processing"):
                continue
            if result is None:
                payment.status, payment.failure_code = "failed", "not_charged"
                payment.failure_message = "The gateway has no record of this payment."
                if payment.pay_session_id:
                    sessions.release(session, payment.pay_session_id)
                notify.payment_failed(session, scope, payment)
            else:
                paying.record_outcome(session, gateway, payment, result)
            resolved += 1
    return resolved


def housekeeping(factory: sessionmaker[Session], gateway: Gateway, scope: Scope) -> int:
    """Everything time-driven for one scope: gateway notifications due by the scope's
    business date, and payments whose outcome was lost."""
    with factory() as session:
        today = tenants.today(session, scope)
    return process_events(factory, gateway, scope, through=today) + \
        resolve_unknown(factory, gateway, scope)


def advance_test_clock(factory: sessionmaker[Session], gateway: Gateway, scope: Scope, *,
                       days: int) -> int:
    """Move the tenant's test clock and run what fell due: the test gateway's
    settlements, returns and chargebacks. Returns the test clock's new offset in days."""
    with factory() as session, transaction(session):
        offset = tenants.advance_test_clock(session, scope, days=days).clock_offset_days
    housekeeping(factory, gateway, scope)
    return offset


def housekeeping_everywhere(factory: sessionmaker[Session],
                            gateway_for: Callable[[Scope], Gateway]) -> int:
    """``housekeeping`` for every scope with payments a gateway may still report on or
    whose outcome was lost (the worker's round)."""
    with factory() as session:
        scopes = session.execute(select(Payment.tenant_id, Payment.mode).where(
            Payment.gateway != "none", Payment.status.in_(WATCHED)).distinct()).all()
    changed = 0
    for tenant_id, mode in scopes:
        scope = Scope(tenant_id, mode)  # type: ignore[arg-type]
        try:
            gateway = gateway_for(scope)
        except BillfoldError:
            continue  # live mode without a gateway took no payments to look after
        changed += housekeeping(factory, gateway, scope)
    return changed
