from datetime import date

import pytest

from billfold.core.db import transaction
from billfold.core.errors import ValidationFailed
from billfold.customers.models import BillingAccount, Customer
from billfold.customers.service import customer_accounts
from tests.services.conftest import fields_of

US_BILLING = {"line1": "1 Main St", "city": "Fort Worth", "country": "US"}
SE_BILLING = {"line1": "Drottninggatan 1", "city": "Stockholm", "country": "SE"}
ZW_BILLING = {"line1": "1 Samora Machel Ave", "city": "Harare", "country": "ZW"}


class TestCreateCustomer:
    def test_creates_the_customer_with_its_first_account_as_default(self, desk):
        customer, account = desk.create_customer()

        assert customer.default_billing_account_id == account.id
        assert [a.id for a in customer_accounts(desk.session, desk.scope, customer.id)] == [account.id]
        assert account.customer_id == customer.id

    def test_generates_customer_and_account_numbers(self, desk):
        customer, account = desk.create_customer()

        assert customer.number == "CUST-000001"
        assert account.number == "ACCT-000001"

    def test_starts_the_account_active(self, desk):
        _, account = desk.create_customer()

        assert account.status == "active"

    def test_refuses_a_new_account_in_another_status(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(account=desk.account(status="suspended"))

        assert fields_of(refused.value) == ["billing_account.status"]

    def test_refuses_a_customer_without_a_billing_account(self, desk):
        data = desk.ref.customer()
        del data["billing_account"]

        with pytest.raises(ValidationFailed) as refused:
            desk.create(data)

        assert fields_of(refused.value) == ["billing_account"]

    def test_names_every_wrong_field_of_customer_and_account_at_once(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(primary_email="nope",
                                 account=desk.account(auto_pay_offset_days=99))

        assert set(fields_of(refused.value)) == {"primary_email",
                                                  "billing_account.auto_pay_offset_days"}

    def test_refuses_an_unknown_customer_field(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(nickname="Bricky")

        assert fields_of(refused.value) == ["nickname"]


class TestFailedCreateWritesNothing:
    def test_a_refused_account_leaves_no_customer_account_or_history(self, desk):
        desk.create_customer("Existing Co")
        before = desk.counts()

        with pytest.raises(ValidationFailed):
            desk.create_customer("Widgets International", account=desk.account(currency="XYZ"))

        assert desk.counts() == before

    def test_a_refused_customer_leaves_no_account(self, desk):
        before = desk.counts()

        with pytest.raises(ValidationFailed):
            desk.create_customer(primary_email=None)

        assert desk.counts() == before == (0, 0, 0)

    def test_a_refused_create_uses_up_no_number(self, desk):
        desk.create_customer("First Co")
        with pytest.raises(ValidationFailed):
            desk.create_customer("Second Co", primary_email="not an email")

        customer, account = desk.create_customer("Third Co")

        assert (customer.number, account.number) == ("CUST-000002", "ACCT-000002")


class TestCompanyOrPerson:
    def test_a_company_customer_is_named_after_the_company(self, desk):
        customer, _ = desk.create_customer("Acme Brick")

        assert customer.customer_name == "Acme Brick"
        assert not customer.is_person

    def test_a_personal_customer_is_named_first_name_then_last_name(self, desk):
        customer, _ = desk.create(desk.person("Ada", "Lovelace"))

        assert customer.customer_name == "Ada Lovelace"
        assert customer.is_person

    def test_customer_name_may_be_the_person_when_a_company_is_also_given(self, desk):
        customer, _ = desk.create_customer("Acme Brick", first_name="Ada", last_name="Lovelace",
                                           customer_name="Ada Lovelace")

        assert customer.customer_name == "Ada Lovelace"

    def test_customer_name_may_be_the_company_when_a_person_is_also_given(self, desk):
        customer, _ = desk.create_customer("Acme Brick", first_name="Ada", last_name="Lovelace",
                                           customer_name="Acme Brick")

        assert customer.customer_name == "Acme Brick"

    def test_refuses_a_customer_name_that_is_neither_company_nor_person(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer("Acme Brick", customer_name="Acme Bricks Ltd")

        assert fields_of(refused.value) == ["customer_name"]

    def test_refuses_a_customer_with_neither_company_nor_person(self, desk):
        data = desk.ref.customer()
        del data["company_name"]

        with pytest.raises(ValidationFailed) as refused:
            desk.create(data)

        assert fields_of(refused.value) == ["company_name"]

    def test_refuses_a_first_name_without_a_last_name(self, desk):
        data = desk.person()
        del data["last_name"]

        with pytest.raises(ValidationFailed) as refused:
            desk.create(data)

        assert "last_name" in fields_of(refused.value)

    def test_choosing_again_when_the_name_it_was_chosen_from_changes(self, desk):
        customer, _ = desk.create_customer("Acme Brick")

        customer = desk.update_customer(customer, company_name="Acme Brick & Tile")

        assert customer.customer_name == "Acme Brick & Tile"


class TestDateOfBirth:
    def test_a_personal_customer_may_have_a_date_of_birth(self, desk):
        customer, _ = desk.create(desk.person(date_of_birth=date(1990, 12, 10)))

        assert customer.date_of_birth == date(1990, 12, 10)

    def test_refuses_a_date_of_birth_on_a_company(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer("Acme Brick", date_of_birth=date(1990, 12, 10))

        assert fields_of(refused.value) == ["date_of_birth"]

    def test_refuses_a_date_of_birth_when_the_customer_name_is_the_company(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer("Acme Brick", first_name="Ada", last_name="Lovelace",
                                 customer_name="Acme Brick", date_of_birth=date(1990, 12, 10))

        assert fields_of(refused.value) == ["date_of_birth"]

    def test_refuses_a_date_of_birth_in_the_future(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create(desk.person(date_of_birth=date(2999, 1, 1)))

        assert fields_of(refused.value) == ["date_of_birth"]


class TestEmails:
    def test_refuses_a_customer_without_a_primary_email(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(primary_email=None)

        assert refused.value.errors[0].field == "primary_email"
        assert refused.value.errors[0].code == "required"

    def test_refuses_an_invalid_primary_email(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(primary_email="billing at acme")

        assert fields_of(refused.value) == ["primary_email"]

    def test_keeps_valid_secondary_emails(self, desk):
        customer, _ = desk.create_customer(secondary_emails=["ap@acme.example"])

        assert customer.secondary_emails == ["ap@acme.example"]

    def test_refuses_a_secondary_email_that_repeats_the_primary(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(secondary_emails=["BILLING@acme.example"])

        assert fields_of(refused.value) == ["secondary_emails[0]"]


class TestPhones:
    def test_normalises_a_national_number_in_the_billing_country_to_e164(self, desk):
        customer, _ = desk.create_customer(billing_address=US_BILLING,
                                           phones=[{"type": "work", "number": "(817) 332-4101"}])

        assert customer.phones == [{"type": "work", "number": "+18173324101"}]

    def test_accepts_an_international_number_without_a_billing_country(self, desk):
        customer, _ = desk.create_customer(phones=[{"type": "mobile", "number": "+46 8 123 456 78"}])

        assert customer.phones == [{"type": "mobile", "number": "+46812345678"}]

    def test_refuses_a_national_number_without_a_billing_country(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(phones=[{"type": "work", "number": "(817) 332-4101"}])

        assert fields_of(refused.value) == ["phones[0].number"]

    def test_refuses_an_invalid_number(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(billing_address=US_BILLING,
                                 phones=[{"type": "work", "number": "12"}])

        assert fields_of(refused.value) == ["phones[0].number"]


class TestAddresses:
    def test_keeps_the_country_as_an_upper_case_iso_3166_code(self, desk):
        customer, _ = desk.create_customer(billing_address={**US_BILLING, "country": "us"})

        assert customer.billing_address["country"] == "US"

    def test_refuses_a_country_that_is_not_iso_3166(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(billing_address={**US_BILLING, "country": "XX"})

        assert fields_of(refused.value) == ["billing_address.country"]

    def test_a_service_address_may_be_the_billing_address(self, desk):
        customer, _ = desk.create_customer(billing_address=US_BILLING,
                                           service_address={"same_as_billing": True})

        assert customer.service_address == {"same_as_billing": True}

    def test_refuses_same_as_billing_without_a_billing_address(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(shipping_address={"same_as_billing": True})

        assert fields_of(refused.value) == ["shipping_address"]


class TestTaxNumber:
    def test_refuses_a_bad_swedish_vat_number_billed_in_sweden(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(billing_address=SE_BILLING, tax_number="SE123456789001")

        assert fields_of(refused.value) == ["tax_number"]

    def test_accepts_a_valid_swedish_vat_number_billed_in_sweden(self, desk):
        customer, _ = desk.create_customer(billing_address=SE_BILLING,
                                           tax_number="SE556703748501")

        assert customer.tax_number == "SE556703748501"

    def test_accepts_a_us_ein_with_an_assigned_prefix(self, desk):
        customer, _ = desk.create_customer(billing_address=US_BILLING, tax_number="12-3456789")

        assert customer.tax_number == "12-3456789"

    def test_refuses_a_us_ein_with_a_prefix_the_irs_never_assigned(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(billing_address=US_BILLING, tax_number="07-1234567")

        assert fields_of(refused.value) == ["tax_number"]

    def test_accepts_anything_where_stdnum_does_not_know_the_country(self, desk):
        customer, _ = desk.create_customer(billing_address=ZW_BILLING, tax_number="ZW-ANY-1")

        assert customer.tax_number == "ZW-ANY-1"

    def test_accepts_anything_without_a_billing_country(self, desk):
        customer, _ = desk.create_customer(tax_number="SE123456789001")

        assert customer.tax_number == "SE123456789001"

    def test_checks_the_tax_number_again_when_the_billing_country_changes(self, desk):
        customer, _ = desk.create_customer(tax_number="SE123456789001")

        with pytest.raises(ValidationFailed) as refused:
            desk.update_customer(customer, billing_address=SE_BILLING)

        assert fields_of(refused.value) == ["tax_number"]


class TestUpdateCustomer:
    def test_refuses_changing_the_number(self, desk):
        customer, _ = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused:
            desk.update_customer(customer, number="CUST-999999")

        assert fields_of(refused.value) == ["number"]

    def test_keeps_the_customer_unchanged_when_an_update_is_refused(self, desk):
        customer, _ = desk.create_customer(primary_email="ap@acme.example")

        with pytest.raises(ValidationFailed):
            desk.update_customer(customer, primary_email="nope", company_name="Renamed")

        reloaded = desk.reload(customer)
        assert (reloaded.primary_email, reloaded.company_name) == ("ap@acme.example", "Acme Brick")

    def test_renaming_the_customer_renames_it_on_its_accounts_for_search(self, desk):
        customer, account = desk.create_customer("Acme Brick")

        desk.update_customer(customer, company_name="Zenith Tile")

        assert desk.reload(account).customer_name_key == "zenith tile"


class TestReturnedInstances:
    """create_customer and add_billing_account insert their rows directly and hand back
    instances placed in the session as if loaded: they must be the rows as stored, and
    changes made to them in the same session must be written."""

    @pytest.fixture
    def desk(self, make_desk):
        return make_desk(allow_multi_customer_accounts=True)

    @staticmethod
    def _as_stored(sessions, model, row_id):
        with sessions() as fresh:
            stored = fresh.get(model, row_id)
            return {c.key: getattr(stored, c.key) for c in model.__table__.columns}

    def test_they_are_the_stored_rows(self, desk, sessions):
        customer, account = desk.create_customer()
        second = desk.add_account(customer, "EUR")
        for model, returned in ((Customer, customer), (BillingAccount, account),
                                (BillingAccount, second)):
            assert {c.key: getattr(returned, c.key) for c in model.__table__.columns} \
                == self._as_stored(sessions, model, returned.id)

    def test_a_change_to_one_is_written(self, desk, sessions):
        customer, _ = desk.create_customer()
        assert customer in desk.session
        with transaction(desk.session):
            customer.primary_email = "changed@example.com"
        assert self._as_stored(sessions, Customer, customer.id)["primary_email"] \
            == "changed@example.com"
