"""Autopay enrollment: the owner of a billing account chooses one of their saved payment
methods and an offset of ``autopay_min_offset_days``..``autopay_max_offset_days`` days
after each invoice's due date. The account says so too (``authorize_auto_payment``,
``auto_pay_offset_days``), in its change history. Running the charges is autopay.py.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from billfold.access.models import PayerGrant, PayerUser
from billfold.collections.models import AutopayEnrollment
from billfold.core import clock, ids
from billfold.core.db import get_scoped
from billfold.core.errors import BillfoldError, FieldError, NotFound, ValidationFailed
from billfold.core.scope import Scope
from billfold.customers import history
from billfold.customers.models import BillingAccount
from billfold.payments import saved as saved_methods
from billfold.payments.models import BlockedBankAccount, SavedMethod
from billfold.tenants import service as tenants

ACH_CURRENCIES = ("USD",)  # a bank debit here is an ACH debit: US dollars only
_ACCOUNT_FIELDS = ("authorize_auto_payment", "auto_pay_offset_days")


class NotAccountOwner(BillfoldError):
    def __init__(self, account_number: str) -> None:
        super().__init__(detail=f"Only an owner of account {account_number} can set up or "
                         "cancel its autopay.", code="not_account_owner", status=403,
                         title="Not the account's owner")


def enrollment_of(session: Session, scope: Scope, billing_account_id: str, *,
                  for_update: bool = False) -> AutopayEnrollment | None:
    stmt = select(AutopayEnrollment).where(
        AutopayEnrollment.tenant_id == scope.tenant_id, AutopayEnrollment.mode == scope.mode,
        AutopayEnrollment.billing_account_id == billing_account_id)
    return session.scalars(stmt.with_for_update() if for_update else stmt).one_or_none()


def enroll(session: Session, scope: Scope, *, user: PayerUser, billing_account_id: str,
           saved_method_id: str, offset_days: int) -> AutopayEnrollment:
    """Charge ``saved_method_id`` for each invoice of the account ``offset_days`` after it
    falls due; enrolling again changes the method or the offset. Only the account's owner
    may. The account says so too (``authorize_auto_payment``), in its change history."""
    account = _owned_account(session, scope, user, billing_account_id)
    settings = tenants.get_settings(session, scope)
    low, high = settings.autopay_min_offset_days, settings.autopay_max_offset_days
    problems = []
    if not isinstance(offset_days, int) or isinstance(offset_days, bool) \
            or not low <= offset_days <= high:
        problems.append(FieldError("offset_days", f"must be a whole number of days from {low} "
                                   f"to {high} after the due date", "out_of_range"))
    try:
        method: SavedMethod | None = saved_methods.get_for(session, scope, user.id,
                                                           saved_method_id, for_update=True)
    except NotFound:
        method = None
        problems.append(FieldError("saved_method_id", "is not one of your saved payment "
                                   "methods", "not_found"))
    if method is not None:
        why = unusable(session, scope, method, account, tenants.today(session, scope))
        if why is not None:
            problems.append(FieldError("saved_method_id", why, "method_not_usable"))
    if problems or method is None:
        raise ValidationFailed(problems)
    enrollment = _upsert(session, scope, user, account, method, offset_days)
    _authorize(session, scope, account, user, offset_days)
    return enrollment


def _upsert(session: Session, scope: Scope, user: PayerUser, account: BillingAccount,
            method: SavedMethod, offset_days: int) -> AutopayEnrollment:
    now = clock.utcnow()
    enrollment = enrollment_of(session, scope, account.id, for_update=True)
    if enrollment is None:
        enrollment = AutopayEnrollment(
            id=ids.new_id("autopay_enrollment"), tenant_id=scope.tenant_id, mode=scope.mode,
            billing_account_id=account.id, created_at=now)
        session.add(enrollment)
    enrollment.saved_method_id, enrollment.payer_user_id = method.id, user.id
    enrollment.offset_days, enrollment.updated_at = offset_days, now
    session.flush()
    return enrollment


def cancel(session: Session, scope: Scope, *, user: PayerUser, billing_account_id: str) -> bool:
    """Stop autopay on the account (owner only). Returns whether it was on; invoices
    already claimed by a run are charged as claimed."""
    account = _owned_account(session, scope, user, billing_account_id)
    enrollment = enrollment_of(session, scope, account.id, for_update=True)
    if enrollment is not None:
        session.delete(enrollment)
    _authorize(session, scope, account, user, None)
    session.flush()
    return enrollment is not None


def _owned_account(session: Session, scope: Scope, user: PayerUser, billing_account_id: str
                   ) -> BillingAccount:
    """The account, locked, if ``user`` is its owner: NotFound without any grant on it (as
    for an account that does not exist), NotAccountOwner with a lesser one."""
    if user.tenant_id != scope.tenant_id or user.mode != scope.mode:
        raise NotFound("billing_account", billing_account_id)
    role = session.scalar(select(PayerGrant.role).where(
        PayerGrant.payer_user_id == user.id, PayerGrant.billing_account_id == billing_account_id,
        PayerGrant.tenant_id == scope.tenant_id, PayerGrant.mode == scope.mode))
    if role is None:
        raise NotFound("billing_account", billing_account_id)
    account: BillingAccount = get_scoped(session, BillingAccount, billing_account_id, scope,
                                         "billing_account", for_update=True)
    if role != "owner":
        raise NotAccountOwner(account.number)
    return account


def _authorize(session: Session, scope: Scope, account: BillingAccount, user: PayerUser,
               offset_days: int | None) -> None:
    before = history.snapshot(account, _ACCOUNT_FIELDS)
    account.authorize_auto_payment = offset_days is not None
    if offset_days is not None:
        account.auto_pay_offset_days = offset_days
    after = history.snapshot(account, _ACCOUNT_FIELDS)
    if after != before:
        account.updated_at = clock.utcnow()
        history.record(session, scope, object_type="billing_account", object_id=account.id,
                       action="update", actor=f"payer:{user.email}", before=before, after=after)


def unusable(session: Session, scope: Scope, method: SavedMethod, account: BillingAccount,
             today: date) -> str | None:
    """Why ``method`` cannot pay the account's invoices, or None if it can."""
    if method.removed_at is not None:
        return "the saved payment method was removed"
    if method.kind == "ach" and account.currency not in ACH_CURRENCIES:
        return f"a bank account can pay only {', '.join(ACH_CURRENCIES)} accounts; use a card"
    if saved_methods.is_expired(method, today):
        return "the card has expired"
    if method.kind == "ach" and session.scalar(select(BlockedBankAccount.id).where(
            BlockedBankAccount.tenant_id == scope.tenant_id, BlockedBankAccount.mode == scope.mode,
            BlockedBankAccount.fingerprint == method.fingerprint)) is not None:
        return "the bank account cannot be debited: an earlier debit from it was returned"
    return None


def _in_use(session: Session, scope: Scope, method: SavedMethod) -> str | None:
    numbers = list(session.scalars(select(BillingAccount.number).join(
        AutopayEnrollment, AutopayEnrollment.billing_account_id == BillingAccount.id).where(
        AutopayEnrollment.saved_method_id == method.id).order_by(BillingAccount.number)))
    if not numbers:
        return None
    return (f"This payment method pays account {', '.join(numbers)} by autopay; turn autopay "
            "off there, or choose another method for it, before removing it.")


saved_methods.REMOVAL_CHECKS.append(_in_use)
