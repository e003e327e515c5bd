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
from typing import Any

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
from billfold.payments.gateways.base import Gateway, GatewayEvent, GatewayTimeout, RefundResult
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
REFUNDABLE = ("succeeded", "partially_refunded")
# Payments the gateway may still tell us about (settlement, return, dispute) or whose
# outcome we still have to ask for.
WATCHED = ("processing", "unknown", "pending", "succeeded", "partially_refunded", "disputed")
BLOCKING_RETURN_CODES = ("R02", "R03", "R04")
# A payment still "processing", or a refund still "pending", this long after it started
# lost its outcome (a crash between the steps, a timeout); the janitor asks the gateway.
STUCK_AFTER = timedelta(minutes=10)


def get_payment(session: Session, scope: Scope, payment_id: str, *, for_update: bool = False
                ) -> Payment:
    payment: Payment = get_scoped(session, Payment, payment_id, scope, "payment",
                                  for_update=for_update)
    return payment


# -- refunds -----------------------------------------------------------------------------


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
        return (row.id, str(payment.gateway_reference), amount + row.fee_minor,
                payment.gateway == "none")


def record_refund_outcome(session: Session, scope: Scope, refund_id: str,
                          result: RefundResult | None) -> Refund:
    """The gateway's answer for a refund (None: it has no record of it), applied once: a
    refund it made is posted whatever our row says by now (the ledger follows the money),
    one it refused or never received fails if still pending. Locks the payment first, as
    everything that changes a payment's money does."""
    payment_id = session.scalars(select(Refund.payment_id).where(Refund.id == refund_id)).one()
    payment = get_payment(session, scope, payment_id, for_update=True)
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
    payment holds (``_refund_parts``) and its fee from fee revenue (taken back, like the
    shares, as a negative amount: ``ledgering.post``'s sign). What the payment no
    longer holds — a chargeback, return or void took it while the refund was with the
    gateway — has left twice and is written off (a won chargeback brings it back)."""
    holds = payment.status in REFUNDABLE
    held = ledgering.applied(session, payment.id) if holds else ledgering.Applied([], [])
    fee_held = max(payment.fee_minor - _fee_refunded(session, payment.id), 0) if holds else 0
    parts = _refund_parts(row.amount_minor, held)
    fee = min(row.fee_minor, fee_held)
    lost = row.amount_minor + row.fee_minor - parts.total - fee
    row.status, row.gateway_reference, row.failure_message = "succeeded", reference, None
    paying.lock_accounts(session, {s.billing_account_id for s in parts.shares})
    ledgering.post(session, scope, payment, source=SourceRef("refund", row.id),
                   shares=[Share(s.invoice_id, s.billing_account_id, -s.amount_minor)
                           for s in parts.shares],
                   external=[(n, -a) for n, a in parts.external], fee_minor=-fee, kind="refund",
                   description=f"Refund of payment {payment.receipt_number}",
                   extra=_write_off(lost, payment.currency))
    payment.refunded_minor += row.amount_minor
    if holds:
        payment.status = _refunded_status(payment)
    payment.updated_at = clock.utcnow()
    session.flush()
    _changed(session, scope, payment, "payment.refunded",
                           refund={"id": row.id, "amount_minor": row.amount_minor,
                                   "fee_minor": row.fee_minor})


# Called after a refund, void, return or chargeback moved a payment's money, in its
# transaction (the entries package keeps its entries' status with them).
CHANGED_HOOKS: list[Callable[[Session, Scope, Payment], None]] = []


def _changed(session: Session, scope: Scope, payment: Payment, event: str,
             **extra: Any) -> None:
    """The event, to endpoints and postbacks, and the hooks."""
    notify.payment_changed(session, scope, payment, event, **extra)
    for hook in CHANGED_HOOKS:
        hook(session, scope, payment)


def _refunded_status(payment: Payment) -> str:
    if payment.refunded_minor >= payment.amount_minor:
        return "refunded"
    return "partially_refunded" if payment.refunded_minor else "succeeded"


def _write_off(amount: int, currency: str) -> list[PostingLine]:
    """Lines for money that left cash clearing with nothing of the payment's to take back
    (negative: it came back)."""
    if not amount:
        return []
    return [PostingLine(AccountRef("write_off"), Money(amount, currency)),
            PostingLine(AccountRef("cash_clearing"), Money(-amount, currency))]


def _refund_parts(amount: int, held: ledgering.Applied) -> ledgering.Applied:
    """What a refund of ``amount`` takes back of what a payment holds, as positive amounts:
    the payment undone from its end — its unapplied cash first (that reopens no invoice),
    then what it paid on invoices kept elsewhere (written after Billfold's when it was
    applied), then Billfold's invoices, the last paid first. Never more than is held."""
    cash = sum(s.amount_minor for s in held.shares if s.invoice_id is None)
    elsewhere = sum(a for _, a in held.external)
    from_cash = min(amount, cash)
    from_elsewhere = min(amount - from_cash, elsewhere)
    from_invoices = min(amount - from_cash - from_elsewhere, held.total - cash - elsewhere)
    shares = take_back(from_cash + from_invoices, held.shares)
    return ledgering.Applied(
        [Share(s.invoice_id, s.billing_account_id, -s.amount_minor) for s in shares],
        _external_back(held.external, from_elsewhere))


def _minus(held: ledgering.Applied, parts: ledgering.Applied) -> ledgering.Applied:
    """``held`` less ``parts`` (some of it), in held's order."""
    less = {(s.invoice_id, s.billing_account_id): s.amount_minor for s in parts.shares}
    less_external = dict(parts.external)
    shares = [Share(s.invoice_id, s.billing_account_id,
                    s.amount_minor - less.get((s.invoice_id, s.billing_account_id), 0))
              for s in held.shares]
    external = [(n, a - less_external.get(n, 0)) for n, a in held.external]
    return ledgering.Applied([s for s in shares if s.amount_minor],
                             [(n, a) for n, a in external if a])


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
            _changed(session, scope, payment, "payment.refunded", voided=True)
        session.expunge(payment)
    return payment


def _take_back_all(session: Session, scope: Scope, payment: Payment, *, kind: str,
                   source: tuple[str, str], description: str,
                   extra: list[PostingLine] | None = None) -> int:
    """Take back everything the payment still holds, service fee included (less what
    refunds gave back already). Returns how much that was, fee included."""
    applied = ledgering.applied(session, payment.id)
    fee_left = max(payment.fee_minor - _fee_refunded(session, payment.id), 0)
    paying.lock_accounts(session, {s.billing_account_id for s in applied.shares})
    ledgering.post(session, scope, payment, source=SourceRef(*source),
                   shares=[Share(s.invoice_id, s.billing_account_id, -s.amount_minor)
                           for s in applied.shares],
                   external=[(n, -a) for n, a in applied.external], fee_minor=-fee_left,
                   kind=kind, description=description, extra=extra or [])
    return applied.total + fee_left


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
    # The return fee is charged to the billing account: a payment without one (a session
    # that keeps no records) is returned without it.
    fee = tenants.get_settings(session, scope).ach_return_fee_minor \
        if payment.billing_account_id else 0
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
    _changed(session, scope, payment, "payment.returned", return_code=code,
             return_fee_minor=fee)


def _dispute_opened(session: Session, scope: Scope, payment: Payment, event: GatewayEvent
                    ) -> None:
    if payment.status not in REFUNDABLE:
        return
    fee = event.fee_minor or 0
    dispute_id = ids.new_id("dispute")
    extra = [PostingLine(AccountRef("processing_fees"), Money(fee, payment.currency)),
             PostingLine(AccountRef("cash_clearing"), Money(-fee, payment.currency))] if fee else []
    taken = _take_back_all(session, scope, payment, kind="dispute",
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
    _changed(session, scope, payment, "payment.disputed",
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
        payment.status = _refunded_status(payment)
    session.flush()
    _changed(session, scope, payment, "payment.disputed",
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
                  payment.fee_minor - _fee_refunded(session, payment.id)), 0)
    back = _minus(taken, _refund_parts(taken.total - principal, taken))
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
                   extra=_write_off(-max(dispute.amount_minor - principal - fee, 0),
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
    return resolved + _resolve_refunds(factory, gateway, scope)


def _resolve_refunds(factory: sessionmaker[Session], gateway: Gateway, scope: Scope) -> int:
    """Refunds still pending STUCK_AFTER after they were asked for: the gateway's answer
    was lost (a timeout or a crash), since no call to it takes that long; younger ones may
    still be on their way to it."""
    with factory() as session:
        stuck = session.execute(select(Refund.id, Payment.gateway).join(
            Payment, Payment.id == Refund.payment_id).where(
            Refund.tenant_id == scope.tenant_id, Refund.mode == scope.mode,
            Refund.status == "pending", Refund.created_at < clock.utcnow() - STUCK_AFTER,
            Payment.gateway.in_((gateway.name, "none")))).all()
    for refund_id, made_by in stuck:
        # Money received outside the gateway is refunded by recording it: not recorded,
        # not refunded.
        result = gateway.lookup_refund(scope, idempotency_key=refund_id) \
            if made_by == gateway.name else None
        with factory() as session, transaction(session):
            record_refund_outcome(session, scope, refund_id, result)
    return len(stuck)


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
