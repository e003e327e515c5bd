"""Bill runs against a real database: invoices numbered and posted, hierarchies, minimum
amounts, reruns that write nothing, failures that do not stop the run."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from billfold.catalog import service as catalog
from billfold.catalog import tax_service
from billfold.core import jobs
from billfold.core.db import transaction
from billfold.customers.models import BillingAccount
from billfold.invoicing import billrun
from billfold.invoicing import service as invoices
from billfold.invoicing.models import BilledPeriod, Invoice, InvoiceLine
from billfold.ledger import service as ledger
from billfold.ledger.verify import verify
from billfold.orders import service as orders
from tests.services.conftest import ACTOR

MARCH = date(2026, 3, 1)


class Biller:
    """A desk that also sells: a monthly product and a setup fee, and runs bill runs."""

    def __init__(self, desk: Any, sessions: Any) -> None:
        self.desk, self.sessions = desk, sessions
        self.session, self.scope = desk.session, desk.scope
        with transaction(self.session):
            product = catalog.create_product(self.session, self.scope, name="Hosting",
                                             sku=f"HOST-{id(self)}", tax_category="standard")
            self.monthly = catalog.create_price(
                self.session, self.scope, product_id=product.id, kind="recurring",
                amounts_minor={"USD": 3000}, billing_timing="in_advance")
            setup = catalog.create_product(self.session, self.scope, name="Setup",
                                           sku=f"SETUP-{id(self)}", tax_category="standard")
            self.setup = catalog.create_price(self.session, self.scope, product_id=setup.id,
                                              kind="one_time", amounts_minor={"USD": 1000})

    def account(self, name: str = "Acme Brick", **extra: Any) -> BillingAccount:
        return self.desk.new_account(name, **extra)

    def order(self, account: BillingAccount, *prices: Any, start: date = date(2026, 2, 1)
              ) -> None:
        with transaction(self.session):
            orders.create_order(self.session, self.scope, billing_account_id=account.id,
                                lines=[{"price_id": p.id, "quantity": 1, "start_date": start}
                                       for p in prices], actor=ACTOR)

    def run(self, as_of: date = MARCH, **extra: Any) -> Any:
        with transaction(self.session):
            run, _ = billrun.start_bill_run(self.session, self.scope, as_of_date=as_of,
                                            actor=ACTOR, **extra)
        work(self.sessions)
        self.session.expire_all()
        with transaction(self.session):
            return billrun.report(self.session, self.scope, run.id)

    def invoices_of(self, account: BillingAccount) -> list[Invoice]:
        self.session.expire_all()
        return list(self.session.scalars(select(Invoice).where(
            Invoice.billing_account_id == account.id).order_by(Invoice.id)))

    def lines(self, invoice: Invoice) -> list[InvoiceLine]:
        return invoices.invoice_lines(self.session, [invoice.id])[invoice.id]


def work(sessions: Any) -> None:
    """What `billfold worker` does: run every due bill-run chunk."""
    while jobs.run_pending(sessions, {billrun.JOB_KIND: billrun.bill_chunk},
                           worker_id="test", kinds=[billrun.JOB_KIND]):
        pass


@pytest.fixture
def biller(make_desk, sessions):
    return Biller(make_desk(enable_responsible_account_management=True), sessions)


class TestBillRun:
    def test_each_bill_date_gets_a_numbered_posted_invoice(self, biller):
        account = biller.account()
        biller.order(account, biller.monthly, biller.setup)

        report = biller.run()

        # The account starts on 1 February, a bill date: February's invoice has the month in
        # advance and the setup fee, March's the next month.
        february, march = biller.invoices_of(account)
        assert [line.kind for line in biller.lines(february)] == ["recurring", "one_time"]
        assert [line.kind for line in biller.lines(march)] == ["recurring"]
        assert (february.total_minor, march.total_minor) == (4000, 3000)
        for invoice in (february, march):
            assert invoice.status == "open"
            assert invoice.number is not None
            assert invoice.number.startswith("INV-")
            assert invoice.due_date == invoice.issue_date  # no payment term: due on receipt
        assert (report.invoiced, report.failed, report.totals) == (2, 0, {"USD": 7000})
        balances = ledger.billing_account_balances(biller.session, biller.scope, account.id)
        assert balances["receivable"] == {"USD": 7000}

    def test_rerunning_the_same_date_writes_nothing(self, biller, session):
        account = biller.account()
        biller.order(account, biller.monthly)
        first = biller.run()
        counts = _row_counts(session)

        again = biller.run()

        assert again.run.id == first.run.id
        assert _row_counts(session) == counts
        assert len(biller.invoices_of(account)) == 2  # 1 February and 1 March, once each

    def test_an_account_with_nothing_to_bill_moves_on_without_an_invoice(self, biller):
        account = biller.account()

        report = biller.run()

        assert biller.invoices_of(account) == []
        assert report.nothing_to_bill == 2  # 1 February and 1 March
        biller.session.refresh(account)
        assert account.next_bill_date == date(2026, 4, 1)

    def test_a_missed_month_is_caught_up_one_invoice_per_bill_date(self, biller):
        account = biller.account()
        biller.order(account, biller.monthly)

        biller.run(as_of=date(2026, 4, 15))

        assert [(i.bill_date, i.period_start) for i in biller.invoices_of(account)] == [
            (date(2026, 2, 1), date(2026, 2, 1)), (date(2026, 3, 1), date(2026, 3, 1)),
            (date(2026, 4, 1), date(2026, 4, 1))]

    def test_numbers_are_gap_free_in_invoice_order(self, biller):
        for n in range(3):
            biller.order(biller.account(f"Customer {n}"), biller.monthly)

        biller.run()

        numbers = sorted(i.number for i in biller.session.scalars(select(Invoice).where(
            Invoice.tenant_id == biller.scope.tenant_id)))
        assert [int(n.split("-")[1]) for n in numbers] == list(range(1, len(numbers) + 1))


class TestHierarchyAndMinimum:
    def test_aggregated_responsible_account_gets_one_invoice_with_the_managed_charges(
            self, biller):
        responsible = biller.account("Parent Co")
        managed = biller.account("Branch", responsible_account_id=responsible.id)
        biller.desk.update_account(responsible, invoice_rendering_type="aggregated")
        biller.order(responsible, biller.monthly, start=MARCH)
        biller.order(managed, biller.setup, start=MARCH)

        biller.run()

        (invoice,) = biller.invoices_of(responsible)
        assert {line.billing_account_id for line in biller.lines(invoice)} == {
            responsible.id, managed.id}
        assert biller.invoices_of(managed) == []
        biller.session.refresh(managed)
        assert managed.next_bill_date == date(2026, 4, 1)

    def test_per_account_gives_the_managed_account_an_invoice_owed_by_the_responsible(
            self, biller):
        responsible = biller.account("Parent Co")
        managed = biller.account("Branch", responsible_account_id=responsible.id)
        biller.desk.update_account(responsible, invoice_rendering_type="per_account")
        biller.order(managed, biller.monthly, start=MARCH)

        biller.run()

        (invoice,) = biller.invoices_of(responsible)
        assert invoice.invoiced_account_id == managed.id
        balances = ledger.billing_account_balances(biller.session, biller.scope, responsible.id)
        assert balances["receivable"] == {"USD": 3000}

    def test_a_suppressed_invoice_carries_its_charges_to_the_next_one(self, biller):
        account = biller.account(minimum_invoice_amount_minor=5000)
        biller.order(account, biller.monthly, start=MARCH)

        biller.run()
        (suppressed,) = biller.invoices_of(account)
        assert (suppressed.status, suppressed.number) == ("suppressed", None)
        assert ledger.billing_account_balances(
            biller.session, biller.scope, account.id)["receivable"] == {}

        biller.run(as_of=date(2026, 4, 1))

        first, second = biller.invoices_of(account)
        assert second.status == "open"
        assert second.total_minor == 6000
        biller.session.refresh(first)
        assert first.carried_to_invoice_id == second.id


class TestTaxAndAdjustments:
    def test_tax_from_the_customers_address_and_exemptions(self, biller):
        with transaction(biller.session):
            tax_service.create_tax_rate(biller.session, biller.scope, country="US",
                                        region="US-TX", tax_category="standard", percent="8.25",
                                        name="Texas", valid_from=date(2026, 1, 1))
        address = {"line1": "1 Main St", "city": "Austin", "region": "TX",
                   "postal_code": "78701", "country": "US"}
        taxed = biller.desk.create_customer("Taxed Inc", billing_address=address)[1]
        exempt = biller.desk.create_customer("Exempt Inc", billing_address=address)[1]
        with transaction(biller.session):
            tax_service.create_tax_exemption(
                biller.session, biller.scope, billing_account_id=exempt.id,
                certificate_number="EX-1", country="US", region="US-TX",
                valid_from=date(2026, 1, 1), actor=ACTOR)
        for account in (taxed, exempt):
            biller.order(account, biller.monthly, start=MARCH)

        biller.run()

        assert biller.invoices_of(taxed)[0].tax_minor == 248  # 8.25 % of 30.00
        assert biller.invoices_of(exempt)[0].tax_minor == 0

    def test_an_account_credit_lands_on_the_next_invoice(self, biller):
        account = biller.account()
        biller.order(account, biller.monthly, start=MARCH)
        with transaction(biller.session):
            invoices.create_adjustment(biller.session, biller.scope, billing_account_id=account.id,
                                       kind="credit", amount_minor=500, reason="Goodwill",
                                       actor=ACTOR)

        biller.run()

        (invoice,) = biller.invoices_of(account)
        assert invoice.total_minor == 2500
        assert ledger.billing_account_balances(
            biller.session, biller.scope, account.id)["receivable"] == {"USD": 2500}


def test_the_ledger_verifies_after_a_run(make_desk, sessions, fresh_database_url):
    from billfold.core.db import make_engine, make_sessionmaker
    from billfold.tenants import service as tenants
    from tests.conftest import Reference
    from tests.services.conftest import Desk

    engine = make_engine(fresh_database_url)
    try:
        own = make_sessionmaker(engine)
        with own() as s:
            with transaction(s):
                tenant = tenants.create_tenant(s, name="Verify")
            from billfold.core.scope import Scope
            scope = Scope(tenant.id, "test")
            b = Biller(Desk(s, scope, Reference(s, scope)), own)
            account = b.account()
            b.order(account, b.monthly, b.setup)
            b.run()
            with transaction(s):
                invoices.create_adjustment(s, scope, billing_account_id=account.id,
                                           kind="credit", amount_minor=100, reason="Sorry",
                                           invoice_id=b.invoices_of(account)[0].id, actor=ACTOR)
        with own() as s:
            assert verify(s) == []
    finally:
        engine.dispose()


def _row_counts(session: Any) -> dict[str, int]:
    session.expire_all()
    return {model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (Invoice, InvoiceLine, BilledPeriod, BillingAccount)}


class TestFailures:
    def test_an_account_that_fails_is_recorded_and_the_others_are_billed(self, biller):
        from billfold.tenants.models import BillCycle

        good = biller.account("Good Co")
        bad = biller.account("Bad Co")
        for account in (good, bad):
            biller.order(account, biller.monthly, start=MARCH)
        with transaction(biller.session):  # a cycle the generator cannot read
            cycle = biller.session.get(BillCycle, bad.bill_cycle_id)
            broken = BillCycle(id="bc_broken" + bad.id[-8:], tenant_id=cycle.tenant_id,
                               mode=cycle.mode, name="Broken", currency=None,
                               frequency="fortnightly", bill_day=1, start_date=cycle.start_date,
                               created_at=cycle.created_at)
            biller.session.add(broken)
            biller.session.flush()
            biller.session.get(BillingAccount, bad.id).bill_cycle_id = broken.id
            biller.session.get(BillingAccount, bad.id).next_bill_date = MARCH

        report = biller.run()

        assert report.failed == 1
        assert report.failures[0].billing_account_id == bad.id
        assert "fortnightly" in report.failures[0].reason
        assert biller.invoices_of(bad) == []
        assert [i.bill_date for i in biller.invoices_of(good)] == [MARCH]

    def test_a_batch_that_fails_is_billed_one_account_at_a_time(self, biller):
        accounts = [biller.account(f"Customer {n}") for n in range(3)]
        for account in accounts:
            biller.order(account, biller.monthly, start=MARCH)
        doomed = accounts[1]

        def refuse(session, scope, issued):  # a delivery hook that breaks on one account
            for invoice_id, _ in issued:
                if session.get(Invoice, invoice_id).billing_account_id == doomed.id:
                    raise RuntimeError("delivery refused this account")

        billrun.ISSUED_HOOKS.append(refuse)
        try:
            report = biller.run()
        finally:
            billrun.ISSUED_HOOKS.remove(refuse)

        assert report.failed == 1
        assert report.failures[0].billing_account_id == doomed.id
        assert "delivery refused" in report.failures[0].reason
        assert biller.invoices_of(doomed) == []
        for account in accounts:
            if account is not doomed:
                assert [i.bill_date for i in biller.invoices_of(account)] == [MARCH]
        # Nothing of the doomed account's attempt is left: no numbers used up either.
        numbers = sorted(int(i.number.split("-")[1]) for a in accounts
                         for i in biller.invoices_of(a))
        assert numbers == [1, 2]
