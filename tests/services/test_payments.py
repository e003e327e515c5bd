"""Paying pay sessions, and what happens to payments afterwards: allocation, the ledger,
refunds, voids, ACH returns, chargebacks, lost outcomes and the test clock."""

from __future__ import annotations

import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from billfold import cli
from billfold.core import db, jobs
from billfold.core.config import Settings
from billfold.core.db import transaction
from billfold.core.errors import Conflict, ValidationFailed
from billfold.core.scope import Scope
from billfold.customers import service as customers
from billfold.invoicing import service as invoicing
from billfold.invoicing.models import Invoice
from billfold.ledger import service as ledger
from billfold.ledger import verify
from billfold.notifications import outbox
from billfold.notifications.webhook_models import Event
from billfold.payments import after, notify, paying, recording, refunds, sessions
from billfold.payments.gateways.base import BankDetails, CardDetails, ChargeRequest
from billfold.payments.gateways.test import TestGateway
from billfold.payments.gateways.test_models import TestGatewayCharge
from billfold.payments.models import (
    BlockedBankAccount,
    Dispute,
    Payment,
    PaymentAllocation,
    PaySession,
)
from tests.services.conftest import ACTOR, Desk

VISA = "4242424242424242"
DECLINED = "4000000000000002"
TIMEOUT = "4000000000000119"
DISPUTE_LOST = "4000000000000259"
DISPUTE_WON = "4000000000002685"


class Till:
    """A biller's invoices and a payer paying them, in one tenant."""

    def __init__(self, factory: sessionmaker[Session], session: Session, scope: Scope,
                 desk: Desk) -> None:
        self.factory, self.session, self.scope, self.desk = factory, session, scope, desk
        self.gateway = TestGateway(factory, fingerprint_key=b"test key")
        _, self.account = desk.create_customer("Widgets International")

    def invoice(self, amount_minor: int, account: Any = None) -> Invoice:
        with transaction(self.session):
            draft = invoicing.create_draft(
                self.session, self.scope, billing_account_id=(account or self.account).id,
                lines=[{"description": "Widgets", "quantity": 1, "unit_amount_minor": amount_minor}],
                actor=ACTOR)
            return invoicing.finalize(self.session, self.scope, invoice_id=draft.id, actor=ACTOR)

    def pay_session(self, *invoices: Invoice, **options: Any) -> str:
        lines = [{"invoice_id": i.id, **options} for i in invoices]
        with transaction(self.session):
            return sessions.create_native(self.session, self.scope, invoices=lines).token

    def pay(self, token: str, amounts: dict[str, int] | None = None, *, card: str = VISA,
            bank: tuple[str, str] | None = None, nonce: str | None = None) -> Payment:
        if amounts is None:
            with self.factory() as s:
                row = sessions.find(s, token)
                amounts = {line["key"]: line["balance_due_minor"]
                           for line in sessions.current_lines(s, row)}
        details: Any = CardDetails(card, 12, 2030, "123", "Ada Payer")
        method = "card"
        if bank is not None:
            details, method = BankDetails(bank[0], bank[1], "checking", "Ada Payer"), "ach"
        return paying.pay(self.factory, self.gateway, token, paying.Submission(
            nonce=nonce or secrets.token_hex(8), amounts=amounts, method=method, details=details))

    # Reads go through sessions of their own that end at once: on SQLite, a transaction
    # left open would hold the writer's lock the payment steps need.
    def reread(self, invoice: Invoice) -> Invoice:
        return self.get(Invoice, invoice.id)

    def payment(self, payment_id: str) -> Payment:
        return self.get(Payment, payment_id)

    def get(self, model: Any, object_id: str) -> Any:
        with self.factory() as s:
            found = s.get(model, object_id)
            assert found is not None
            s.expunge(found)
            return found

    def scalar(self, statement: Any) -> Any:
        with self.factory() as s:
            return s.scalar(statement)

    def allocations(self, invoice: Invoice) -> list[PaymentAllocation]:
        with self.factory() as s:
            return list(s.scalars(select(PaymentAllocation).where(
                PaymentAllocation.invoice_id == invoice.id)))

    def balances(self) -> dict[str, dict[str, int]]:
        with self.factory() as s:
            return ledger.billing_account_balances(s, self.scope, self.account.id)

    def events(self, type_: str) -> int:
        return int(self.scalar(select(func.count()).where(
            Event.tenant_id == self.scope.tenant_id, Event.type == type_)) or 0)

    def advance(self, days: int) -> None:
        after.advance_test_clock(self.factory, self.gateway, self.scope, days=days)


@pytest.fixture
def till(sessions: sessionmaker[Session], session: Session, scope: Scope, ref: Any) -> Till:
    return Till(sessions, session, scope, Desk(session, scope, ref))


class TestPayingByCard:
    def test_pays_two_invoices_and_posts_one_balanced_entry(self, till: Till) -> None:
        first, second = till.invoice(1000), till.invoice(2500)
        payment = till.pay(till.pay_session(first, second, card_fee_minor=100))
        assert (payment.status, payment.amount_minor, payment.fee_minor) == ("succeeded", 3500, 200)
        assert payment.receipt_number
        assert payment.last4 == "4242"
        assert payment.brand == "visa"
        assert till.reread(first).status == till.reread(second).status == "paid"
        assert till.balances()["receivable"] == {"USD": 0}
        with till.factory() as s:
            entries = ledger.list_entries(s, till.scope, limit=10, source_type="payment")
        assert [e.source_id for e in entries] == [payment.id]
        assert till.events("payment.succeeded") == 1
        assert till.events("invoice.paid") == 2

    def test_a_partial_payment_leaves_the_invoice_partially_paid(self, till: Till) -> None:
        invoice = till.invoice(5000)
        token = till.pay_session(invoice, allow_partial=True, minimum_amount_minor=1000)
        till.pay(token, {"1": 2000})
        assert till.reread(invoice).status == "partially_paid"
        assert till.reread(invoice).amount_due_minor == 3000

    def test_refuses_less_than_the_minimum_and_a_partial_payment_not_allowed(self, till: Till
                                                                             ) -> None:
        invoice = till.invoice(5000)
        with pytest.raises(ValidationFailed) as partial:
            till.pay(till.pay_session(invoice), {"1": 2000})
        assert partial.value.errors[0].field == "amounts[1]"
        with pytest.raises(ValidationFailed) as small:
            till.pay(till.pay_session(invoice, allow_partial=True, minimum_amount_minor=1000),
                     {"1": 500})
        assert "minimum" in small.value.errors[0].message
        assert till.reread(invoice).status == "open"

    def test_a_declined_card_fails_and_the_session_can_be_paid_again(self, till: Till) -> None:
        invoice = till.invoice(1000)
        token = till.pay_session(invoice)
        failed = till.pay(token, card=DECLINED)
        assert (failed.status, failed.failure_code) == ("failed", "card_declined")
        assert till.reread(invoice).status == "open"
        assert till.pay(token).status == "succeeded"
        assert till.events("payment.failed") == 1

    def test_the_same_submission_twice_charges_once(self, till: Till) -> None:
        token = till.pay_session(till.invoice(1000))
        first = till.pay(token, nonce="same")
        again = till.pay(token, nonce="same")
        assert first.id == again.id
        assert till.scalar(select(func.count()).where(
            Payment.pay_session_id == first.pay_session_id)) == 1

    def test_a_paid_session_cannot_be_paid_again(self, till: Till) -> None:
        token = till.pay_session(till.invoice(1000))
        till.pay(token)
        with pytest.raises(Conflict):
            till.pay(token, {"1": 1000})

    def test_an_invoice_paid_meanwhile_leaves_the_money_unapplied(self, till: Till) -> None:
        invoice = till.invoice(1000)
        first, second = till.pay_session(invoice), till.pay_session(invoice)
        with till.factory() as s:
            row = sessions.find(s, second)
            stale = {line["key"]: line["balance_due_minor"] for line in row.lines}
        till.pay(first)
        # The second page was rendered before the first payment; its invoice is gone now.
        with pytest.raises(ValidationFailed):
            till.pay(second, stale)
        assert till.balances()["unapplied_cash"] == {}


class TestReadAhead:
    """paying.read_ahead: what settling a payment reads is read before it writes (on
    PostgreSQL in one round trip), and not read again."""

    SETTLING_READS = ("tenant_settings", "billing_account", "customer", "tenant", "invoice",
                      "pay_session", "webhook_endpoint", "ledger_account")

    def outcome_statements(self, till: Till, monkeypatch: pytest.MonkeyPatch,
                           token: str) -> tuple[Payment, list[str]]:
        """The payment, and the statements run through SQLAlchemy once its outcome is
        being recorded (from the read ahead on)."""
        seen: list[str] = []
        reading_ahead = paying.read_ahead

        def noted(session: Session, scope: Scope, payment: Payment) -> None:
            seen.append("-- read ahead")
            reading_ahead(session, scope, payment)

        def watch(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if seen:
                seen.append(statement)

        monkeypatch.setattr(paying, "read_ahead", noted)
        engine = till.factory.kw["bind"]
        sa_event.listen(engine, "before_cursor_execute", watch)
        try:
            payment = till.pay(token)
        finally:
            sa_event.remove(engine, "before_cursor_execute", watch)
        assert seen, "the outcome was recorded without reading ahead"
        return payment, seen[1:]

    def test_settling_reads_nothing_again(self, till: Till,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
        first, second = till.invoice(1000), till.invoice(2500)
        payment, statements = self.outcome_statements(
            till, monkeypatch, till.pay_session(first, second, card_fee_minor=100))
        assert payment.status == "succeeded"
        again = [s for s in statements if s.startswith("SELECT") and re.search(
            r"FROM (\w+)", s).group(1) in self.SETTLING_READS]  # type: ignore[union-attr]
        assert again == []
        assert till.reread(first).status == till.reread(second).status == "paid"
        assert till.balances()["receivable"] == {"USD": 0}
        assert till.events("invoice.paid") == 2

    @pytest.mark.postgres_only
    def test_the_reads_are_one_round_trip(self, till: Till,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
        till.pay(till.pay_session(till.invoice(500)))  # the ledger accounts exist
        sent: list[list[str]] = []
        pipelined = db._pipelined

        def watched(connection: Any, waiting: Any, reads: Any, **options: Any) -> Any:
            sent.append([re.search(r"FROM (\w+)", sql).group(1)  # type: ignore[union-attr]
                         for sql, _ in reads])
            return pipelined(connection, waiting, reads, **options)

        monkeypatch.setattr(db, "_pipelined", watched)
        payment = till.pay(till.pay_session(till.invoice(1000), till.invoice(700)))
        assert payment.status == "succeeded"
        assert [tables for tables in sent if tables] == [[
            "tenant_settings", "billing_account", "invoice", "pay_session", "webhook_endpoint",
            "ledger_account"]]


    @pytest.mark.postgres_only
    def test_an_invoice_the_session_held_is_applied_as_locked(self, till: Till) -> None:
        # Read ahead makes no instance of an invoice the session holds (it could predate
        # another payment's commit): settling's own read refreshes it as locked.
        invoice = till.invoice(1_000)
        token = till.pay_session(invoice)
        with till.factory() as s:
            (line,) = sessions.current_lines(s, sessions.find(s, token))
        card = CardDetails(VISA, 12, 2030, "123", "Ada Payer")
        started = paying._start(till.factory, token, paying.Submission(
            nonce="held", amounts={line["key"]: 1_000}, method="card", details=card))
        result = till.gateway.charge(till.scope, ChargeRequest(
            idempotency_key=started.id, amount_minor=started.amount_minor, currency="USD",
            method=card, description="held", on_date=started.payment_date))
        with till.factory() as s, transaction(s):
            held = s.get(Invoice, invoice.id)
            assert held is not None
            assert held.amount_due_minor == 1_000
            recording.record(till.factory, lambda scope: till.gateway, till.scope,
                             billing_account_id=till.account.id, amount_minor=400,
                             method="check", invoice_ids=[invoice.id])  # commits on its own
            payment = s.get(Payment, started.id, with_for_update=True)
            assert payment is not None
            paying.record_outcome(s, till.gateway, payment, result)
            assert (held.amount_paid_minor, held.status) == (1_000, "paid")
        on_invoice = {a.payment_id: a.amount_minor for a in till.allocations(invoice)}
        assert on_invoice[started.id] == 600
        assert till.balances()["unapplied_cash"] == {"USD": 400}


class TestPayingByBank:
    def test_stays_pending_until_settled_on_the_test_clock(self, till: Till) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice), bank=("110000000", "000123456789"))
        assert payment.status == "pending"
        assert payment.settles_on is not None
        assert till.reread(invoice).status == "paid"
        till.advance(5)
        assert till.payment(payment.id).status == "succeeded"

    def test_a_return_reopens_the_invoice_charges_the_fee_and_blocks_r03_accounts(
            self, till: Till) -> None:
        with transaction(till.session):
            from billfold.customers import settings as settings_service
            settings_service.update_settings(till.session, till.scope, {"ach_return_fee_minor": 2500})
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice), bank=("110000000", "000111111113"))
        till.advance(5)
        assert till.payment(payment.id).status == "returned"
        assert till.reread(invoice).status == "open"
        assert till.balances()["receivable"] == {"USD": 1000 + 2500}
        assert till.scalar(select(func.count()).where(
            BlockedBankAccount.tenant_id == till.scope.tenant_id)) == 1
        again = till.pay(till.pay_session(invoice), bank=("110000000", "000111111113"))
        assert (again.status, again.failure_code) == ("failed", "bank_account_blocked")
        assert till.events("payment.returned") == 1

    def test_a_blocked_account_is_not_debited_through_a_recorded_payment_either(
            self, till: Till) -> None:
        """POST /v1/payments with the returned account's token (method ach) is refused as
        the pay page refuses it: the debit the gateway accepted is voided at once."""
        invoice = till.invoice(1000)
        returned = till.pay(till.pay_session(invoice), bank=("110000000", "000111111113"))
        till.advance(5)
        token = till.payment(returned.id).instrument_token
        assert token
        again = recording.record(till.factory, lambda scope: till.gateway, till.scope,
                                 billing_account_id=till.account.id, amount_minor=1000,
                                 method="ach", instrument_token=token, invoice_ids=[invoice.id])
        assert (again.status, again.failure_code) == ("failed", "bank_account_blocked")
        with till.factory() as session:
            states = {row.id: row.state for row in session.scalars(select(TestGatewayCharge)
                      .where(TestGatewayCharge.tenant_id == till.scope.tenant_id))}
        assert states == {till.payment(returned.id).gateway_reference: "returned",
                          again.gateway_reference: "voided"}
        assert till.reread(invoice).status == "open"
        till.advance(5)  # the voided debit never settles
        assert till.payment(again.id).status == "failed"

    def test_an_r01_return_does_not_block_the_account(self, till: Till) -> None:
        invoice = till.invoice(1000)
        till.pay(till.pay_session(invoice), bank=("110000000", "000111111116"))
        till.advance(5)
        assert till.reread(invoice).status == "open"
        assert till.pay(till.pay_session(invoice), bank=("110000000", "000111111116")
                        ).status == "pending"

    def test_void_before_settlement_reopens_the_invoice(self, till: Till) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice), bank=("110000000", "000123456789"))
        voided = after.void(till.factory, till.gateway, till.scope, payment_id=payment.id)
        assert voided.status == "voided"
        assert till.reread(invoice).status == "open"
        till.advance(5)  # the cancelled debit never settles
        assert till.payment(payment.id).status == "voided"


class TestRefunds:
    def test_a_partial_refund_reopens_the_last_invoice_paid(self, till: Till) -> None:
        first, second = till.invoice(1000), till.invoice(2000)
        payment = till.pay(till.pay_session(first, second, card_fee_minor=100))
        refund = refunds.refund(till.factory, till.gateway, till.scope, payment_id=payment.id,
                              amount_minor=500)
        assert (refund.status, refund.fee_minor) == ("succeeded", 0)
        assert till.reread(second).status == "partially_paid"
        assert till.reread(first).status == "paid"
        assert till.payment(payment.id).status == \
            "partially_refunded"

    def test_refunding_the_rest_gives_back_the_fee(self, till: Till) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice, card_fee_minor=100))
        refunds.refund(till.factory, till.gateway, till.scope, payment_id=payment.id,
                     amount_minor=400)
        last = refunds.refund(till.factory, till.gateway, till.scope, payment_id=payment.id)
        assert (last.amount_minor, last.fee_minor) == (600, 100)
        assert till.payment(payment.id).status == "refunded"
        assert till.reread(invoice).status == "open"
        with pytest.raises(Conflict):
            refunds.refund(till.factory, till.gateway, till.scope, payment_id=payment.id)

    def test_two_refunds_of_one_payment_at_once_never_give_back_more_than_it_took(
            self, till: Till, monkeypatch: pytest.MonkeyPatch) -> None:
        # Each asks for 600 of 1,000. The gateway takes a moment for each refund, so the
        # second asks while the first is still with the gateway (or just after it).
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice))
        refund_at_gateway = till.gateway.refund

        def slow_refund(*args: Any, **kwargs: Any) -> Any:
            time.sleep(0.2)
            return refund_at_gateway(*args, **kwargs)

        monkeypatch.setattr(till.gateway, "refund", slow_refund)
        both_there = threading.Barrier(2, timeout=5)

        def refund() -> Any:
            both_there.wait()
            try:
                return refunds.refund(till.factory, till.gateway, till.scope,
                                    payment_id=payment.id, amount_minor=600)
            except (Conflict, ValidationFailed) as refused:
                return refused

        with ThreadPoolExecutor(2) as pool:
            outcomes = [f.result() for f in [pool.submit(refund), pool.submit(refund)]]
        done = [o for o in outcomes if not isinstance(o, Exception)]
        assert [o.status for o in done] == ["succeeded"]
        assert len(outcomes) - len(done) == 1
        refunded = till.payment(payment.id)
        assert (refunded.refunded_minor, refunded.status) == (600, "partially_refunded")
        assert till.reread(invoice).amount_due_minor == 600
        assert till.balances()["receivable"] == {"USD": 600}

    def test_refuses_more_than_is_left(self, till: Till) -> None:
        payment = till.pay(till.pay_session(till.invoice(1000)))
        with pytest.raises(ValidationFailed):
            refunds.refund(till.factory, till.gateway, till.scope, payment_id=payment.id,
                         amount_minor=1001)


class TestChargebacks:
    def test_a_lost_dispute_reopens_the_invoice_and_posts_the_fee(self, till: Till) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice), card=DISPUTE_LOST)
        till.advance(4)
        assert till.reread(invoice).status == "open"
        assert till.payment(payment.id).status == "disputed"
        till.advance(30)
        dispute = till.scalar(select(Dispute).where(Dispute.payment_id == payment.id))
        assert dispute.status == "lost"
        assert dispute.fee_minor == 1500
        assert till.reread(invoice).status == "open"

    def test_a_won_dispute_reinstates_the_payment(self, till: Till) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice), card=DISPUTE_WON)
        till.advance(4)
        assert till.reread(invoice).status == "open"
        till.advance(30)
        assert till.reread(invoice).status == "paid"
        assert till.payment(payment.id).status == "succeeded"

    def test_the_same_notification_twice_changes_nothing(self, till: Till) -> None:
        invoice = till.invoice(1000)
        till.pay(till.pay_session(invoice), card=DISPUTE_LOST)
        with till.factory() as s:
            from billfold.tenants import service as tenants
            horizon = tenants.today(s, till.scope).replace(year=2100)
        events = till.gateway.events(till.scope, through=horizon)
        for event in events + events:
            with till.factory() as s, transaction(s):
                after.handle_event(s, till.scope, till.gateway, event)
        assert till.balances()["receivable"] == {"USD": 1000}
        assert till.events("payment.disputed") == 2  # opened, then lost


class TestConfirmations:
    @pytest.fixture(autouse=True)
    def worker_handlers(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        # The handlers `billfold worker` runs: the receipt job must be among them.
        self.handlers = cli._job_handlers(Settings(data_dir=tmp_path / "var"))

    def receipts(self, till: Till, payment: Payment) -> list[Any]:
        """The worker's receipt jobs run; the messages about ``payment``."""
        while jobs.run_pending(till.factory, self.handlers, worker_id="test-worker",
                               kinds=[notify.RECEIPT]):
            pass
        with till.factory() as s:
            return outbox.deliveries_for(s, till.scope, "payment", payment.id)

    def test_the_payer_is_emailed_the_receipt(self, till: Till) -> None:
        payment = till.pay(till.pay_session(till.invoice(1000), card_fee_minor=100))
        sent = self.receipts(till, payment)
        assert len(sent) == 1
        assert sent[0].to == ["billing@acme.example"]
        assert sent[0].subject == f"Test Biller: payment received, receipt {payment.receipt_number}"
        assert payment.receipt_number in sent[0].text_body
        assert "Visa •••• 4242" in sent[0].text_body
        assert "$10.00" in sent[0].text_body
        assert "Total: $11.00" in sent[0].text_body
        assert "4242424242424242" not in sent[0].text_body
        assert [m.id for m in self.receipts(till, payment)] == [sent[0].id]  # one, once

    def test_the_email_is_written_by_the_worker_from_a_job_of_the_payments_transaction(
            self, till: Till) -> None:
        payment = till.pay(till.pay_session(till.invoice(1000)))
        with till.factory() as s:
            assert outbox.deliveries_for(s, till.scope, "payment", payment.id) == []
            [job] = s.scalars(select(jobs.Job).where(jobs.Job.kind == notify.RECEIPT,
                                                      jobs.Job.tenant_id == till.scope.tenant_id))
            assert job.payload["payment_id"] == payment.id
        assert len(self.receipts(till, payment)) == 1

    def test_a_bank_payment_pending_when_made_says_so_even_once_settled(self, till: Till
                                                                         ) -> None:
        payment = till.pay(till.pay_session(till.invoice(1000)),
                           bank=("110000000", "000123456789"))
        assert payment.status == "pending"
        with till.factory() as s, transaction(s):
            s.get(Payment, payment.id).status = "succeeded"  # as if settled before the job ran
        [sent] = self.receipts(till, payment)
        assert "Bank payments settle in a few business days." in sent.text_body

    def test_no_email_when_the_account_turned_confirmations_off(self, till: Till) -> None:
        with transaction(till.session):
            customers.update_billing_account(till.session, till.scope, account_id=till.account.id,
                                             changes={"email_confirmations": False}, actor=ACTOR)
        payment = till.pay(till.pay_session(till.invoice(1000)))
        assert self.receipts(till, payment) == []


class TestLostOutcomes:
    def test_a_timeout_leaves_the_payment_unknown_and_the_janitor_settles_it(self, till: Till
                                                                             ) -> None:
        invoice = till.invoice(1000)
        token = till.pay_session(invoice)
        payment = till.pay(token, card=TIMEOUT)
        assert payment.status == "unknown"
        with pytest.raises(Conflict):  # nobody pays it twice meanwhile
            till.pay(token)
        assert after.resolve_unknown(till.factory, till.gateway, till.scope) == 1
        assert till.payment(payment.id).status == "succeeded"
        assert till.reread(invoice).status == "paid"
        with till.factory() as s:
            assert sessions.find(s, token).status == "paid"


class TestTheLedgerAfterEverything:
    def test_verify_finds_every_entry_balanced(self, till: Till) -> None:
        invoice = till.invoice(3000)
        payment = till.pay(till.pay_session(invoice, allow_partial=True), {"1": 1000})
        refunds.refund(till.factory, till.gateway, till.scope, payment_id=payment.id, amount_minor=300)
        till.pay(till.pay_session(invoice), bank=("110000000", "000111111116"))
        till.advance(5)
        with till.factory() as s:
            problems = verify.verify(s)
        assert [p for p in problems if till.scope.tenant_id in str(p)] == []


def test_the_session_row_is_not_left_claimed_after_a_decline(till: Till) -> None:
    token = till.pay_session(till.invoice(1000))
    till.pay(token, card=DECLINED)
    with till.factory() as s:
        assert s.scalars(select(PaySession.status).where(
            PaySession.token_hash == sessions.token_hash(token))).one() == "open"
