from datetime import UTC, date, datetime

import pytest

from billfold.core.db import transaction
from billfold.core.errors import NotFound
from billfold.customers.summary import account_summary
from billfold.ledger import service as ledger
from billfold.ledger.service import AccountRef, PostingLine, SourceRef
from billfold.money import Money
from tests.services.conftest import frozen_at


def summary_of(desk, account):
    desk.session.expire_all()
    return account_summary(desk.session, desk.scope, account.id)


def post(desk, source_id, *lines):
    with transaction(desk.session):
        ledger.post(desk.session, desk.scope, source=SourceRef("test", source_id),
                    lines=[PostingLine(ref, money) for ref, money in lines], description="t",
                    effective_date=date(2026, 3, 1))


class TestNextInvoiceDate:
    def test_is_the_next_bill_day_of_the_cycle_after_today(self, desk):
        _, account = desk.create_customer()  # monthly on the 1st, starting 2026-02-01

        with frozen_at(datetime(2026, 3, 15, 12, tzinfo=UTC)):
            summary = summary_of(desk, account)

        assert summary.next_invoice_date == date(2026, 4, 1)

    def test_is_today_on_a_bill_day(self, desk):
        _, account = desk.create_customer()

        with frozen_at(datetime(2026, 4, 1, 8, tzinfo=UTC)):
            summary = summary_of(desk, account)

        assert summary.next_invoice_date == date(2026, 4, 1)

    def test_waits_for_an_account_that_has_not_started(self, desk):
        _, account = desk.create_customer(account=desk.account(start_date=date(2026, 6, 10)))

        with frozen_at(datetime(2026, 3, 15, 12, tzinfo=UTC)):
            summary = summary_of(desk, account)

        assert summary.next_invoice_date == date(2026, 7, 1)

    def test_follows_a_quarterly_cycle_from_its_start_month(self, desk):
        quarterly = desk.bill_cycle("Quarterly", frequency="quarterly", bill_day=15,
                                    start_date=date(2026, 2, 1))
        _, account = desk.create_customer(account=desk.account(bill_cycle_id=quarterly.id,
                                                               start_date=date(2026, 2, 1)))

        with frozen_at(datetime(2026, 3, 15, 12, tzinfo=UTC)):
            summary = summary_of(desk, account)

        assert summary.next_invoice_date == date(2026, 5, 15)

    def test_counts_today_in_the_tenants_time_zone(self, desk):
        desk.configure(time_zone="Pacific/Auckland")
        _, account = desk.create_customer()

        # 20:00 UTC on 1 April is already 2 April in Auckland: April's bill day has passed.
        with frozen_at(datetime(2026, 4, 1, 20, tzinfo=UTC)):
            summary = summary_of(desk, account)

        assert summary.next_invoice_date == date(2026, 5, 1)

    def test_waits_for_the_next_unbilled_date_of_an_account_billed_ahead(self, desk):
        _, account = desk.create_customer()
        with transaction(desk.session):  # as a bill run dated 1 April, run early, leaves it
            desk.session.get(type(account), account.id).next_bill_date = date(2026, 5, 1)

        with frozen_at(datetime(2026, 3, 15, 12, tzinfo=UTC)):
            summary = summary_of(desk, account)

        assert summary.next_invoice_date == date(2026, 5, 1)

    def test_is_none_for_a_deactivated_account(self, desk):
        _, account = desk.create_customer()
        desk.update_account(account, status="deactivated")

        assert summary_of(desk, account).next_invoice_date is None


class TestBalances:
    def test_a_new_account_owes_nothing(self, desk):
        _, account = desk.create_customer()

        summary = summary_of(desk, account)

        assert (summary.balance_minor, summary.unapplied_payments_minor) == (0, 0)

    def test_the_balance_is_the_receivable_in_the_ledger(self, desk):
        _, account = desk.create_customer()

        post(desk, "x1", (AccountRef("receivable", account.id), Money(1500, "USD")),
             (AccountRef("revenue"), Money(-1500, "USD")))

        assert summary_of(desk, account).balance_minor == 1500

    def test_unapplied_payments_are_the_cash_held_for_the_account(self, desk):
        _, account = desk.create_customer()

        post(desk, "p1", (AccountRef("cash_clearing"), Money(2000, "USD")),
             (AccountRef("unapplied_cash", account.id), Money(-2000, "USD")))

        summary = summary_of(desk, account)
        assert (summary.balance_minor, summary.unapplied_payments_minor) == (0, 2000)

    def test_counts_only_the_accounts_own_currency(self, desk):
        _, account = desk.create_customer()

        post(desk, "x1", (AccountRef("receivable", account.id), Money(1500, "USD")),
             (AccountRef("revenue"), Money(-1500, "USD")))
        post(desk, "x2", (AccountRef("receivable", account.id), Money(900, "EUR")),
             (AccountRef("revenue"), Money(-900, "EUR")))

        assert summary_of(desk, account).balance_minor == 1500

    def test_counts_only_the_accounts_own_postings(self, make_desk):
        desk = make_desk(allow_multi_customer_accounts=True)
        customer, account = desk.create_customer()
        sibling = desk.add_account(customer)

        post(desk, "x1", (AccountRef("receivable", sibling.id), Money(700, "USD")),
             (AccountRef("revenue"), Money(-700, "USD")))

        assert summary_of(desk, account).balance_minor == 0
        assert summary_of(desk, sibling).balance_minor == 700

    def test_a_reversal_brings_the_balance_back(self, desk):
        _, account = desk.create_customer()
        post(desk, "x1", (AccountRef("receivable", account.id), Money(1500, "USD")),
             (AccountRef("revenue"), Money(-1500, "USD")))
        (entry,) = ledger.list_entries(desk.session, desk.scope, limit=5)

        with transaction(desk.session):
            ledger.reverse(desk.session, desk.scope, entry_id=entry.id)

        assert summary_of(desk, account).balance_minor == 0


class TestSummaryContents:
    def test_shows_the_customer_bill_cycle_and_payment_term(self, desk):
        customer, account = desk.create_customer(
            account=desk.account(payment_term_id=desk.ref.term.id))

        summary = summary_of(desk, account)

        assert summary.customer.id == customer.id
        assert summary.bill_cycle.id == desk.ref.cycle.id
        assert summary.payment_term.net_days == 30
        assert (summary.pending_charges_minor, summary.pending_charges_count) == (0, 0)

    def test_refuses_another_tenants_account(self, desk, make_desk):
        _, account = make_desk().create_customer()

        with pytest.raises(NotFound):
            account_summary(desk.session, desk.scope, account.id)
