"""Cash application details the payment tests take for granted: which invoice a payment
without named invoices goes to, where the service fee goes, and that the worker's round
(not only the test clock) settles bank payments and resolves lost outcomes."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from billfold.core.config import Settings
from billfold.core.db import transaction
from billfold.core.scope import Scope
from billfold.invoicing.models import Invoice
from billfold.ledger.models import LedgerAccount
from billfold.payments import after, recording, setup
from billfold.payments.allocation import Payable, Share, allocate
from billfold.payments.gateways.test_models import TestGatewayCharge
from billfold.payments.gateways.test_rules import add_business_days
from billfold.payments.models import Payment
from billfold.tenants import service as tenants
from tests.services.conftest import Desk
from tests.services.test_payments import TIMEOUT, Till


@pytest.fixture
def till(sessions: sessionmaker[Session], session: Session, scope: Scope, ref: Any) -> Till:
    return Till(sessions, session, scope, Desk(session, scope, ref))


def payable(invoice_id: str, due: date | None, owed: int = 1000, number: str = "") -> Payable:
    return Payable(invoice_id, "ba_1", owed, due, number or invoice_id)


class TestOldestDueFirst:
    def test_the_earliest_due_date_goes_first_whatever_the_order_given(self) -> None:
        later, earlier = payable("inv_a", date(2026, 3, 1)), payable("inv_b", date(2026, 2, 1))
        assert allocate(1500, [later, earlier], holder_account_id="ba_1") == [
            Share("inv_b", "ba_1", 1000), Share("inv_a", "ba_1", 500)]

    def test_no_due_date_goes_last_and_a_tie_goes_by_number(self) -> None:
        undated = payable("inv_a", None, number="INV-1")
        second = payable("inv_c", date(2026, 2, 1), number="INV-3")
        first = payable("inv_b", date(2026, 2, 1), number="INV-2")
        shares = allocate(2500, [undated, second, first], holder_account_id="ba_1")
        assert [s.invoice_id for s in shares] == ["inv_b", "inv_c", "inv_a"]
        assert shares[-1].amount_minor == 500

    def test_a_recorded_payment_pays_the_invoice_due_first_not_the_one_made_first(
            self, till: Till) -> None:
        made_first, made_second = till.invoice(1000), till.invoice(1000)
        with transaction(till.session):  # the second falls due a month before the first
            till.session.execute(update(Invoice).where(Invoice.id == made_second.id).values(
                due_date=made_first.due_date - timedelta(days=30)))
        recording.record(till.factory, lambda scope: till.gateway, till.scope,
                         billing_account_id=till.account.id, amount_minor=1000,
                         method="check", reference="Check 7")
        assert till.reread(made_second).status == "paid"
        assert till.reread(made_first).status == "open"


class TestServiceFee:
    def test_the_fee_is_fee_revenue_and_the_invoice_gets_only_its_amount(self,
                                                                        till: Till) -> None:
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice, card_fee_minor=150))
        assert (payment.amount_minor, payment.fee_minor) == (1000, 150)
        assert till.reread(invoice).status == "paid"
        assert till.reread(invoice).amount_paid_minor == 1000
        assert till.balances()["receivable"] == {"USD": 0}
        assert fee_revenue(till) == 150


def fee_revenue(till: Till) -> int:
    """What the scope's fee revenue account has earned (balances are kept debit-positive,
    so a credit balance is negative)."""
    with till.factory() as session:
        return -int(session.scalar(
            select(func.coalesce(func.sum(LedgerAccount.balance_minor), 0))
            .where(LedgerAccount.tenant_id == till.scope.tenant_id,
                   LedgerAccount.mode == till.scope.mode,
                   LedgerAccount.kind == "fee_revenue")) or 0)


class TestTheWorkersRound:
    """after.housekeeping_everywhere, which the worker runs when idle, with the gateways
    the settings make."""

    def gateways(self, till: Till, days: int) -> Any:
        return setup.gateways(Settings(ach_settlement_days=days), till.factory)

    def test_the_configured_settlement_days_set_the_settlement_date(self, till: Till) -> None:
        gateway_for = self.gateways(till, 4)
        till.gateway = gateway_for(till.scope)
        payment = till.pay(till.pay_session(till.invoice(1000)),
                           bank=("110000000", "000123456789"))
        assert payment.status == "pending"
        with till.factory() as session:
            charge = session.get(TestGatewayCharge, payment.gateway_reference)
            assert charge is not None
            assert charge.settle_date == add_business_days(charge.charge_date, 4)
            days = (charge.settle_date - tenants.today(session, till.scope)).days
        after.housekeeping_everywhere(till.factory, gateway_for)
        assert till.payment(payment.id).status == "pending"  # not yet due
        with transaction(till.session):
            tenants.advance_test_clock(till.session, till.scope, days=days)
        after.housekeeping_everywhere(till.factory, gateway_for)
        assert till.payment(payment.id).status == "succeeded"

    def test_a_lost_outcome_is_resolved_by_the_round(self, till: Till) -> None:
        gateway_for = self.gateways(till, 2)
        till.gateway = gateway_for(till.scope)
        invoice = till.invoice(1000)
        payment = till.pay(till.pay_session(invoice), card=TIMEOUT)
        assert payment.status == "unknown"
        assert after.housekeeping_everywhere(till.factory, gateway_for) >= 1
        settled = till.payment(payment.id)
        assert settled.status == "succeeded"
        assert till.reread(invoice).status == "paid"
        with till.factory() as session:  # charged once
            assert session.scalar(select(func.count()).select_from(TestGatewayCharge).where(
                TestGatewayCharge.tenant_id == till.scope.tenant_id)) == 1
            assert session.scalar(select(func.count()).select_from(Payment).where(
                Payment.tenant_id == till.scope.tenant_id)) == 1
