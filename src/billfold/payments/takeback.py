"""What a payment still holds and how it is taken back: the arithmetic refunds, voids,
returns and chargebacks share (a refund takes back exactly its amount, from the payment's
end; money that left twice is written off), and the hooks they all run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billfold.core.db import get_scoped
from billfold.core.scope import Scope
from billfold.ledger.service import AccountRef, PostingLine, SourceRef
from billfold.money import Money
from billfold.payments import ledgering, notify, paying
from billfold.payments.allocation import Share, take_back
from billfold.payments.models import Payment, Refund

REFUNDABLE = ("succeeded", "partially_refunded")
# A payment still "processing", or a refund still "pending", this long after it started
# lost its outcome (a crash between the steps, a timeout); the janitor asks the gateway.
STUCK_AFTER = timedelta(minutes=10)


def get_payment(session: Session, scope: Scope, payment_id: str, *, for_update: bool = False
                ) -> Payment:
    payment: Payment = get_scoped(session, Payment, payment_id, scope, "payment",
                                  for_update=for_update)
    return payment


# Called after a refund, void, return or chargeback moved a payment's money, in its
# transaction (the entries package keeps its entries' status with them).
CHANGED_HOOKS: list[Callable[[Session, Scope, Payment], None]] = []


def changed(session: Session, scope: Scope, payment: Payment, event: str,
            **extra: Any) -> None:
    """The event, to endpoints and postbacks, and the hooks."""
    notify.payment_changed(session, scope, payment, event, **extra)
    for hook in CHANGED_HOOKS:
        hook(session, scope, payment)


def refunded_status(payment: Payment) -> str:
    if payment.refunded_minor >= payment.amount_minor:
        return "refunded"
    return "partially_refunded" if payment.refunded_minor else "succeeded"


def write_off(amount: int, currency: str) -> list[PostingLine]:
    """Lines for money that left cash clearing with nothing of the payment's to take back
    (negative: it came back)."""
    if not amount:
        return []
    return [PostingLine(AccountRef("write_off"), Money(amount, currency)),
            PostingLine(AccountRef("cash_clearing"), Money(-amount, currency))]


def refund_parts(amount: int, held: ledgering.Applied) -> ledgering.Applied:
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


def minus(held: ledgering.Applied, parts: ledgering.Applied) -> ledgering.Applied:
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


def take_back_all(session: Session, scope: Scope, payment: Payment, *, kind: str,
                  source: tuple[str, str], description: str,
                  extra: list[PostingLine] | None = None) -> int:
    """Take back everything the payment still holds, service fee included (less what
    refunds gave back already). Returns how much that was, fee included."""
    applied = ledgering.applied(session, payment.id)
    fee_left = max(payment.fee_minor - fee_refunded(session, payment.id), 0)
    paying.lock_accounts(session, {s.billing_account_id for s in applied.shares})
    ledgering.post(session, scope, payment, source=SourceRef(*source),
                   shares=[Share(s.invoice_id, s.billing_account_id, -s.amount_minor)
                           for s in applied.shares],
                   external=[(n, -a) for n, a in applied.external], fee_minor=-fee_left,
                   kind=kind, description=description, extra=extra or [])
    return applied.total + fee_left


def fee_refunded(session: Session, payment_id: str) -> int:
    return sum(session.scalars(select(Refund.fee_minor).where(
        Refund.payment_id == payment_id, Refund.status == "succeeded")))
