from datetime import date

import pytest

from billfold.core.db import transaction
from billfold.core.errors import Conflict, ValidationFailed
from billfold.customers import accounts
from billfold.customers.service import count_accounts, customer_accounts
from tests.services.conftest import fields_of


class TestCurrency:
    def test_accepts_an_active_iso_4217_currency(self, desk):
        _, account = desk.create_customer(account=desk.account("SEK"))

        assert account.currency == "SEK"

    @pytest.mark.parametrize("code", ["XYZ", "HRK", "usd", "XAU"])
    def test_refuses_a_code_that_is_not_an_active_iso_4217_currency(self, desk, code):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(account=desk.account(code))

        assert fields_of(refused.value) == ["billing_account.currency"]

    def test_refuses_a_missing_currency(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(account=desk.account(None))

        assert refused.value.errors[0].field == "billing_account.currency"
        assert refused.value.errors[0].code == "required"

    def test_refuses_changing_the_currency_of_an_existing_account(self, desk):
        _, account = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(account, currency="EUR")

        assert "currency" in fields_of(refused.value)


class TestBillCycleCurrency:
    def test_a_bill_cycle_without_a_currency_takes_any_account(self, desk):
        _, account = desk.create_customer(account=desk.account("MXN"))

        assert account.bill_cycle_id == desk.ref.cycle.id

    def test_a_bill_cycle_in_the_accounts_currency_takes_it(self, desk):
        cycle = desk.bill_cycle("Monthly EUR", currency="EUR")

        _, account = desk.create_customer(account=desk.account("EUR", bill_cycle_id=cycle.id))

        assert account.bill_cycle_id == cycle.id

    def test_refuses_a_bill_cycle_in_another_currency(self, desk):
        cycle = desk.bill_cycle("Monthly EUR", currency="EUR")

        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(account=desk.account("USD", bill_cycle_id=cycle.id))

        assert fields_of(refused.value) == ["billing_account.bill_cycle_id"]

    def test_refuses_moving_an_account_to_a_bill_cycle_in_another_currency(self, desk):
        _, account = desk.create_customer()
        cycle = desk.bill_cycle("Monthly EUR", currency="EUR")

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(account, bill_cycle_id=cycle.id)

        assert fields_of(refused.value) == ["bill_cycle_id"]

    def test_refuses_a_bill_cycle_of_another_tenant(self, desk, make_desk):
        other = make_desk()

        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(account=desk.account(bill_cycle_id=other.ref.cycle.id))

        assert fields_of(refused.value) == ["billing_account.bill_cycle_id"]


class TestStartDate:
    def test_may_be_backdated_to_the_bill_cycles_start(self, desk):
        _, account = desk.create_customer(account=desk.account(start_date=date(2026, 1, 1)))

        assert account.start_date == date(2026, 1, 1)

    def test_refuses_a_start_before_the_bill_cycles_start(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(account=desk.account(start_date=date(2025, 12, 31)))

        assert fields_of(refused.value) == ["billing_account.start_date"]

    def test_refuses_changing_the_start_date(self, desk):
        _, account = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(account, start_date=date(2026, 3, 1))

        assert fields_of(refused.value) == ["start_date"]


class TestInvoiceCurrency:
    def test_defaults_to_the_account_currency(self, desk):
        _, account = desk.create_customer(account=desk.account("SEK"))

        assert account.invoice_currency == "SEK"

    def test_accepts_the_account_currency_given_explicitly(self, desk):
        _, account = desk.create_customer(account=desk.account("SEK", invoice_currency="SEK"))

        assert account.invoice_currency == "SEK"

    def test_refuses_another_currency(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(account=desk.account("SEK", invoice_currency="EUR"))

        assert fields_of(refused.value) == ["billing_account.invoice_currency"]


class TestInvoiceType:
    def test_accepts_an_option_the_tenant_distributes_by(self, desk):
        _, account = desk.create_customer(account=desk.account(invoice_type="none"))

        assert account.invoice_type == "none"

    def test_refuses_paper_while_the_tenant_does_not_offer_it(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(account=desk.account(invoice_type="paper"))

        assert fields_of(refused.value) == ["billing_account.invoice_type"]

    def test_accepts_paper_once_the_tenant_offers_it(self, desk):
        desk.configure(invoice_distribution_options=["none", "email", "paper"])

        _, account = desk.create_customer(account=desk.account(invoice_type="paper"))

        assert account.invoice_type == "paper"

    def test_refuses_switching_an_account_to_an_option_not_offered(self, desk):
        _, account = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(account, invoice_type="paper_and_email")

        assert fields_of(refused.value) == ["invoice_type"]


class TestAutoPayOffsetDays:
    @pytest.mark.parametrize("days", [-30, 0, 30])
    def test_accepts_offsets_from_minus_30_to_30_days(self, desk, days):
        _, account = desk.create_customer(account=desk.account(auto_pay_offset_days=days))

        assert account.auto_pay_offset_days == days

    @pytest.mark.parametrize("days", [-31, 31])
    def test_refuses_offsets_beyond_30_days(self, desk, days):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(account=desk.account(auto_pay_offset_days=days))

        assert fields_of(refused.value) == ["billing_account.auto_pay_offset_days"]


class TestMinimumInvoiceAmount:
    def test_accepts_zero_and_more(self, desk):
        _, account = desk.create_customer(account=desk.account(minimum_invoice_amount_minor=2500))

        assert account.minimum_invoice_amount_minor == 2500

    def test_refuses_a_negative_amount(self, desk):
        _, account = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(account, minimum_invoice_amount_minor=-1)

        assert fields_of(refused.value) == ["minimum_invoice_amount_minor"]


class TestReferences:
    def test_refuses_a_missing_account_category(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(account=desk.account(account_category_id=None))

        assert fields_of(refused.value) == ["billing_account.account_category_id"]

    def test_accepts_a_payment_term_of_the_tenant(self, desk):
        _, account = desk.create_customer(account=desk.account(payment_term_id=desk.ref.term.id))

        assert account.payment_term_id == desk.ref.term.id

    def test_refuses_a_payment_term_of_another_tenant(self, desk, make_desk):
        other = make_desk()

        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(account=desk.account(payment_term_id=other.ref.term.id))

        assert fields_of(refused.value) == ["billing_account.payment_term_id"]

    def test_refuses_an_unknown_preferred_language(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(account=desk.account(preferred_language="xx-nowhere"))

        assert fields_of(refused.value) == ["billing_account.preferred_language"]


class TestStatus:
    def test_suspends_and_reactivates_an_account(self, desk):
        _, account = desk.create_customer()

        assert desk.update_account(account, status="suspended").status == "suspended"
        assert desk.update_account(account, status="active").status == "active"

    def test_deactivates_and_reactivates_an_account(self, desk):
        _, account = desk.create_customer()

        assert desk.update_account(account, status="deactivated").status == "deactivated"
        assert desk.update_account(account, status="active").status == "active"

    def test_deactivates_a_suspended_account(self, desk):
        _, account = desk.create_customer()
        desk.update_account(account, status="suspended")

        assert desk.update_account(account, status="deactivated").status == "deactivated"

    def test_refuses_setting_pending_collection_by_hand(self, desk):
        _, account = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(account, status="pending_collection")

        assert fields_of(refused.value) == ["status"]
        assert refused.value.errors[0].code == "invalid_transition"

    def test_refuses_suspending_a_deactivated_account(self, desk):
        _, account = desk.create_customer()
        desk.update_account(account, status="deactivated")

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(account, status="suspended")

        assert refused.value.errors[0].code == "invalid_transition"

    def test_refuses_an_unknown_status(self, desk):
        _, account = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(account, status="closed")

        assert fields_of(refused.value) == ["status"]

    def test_collections_moves_an_active_account_to_pending_collection(self, desk):
        _, account = desk.create_customer()

        with transaction(desk.session):
            accounts.set_status(desk.session, account, "pending_collection", by_collections=True)

        assert desk.reload(account).status == "pending_collection"

    def test_a_pending_collection_account_is_reactivated_by_hand(self, desk):
        _, account = desk.create_customer()
        with transaction(desk.session):
            accounts.set_status(desk.session, account, "pending_collection", by_collections=True)

        assert desk.update_account(account, status="active").status == "active"

    def test_collections_cannot_move_a_deactivated_account(self, desk):
        _, account = desk.create_customer()
        desk.update_account(account, status="deactivated")

        with pytest.raises(ValidationFailed) as refused, transaction(desk.session):
            accounts.set_status(desk.session, account, "pending_collection", by_collections=True)

        assert fields_of(refused.value) == ["status"]

    def test_set_status_by_hand_cannot_enter_pending_collection(self, desk):
        _, account = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused, transaction(desk.session):
            accounts.set_status(desk.session, account, "pending_collection")

        assert fields_of(refused.value) == ["status"]


class TestOneAccountPerCustomer:
    def test_refuses_a_second_account_while_multi_customer_accounts_is_off(self, desk):
        customer, _ = desk.create_customer()

        with pytest.raises(Conflict) as refused:
            desk.add_account(customer)

        assert refused.value.code == "multi_customer_accounts_disabled"
        assert "allow_multi_customer_accounts" in refused.value.detail
        assert count_accounts(desk.session, desk.scope, customer.id) == 1


class TestAddBillingAccount:
    @pytest.fixture
    def desk(self, make_desk):
        return make_desk(allow_multi_customer_accounts=True)

    def test_adds_an_account_that_is_not_the_default(self, desk):
        customer, first = desk.create_customer()

        second = desk.add_account(customer, "EUR")

        assert [a.id for a in customer_accounts(desk.session, desk.scope, customer.id)] == [
            first.id, second.id]
        assert desk.reload(customer).default_billing_account_id == first.id

    def test_adds_an_account_as_the_new_default(self, desk):
        customer, _ = desk.create_customer()

        second = desk.add_account(customer, set_as_default=True)

        assert desk.reload(customer).default_billing_account_id == second.id

    def test_refuses_is_default_when_adding(self, desk):
        customer, _ = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused:
            desk.add_account(customer, is_default=True)

        assert fields_of(refused.value) == ["is_default"]

    def test_an_added_account_is_checked_like_the_first(self, desk):
        customer, _ = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused:
            desk.add_account(customer, invoice_currency="EUR")

        assert fields_of(refused.value) == ["invoice_currency"]


class TestDefaultBillingAccount:
    @pytest.fixture
    def desk(self, make_desk):
        return make_desk(allow_multi_customer_accounts=True)

    def test_the_customer_makes_another_account_its_default(self, desk):
        customer, _ = desk.create_customer()
        second = desk.add_account(customer)

        customer = desk.update_customer(customer, default_billing_account_id=second.id)

        assert customer.default_billing_account_id == second.id

    def test_an_account_makes_itself_the_default(self, desk):
        customer, _ = desk.create_customer()
        second = desk.add_account(customer)

        desk.update_account(second, is_default=True)

        assert desk.reload(customer).default_billing_account_id == second.id

    def test_refuses_un_defaulting_the_default_account(self, desk):
        customer, first = desk.create_customer()
        desk.add_account(customer)

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(first, is_default=False)

        assert fields_of(refused.value) == ["is_default"]
        assert desk.reload(customer).default_billing_account_id == first.id

    def test_un_defaulting_an_account_that_is_not_the_default_changes_nothing(self, desk):
        customer, first = desk.create_customer()
        second = desk.add_account(customer)

        desk.update_account(second, is_default=False)

        assert desk.reload(customer).default_billing_account_id == first.id

    def test_refuses_another_customers_account_as_default(self, desk):
        customer, _ = desk.create_customer("Acme Brick")
        _, stranger = desk.create_customer("Zenith Tile")

        with pytest.raises(ValidationFailed) as refused:
            desk.update_customer(customer, default_billing_account_id=stranger.id)

        assert fields_of(refused.value) == ["default_billing_account_id"]

    def test_refuses_a_deactivated_account_as_default(self, desk):
        customer, _ = desk.create_customer()
        second = desk.add_account(customer)
        desk.update_account(second, status="deactivated")

        with pytest.raises(ValidationFailed) as refused:
            desk.update_customer(customer, default_billing_account_id=second.id)

        assert fields_of(refused.value) == ["default_billing_account_id"]
