"""Prepayment entries at their edges: sales orders billed once their entry is paid, each on
an invoice of its own carrying the entry's key; entries whose money is gone, or whose key
names an invoice they may not pay; a new payment link for an open entry."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from billfold.catalog import service as catalog
from billfold.core.db import transaction
from billfold.core.errors import Conflict, NotFound
from billfold.customers.models import Customer
from billfold.invoicing import billrun
from billfold.invoicing import service as invoicing
from billfold.invoicing.models import Invoice
from billfold.orders import service as orders
from billfold.payments import entries, refunds, sessions
from billfold.payments.models import Entry
from tests.services.conftest import ACTOR, Desk
from tests.services.test_bill_runs import work
from tests.services.test_entries_and_recorded_payments import (
    entry_of,
    keyed_invoice,
    new_entry,
    pay_entry,
)
from tests.services.test_payments import DISPUTE_WON, Till

FEBRUARY, MARCH, APRIL = date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1)


@pytest.fixture
def shop(till: Till) -> Shop:
    return Shop(till)


@pytest.fixture
def till(sessions: Any, session: Any, scope: Any, ref: Any) -> Till:
    return Till(sessions, session, scope, Desk(session, scope, ref))


class Shop:
    """A web shop selling through entries: a one-time kit and a monthly plan."""

    def __init__(self, till: Till) -> None:
        self.till = till
        s, scope = till.session, till.scope
        with transaction(s):
            kit = catalog.create_product(s, scope, name="Widget kit", sku="KIT",
                                         tax_category="standard")
            self.kit = catalog.create_price(s, scope, product_id=kit.id, kind="one_time",
                                            amounts_minor={"USD": 2500})
            plan = catalog.create_product(s, scope, name="Widget plan", sku="PLAN",
                                          tax_category="standard")
            self.plan = catalog.create_price(s, scope, product_id=plan.id, kind="recurring",
                                             amounts_minor={"USD": 3000},
                                             billing_timing="in_advance")

    def sell(self, key: str, price: Any, amount: int, *, paid: bool = True,
             start: date = FEBRUARY, **extra: Any) -> Entry:
        entry, token = new_entry(self.till, key, amount, sales_order=[
            {"price_id": price.id, "quantity": 1, "start_date": start}], **extra)
        if paid:
            assert pay_entry(self.till, token).status == "succeeded"
        return entry

    def bill(self, as_of: date = MARCH) -> None:
        with transaction(self.till.session):
            billrun.start_bill_run(self.till.session, self.till.scope, as_of_date=as_of,
                                   actor=ACTOR)
        work(self.till.factory)

    def invoices(self) -> list[Invoice]:
        with self.till.factory() as s:
            found = list(s.scalars(select(Invoice).where(
                Invoice.tenant_id == self.till.scope.tenant_id).order_by(Invoice.id)))
            s.expunge_all()
            return found


def view(till: Till, entry_id: str) -> entries.EntryView:
    with till.factory() as s:
        [found] = entries.views(s, till.scope, [entries.get_entry(s, till.scope, entry_id)])
        return found


def refund(till: Till, entry: Entry, amount_minor: int | None = None) -> None:
    payment_id = str(entry_of(till, entry.id).payment_id)
    refunds.refund(till.factory, till.gateway, till.scope, payment_id=payment_id,
                 amount_minor=amount_minor)


class TestSalesOrdersOfEntries:
    def test_two_orders_of_one_account_get_an_invoice_each_and_both_are_assigned(
            self, shop: Shop) -> None:
        first = shop.sell("SO-1", shop.kit, 2500)
        second = shop.sell("SO-2", shop.kit, 2500)

        shop.bill()

        keyed = {i.assignment_key: i for i in shop.invoices()}
        assert set(keyed) == {"SO-1", "SO-2"}
        for entry in (first, second):
            found = entry_of(shop.till, entry.id)
            assert found.status == "assigned"
            assert found.invoice_id == keyed[found.assignment_key].id
            assert keyed[found.assignment_key].status == "paid"
        assert shop.till.balances() == {"receivable": {"USD": 0}, "unapplied_cash": {"USD": 0}}

    def test_an_order_paid_by_an_entry_is_not_mixed_into_the_accounts_other_charges(
            self, shop: Shop) -> None:
        with transaction(shop.till.session):
            orders.create_order(shop.till.session, shop.till.scope,
                                billing_account_id=shop.till.account.id, actor=ACTOR,
                                lines=[{"price_id": shop.kit.id, "start_date": FEBRUARY}])
        entry = shop.sell("SO-3", shop.kit, 2500)

        shop.bill()

        plain = [i for i in shop.invoices() if i.assignment_key is None]
        assert [(i.total_minor, i.status) for i in plain] == [(2500, "open")]
        assert entry_of(shop.till, entry.id).status == "assigned"

    def test_a_recurring_line_carries_the_key_to_its_first_invoice_only(
            self, shop: Shop) -> None:
        entry = shop.sell("SO-4", shop.plan, 3000)

        shop.bill(MARCH)  # bills 1 February (the key's invoice) and 1 March

        first, second = shop.invoices()
        assert (first.assignment_key, first.status, first.total_minor) == ("SO-4", "paid", 3000)
        assert (second.assignment_key, second.status) == (None, "open")
        assert entry_of(shop.till, entry.id).invoice_id == first.id

    def test_an_unpaid_entrys_order_waits_until_the_entry_is_balanced(
            self, shop: Shop) -> None:
        entry, token = new_entry(shop.till, "SO-5", 2500, sales_order=[
            {"price_id": shop.kit.id, "quantity": 1, "start_date": FEBRUARY}])

        shop.bill(MARCH)
        assert shop.invoices() == []
        assert entry_of(shop.till, entry.id).status == "open"

        pay_entry(shop.till, token)
        shop.bill(APRIL)

        [invoice] = shop.invoices()
        assert (invoice.assignment_key, invoice.status) == ("SO-5", "paid")
        assert entry_of(shop.till, entry.id).status == "assigned"

    def test_a_refunded_entrys_order_is_not_invoiced(self, shop: Shop) -> None:
        entry = shop.sell("SO-6", shop.kit, 2500)
        refund(shop.till, entry)

        shop.bill()

        assert shop.invoices() == []
        assert view(shop.till, entry.id).status == "refunded"

    def test_an_order_of_a_managed_account_is_assigned_on_the_responsible_accounts_invoice(
            self, shop: Shop) -> None:
        till = shop.till
        till.desk.configure(enable_responsible_account_management=True)
        branch = till.desk.new_account("Branch", responsible_account_id=till.account.id)
        till.desk.update_account(till.account, invoice_rendering_type="per_account")
        with transaction(till.session):
            made, created = entries.create_entry(
                till.session, till.scope, assignment_key="SO-7", amount_minor=2500,
                currency="USD", billing_account_id=branch.id, actor=ACTOR,
                sales_order=[{"price_id": shop.kit.id, "start_date": FEBRUARY}])
        till.entry_amount = 2500  # type: ignore[attr-defined]
        pay_entry(till, created.token)

        shop.bill()

        [invoice] = shop.invoices()
        assert (invoice.billing_account_id, invoice.invoiced_account_id) == (
            till.account.id, branch.id)
        assert (invoice.assignment_key, invoice.status) == ("SO-7", "paid")
        assert entry_of(till, made.id).status == "assigned"


class TestAssignment:
    def test_an_entry_larger_than_its_invoice_pays_it_and_keeps_the_rest(
            self, till: Till) -> None:
        entry, token = new_entry(till, "SO-10", 5000)
        pay_entry(till, token)

        invoice = keyed_invoice(till, "SO-10", 3000)

        assert till.reread(invoice).status == "paid"
        assert entry_of(till, entry.id).status == "assigned"
        assert till.balances() == {"receivable": {"USD": 0}, "unapplied_cash": {"USD": 2000}}

    def test_a_refunded_entry_is_not_assigned(self, till: Till) -> None:
        entry, token = new_entry(till, "SO-11", 2500)
        pay_entry(till, token)
        refund(till, entry)

        invoice = keyed_invoice(till, "SO-11", 2500)

        assert till.reread(invoice).status == "open"
        found = entry_of(till, entry.id)
        assert (found.status, found.invoice_id) == ("refunded", None)
        assert till.events("entry.assigned") == 0

    def test_a_partly_refunded_entry_gives_what_it_still_holds(self, till: Till) -> None:
        entry, token = new_entry(till, "SO-12", 2500)
        pay_entry(till, token)
        refund(till, entry, 1000)

        invoice = keyed_invoice(till, "SO-12", 2500)

        assert (till.reread(invoice).status, till.reread(invoice).amount_due_minor) == (
            "partially_paid", 1000)
        assert entry_of(till, entry.id).status == "assigned"

    def test_an_invoice_of_another_customer_does_not_take_the_money(self, till: Till) -> None:
        entry, token = new_entry(till, "SO-13", 2500)
        pay_entry(till, token)
        stranger = till.desk.new_account("Someone Else")

        theirs = invoicing_with_key(till, stranger, "SO-13", 2500)

        assert till.reread(theirs).status == "open"
        assert entry_of(till, entry.id).status == "balanced"
        problem = view(till, entry.id).assignment_problem
        assert problem is not None
        assert (problem["code"], problem["invoice_id"]) == ("other_customer", theirs.id)

        ours = keyed_invoice(till, "SO-13", 2500)
        assert till.reread(ours).status == "paid"
        assert view(till, entry.id).assignment_problem is None

    def test_a_currency_mismatch_leaves_the_entry_balanced_and_says_why(
            self, till: Till) -> None:
        entry, token = new_entry(till, "SO-14", 2500)
        pay_entry(till, token)
        till.desk.configure(allow_multi_customer_accounts=True)
        customer = till.get(Customer, till.account.customer_id)
        in_euros = till.desk.add_account(customer, "EUR")

        invoice = invoicing_with_key(till, in_euros, "SO-14", 2500)

        assert till.reread(invoice).status == "open"
        found = view(till, entry.id)
        assert found.status == "balanced"
        assert found.assignment_problem is not None
        assert found.assignment_problem["code"] == "currency_mismatch"
        assert till.balances()["unapplied_cash"] == {"USD": 2500}


class TestNewPaymentLink:
    def test_an_expired_link_is_replaced_by_one_that_pays(self, till: Till) -> None:
        entry, old = new_entry(till, "SO-20")
        till.advance(1)
        with pytest.raises(sessions.SessionExpired):
            pay_entry(till, old)

        with transaction(till.session):
            _, fresh = entries.new_payment_link(till.session, till.scope, entry_id=entry.id)

        assert fresh.token != old
        assert pay_entry(till, fresh.token).status == "succeeded"
        assert entry_of(till, entry.id).status == "balanced"

    def test_the_link_given_before_stops_working(self, till: Till) -> None:
        entry, old = new_entry(till, "SO-21")
        with transaction(till.session):
            entries.new_payment_link(till.session, till.scope, entry_id=entry.id)
        with pytest.raises(NotFound):
            pay_entry(till, old)

    def test_is_refused_for_an_entry_paid_already(self, till: Till) -> None:
        entry, token = new_entry(till, "SO-22")
        pay_entry(till, token)
        with pytest.raises(Conflict) as refused, transaction(till.session):
            entries.new_payment_link(till.session, till.scope, entry_id=entry.id)
        assert refused.value.code == "entry_not_open"

    def test_is_refused_while_a_payment_is_being_processed(self, till: Till) -> None:
        entry, token = new_entry(till, "SO-23")
        with till.factory() as s, transaction(s):
            assert sessions.claim(s, sessions.find(s, token))
        with pytest.raises(Conflict) as refused, transaction(till.session):
            entries.new_payment_link(till.session, till.scope, entry_id=entry.id)
        assert refused.value.code == "entry_payment_in_progress"


def invoicing_with_key(till: Till, account: Any, key: str, amount: int) -> Invoice:
    with transaction(till.session):
        draft = invoicing.create_draft(
            till.session, till.scope, billing_account_id=account.id, assignment_key=key,
            lines=[{"description": "Order", "quantity": 1, "unit_amount_minor": amount}],
            actor=ACTOR)
        return invoicing.finalize(till.session, till.scope, invoice_id=draft.id, actor=ACTOR)


class TestWhenTheMoneyMoves:
    """A refund or chargeback of an entry's payment keeps the entry's stored status with
    its money at once (takeback.CHANGED_HOOKS), not only when an invoice with its key comes."""

    def test_a_full_refund_makes_the_entry_refunded(self, till: Till) -> None:
        entry, token = new_entry(till, "SO-30", 2500)
        pay_entry(till, token)
        refund(till, entry, 1000)
        assert entry_of(till, entry.id).status == "balanced"  # it still holds 1,500
        refund(till, entry)
        assert entry_of(till, entry.id).status == "refunded"

    def test_a_won_chargeback_assigns_the_entry_to_the_invoice_made_meanwhile(
            self, till: Till) -> None:
        entry, token = new_entry(till, "SO-31", 2500)
        assert pay_entry(till, token, card=DISPUTE_WON).status == "succeeded"
        till.advance(4)  # the chargeback opens: the money is gone for now
        assert till.payment(str(entry_of(till, entry.id).payment_id)).status == "disputed"
        invoice = keyed_invoice(till, "SO-31", 2500)
        assert till.reread(invoice).status == "open"
        assert entry_of(till, entry.id).status == "balanced"
        till.advance(30)  # won: the money is back, and goes to the invoice
        found = entry_of(till, entry.id)
        assert (found.status, found.invoice_id) == ("assigned", invoice.id)
        assert till.reread(invoice).status == "paid"
        assert till.balances()["unapplied_cash"] == {"USD": 0}
        assert till.events("entry.assigned") == 1
