"""Refunds, full or partial, through the gateway: claimed ``pending``, asked of the gateway,
then recorded — posted when the gateway made it, whatever happened to the payment
meanwhile (the ledger follows the money), ``failed`` when it refused. A refund whose answer
was lost stays ``pending`` until the janitor asks the gateway (``resolve_refunds``).
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from billfold.core import clock, ids
from billfold.core.db import transaction
from billfold.core.errors import Conflict, invalid
from billfold.core.scope import Scope
from billfold.ledger.service import SourceRef
from billfold.payments import ledgering, paying, takeback
from billfold.payments.allocation import Share
from billfold.payments.gateways.base import Gateway, GatewayTimeout, RefundResult
from billfold.payments.models import (
    Payment,
    Refund,
)

log = logging.getLogger(__name__)


def refund(factory: sessionmaker[Session], gateway: Gateway, scope: Scope, *, payment_id: str,
           amount_minor: int | None = None, reason: str | None = None) -> Refund:
    """Refund all (the default) or part of a card payment, or of a settled bank payment
    (by a credit to the account), through the gateway; a payment recorded as received
    outside Billfold (a check) is refunded by recording it. A refund of everything left
    gives the service fee back too. Returns the refund ``succeeded``, or still ``pending``
    when the gateway did not answer (the janitor asks it later); a refund the gateway
    refuses is kept as ``failed`` and raises RefundRefused."""
    refund_id, reference, total, outside = _claim(factory, scope, payment_id, amount_minor,
                                                  reason)
    if outside:  # money received outside Billfold goes back the same way: only recorded
        result: RefundResult | None = RefundResult("succeeded", None, "recorded")
    else:
        try:
            result = gateway.refund(scope, reference=reference, amount_minor=total,
                                    idempotency_key=refund_id)
        except GatewayTimeout:
            log.warning("refund %s: the gateway did not answer; left pending", refund_id)
            result = None
    with factory() as session, transaction(session):
        done = (session.get(Refund, refund_id) if result is None
                else record_refund_outcome(session, scope, refund_id, result))
        assert done is not None
        session.expunge(done)
    if done.status == "failed":
        raise RefundRefused(done)
    return done


class RefundRefused(Conflict):
    """The gateway said no (the refund is kept, ``failed``, with its reason)."""

    def __init__(self, row: Refund) -> None:
        super().__init__(f"The gateway refused refund {row.id}: {row.failure_message}",
                         code="refund_refused")


def _claim(factory: sessionmaker[Session], scope: Scope, payment_id: str,
           amount_minor: int | None, reason: str | None) -> tuple[str, str, int, bool]:
    """Check the refund and record it ``pending``; returns its id, the charge's reference,
    the total to refund (fee included) and whether the money came outside the gateway."""
    with factory() as session, transaction(session):
        payment = takeback.get_payment(session, scope, payment_id, for_update=True)
        if payment.status not in takeback.REFUNDABLE:
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
        return (row.id, str(payment.gateway_reference), amount + row.fee_minor,
                payment.gateway == "none")


def record_refund_outcome(session: Session, scope: Scope, refund_id: str,
                          result: RefundResult | None) -> Refund:
    """The gateway's answer for a refund (None: it has no record of it), applied once: a
    refund it made is posted whatever our row says by now (the ledger follows the money),
    one it refused or never received fails if still pending. Locks the payment first, as
    everything that changes a payment's money does."""
    payment_id = session.scalars(select(Refund.payment_id).where(Refund.id == refund_id)).one()
    payment = takeback.get_payment(session, scope, payment_id, for_update=True)
    row = session.get(Refund, refund_id, with_for_update=True)
    assert row is not None
    if row.status == "succeeded":
        return row
    if result is not None and result.status == "succeeded":
        _refunded(session, scope, payment, row, result.reference)
    elif row.status == "pending":
        message = result.message if result else "The gateway has no record of this refund."
        row.status, row.failure_message = "failed", message[:500]
        session.flush()
    return row


def _refunded(session: Session, scope: Scope, payment: Payment, row: Refund,
              reference: str | None) -> None:
    """Post a refund the gateway made: it takes back exactly its amount of what the
    payment holds (``takeback.refund_parts``) and its fee from fee revenue (taken back,
    like the shares, as a negative amount: ``ledgering.post``'s sign). What the payment no
    longer holds — a chargeback, return or void took it while the refund was with the
    gateway — has left twice and is written off (a won chargeback brings it back)."""
    holds = payment.status in takeback.REFUNDABLE
    held = ledgering.applied(session, payment.id) if holds else ledgering.Applied([], [])
    fee_held = max(payment.fee_minor - takeback.fee_refunded(session, payment.id), 0) if holds else 0
    parts = takeback.refund_parts(row.amount_minor, held)
    fee = min(row.fee_minor, fee_held)
    lost = row.amount_minor + row.fee_minor - parts.total - fee
    row.status, row.gateway_reference, row.failure_message = "succeeded", reference, None
    paying.lock_accounts(session, {s.billing_account_id for s in parts.shares})
    ledgering.post(session, scope, payment, source=SourceRef("refund", row.id),
                   shares=[Share(s.invoice_id, s.billing_account_id, -s.amount_minor)
                           for s in parts.shares],
                   external=[(n, -a) for n, a in parts.external], fee_minor=-fee, kind="refund",
                   description=f"Refund of payment {payment.receipt_number}",
                   extra=takeback.write_off(lost, payment.currency))
    payment.refunded_minor += row.amount_minor
    if holds:
        payment.status = takeback.refunded_status(payment)
    payment.updated_at = clock.utcnow()
    session.flush()
    takeback.changed(session, scope, payment, "payment.refunded",
                     refund={"id": row.id, "amount_minor": row.amount_minor,
                             "fee_minor": row.fee_minor})


def list_refunds(session: Session, scope: Scope, payment_id: str) -> list[Refund]:
    takeback.get_payment(session, scope, payment_id)
    return list(session.scalars(select(Refund).where(Refund.payment_id == payment_id)
                                .order_by(Refund.id)))


def resolve_refunds(factory: sessionmaker[Session], gateway: Gateway, scope: Scope) -> int:
    """Refunds still pending STUCK_AFTER after they were asked for: the gateway's answer
    was lost (a timeout or a crash), since no call to it takes that long; younger ones may
    still be on their way to it."""
    with factory() as session:
        stuck = session.execute(select(Refund.id, Payment.gateway).join(
            Payment, Payment.id == Refund.payment_id).where(
            Refund.tenant_id == scope.tenant_id, Refund.mode == scope.mode,
            Refund.status == "pending", Refund.created_at < clock.utcnow() - takeback.STUCK_AFTER,
            Payment.gateway.in_((gateway.name, "none")))).all()
    for refund_id, made_by in stuck:
        # Money received outside the gateway is refunded by recording it: not recorded,
        # not refunded.
        result = gateway.lookup_refund(scope, idempotency_key=refund_id) \
            if made_by == gateway.name else None
        with factory() as session, transaction(session):
            record_refund_outcome(session, scope, refund_id, result)
    return len(stuck)
