"""The Account page summary: balances from the ledger and dates from the bill cycle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from billfold.core.scope import Scope
from billfold.customers.models import BillingAccount, Customer
from billfold.customers.service import get_billing_account
from billfold.ledger import service as ledger
from billfold.tenants import cycles
from billfold.tenants import service as tenants
from billfold.tenants.models import BillCycle, PaymentTerm


@dataclass(frozen=True, slots=True)
class AccountSummary:
    account: BillingAccount
    customer: Customer
    balance_minor: int
    unapplied_payments_minor: int
    pending_charges_minor: int
    pending_charges_count: int
    next_invoice_date: date | None
    bill_cycle: BillCycle
    payment_term: PaymentTerm | None


def account_summary(session: Session, scope: Scope, account_id: str) -> AccountSummary:
    account = get_billing_account(session, scope, account_id)
    customer = session.get(Customer, account.customer_id)
    cycle = session.get(BillCycle, account.bill_cycle_id)
    assert customer is not None  # foreign keys guarantee both
    assert cycle is not None
    balances = ledger.billing_account_balances(session, scope, account.id)
    currency = account.currency
    next_date = None
    if account.status != "deactivated":
        next_date = cycles.next_bill_date(
            frequency=cycle.frequency, bill_day=cycle.bill_day, cycle_start=cycle.start_date,
            # An account billed ahead (a run dated in the future) waits for its next
            # unbilled date; one behind is caught up by the next run.
            on_or_after=max(account.start_date, tenants.today(session, scope),
                            account.next_bill_date or account.start_date),
        )
    return AccountSummary(
        account=account, customer=customer,
        balance_minor=balances["receivable"].get(currency, 0),
        unapplied_payments_minor=balances["unapplied_cash"].get(currency, 0),
        # Pending charges arrive with orders; until then an account has none to sum.
        pending_charges_minor=0, pending_charges_count=0,
        next_invoice_date=next_date, bill_cycle=cycle,
        payment_term=session.get(PaymentTerm, account.payment_term_id)
        if account.payment_term_id else None,
    )
