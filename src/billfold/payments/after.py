"""What happens to a payment afterwards: voids, settlement, ACH returns and chargebacks
(refunds: ``refunds``; what they share: ``takeback``), and the janitor that settles
payments and refunds whose outcome was lost.

Each change is one balanced ledger entry (taking back, or putting back, what the payment
had applied) and one event. Gateway notifications are recorded by their event id first,
so the same notification delivered twice changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from billfold.core import clock, ids
from billfold.core.db import transaction
from billfold.core.errors import BillfoldError, Conflict
from billfold.core.scope import Scope
from billfold.ledger.service import AccountRef, PostingLine, SourceRef
from billfold.money import Money
from billfold.payments import ledgering, notify, paying, refunds, sessions, takeback
from billfold.payments.allocation import Payable, Share, allocate
from billfold.payments.gateways.base import Gateway, GatewayEvent
from billfold.payments.models import (
    BlockedBankAccount,
    Dispute,
    GatewayNotification,
    Payment,
    PaymentAllocation,
    Refund,
)
from billfold.tenants import service as tenants

log = logging.getLogger(__name__)
# Payments the gateway may still tell us about (settlement, return, dispute) or whose
# outcome we still have to ask for.
WATCHED = ("processing", "unknown", "pending", "succeeded", "partially_refunded", "disputed")
BLOCKING_RETURN_CODES = ("R02", "R03", "R04")


# -- refunds -----------------------------------------------------------------------------


# -- voids, settlement, returns, disputes -----------------------------------------------


def void(factory: sessionmaker[Session], gateway: Gateway, scope: Scope, *, payment_id: str
         ) -> Payment:
    """Cancel a bank payment that has not settled: the gateway stops the debit, and the
    invoices it paid reopen."""
    with factory() as session:
        payment = takeback.get_payment(session, scope, payment_id)
        if payment.status != "pending":
            raise Conflict(f"payment {payment.id} is {payment.status}; only a pending bank "
                           "payment can be voided (refund a settled one)",
                           code="payment_not_voidable")
        reference = str(payment.gateway_reference)
    result = gateway.void(scope, reference=reference)
    if result.status != "voided":
        raise Conflict(f"the gateway refused the void: {result.message}", code="void_refused")
    with factory() as session, transaction(session):
        payment = takeback.get_payment(session, scope, payment_id, for_update=True)
        if payment.status == "pending":
            takeback.take_back_all(session, scope, payment, kind="void",
                                   source=("void", payment.id),
                                   description=f"Void of payment {payment.receipt_number}")
            payment.status = "voided"
            payment.updated_at = clock.utcnow()
            session.flush()
            takeback.changed(session, scope, payment, "payment.refunded", voided=True)
        session.expunge(payment)
    return payment


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
    # The return fee is charged to the billing account: a payment without one (a session
    # that keeps no records) is returned without it.
    fee = tenants.get_settings(session, scope).ach_return_fee_minor \
        if payment.billing_account_id else 0
    extra = []
    if fee and payment.billing_account_id:
        extra = [PostingLine(AccountRef("receivable", payment.billing_account_id),
                             Money(fee, payment.currency)),
                 PostingLine(AccountRef("fee_revenue"), Money(-fee, payment.currency))]
    takeback.take_back_all(session, scope, payment, kind="return",
                           source=("ach_return", payment.id),
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
    takeback.changed(session, scope, payment, "payment.returned", return_code=code,
                     return_fee_minor=fee)


def _dispute_opened(session: Session, scope: Scope, payment: Payment, event: GatewayEvent
                    ) -> None:
    if payment.status not in takeback.REFUNDABLE:
        return
    fee = event.fee_minor or 0
    dispute_id = ids.new_id("dispute")
    extra = [PostingLine(AccountRef("processing_fees"), Money(fee, payment.currency)),
             PostingLine(AccountRef("cash_clearing"), Money(-fee, payment.currency))] if fee else []
    taken = takeback.take_back_all(session, scope, payment, kind="dispute",
                                   source=("dispute", dispute_id),
                                   description=f"Chargeback of payment {payment.receipt_number}",
                                   extra=extra)
    # Its amount is all the chargeback took of the payment, the service fee included: a
    # won dispute puts back as much (less what refunds paid out meanwhile).
    dispute = Dispute(id=dispute_id, tenant_id=scope.tenant_id, mode=scope.mode,
                      payment_id=payment.id, status="open", amount_minor=taken,
                      fee_minor=fee, opened_on=event.on_date, closed_on=None,
                      created_at=clock.utcnow())
    session.add(dispute)
    payment.status = "disputed"
    session.flush()
    takeback.changed(session, scope, payment, "payment.disputed",
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
        payment.status = takeback.refunded_status(payment)
    session.flush()
    takeback.changed(session, scope, payment, "payment.disputed",
                     dispute={"id": dispute.id, "status": dispute.status,
                              "fee_minor": dispute.fee_minor})


def _reinstate(session: Session, scope: Scope, payment: Payment, dispute: Dispute) -> None:
    """The money is back: put it where the chargeback took it from — the same invoices
    (those reached through an entry's assignment too), unapplied cash and invoices kept
    elsewhere — as they stand now: an invoice paid meanwhile takes less, the rest is
    unapplied cash. A refund made while the dispute was open was written off; what it
    paid out comes back to the write-off, not to the invoices."""
    taken = _taken_by_dispute(session, payment.id)
    principal = min(taken.total, payment.amount_minor - payment.refunded_minor)
    fee = max(min(dispute.amount_minor - taken.total,
                  payment.fee_minor - takeback.fee_refunded(session, payment.id)), 0)
    back = takeback.minus(taken, takeback.refund_parts(taken.total - principal, taken))
    wanted = {s.invoice_id: s.amount_minor for s in back.shares if s.invoice_id}
    on_record = principal - sum(a for _, a in back.external)
    holder = payment.billing_account_id
    paying.lock_accounts(session, {s.billing_account_id for s in back.shares} | (
        {holder} if holder else set()))
    invoices = ledgering.lock_invoices(session, list(wanted))
    payables = [Payable(i.id, i.billing_account_id, i.amount_due_minor, i.due_date, i.number)
                for i in invoices.values() if i.status in sessions.PAYABLE_STATUSES]
    shares = allocate(on_record, payables, holder_account_id=holder, wanted=wanted) \
        if on_record and holder else []
    ledgering.post(session, scope, payment, source=SourceRef("dispute_won", dispute.id),
                   shares=shares, external=back.external, fee_minor=fee, kind="reinstate",
                   description=f"Chargeback reversed: payment {payment.receipt_number}",
                   extra=takeback.write_off(-max(dispute.amount_minor - principal - fee, 0),
                                            payment.currency),
                   invoices=invoices)


def _taken_by_dispute(session: Session, payment_id: str) -> ledgering.Applied:
    """What the open chargeback took back, as positive amounts: the payment's ``dispute``
    allocations since an earlier chargeback's reinstatement (a payment has one dispute
    open at a time, and nothing else moves its money while one is)."""
    rows = session.execute(
        select(PaymentAllocation.kind, PaymentAllocation.invoice_id,
               PaymentAllocation.billing_account_id, PaymentAllocation.invoice_number,
               PaymentAllocation.amount_minor)
        .where(PaymentAllocation.payment_id == payment_id,
               PaymentAllocation.kind.in_(("dispute", "reinstate")))
        .order_by(PaymentAllocation.id)).all()
    shares: dict[tuple[str | None, str], int] = {}
    external: dict[str | None, int] = {}
    for kind, invoice_id, account_id, number, amount in rows:
        if kind == "reinstate":
            shares, external = {}, {}
        elif account_id is None:
            external[number] = external.get(number, 0) - amount
        else:
            shares[(invoice_id, account_id)] = shares.get((invoice_id, account_id), 0) - amount
    return ledgering.Applied([Share(i, a, v) for (i, a), v in shares.items() if v],
                             [(n, v) for n, v in external.items() if v])


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
    """Settle payments and refunds whose outcome was lost (a gateway timeout, or a crash
    between the steps) by asking the gateway. A payment it never charged fails, and its
    session can be paid again; a refund it never made fails, and may be asked for again.
    Never charges nor refunds."""
    with factory() as session:
        cutoff = clock.utcnow() - takeback.STUCK_AFTER
        stuck = list(session.scalars(select(Payment.id).where(
            Payment.tenant_id == scope.tenant_id, Payment.mode == scope.mode,
            (Payment.status == "unknown")
            | ((Payment.status == "processing") & (Payment.created_at < cutoff)))))
    resolved = 0
    for payment_id in stuck:
        result = gateway.lookup(scope, idempotency_key=payment_id)
        with factory() as session, transaction(session):
            payment = takeback.get_payment(session, scope, payment_id, for_update=True)
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
    return resolved + refunds.resolve_refunds(factory, gateway, scope)


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
        scopes = {(t, m) for t, m in session.execute(select(Payment.tenant_id, Payment.mode)
                                                     .where(Payment.gateway != "none",
                                                            Payment.status.in_(WATCHED))
                                                     .distinct())}
        # A refund whose answer was lost, of a payment no longer watched (one returned
        # meanwhile, or received outside the gateway).
        scopes |= {(t, m) for t, m in session.execute(select(Refund.tenant_id, Refund.mode)
                                                     .where(Refund.status == "pending")
                                                     .distinct())}
    changed = 0
    for tenant_id, mode in sorted(scopes):
        scope = Scope(tenant_id, mode)  # type: ignore[arg-type]
        try:
            gateway = gateway_for(scope)
        except BillfoldError:
            continue  # live mode without a gateway took no payments to look after
        changed += housekeeping(factory, gateway, scope)
    return changed
