"""Prepayment entries with assignment keys, and payments recorded through the API."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from billfold.catalog import service as catalog
from billfold.core import db
from billfold.core.db import transaction
from billfold.core.errors import ValidationFailed
from billfold.core.scope import Scope
from billfold.invoicing import billrun
from billfold.invoicing import service as invoicing
from billfold.invoicing.models import Invoice
from billfold.payments import entries, paying, recording, sessions
from billfold.payments.gateways.base import CardDetails
from billfold.payments.models import Entry
from tests.services.conftest import ACTOR, Desk
from tests.services.test_bill_runs import work
from tests.services.test_payments import Till


@pytest.fixture
def till(sessions: sessionmaker[Session], session: Session, scope: Scope, ref: Any) -> Till:
    return Till(sessions, session, scope, Desk(session, scope, ref))


def pay_entry(till: Till, token: str, card: str = "4242424242424242") -> Any:
    return paying.pay(till.factory, till.gateway, token, paying.Submission(
        nonce="n", amounts={"1": till.entry_amount}, method="card",
        details=CardDetails(card, 12, 2030, "123", "Ada")))


def new_entry(till: Till, key: str, amount: int = 2500, **extra: Any) -> tuple[Entry, str]:
    till.entry_amount = amount  # type: ignore[attr-defined]
    with transaction(till.session):
        entry, created = entries.create_entry(
            till.session, till.scope, assignment_key=key, amount_minor=amount, currency="USD",
            billing_account_id=till.account.id, actor=ACTOR, **extra)
    return entry, created.token


def entry_of(till: Till, entry_id: str) -> Entry:
    return till.get(Entry, entry_id)


def keyed_invoice(till: Till, key: str, amount: int) -> Invoice:
    with transaction(till.session):
        draft = invoicing.create_draft(
            till.session, till.scope, billing_account_id=till.account.id, assignment_key=key,
            lines=[{"description": "Order SO-1", "quantity": 1, "unit_amount_minor": amount}],
            actor=ACTOR)
        return invoicing.finalize(till.session, till.scope, invoice_id=draft.id, actor=ACTOR)


class TestEntries:
    def test_a_paid_entry_is_balanced_and_holds_unapplied_cash(self, till: Till) -> None:
        entry, token = new_entry(till, "SO-1")
        assert pay_entry(till, token).status == "succeeded"
        assert entry_of(till, entry.id).status == "balanced"
        assert till.balances()["unapplied_cash"] == {"USD": 2500}
        assert till.events("entry.balanced") == 1

    def test_the_invoice_finalized_with_its_key_takes_the_money(self, till: Till) -> None:
        entry, token = new_entry(till, "SO-2")
        pay_entry(till, token)
        invoice = keyed_invoice(till, "SO-2", 2500)
        assert till.reread(invoice).status == "paid"
        found = entry_of(till, entry.id)
        assert (found.status, found.invoice_id) == ("assigned", invoice.id)
        assert till.balances() == {"receivable": {"USD": 0}, "unapplied_cash": {"USD": 0}}
        assert till.events("entry.assigned") == 1

    def test_an_invoice_that_exists_already_is_paid_when_the_entry_is(self, till: Till) -> None:
        invoice = keyed_invoice(till, "SO-3", 3000)
        entry, token = new_entry(till, "SO-3", 2000)
        pay_entry(till, token)
        assert till.reread(invoice).status == "partially_paid"
        assert entry_of(till, entry.id).status == "assigned"

    def test_a_sales_order_is_billed_by_the_next_run_and_assigned(self, till: Till) -> None:
        with transaction(till.session):
            product = catalog.create_product(till.session, till.scope, name="Widget kit",
                                             sku="KIT-1", tax_category="standard")
            price = catalog.create_price(till.session, till.scope, product_id=product.id,
                                         kind="one_time", amounts_minor={"USD": 2500})
        entry, token = new_entry(till, "SO-4", sales_order=[
            {"price_id": price.id, "quantity": 1, "start_date": date(2026, 2, 1)}])
        pay_entry(till, token)
        with transaction(till.session):
            billrun.start_bill_run(till.session, till.scope, as_of_date=date(2026, 3, 1),
                                   actor=ACTOR)
        work(till.factory)
        found = entry_of(till, entry.id)
        assert found.status == "assigned"
        invoice = till.get(Invoice, str(found.invoice_id))
        assert (invoice.assignment_key, invoice.status) == ("SO-4", "paid")

    def test_an_assignment_key_is_used_once(self, till: Till) -> None:
        new_entry(till, "SO-5")
        with pytest.raises(ValidationFailed) as refused:
            new_entry(till, "SO-5")
        assert refused.value.errors[0].field == "assignment_key"

    def test_a_declined_card_leaves_the_entry_open(self, till: Till) -> None:
        entry, token = new_entry(till, "SO-6")
        assert pay_entry(till, token, card="4000000000000002").status == "failed"
        assert entry_of(till, entry.id).status == "open"
        with till.factory() as s:
            assert sessions.find(s, token).allow_ach is False  # entries pay by card only


class TestRecordedPayments:
    def test_a_check_pays_the_oldest_invoices_first_and_keeps_the_rest(self, till: Till) -> None:
        first, second = till.invoice(1000), till.invoice(2000)
        payment = recording.record(till.factory, lambda scope: till.gateway, till.scope,
                                   billing_account_id=till.account.id, amount_minor=3500,
                                   method="check", reference="Check 1001")
        assert payment.status == "succeeded"
        assert payment.receipt_number
        assert till.reread(first).status == till.reread(second).status == "paid"
        assert till.balances()["unapplied_cash"] == {"USD": 500}

    def test_named_invoices_are_paid_in_the_order_given(self, till: Till) -> None:
        first, second = till.invoice(1000), till.invoice(2000)
        recording.record(till.factory, lambda scope: till.gateway, till.scope,
                         billing_account_id=till.account.id, amount_minor=2500, method="wire",
                         invoice_ids=[second.id, first.id])
        assert till.reread(second).status == "paid"
        assert till.reread(first).amount_due_minor == 500

    def test_a_saved_card_is_charged_through_the_gateway(self, till: Till) -> None:
        first = till.pay(till.pay_session(till.invoice(1000)))
        second = till.invoice(700)
        again = recording.record(till.factory, lambda scope: till.gateway, till.scope,
                                 billing_account_id=till.account.id, amount_minor=700,
                                 method="card", instrument_token=first.instrument_token,
                                 invoice_ids=[second.id])
        assert again.status == "succeeded"
        assert again.last4 == "4242"
        assert till.reread(second).status == "paid"

    def test_the_same_submission_key_records_once(self, till: Till) -> None:
        till.invoice(1000)
        args = {"billing_account_id": till.account.id, "amount_minor": 1000, "method": "cash",
                "submission_key": "api:k1"}
        one = recording.record(till.factory, lambda scope: till.gateway, till.scope, **args)
        two = recording.record(till.factory, lambda scope: till.gateway, till.scope, **args)
        assert one.id == two.id

    @pytest.mark.postgres_only
    def test_two_payments_of_one_invoice_at_once_take_turns(
            self, till: Till, monkeypatch: pytest.MonkeyPatch) -> None:
        # Each payment waits (a second at most) for the other before it locks the account
        # to apply its money. When both had written their payment row first, each held a
        # key share of the account row that the other's lock waited for: a deadlock. The
        # account is locked when the payment reads it, so the second waits there, then
        # finds the invoice paid and is refused, as it would be a moment later.
        invoice = till.invoice(1000)
        both_there = threading.Barrier(2, timeout=1)
        lock_accounts = paying.lock_accounts

        def wait_then_lock(session: Session, account_ids: set[str]) -> None:
            # Broken when the other waits for this one's commit instead of coming here
            with contextlib.suppress(threading.BrokenBarrierError):
                both_there.wait()
            lock_accounts(session, account_ids)

        monkeypatch.setattr(paying, "lock_accounts", wait_then_lock)

        def pay(reference: str) -> Any:
            try:
                return recording.record(
                    till.factory, lambda scope: till.gateway, till.scope,
                    billing_account_id=till.account.id, amount_minor=1000, method="check",
                    invoice_ids=[invoice.id], reference=reference)
            except ValidationFailed as refused:
                return refused

        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(pay, ["Check A", "Check B"]))
        refused = [o for o in outcomes if isinstance(o, ValidationFailed)]
        assert [o.status for o in outcomes if o not in refused] == ["succeeded"]
        assert [(e.field, e.code) for e in refused[0].errors] == [
            ("invoice_ids[0]", "invoice_not_payable")]
        paid = till.reread(invoice)
        assert (paid.status, paid.amount_paid_minor) == ("paid", 1000)
        assert till.balances() == {"receivable": {"USD": 0}, "unapplied_cash": {}}

    @pytest.mark.postgres_only
    def test_the_account_locked_when_read_is_not_locked_again(self, till: Till) -> None:
        invoice = till.invoice(1000)
        locks = record_watching(till, lambda s: "FOR UPDATE" in s and "FROM billing_account" in s,
                                amount_minor=1000, invoice_ids=[invoice.id])
        assert len(locks) == 1  # the read of the account, its customer and tenant
        assert till.reread(invoice).status == "paid"

    def test_invoices_named_are_read_once_locked(self, till: Till) -> None:
        first, second = till.invoice(1000), till.invoice(2000)
        reads = record_watching(till, lambda s: s.startswith("SELECT") and "FROM invoice" in s,
                                amount_minor=2500, invoice_ids=[second.id, first.id])
        assert len(reads) == 1
        if till.factory.kw["bind"].dialect.name == "postgresql":  # SQLite: the writer's lock
            assert "FOR UPDATE" in reads[0]
        assert till.reread(second).status == "paid"
        assert till.reread(first).amount_due_minor == 500

    @pytest.mark.postgres_only
    def test_what_settling_reads_is_read_with_the_account_and_the_writes_go_with_the_commit(
            self, till: Till, monkeypatch: pytest.MonkeyPatch) -> None:
        # Four round trips on the payment's connection (BEGIN, the key, these reads, the
        # writes with the COMMIT) where each read and the writes between them took one.
        # The ledger accounts exist (made by a first payment): what is missing is made
        # when posting, and read again then.
        first, invoice = till.invoice(500), till.invoice(1000)
        recording.record(till.factory, lambda scope: till.gateway, till.scope,
                         billing_account_id=till.account.id, amount_minor=700,
                         method="check", invoice_ids=[first.id])
        sent: list[tuple[list[str], list[str], bool]] = []
        pipelined = db._pipelined

        def watched(connection: Any, waiting: Any, reads: Any, **options: Any) -> Any:
            sent.append(([sql for sql, *_ in waiting], [sql for sql, _ in reads],
                         bool(options.get("commit"))))
            return pipelined(connection, waiting, reads, **options)

        monkeypatch.setattr(db, "_pipelined", watched)
        watched_alone = record_watching(
            till, lambda s: "FROM ledger_account" in s or "FROM webhook_endpoint" in s,
            amount_minor=1000, invoice_ids=[invoice.id])
        (_, reads, _), (writes, after, commit) = sent
        assert [re.search(r"FROM (\w+)", sql).group(1) for sql in reads] == [  # type: ignore[union-attr]
            "billing_account", "invoice", "webhook_endpoint", "ledger_account"]
        assert len(watched_alone) == 2  # those two, in that pipeline, and not again
        assert commit
        assert not after
        assert any(sql.startswith("INSERT INTO payment ") for sql in writes)
        assert any(sql.startswith("UPDATE ledger_account") for sql in writes)
        assert till.reread(invoice).status == "paid"

    def test_refuses_an_invoice_of_another_account(self, till: Till) -> None:
        other = till.desk.new_account("Other Co")
        invoice = till.invoice(1000, account=other)
        with pytest.raises(ValidationFailed) as refused:
            recording.record(till.factory, lambda scope: till.gateway, till.scope,
                             billing_account_id=till.account.id, amount_minor=1000,
                             method="check", invoice_ids=[invoice.id])
        assert refused.value.errors[0].field == "invoice_ids[0]"
        with till.factory() as s:
            assert s.scalars(select(Invoice.status).where(Invoice.id == invoice.id)).one() == "open"


def test_a_payment_applied_in_a_savepoint_rolled_back_leaves_the_invoice_as_it_was(till):
    # Applied outside a savepoint, the invoice's new amounts are written past the unit of
    # work; in one, a rollback must take them back in the session as in the database.
    invoice = till.invoice(10_000)
    made = []

    def pay_then_roll_back(s: Session, held: Invoice) -> None:
        with s.begin_nested():
            payment, _ = recording._new(
                s, till.scope, billing_account_id=till.account.id, amount_minor=4_000,
                method="check", instrument_token=None, invoice_ids=[invoice.id],
                reference=None, key="savepoint")
            made.append(payment)
            payment.status, payment.gateway = "succeeded", "none"
            paying.settle(s, till.scope, payment)
            assert (held.amount_paid_minor, held.status) == (4_000, "partially_paid")
            raise RuntimeError("savepoint rolled back")

    with till.factory() as s, transaction(s):
        held = s.get(Invoice, invoice.id)
        before = (held.amount_paid_minor, held.status)
        with pytest.raises(RuntimeError, match="savepoint"):
            pay_then_roll_back(s, held)
        assert (held.amount_paid_minor, held.status) == before
        assert made[0] not in s
    assert (till.reread(invoice).amount_paid_minor, till.reread(invoice).status) == before


@pytest.mark.postgres_only
def test_an_invoice_the_session_held_is_applied_as_locked_not_as_it_was_read(till):
    # A session that read the invoice before another payment on it committed must apply
    # the money to the invoice as it stands when locked (PostgreSQL reads committed data
    # at each statement; on SQLite the first read already holds the writer's lock).
    invoice = till.invoice(1_000)
    with till.factory() as s, transaction(s):
        held = s.get(Invoice, invoice.id)
        assert held.amount_due_minor == 1_000
        recording.record(till.factory, lambda scope: till.gateway, till.scope,
                         billing_account_id=till.account.id, amount_minor=400,
                         method="check", invoice_ids=[invoice.id])  # commits on its own
        payment, _ = recording._new(
            s, till.scope, billing_account_id=till.account.id, amount_minor=1_000,
            method="check", instrument_token=None, invoice_ids=[invoice.id],
            reference=None, key="after another")
        paid = {line["invoice_id"]: line["pay_minor"] for line in payment.lines}
        assert paid == {invoice.id: 600, None: 400}  # the rest is unapplied cash
        assert held.amount_due_minor == 600
        s.rollback()


def record_watching(till: Till, wanted: Callable[[str], bool], **payment: Any) -> list[str]:
    """Record a check payment on the till's account; the statements it ran that ``wanted``
    picks out (through SQLAlchemy, or directly: db.Direct, alone or in a pipeline)."""
    seen: list[str] = []

    def watch(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if wanted(statement):
            seen.append(statement)

    run_on = db.Direct.run_on

    def run_on_watched(direct: db.Direct, connection: Any, params: Any) -> list[Any]:
        if not connection.info.get(db._WAITING):  # else it goes in a pipeline, seen there
            watch(connection, None, direct._form(connection.dialect, params).sql)
        return run_on(direct, connection, params)

    pipelined = db._pipelined

    def pipelined_watched(connection: Any, waiting: Any, reads: Any, **options: Any) -> Any:
        for sql, *_ in [*waiting, *reads]:
            watch(connection, None, sql)
        return pipelined(connection, waiting, reads, **options)

    engine = till.factory.kw["bind"]
    sa_event.listen(engine, "before_cursor_execute", watch)
    db.Direct.run_on = run_on_watched  # type: ignore[method-assign]
    db._pipelined = pipelined_watched
    try:
        recording.record(till.factory, lambda scope: till.gateway, till.scope,
                         billing_account_id=till.account.id, method="check", **payment)
    finally:
        db.Direct.run_on = run_on  # type: ignore[method-assign]
        db._pipelined = pipelined
        sa_event.remove(engine, "before_cursor_execute", watch)
    return seen
