"""What happens to a payment afterwards, at its edges: each step is one balanced ledger
entry and one event; a refund takes back exactly its amount, of sessions that mix kept and
inline invoices too; a refund whose answer was lost is settled by the janitor; a refund
racing a chargeback leaves the ledger following the money; settled bank payments are
refunded; and a won chargeback puts the money back where it was, entry assignments
included."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from billfold.core import clock
from billfold.core.db import transaction
from billfold.core.errors import Conflict
from billfold.core.scope import Scope
from billfold.invoicing.models import Invoice
from billfold.ledger import service as ledger
from billfold.ledger import verify
from billfold.ledger.models import LedgerAccount, LedgerEntry, LedgerPosting
from billfold.notifications.webhook_models import Event
from billfold.payments import after, recording, refunds, sessions
from billfold.payments.gateways.base import GatewayTimeout, RefundResult
from billfold.payments.gateways.test_models import TestGatewayCharge, TestGatewayRefund
from billfold.payments.models import Entry, Payment, PaymentAllocation, Refund
from tests.services.conftest import Desk, frozen_at
from tests.services.test_entries_and_recorded_payments import keyed_invoice, new_entry, pay_entry
from tests.services.test_payments import DISPUTE_LOST, DISPUTE_WON, TIMEOUT, Till

SETTLES = ("110000000", "000123456789")
RETURNS_R01 = ("110000000", "000111111116")


@pytest.fixture
def till(sessions: sessionmaker[Session], session: Session, scope: Scope, ref: Any) -> Till:
    return Till(sessions, session, scope, Desk(session, scope, ref))


# -- reading the books --------------------------------------------------------------------


def entries(till: Till, source_type: str, source_id: str | None = None) -> list[dict[str, int]]:
    """The tenant's ledger entries from this source, each as {account kind: net amount}."""
    with till.factory() as s:
        found = ledger.list_entries(s, till.scope, limit=100, source_type=source_type,
                                    source_id=source_id)
        postings = ledger.entry_postings(s, [e.id for e in found])
        kinds = dict(s.execute(select(LedgerAccount.id, LedgerAccount.kind).where(
            LedgerAccount.tenant_id == till.scope.tenant_id)).all())
    result = []
    for entry in found:
        lines: dict[str, int] = defaultdict(int)
        for posting in postings.get(entry.id, []):
            lines[kinds[posting.ledger_account_id]] += posting.amount_minor
        result.append({k: v for k, v in lines.items() if v})
    return result


def one_entry(till: Till, source_type: str, source_id: str | None = None) -> dict[str, int]:
    """The one entry from this source, balanced."""
    [entry] = entries(till, source_type, source_id)
    assert sum(entry.values()) == 0, entry
    return entry


def balance(till: Till, kind: str) -> int:
    """Net postings of the tenant's ledger accounts of this kind (debits positive)."""
    return int(till.scalar(select(func.coalesce(func.sum(LedgerPosting.amount_minor), 0))
                           .join(LedgerAccount,
                                 LedgerAccount.id == LedgerPosting.ledger_account_id)
                           .where(LedgerAccount.tenant_id == till.scope.tenant_id,
                                  LedgerAccount.kind == kind)))


def entry_count(till: Till) -> int:
    return int(till.scalar(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.tenant_id == till.scope.tenant_id)))


def all_events(till: Till) -> int:
    return sum(till.events(t) for t in ("payment.refunded", "payment.returned",
                                         "payment.disputed"))


def books_balance(till: Till) -> None:
    with till.factory() as s:
        problems = verify.verify(s)
    assert [p for p in problems if till.scope.tenant_id in str(p)] == []


def taken_back(till: Till, payment: Payment, kind: str = "refund") -> list[tuple[str, int]]:
    with till.factory() as s:
        return [(str(a.invoice_number), a.amount_minor) for a in s.scalars(
            select(PaymentAllocation).where(PaymentAllocation.payment_id == payment.id,
                                            PaymentAllocation.kind == kind)
            .order_by(PaymentAllocation.id))]


def refunds_of(till: Till, payment: Payment) -> list[tuple[str, int]]:
    with till.factory() as s:
        return [(r.status, r.amount_minor) for r in s.scalars(
            select(Refund).where(Refund.payment_id == payment.id).order_by(Refund.id))]


def refund(till: Till, payment: Payment, amount_minor: int | None = None) -> Refund:
    return refunds.refund(till.factory, till.gateway, till.scope, payment_id=payment.id,
                        amount_minor=amount_minor)


def mixed_session(till: Till, invoice: Invoice, external_minor: int) -> str:
    """A session over a kept invoice and one the biller keeps elsewhere (inline)."""
    with transaction(till.session):
        return sessions.create_native(till.session, till.scope, currency="USD", invoices=[
            {"invoice_id": invoice.id},
            {"number": "EXT-1", "amount_due_minor": external_minor}]).token


class Step:
    """Counts the ledger entries and events one step adds."""

    def __init__(self, till: Till) -> None:
        self.till = till
        self.entries, self.events = entry_count(till), all_events(till)

    def added(self) -> tuple[int, int]:
        return entry_count(self.till) - self.entries, all_events(self.till) - self.events


# -- one entry and one event per step -------------------------------------------------------


class TestEachStepIsOneEntryAndOneEvent:
    def test_a_partial_refund(self, till: Till) -> None:
        payment = till.pay(till.pay_session(till.invoice(1000), card_fee_minor=100))
        step = Step(till)
        done = refund(till, payment, 300)
        assert step.added() == (1, 1)
        assert one_entry(till, "refund", done.id) == {"cash_clearing": -300, "receivable": 300}
        assert till.events("payment.refunded") == 1
        books_balance(till)

    def test_a_full_refund(self, till: Till) -> None:
        payment = till.pay(till.pay_session(till.invoice(1000), card_fee_minor=100))
        step = Step(till)
        done = refund(till, payment)
        assert step.added() == (1, 1)
        assert one_entry(till, "refund", done.id) == {
            "cash_clearing": -1100, "receivable": 1000, "fee_revenue": 100}
        assert till.payment(payment.id).status == "refunded"

    def test_a_void(self, till: Till) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice, ach_fee_minor=50), bank=SETTLES)
        step = Step(till)
        after.void(till.factory, till.gateway, till.scope, payment_id=payment.id)
        assert step.added() == (1, 1)
        assert one_entry(till, "void", payment.id) == {
            "cash_clearing": -1050, "receivable": 1000, "fee_revenue": 50}
        assert till.reread(invoice).status == "open"

    def test_an_ach_return_with_its_fee(self, till: Till) -> None:
        till.desk.configure(ach_return_fee_minor=2500)
        payment = till.pay(till.pay_session(till.invoice(1000)), bank=RETURNS_R01)
        step = Step(till)
        till.advance(5)
        assert step.added() == (1, 1)
        assert one_entry(till, "ach_return", payment.id) == {
            "cash_clearing": -1000, "receivable": 1000 + 2500, "fee_revenue": -2500}
        assert till.events("payment.returned") == 1

    def test_an_ach_return_of_money_owed_elsewhere_charges_no_fee(self, till: Till) -> None:
        """A session that keeps no records has no billing account to charge the return
        fee to: none is posted, and the event says none."""
        till.desk.configure(ach_return_fee_minor=2500)
        with transaction(till.session):
            token = sessions.create_native(till.session, till.scope, currency="USD", invoices=[
                {"number": "EXT-9", "amount_due_minor": 1000}]).token
        payment = till.pay(token, bank=RETURNS_R01)
        step = Step(till)
        till.advance(5)
        assert step.added() == (1, 1)
        assert one_entry(till, "ach_return", payment.id) == {
            "cash_clearing": -1000, "external_payments": 1000}
        with till.factory() as s:
            [event] = s.scalars(select(Event).where(Event.tenant_id == till.scope.tenant_id,
                                                    Event.type == "payment.returned"))
            assert event.data["return_fee_minor"] == 0

    def test_a_chargeback_opened_then_lost(self, till: Till) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice, card_fee_minor=100), card=DISPUTE_LOST)
        opened = Step(till)
        till.advance(4)
        assert opened.added() == (1, 1)
        assert one_entry(till, "dispute") == {"cash_clearing": -1100 - 1500, "receivable": 1000,
                                              "fee_revenue": 100, "processing_fees": 1500}
        lost = Step(till)
        till.advance(30)
        # Lost is final: the money left when the dispute opened, so nothing moves now.
        assert lost.added() == (0, 1)
        assert till.payment(payment.id).status == "disputed"
        assert till.reread(invoice).status == "open"

    def test_a_chargeback_opened_then_won(self, till: Till) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice, card_fee_minor=100), card=DISPUTE_WON)
        till.advance(4)
        won = Step(till)
        till.advance(30)
        assert won.added() == (1, 1)
        assert one_entry(till, "dispute_won") == {
            "cash_clearing": 1100, "receivable": -1000, "fee_revenue": -100}
        assert till.payment(payment.id).status == "succeeded"
        assert till.reread(invoice).status == "paid"
        books_balance(till)

    def test_the_same_notifications_twice_change_nothing(self, till: Till) -> None:
        till.pay(till.pay_session(till.invoice(1000)), card=DISPUTE_WON)
        horizon = clock.utcnow().date().replace(year=2100)
        events = till.gateway.events(till.scope, through=horizon)
        for event in events:
            with till.factory() as s, transaction(s):
                assert after.handle_event(s, till.scope, till.gateway, event)
        step = Step(till)
        for event in events:
            with till.factory() as s, transaction(s):
                assert not after.handle_event(s, till.scope, till.gateway, event)
        assert step.added() == (0, 0)


class TestRefundsAndChargebacksTogether:
    def test_a_partial_refund_then_a_lost_chargeback(self, till: Till) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice, card_fee_minor=100), card=DISPUTE_LOST)
        refund(till, payment, 300)
        till.advance(34)
        dispute = one_entry(till, "dispute")
        assert dispute["receivable"] == 700  # what was left of the payment, not all of it
        assert (dispute["fee_revenue"], dispute["cash_clearing"]) == (100, -800 - 1500)
        assert till.reread(invoice).amount_due_minor == 1000
        assert till.payment(payment.id).status == "disputed"
        assert balance(till, "cash_clearing") == 1100 - 300 - 800 - 1500
        assert balance(till, "write_off") == 0
        with pytest.raises(Conflict) as refused:
            refund(till, payment)
        assert refused.value.code == "payment_not_refundable"
        books_balance(till)

    def test_a_partial_refund_then_a_won_chargeback(self, till: Till) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice, card_fee_minor=100), card=DISPUTE_WON)
        refund(till, payment, 300)
        till.advance(34)
        assert one_entry(till, "dispute_won") == {
            "cash_clearing": 800, "receivable": -700, "fee_revenue": -100}
        assert till.reread(invoice).amount_due_minor == 300  # as before the chargeback
        found = till.payment(payment.id)
        assert (found.status, found.refunded_minor) == ("partially_refunded", 300)
        done = refund(till, payment)  # the rest, and the fee
        assert (done.amount_minor, done.fee_minor) == (700, 100)
        assert till.payment(payment.id).status == "refunded"
        assert till.reread(invoice).amount_due_minor == 1000
        books_balance(till)


class TestRefusals:
    def test_a_returned_payment_cannot_be_refunded(self, till: Till) -> None:
        payment = till.pay(till.pay_session(till.invoice(1000)), bank=RETURNS_R01)
        till.advance(5)
        step = Step(till)
        with pytest.raises(Conflict) as refused:
            refund(till, payment)
        assert refused.value.code == "payment_not_refundable"
        assert refunds_of(till, payment) == []
        assert step.added() == (0, 0)

    def test_a_settled_bank_payment_cannot_be_voided(self, till: Till) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice), bank=SETTLES)
        till.advance(5)
        step = Step(till)
        with pytest.raises(Conflict) as refused:
            after.void(till.factory, till.gateway, till.scope, payment_id=payment.id)
        assert refused.value.code == "payment_not_voidable"
        assert (till.payment(payment.id).status, till.reread(invoice).status) == (
            "succeeded", "paid")
        assert step.added() == (0, 0)

    def test_a_void_the_gateway_refuses_as_settled_changes_nothing(self, till: Till) -> None:
        # The gateway settled the debit; Billfold has not heard of it yet.
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice), bank=SETTLES)
        till.gateway.events(till.scope, through=clock.utcnow().date() + timedelta(days=10))
        step = Step(till)
        with pytest.raises(Conflict) as refused:
            after.void(till.factory, till.gateway, till.scope, payment_id=payment.id)
        assert refused.value.code == "void_refused"
        assert till.reread(invoice).status == "paid"
        assert step.added() == (0, 0)


# -- 1. sessions mixing kept and inline invoices -------------------------------------------


class TestRefundsTakeBackExactlyTheirAmount:
    def test_a_mixed_session_gives_back_the_inline_invoice_first_then_the_kept_one(
            self, till: Till) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(mixed_session(till, invoice, 2000))
        refund(till, payment, 500)
        assert taken_back(till, payment) == [("EXT-1", -500)]
        assert till.reread(invoice).status == "paid"
        refund(till, payment, 2000)
        assert sorted(taken_back(till, payment)) == [("EXT-1", -1500), ("EXT-1", -500),
                                                     ("INV-000001", -500)]
        assert till.reread(invoice).amount_due_minor == 500
        last = refund(till, payment)
        assert (last.status, last.amount_minor) == ("succeeded", 500)
        assert refunds_of(till, payment) == [("succeeded", 500), ("succeeded", 2000),
                                             ("succeeded", 500)]
        assert till.payment(payment.id).status == "refunded"
        assert till.reread(invoice).status == "open"
        assert balance(till, "external_payments") == 0
        assert balance(till, "cash_clearing") == 0
        books_balance(till)

    def test_unapplied_cash_goes_back_before_any_invoice_reopens(self, till: Till) -> None:
        invoice = till.invoice(1000)
        payment = recording.record(till.factory, lambda scope: till.gateway, till.scope,
                                   billing_account_id=till.account.id, amount_minor=1500,
                                   method="check", invoice_ids=[invoice.id])
        refund(till, payment, 700)
        assert taken_back(till, payment) == [("None", -500), ("INV-000001", -200)]
        assert till.balances() == {"receivable": {"USD": 200}, "unapplied_cash": {"USD": 0}}


# -- 2. refunds whose answer was lost ----------------------------------------------------


def paid_by_the_timeout_card(till: Till, invoice: Invoice) -> Payment:
    payment = till.pay(till.pay_session(invoice), card=TIMEOUT)
    after.resolve_unknown(till.factory, till.gateway, till.scope)
    resolved = till.payment(payment.id)
    assert resolved.status == "succeeded"
    return resolved


def refunded_at_gateway(till: Till, payment: Payment) -> int:
    with till.factory() as s:
        charge = s.get(TestGatewayCharge, payment.gateway_reference)
        assert charge is not None
        return charge.refunded_minor


class TestTheJanitorSettlesRefunds:
    def test_a_refund_that_timed_out_is_posted_once_the_gateway_is_asked(self, till: Till
                                                                          ) -> None:
        invoice = till.invoice(1000)
        payment = paid_by_the_timeout_card(till, invoice)
        pending = refund(till, payment, 400)
        assert pending.status == "pending"
        assert refunded_at_gateway(till, payment) == 400  # made, the answer lost
        with pytest.raises(Conflict) as busy:
            refund(till, payment, 100)
        assert busy.value.code == "refund_in_progress"
        # Too young to call lost: its answer may still be on the way.
        assert after.resolve_unknown(till.factory, till.gateway, till.scope) == 0
        with frozen_at(clock.utcnow() + timedelta(minutes=11)):
            assert after.resolve_unknown(till.factory, till.gateway, till.scope) == 1
            assert after.resolve_unknown(till.factory, till.gateway, till.scope) == 0
        assert refunds_of(till, payment) == [("succeeded", 400)]
        assert one_entry(till, "refund", pending.id) == {"cash_clearing": -400,
                                                         "receivable": 400}
        assert till.reread(invoice).amount_due_minor == 400
        assert till.payment(payment.id).status == "partially_refunded"
        assert refunded_at_gateway(till, payment) == 400  # never refunded twice
        assert till.events("payment.refunded") == 1

    def test_a_refund_the_gateway_never_received_fails_and_may_be_asked_again(
            self, till: Till, monkeypatch: pytest.MonkeyPatch) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice))

        def lost_on_the_way(*args: Any, **kwargs: Any) -> RefundResult:
            raise GatewayTimeout("no answer")

        with monkeypatch.context() as patched:
            patched.setattr(till.gateway, "refund", lost_on_the_way)
            assert refund(till, payment, 400).status == "pending"
        with frozen_at(clock.utcnow() + timedelta(minutes=11)):
            assert after.resolve_unknown(till.factory, till.gateway, till.scope) == 1
        assert refunds_of(till, payment) == [("failed", 400)]
        assert entries(till, "refund") == []
        assert refunded_at_gateway(till, payment) == 0
        assert refund(till, payment, 400).status == "succeeded"
        assert till.reread(invoice).amount_due_minor == 400

    def test_the_answer_and_the_janitor_both_arriving_post_it_once(self, till: Till) -> None:
        payment = paid_by_the_timeout_card(till, till.invoice(1000))
        pending = refund(till, payment, 400)
        answer = till.gateway.lookup_refund(till.scope, idempotency_key=pending.id)
        assert answer is not None
        for _ in range(2):
            with till.factory() as s, transaction(s):
                refunds.record_refund_outcome(s, till.scope, pending.id, answer)
        assert len(entries(till, "refund", pending.id)) == 1
        assert till.payment(payment.id).refunded_minor == 400


# -- 3. a refund racing a chargeback -------------------------------------------------------


class TestARefundRacingAChargeback:
    def refund_while_disputed(self, till: Till, monkeypatch: pytest.MonkeyPatch,
                              payment: Payment, amount: int) -> Refund:
        """The gateway makes the refund; before its answer is recorded, the chargeback
        opened meanwhile is handled."""
        make_refund = till.gateway.refund

        def chargeback_meanwhile(*args: Any, **kwargs: Any) -> RefundResult:
            result = make_refund(*args, **kwargs)
            till.advance(4)
            assert till.payment(payment.id).status == "disputed"
            return result

        with monkeypatch.context() as patched:
            patched.setattr(till.gateway, "refund", chargeback_meanwhile)
            done = refund(till, payment, amount)
        found = till.payment(payment.id)
        assert (found.status, found.refunded_minor) == ("disputed", amount)  # still open
        return done

    def test_a_lost_chargeback_leaves_the_refund_written_off(
            self, till: Till, monkeypatch: pytest.MonkeyPatch) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice), card=DISPUTE_LOST)
        done = self.refund_while_disputed(till, monkeypatch, payment, 400)
        assert done.status == "succeeded"
        assert one_entry(till, "refund", done.id) == {"cash_clearing": -400, "write_off": 400}
        till.advance(30)
        # In 1,000; out: the refund's 400, the chargeback's 1,000 and its fee of 1,500.
        assert balance(till, "cash_clearing") == 1000 - 400 - 1000 - 1500
        assert balance(till, "write_off") == 400
        assert till.reread(invoice).amount_due_minor == 1000
        assert till.payment(payment.id).status == "disputed"
        books_balance(till)

    def test_a_won_chargeback_brings_back_what_the_refund_did_not_pay_out(
            self, till: Till, monkeypatch: pytest.MonkeyPatch) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice, card_fee_minor=100), card=DISPUTE_WON)
        done = self.refund_while_disputed(till, monkeypatch, payment, 400)
        till.advance(30)
        assert one_entry(till, "dispute_won") == {
            "cash_clearing": 1100, "receivable": -600, "fee_revenue": -100, "write_off": -400}
        assert balance(till, "write_off") == 0
        assert balance(till, "cash_clearing") == 1100 - 400 - 1500
        assert till.reread(invoice).amount_due_minor == 400
        found = till.payment(payment.id)
        assert (found.status, found.refunded_minor) == ("partially_refunded", 400)
        assert refunds_of(till, payment) == [("succeeded", 400)]
        assert done.fee_minor == 0
        books_balance(till)

    def test_a_full_refund_and_a_won_chargeback_end_refunded(
            self, till: Till, monkeypatch: pytest.MonkeyPatch) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice, card_fee_minor=100), card=DISPUTE_WON)
        self.refund_while_disputed(till, monkeypatch, payment, 1000)
        till.advance(30)
        assert one_entry(till, "dispute_won") == {"cash_clearing": 1100, "write_off": -1100}
        assert till.payment(payment.id).status == "refunded"
        assert till.reread(invoice).amount_due_minor == 1000
        assert balance(till, "cash_clearing") == 1100 - 1100 - 1500
        books_balance(till)


# -- 4. settled bank payments, and refunds the gateway refuses ------------------------------


class TestSettledBankPaymentsAreRefunded:
    def test_by_a_credit_to_the_account(self, till: Till) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice, ach_fee_minor=50), bank=SETTLES)
        till.advance(5)
        assert till.payment(payment.id).status == "succeeded"
        part = refund(till, payment, 400)
        assert part.status == "succeeded"
        assert till.reread(invoice).amount_due_minor == 400
        rest = refund(till, payment)
        assert (rest.amount_minor, rest.fee_minor) == (600, 50)
        assert till.payment(payment.id).status == "refunded"
        assert refunded_at_gateway(till, payment) == 1050
        with till.factory() as s:
            messages = s.scalars(select(TestGatewayRefund.message).where(
                TestGatewayRefund.idempotency_key.in_([part.id, rest.id]))).all()
        assert set(messages) == {"Refund issued as an ACH credit to the bank account debited."}

    def test_a_refund_the_gateway_refuses_is_kept_failed_and_raises(self, till: Till) -> None:
        # Refunded already at the processor (its dashboard), not through Billfold.
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice))
        assert till.gateway.refund(till.scope, reference=str(payment.gateway_reference),
                                   amount_minor=1000, idempotency_key="dashboard-1"
                                   ).status == "succeeded"
        step = Step(till)
        with pytest.raises(refunds.RefundRefused) as refused:
            refund(till, payment)
        assert (refused.value.status, refused.value.code) == (409, "refund_refused")
        assert "more than what remains refundable" in refused.value.detail
        assert refunds_of(till, payment) == [("failed", 1000)]
        assert step.added() == (0, 0)
        assert till.payment(payment.id).status == "succeeded"
        assert till.reread(invoice).status == "paid"


class TestTheTestGatewayRefunds:
    def test_a_settled_bank_charge_by_an_ach_credit(self, till: Till) -> None:
        payment = till.pay(till.pay_session(till.invoice(1000)), bank=SETTLES)
        reference = str(payment.gateway_reference)
        pending = till.gateway.refund(till.scope, reference=reference, amount_minor=100,
                                      idempotency_key="early")
        assert (pending.status, "void before settlement" in pending.message) == ("refused", True)
        till.gateway.events(till.scope, through=clock.utcnow().date() + timedelta(days=10))
        result = till.gateway.refund(till.scope, reference=reference, amount_minor=1000,
                                     idempotency_key="credit")
        assert result.status == "succeeded"
        assert "ACH credit" in result.message

    def test_a_returned_bank_charge_has_nothing_to_refund(self, till: Till) -> None:
        payment = till.pay(till.pay_session(till.invoice(1000)), bank=RETURNS_R01)
        till.gateway.events(till.scope, through=clock.utcnow().date() + timedelta(days=10))
        result = till.gateway.refund(till.scope, reference=str(payment.gateway_reference),
                                     amount_minor=100, idempotency_key="returned")
        assert result.status == "refused"

    def test_the_timeout_card_refund_is_made_then_times_out_and_is_looked_up(
            self, till: Till) -> None:
        payment = paid_by_the_timeout_card(till, till.invoice(1000))
        reference = str(payment.gateway_reference)
        assert till.gateway.lookup_refund(till.scope, idempotency_key="r-1") is None
        with pytest.raises(GatewayTimeout):
            till.gateway.refund(till.scope, reference=reference, amount_minor=300,
                                idempotency_key="r-1")
        found = till.gateway.lookup_refund(till.scope, idempotency_key="r-1")
        assert found is not None
        assert found.status == "succeeded"
        again = till.gateway.refund(till.scope, reference=reference, amount_minor=300,
                                    idempotency_key="r-1")
        assert again == found
        assert refunded_at_gateway(till, payment) == 300


# -- 5. a won chargeback of an entry's payment ---------------------------------------------


class TestAWonChargebackOfAnEntrysPayment:
    def test_puts_the_money_back_on_the_invoice_the_entry_was_assigned_to(self, till: Till
                                                                          ) -> None:
        entry, token = new_entry(till, "SO-1", 2500)
        payment = pay_entry(till, token, card=DISPUTE_WON)
        invoice = keyed_invoice(till, "SO-1", 2500)
        assert till.reread(invoice).status == "paid"
        till.advance(4)
        assert till.reread(invoice).status == "open"
        till.advance(30)
        assert till.reread(invoice).status == "paid"
        assert till.balances() == {"receivable": {"USD": 0}, "unapplied_cash": {"USD": 0}}
        assert till.payment(payment.id).status == "succeeded"
        assert till.get(Entry, entry.id).status == "assigned"
        books_balance(till)

    def test_keeps_what_the_invoice_did_not_take_as_unapplied_cash(self, till: Till) -> None:
        _, token = new_entry(till, "SO-2", 2500)
        pay_entry(till, token, card=DISPUTE_WON)
        invoice = keyed_invoice(till, "SO-2", 1000)
        till.advance(34)
        assert till.reread(invoice).status == "paid"
        assert till.balances() == {"receivable": {"USD": 0}, "unapplied_cash": {"USD": 1500}}

    def test_an_invoice_paid_again_meanwhile_leaves_the_money_unapplied(self, till: Till
                                                                         ) -> None:
        invoice = till.invoice(1000)
        till.pay(till.pay_session(invoice), card=DISPUTE_WON)
        till.advance(4)
        till.pay(till.pay_session(invoice))  # the payer pays again after the chargeback
        till.advance(30)
        assert till.reread(invoice).status == "paid"
        assert till.balances() == {"receivable": {"USD": 0}, "unapplied_cash": {"USD": 1000}}
