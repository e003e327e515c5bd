"""Saved payment methods of payer users: the gateway's token for a card or bank account a
payer chose to keep, and what may be shown of it (brand, last four, expiry) — never a card
or account number, which Billfold does not have once the charge call returns.

A method is recognised by the gateway's fingerprint, so saving the same card again
refreshes its one row (token, expiry) instead of adding a second. Removal is soft
(``removed_at``): payments made with it still name it. Something above this package that
relies on a method (autopay) registers a check in ``REMOVAL_CHECKS``; payments may not
import it to ask.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billfold.access import payers
from billfold.core import clock, ids
from billfold.core.errors import Conflict, NotFound
from billfold.core.scope import Scope
from billfold.payments.models import Payment, SavedMethod

SAVABLE_STATUSES = ("succeeded", "pending")
KINDS = ("card", "ach")

# Each is asked before a method is removed: a reason to refuse, or None. Registered by
# the packages that use saved methods (collections.enrollment).
REMOVAL_CHECKS: list[Callable[[Session, Scope, SavedMethod], str | None]] = []


class PaymentNotSavable(Conflict):
    def __init__(self, payment: Payment, why: str) -> None:
        super().__init__(f"payment {payment.id} cannot be saved as a payment method: {why}",
                         code="payment_not_savable")


class SavedMethodInUse(Conflict):
    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="saved_method_in_use")


def save_from_payment(session: Session, scope: Scope, *, payer_user_id: str,
                      payment: Payment) -> SavedMethod:
    """Keep the instrument of a card or bank payment the gateway took (succeeded or
    pending) for the payer user. The same card or account again refreshes the saved one
    (its token and expiry) and brings it back if it had been removed."""
    if payers.get_user(session, scope, payer_user_id) is None:
        raise NotFound("payer_user", payer_user_id)
    if payment.tenant_id != scope.tenant_id or payment.mode != scope.mode:
        raise NotFound("payment", payment.id)
    if payment.method not in KINDS:
        raise PaymentNotSavable(payment, f"it was paid by {payment.method}")
    if payment.status not in SAVABLE_STATUSES:
        raise PaymentNotSavable(payment, f"it is {payment.status}")
    if not (payment.instrument_token and payment.fingerprint and payment.last4):
        raise PaymentNotSavable(payment, "the gateway kept no instrument for it")
    existing = _by_fingerprint(session, payer_user_id, payment.fingerprint)
    if existing is None:
        row = SavedMethod(
            id=ids.new_id("saved_method"), tenant_id=scope.tenant_id, mode=scope.mode,
            payer_user_id=payer_user_id, fingerprint=payment.fingerprint,
            kind=payment.method, created_at=clock.utcnow())
        _refresh(row, payment)
        try:
            with session.begin_nested():  # the same card saved at the same moment elsewhere
                session.add(row)
            return row
        except IntegrityError:
            existing = _by_fingerprint(session, payer_user_id, payment.fingerprint)
            if existing is None:
                raise
    _refresh(existing, payment)
    session.flush()
    return existing


def _by_fingerprint(session: Session, payer_user_id: str, fingerprint: str
                    ) -> SavedMethod | None:
    return session.scalars(select(SavedMethod).where(
        SavedMethod.payer_user_id == payer_user_id, SavedMethod.fingerprint == fingerprint)
        .with_for_update()).one_or_none()


def _refresh(row: SavedMethod, payment: Payment) -> None:
    row.gateway, row.token = payment.gateway, str(payment.instrument_token)
    row.brand, row.last4 = payment.brand, str(payment.last4)
    row.exp_month, row.exp_year = payment.exp_month, payment.exp_year
    row.account_type = payment.account_type
    row.holder_name = (payment.holder_name or "")[:200]
    row.removed_at = None


def list_for(session: Session, scope: Scope, payer_user_id: str) -> list[SavedMethod]:
    """The payer user's methods that have not been removed, newest first."""
    return list(session.scalars(select(SavedMethod).where(
        SavedMethod.tenant_id == scope.tenant_id, SavedMethod.mode == scope.mode,
        SavedMethod.payer_user_id == payer_user_id, SavedMethod.removed_at.is_(None))
        .order_by(SavedMethod.created_at.desc(), SavedMethod.id.desc())))


def get_for(session: Session, scope: Scope, payer_user_id: str, method_id: str, *,
            for_update: bool = False) -> SavedMethod:
    """One of the payer user's methods; NotFound for a removed one, another user's, or
    another tenant's, exactly as for one that never existed."""
    row = session.get(SavedMethod, method_id, with_for_update=for_update or None)
    if row is None or row.tenant_id != scope.tenant_id or row.mode != scope.mode \
            or row.payer_user_id != payer_user_id or row.removed_at is not None:
        raise NotFound("saved_method", method_id)
    return row


def remove(session: Session, scope: Scope, *, payer_user_id: str, method_id: str
           ) -> SavedMethod:
    """Remove one of the payer user's methods, unless something relies on it (an autopay
    enrollment): then SavedMethodInUse says what, and the method stays. The row is locked
    first, so an enrollment made at the same moment is either seen here or refused."""
    row = get_for(session, scope, payer_user_id, method_id, for_update=True)
    for check in REMOVAL_CHECKS:
        reason = check(session, scope, row)
        if reason is not None:
            raise SavedMethodInUse(reason)
    row.removed_at = clock.utcnow()
    session.flush()
    return row


def is_expired(method: SavedMethod, on_date: date) -> bool:
    """A card works through the last day of its expiry month; bank accounts do not expire."""
    if method.exp_month is None or method.exp_year is None:
        return False
    return (method.exp_year, method.exp_month) < (on_date.year, on_date.month)
