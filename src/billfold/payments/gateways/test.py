"""The test gateway: a deterministic payment processor for test mode, the demo and tests.

It keeps its own records in the database (tables ``test_gateway_charge``,
``test_gateway_event`` and ``test_gateway_refund``) as a real processor keeps its own, and
every call runs in a short transaction of its own and commits it. Call it between your own
transactions, never inside one: a rollback on Billfold's side does not undo a charge, just
as it would not at a real processor (and on SQLite a second writer in the same thread
would wait for the first). It never stores or logs a card number or CVC: only a token,
brand, last four, expiry, and a code for what the test number asked for.

Cards. The number must pass the Luhn check and belong to a known brand (Visa, Mastercard
incl. 2-series, Amex, Discover, Diners, JCB, UnionPay), else ``invalid_number``; an
expiry month before the charge date's month is ``expired_card``; the CVC must be 3 digits
(4 for Amex), else ``invalid_cvc``. Card charges are captured at once.

=====================  ===================================================================
card number            behaviour
=====================  ===================================================================
4242 4242 4242 4242    succeeded
4000 0000 0000 0002    declined ``card_declined``
4000 0000 0000 9995    declined ``insufficient_funds``
4000 0000 0000 0259    succeeded; ``dispute_opened`` 3 days after the charge date (amount =
                       the charge, ``fee_minor`` 1500), ``dispute_lost`` after 30 days
4000 0000 0000 2685    succeeded; ``dispute_opened`` after 3 days, ``dispute_won`` after 30
4000 0000 0000 0119    the charge is made, then ``charge`` raises ``GatewayTimeout``;
                       ``lookup`` (or a second ``charge``) with the same key finds it
                       succeeded. Its refunds too: the refund is made, then ``refund``
                       raises ``GatewayTimeout``; ``lookup_refund`` (or a second
                       ``refund``) with the same key finds it
any other valid card   succeeded
=====================  ===================================================================

Bank accounts (ACH). The routing number must pass the ABA checksum, else
``invalid_routing_number``; the account number must be 4-17 digits, else
``invalid_account_number``; the type ``checking`` or ``savings``, else
``invalid_account_type``. A bank charge is ``pending`` and settles ``settlement_business_days``
business days after the charge date (Monday to Friday; there is no holiday calendar). Any
valid routing number works; 110000000 is the usual one.

=====================  ===================================================================
account number         behaviour
=====================  ===================================================================
000123456789           event ``settled`` on the settlement date
000111111116           event ``returned`` with code R01 on the settlement date
000111111113           event ``returned`` with code R03 on the settlement date
any other              ``settled``
=====================  ===================================================================

Declines for invalid details happen before a charge exists (no reference); the issuer's
declines (``card_declined``, ``insufficient_funds``) create a declined charge with a
reference. A declined charge issues no token. A saved-instrument charge (a token from an
earlier result) behaves as the first charge with those details did; an unknown token is
declined ``unknown_token``, a saved card past its expiry ``expired_card``.

The same idempotency key answers with the first result and changes nothing, for charges
and for refunds alike (whatever the later call's other arguments); ``lookup_refund`` finds
a refund's result by its key. Refunds: card charges and settled bank charges, never more
in total than the charge. A settled bank debit is refunded the way processors do it, by an
ACH credit to the same account, issued at once (in this gateway the credit is never
returned); a pending bank charge is refused with "use void before settlement", a returned
or voided one has nothing to refund. Void: only a pending bank charge; it cancels the
charge's settlement event, and voiding again answers "voided". The gateway has no clock of its own:
it learns the date from ``events(through=...)``, and a bank charge counts as settled (or
returned) from the first call whose ``through`` reaches its settlement date; from then on
it can no longer be voided. Events of a voided charge never appear.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import date
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from billfold.core import clock
from billfold.core.db import among, transaction
from billfold.core.ids import new_id
from billfold.core.scope import Scope
from billfold.payments.gateways import test_rules as rules
from billfold.payments.gateways.base import (
    BankDetails,
    CardDetails,
    ChargeRequest,
    ChargeResult,
    GatewayEvent,
    GatewayTimeout,
    Instrument,
    RefundResult,
    SavedInstrument,
    VoidResult,
)
from billfold.payments.gateways.checks import card_brand, last4
from billfold.payments.gateways.test_models import (
    TestGatewayCharge,
    TestGatewayEvent,
    TestGatewayRefund,
)


class TestGateway:
    __test__ = False
    name = "test"

    def __init__(self, sessions: sessionmaker[Session], *, settlement_business_days: int = 2,
                 fingerprint_key: bytes) -> None:
        if not fingerprint_key:
            raise ValueError("the test gateway needs a non-empty fingerprint key")
        if settlement_business_days < 0:
            raise ValueError("settlement_business_days must not be negative")
        self._sessions = sessions
        self._settlement_days = settlement_business_days
        self._fingerprint_key = fingerprint_key

    def charge(self, scope: Scope, request: ChargeRequest) -> ChargeResult:
        rules.check_request(request)
        try:
            with self._sessions() as session, transaction(session):
                row = _charge_by_key(session, scope, request.idempotency_key)
                if row is not None:
                    # A retry after a timeout gets the answer it missed, not another timeout.
                    return _result(row)
                row = self._make_charge(session, scope, request)
                result, times_out = _result(row), row.behaviour == "timeout"
        except IntegrityError:
            with self._sessions() as session:
                row = _charge_by_key(session, scope, request.idempotency_key)
                if row is None:
                    raise
                return _result(row)
        if times_out:
            raise GatewayTimeout(
                f"the test gateway did not answer charge {request.idempotency_key!r}")
        return result

    def refund(self, scope: Scope, *, reference: str, amount_minor: int,
               idempotency_key: str) -> RefundResult:
        try:
            with self._sessions() as session, transaction(session):
                prior = _refund_by_key(session, scope, idempotency_key)
                if prior is not None:
                    # A retry after a timeout gets the answer it missed, not another timeout.
                    return _refund_result(prior)
                charge = _charge_by_reference(session, scope, reference)
                if charge is None:
                    return RefundResult("refused", None, "No charge with this reference.")
                status, message = _claim_refund(session, charge, amount_minor)
                row = TestGatewayRefund(
                    id=new_id("test_gateway_refund"), tenant_id=scope.tenant_id,
                    mode=scope.mode, charge_id=charge.id, idempotency_key=idempotency_key,
                    amount_minor=amount_minor, status=status, message=message,
                    created_at=clock.utcnow())
                session.add(row)
                session.flush()
                result = _refund_result(row)
                times_out = status == "succeeded" and charge.behaviour == "timeout"
        except IntegrityError:
            # A concurrent refund with this key won; its transaction rolled ours back whole,
            # refunded amount included.
            with self._sessions() as session:
                prior = _refund_by_key(session, scope, idempotency_key)
                if prior is None:
                    raise
                return _refund_result(prior)
        if times_out:
            raise GatewayTimeout(f"the test gateway did not answer refund {idempotency_key!r}")
        return result

    def lookup_refund(self, scope: Scope, *, idempotency_key: str) -> RefundResult | None:
        with self._sessions() as session, transaction(session):
            row = _refund_by_key(session, scope, idempotency_key)
            return None if row is None else _refund_result(row)

    def void(self, scope: Scope, *, reference: str) -> VoidResult:
        with self._sessions() as session, transaction(session):
            charge = _charge_by_reference(session, scope, reference)
            if charge is None:
                return VoidResult("refused", "No charge with this reference.")
            if charge.state == "voided":
                return VoidResult("voided", "This bank payment was already voided.")
            won = charge.state == "pending" and _rowcount(session.execute(
                update(TestGatewayCharge)
                .where(TestGatewayCharge.id == charge.id, TestGatewayCharge.state == "pending")
                .values(state="voided"))) == 1
            if not won:
                session.refresh(charge)
                return VoidResult("refused", _VOID_REFUSALS.get(charge.state, "Cannot void."))
            session.execute(
                update(TestGatewayEvent)
                .where(TestGatewayEvent.charge_id == charge.id,
                       TestGatewayEvent.status == "scheduled")
                .values(status="cancelled"))
            return VoidResult("voided", "Bank payment voided.")

    def lookup(self, scope: Scope, *, idempotency_key: str) -> ChargeResult | None:
        with self._sessions() as session, transaction(session):
            row = _charge_by_key(session, scope, idempotency_key)
            return None if row is None else _result(row)

    def events(self, scope: Scope, *, through: date) -> list[GatewayEvent]:
        with self._sessions() as session, transaction(session):
            due = _due(scope, through)
            settling = session.execute(select(TestGatewayEvent.charge_id, TestGatewayEvent.kind)
                                       .where(due, TestGatewayEvent.kind.in_(("settled",
                                                                              "returned"))))
            for charge_id, kind in settling.all():
                # The same conditional UPDATE void uses: whichever comes first wins, so a
                # charge is never both voided and settled.
                session.execute(update(TestGatewayCharge)
                                .where(TestGatewayCharge.id == charge_id,
                                       TestGatewayCharge.state == "pending")
                                .values(state=kind))
            rows = session.scalars(select(TestGatewayEvent).where(due)
                                   .order_by(TestGatewayEvent.event_date, TestGatewayEvent.id))
            return [_event(row) for row in rows]

    def acknowledge(self, scope: Scope, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        with self._sessions() as session, transaction(session):
            session.execute(
                update(TestGatewayEvent)
                .where(*_in_scope(TestGatewayEvent, scope),
                       among(session, TestGatewayEvent.id, event_ids),
                       TestGatewayEvent.status == "scheduled")
                .values(status="acknowledged"))

    def _make_charge(self, session: Session, scope: Scope,
                     request: ChargeRequest) -> TestGatewayCharge:
        row = TestGatewayCharge(
            id=new_id("test_gateway_charge"), tenant_id=scope.tenant_id, mode=scope.mode,
            idempotency_key=request.idempotency_key, amount_minor=request.amount_minor,
            currency=request.currency, description=request.description,
            charge_date=request.on_date, refunded_minor=0, created_at=clock.utcnow())
        method = request.method
        if isinstance(method, CardDetails):
            decline = rules.card_decline(method, request.on_date)
            behaviour = rules.CARD_BEHAVIOURS.get(method.number, "ok")
            row.kind = "card"
            if decline is None and behaviour not in rules.ISSUER_DECLINES:
                self._keep_card(row, method, behaviour)
            else:
                _decline(row, decline or behaviour)
        elif isinstance(method, BankDetails):
            decline = rules.bank_decline(method)
            row.kind = "bank"
            if decline is None:
                self._keep_bank(row, method)
            else:
                _decline(row, decline)
        else:
            _reuse(session, scope, row, method)
        if row.kind == "bank" and row.state == "pending":
            row.settle_date = rules.add_business_days(request.on_date, self._settlement_days)
            row.message = f"Bank payment accepted; it should settle on {row.settle_date}."
        session.add(row)
        session.flush()  # the events refer to the charge
        if row.state != "declined":
            _schedule_events(session, row)
        return row

    def _keep_card(self, row: TestGatewayCharge, card: CardDetails, behaviour: str) -> None:
        row.state, row.message, row.behaviour = "captured", "Payment approved.", behaviour
        row.token, row.brand, row.last4 = _new_token(), card_brand(card.number), last4(card.number)
        row.exp_month, row.exp_year, row.holder_name = card.exp_month, card.exp_year, card.name
        row.fingerprint = self._fingerprint(f"card:{card.number}")

    def _keep_bank(self, row: TestGatewayCharge, bank: BankDetails) -> None:
        row.state = "pending"
        row.behaviour = rules.BANK_BEHAVIOURS.get(bank.account_number, "settle")
        row.token, row.last4 = _new_token(), last4(bank.account_number)
        row.routing_number, row.account_type = bank.routing_number, bank.account_type
        row.holder_name = bank.holder_name
        row.fingerprint = self._fingerprint(f"bank:{bank.routing_number}:{bank.account_number}")

    def _fingerprint(self, secret: str) -> str:
        return hmac.new(self._fingerprint_key, secret.encode(), hashlib.sha256).hexdigest()


_VOID_REFUSALS = {
    "captured": "Card charges are captured at once; refund instead.",
    "declined": "This charge was declined; there is nothing to void.",
    "settled": "This bank payment has settled; it can no longer be voided.",
    "returned": "This bank payment was returned by the bank.",
}


def _reuse(session: Session, scope: Scope, row: TestGatewayCharge,
           saved: SavedInstrument) -> None:
    """Charge the details kept under ``saved.token`` and behave as their first charge did."""
    first = session.scalars(select(TestGatewayCharge)
                            .where(*_in_scope(TestGatewayCharge, scope),
                                   TestGatewayCharge.token == saved.token)
                            .order_by(TestGatewayCharge.id).limit(1)).first()
    if first is None:
        _decline(row, "unknown_token")
        return
    row.kind = first.kind
    if (first.exp_month is not None and first.exp_year is not None
            and rules.expired(first.exp_month, first.exp_year, row.charge_date)):
        _decline(row, "expired_card")
        return
    row.state = "captured" if first.kind == "card" else "pending"
    row.message = "Payment approved."
    for column in ("token", "brand", "last4", "exp_month", "exp_year", "routing_number",
                   "account_type", "holder_name", "fingerprint", "behaviour"):
        setattr(row, column, getattr(first, column))


def _schedule_events(session: Session, row: TestGatewayCharge) -> None:
    session.add_all(
        TestGatewayEvent(id=new_id("test_gateway_event"), tenant_id=row.tenant_id,
                         mode=row.mode, charge_id=row.id, kind=event.kind,
                         event_date=event.on_date, return_code=event.return_code,
                         amount_minor=event.amount_minor, fee_minor=event.fee_minor,
                         status="scheduled")
        for event in rules.planned_events(row.behaviour, charge_date=row.charge_date,
                                          settle_date=row.settle_date,
                                          amount_minor=row.amount_minor))


def _decline(row: TestGatewayCharge, code: str) -> None:
    row.state, row.decline_code, row.message = "declined", code, rules.MESSAGES[code]


def _new_token() -> str:
    return "tok_" + secrets.token_hex(16)


def _claim_refund(session: Session, charge: TestGatewayCharge,
                  amount_minor: int) -> tuple[str, str]:
    refusal = _refund_refusal(charge, amount_minor)
    if refusal is not None:
        return "refused", refusal
    # One conditional UPDATE, so two concurrent refunds cannot both take the last of it
    # (nor one slip past a return or void that changed the charge's state meanwhile).
    won = _rowcount(session.execute(
        update(TestGatewayCharge)
        .where(TestGatewayCharge.id == charge.id, TestGatewayCharge.state == charge.state,
               TestGatewayCharge.refunded_minor + amount_minor <= TestGatewayCharge.amount_minor)
        .values(refunded_minor=TestGatewayCharge.refunded_minor + amount_minor)))
    if not won:
        return "refused", "The amount is more than what remains refundable on this charge."
    if charge.state == "settled":
        return "succeeded", "Refund issued as an ACH credit to the bank account debited."
    return "succeeded", "Refund issued."


def _refund_refusal(charge: TestGatewayCharge, amount_minor: int) -> str | None:
    if amount_minor <= 0:
        return "A refund amount must be positive."
    if charge.state in _REFUNDABLE_STATES:
        return None
    return {
        "pending": "This bank payment has not settled; use void before settlement.",
        "declined": "This charge was declined; there is nothing to refund.",
        "voided": "This bank payment was voided; there is nothing to refund.",
        "returned": "This bank payment was returned by the bank; there is nothing to refund.",
    }.get(charge.state, "This charge cannot be refunded.")


# A captured card charge is refunded to the card; a settled bank debit by an ACH credit.
_REFUNDABLE_STATES = ("captured", "settled")


def _in_scope(model: Any, scope: Scope) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return model.tenant_id == scope.tenant_id, model.mode == scope.mode


def _due(scope: Scope, through: date) -> ColumnElement[bool]:
    return and_(*_in_scope(TestGatewayEvent, scope), TestGatewayEvent.status == "scheduled",
                TestGatewayEvent.event_date <= through)


def _charge_by_key(session: Session, scope: Scope, key: str) -> TestGatewayCharge | None:
    return session.scalars(select(TestGatewayCharge).where(
        *_in_scope(TestGatewayCharge, scope), TestGatewayCharge.idempotency_key == key)).first()


def _charge_by_reference(session: Session, scope: Scope,
                         reference: str) -> TestGatewayCharge | None:
    return session.scalars(select(TestGatewayCharge).where(
        *_in_scope(TestGatewayCharge, scope), TestGatewayCharge.id == reference)).first()


def _refund_by_key(session: Session, scope: Scope, key: str) -> TestGatewayRefund | None:
    return session.scalars(select(TestGatewayRefund).where(
        *_in_scope(TestGatewayRefund, scope), TestGatewayRefund.idempotency_key == key)).first()


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount or 0)


def _result(row: TestGatewayCharge) -> ChargeResult:
    if row.state == "declined":
        reference = row.id if row.decline_code in rules.ISSUER_DECLINES else None
        return ChargeResult("declined", reference, None, row.decline_code, row.message, None)
    status = "succeeded" if row.kind == "card" else "pending"
    return ChargeResult(status, row.id, _instrument(row), None, row.message, row.settle_date)


def _instrument(row: TestGatewayCharge) -> Instrument:
    if (row.token is None or row.kind is None or row.last4 is None or row.holder_name is None
            or row.fingerprint is None):
        raise RuntimeError(f"test gateway charge {row.id} has no instrument")
    return Instrument(token=row.token, kind=row.kind, brand=row.brand, last4=row.last4,
                      exp_month=row.exp_month, exp_year=row.exp_year,
                      routing_number=row.routing_number, account_type=row.account_type,
                      holder_name=row.holder_name, fingerprint=row.fingerprint)


def _refund_result(row: TestGatewayRefund) -> RefundResult:
    reference = row.id if row.status == "succeeded" else None
    return RefundResult(row.status, reference, row.message)


def _event(row: TestGatewayEvent) -> GatewayEvent:
    return GatewayEvent(event_id=row.id, reference=row.charge_id, kind=row.kind,
                        on_date=row.event_date, return_code=row.return_code,
                        amount_minor=row.amount_minor, fee_minor=row.fee_minor)
