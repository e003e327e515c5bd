import pytest

from billfold.core.errors import Conflict, ValidationFailed
from billfold.core.scope import Scope
from tests.conftest import Reference
from tests.services.conftest import Desk, fields_of


class TestExternalCustomerNumber:
    def test_refuses_an_external_number_another_customer_has(self, desk):
        desk.create_customer("Acme Brick", external_number="SF-001")

        with pytest.raises(Conflict) as refused:
            desk.create_customer("Zenith Tile", external_number="SF-001")

        assert fields_of(refused.value) == ["external_number"]
        assert refused.value.code == "duplicate_number"

    def test_compares_external_numbers_ignoring_letter_case(self, desk):
        desk.create_customer("Acme Brick", external_number="sf-001")

        with pytest.raises(Conflict) as refused:
            desk.create_customer("Zenith Tile", external_number="SF-001")

        assert fields_of(refused.value) == ["external_number"]

    def test_refuses_taking_another_customers_external_number_by_update(self, desk):
        desk.create_customer("Acme Brick", external_number="SF-001")
        customer, _ = desk.create_customer("Zenith Tile", external_number="SF-002")

        with pytest.raises(Conflict) as refused:
            desk.update_customer(customer, external_number="SF-001")

        assert fields_of(refused.value) == ["external_number"]

    def test_a_customer_keeps_its_own_external_number_on_update(self, desk):
        customer, _ = desk.create_customer("Acme Brick", external_number="SF-001")

        customer = desk.update_customer(customer, external_number="SF-001", company_name="Acme")

        assert customer.external_number == "SF-001"

    def test_customers_without_external_numbers_do_not_clash(self, desk):
        desk.create_customer("Acme Brick")
        customer, _ = desk.create_customer("Zenith Tile")

        assert customer.external_number is None

    def test_another_tenant_may_use_the_same_external_number(self, desk, make_desk):
        desk.create_customer("Acme Brick", external_number="SF-001")

        customer, _ = make_desk().create_customer("Acme Brick", external_number="SF-001")

        assert customer.external_number == "SF-001"

    def test_refuses_an_external_number_with_characters_numbers_cannot_hold(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(external_number="SF 001")

        assert fields_of(refused.value) == ["external_number"]


class TestExternalAccountNumber:
    def test_refuses_an_external_number_another_account_has(self, desk):
        desk.create_customer("Acme Brick", account=desk.account(external_number="BA-1"))

        with pytest.raises(Conflict) as refused:
            desk.create_customer("Zenith Tile", account=desk.account(external_number="ba-1"))

        assert fields_of(refused.value) == ["billing_account.external_number"]

    def test_refuses_an_added_account_with_a_taken_external_number(self, make_desk):
        desk = make_desk(allow_multi_customer_accounts=True)
        customer, _ = desk.create_customer(account=desk.account(external_number="BA-1"))

        with pytest.raises(Conflict) as refused:
            desk.add_account(customer, external_number="BA-1")

        assert fields_of(refused.value) == ["external_number"]

    def test_refuses_taking_another_accounts_external_number_by_update(self, desk):
        desk.create_customer("Acme Brick", account=desk.account(external_number="BA-1"))
        _, account = desk.create_customer("Zenith Tile")

        with pytest.raises(Conflict) as refused:
            desk.update_account(account, external_number="BA-1")

        assert fields_of(refused.value) == ["external_number"]

    def test_a_customer_and_an_account_may_share_an_external_number(self, desk):
        customer, account = desk.create_customer(
            external_number="SHARED-7", account=desk.account(external_number="SHARED-7"))

        assert customer.external_number == account.external_number == "SHARED-7"

    def test_another_tenant_may_use_the_same_external_account_number(self, desk, make_desk):
        desk.create_customer(account=desk.account(external_number="BA-1"))
        other = make_desk()

        _, account = other.create_customer(account=other.account(external_number="BA-1"))

        assert account.external_number == "BA-1"

    def test_the_live_mode_of_the_same_tenant_may_use_the_same_external_number(
            self, desk, session):
        desk.create_customer(external_number="SF-001")
        live = Scope(desk.scope.tenant_id, "live")
        live_desk = Desk(session, live, Reference(session, live))

        customer, _ = live_desk.create_customer(external_number="SF-001")

        assert customer.mode == "live"


class TestGivenAndGeneratedNumbers:
    def test_keeps_a_customer_number_given_at_creation(self, desk):
        customer, _ = desk.create_customer(number="ACME-1")

        assert customer.number == "ACME-1"

    def test_refuses_a_customer_number_that_is_taken_in_another_letter_case(self, desk):
        desk.create_customer("Acme Brick", number="ACME-1")

        with pytest.raises(Conflict) as refused:
            desk.create_customer("Zenith Tile", number="acme-1")

        assert fields_of(refused.value) == ["number"]

    def test_refuses_an_account_number_that_is_taken_in_another_letter_case(self, desk):
        desk.create_customer("Acme Brick", account=desk.account(number="ACCT-A"))

        with pytest.raises(Conflict) as refused:
            desk.create_customer("Zenith Tile", account=desk.account(number="acct-a"))

        assert fields_of(refused.value) == ["billing_account.number"]

    def test_refuses_a_given_number_that_was_generated_for_another_customer(self, desk):
        desk.create_customer("Acme Brick")

        with pytest.raises(Conflict) as refused:
            desk.create_customer("Zenith Tile", number="cust-000001")

        assert fields_of(refused.value) == ["number"]

    def test_generating_skips_numbers_given_by_hand(self, desk):
        desk.create_customer("Acme Brick", number="cust-000001",
                             account=desk.account(number="acct-000001"))

        customer, account = desk.create_customer("Zenith Tile")

        assert (customer.number, account.number) == ("CUST-000002", "ACCT-000002")

    def test_numbers_are_generated_per_tenant(self, desk, make_desk):
        desk.create_customer("Acme Brick")

        customer, _ = make_desk().create_customer("Acme Brick")

        assert customer.number == "CUST-000001"

    def test_refuses_changing_an_account_number(self, desk):
        _, account = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(account, number="ACCT-XYZ")

        assert fields_of(refused.value) == ["number"]
