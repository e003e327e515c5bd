import pytest

from billfold.core.errors import ValidationFailed
from billfold.customers.service import customer_accounts
from tests.services.conftest import fields_of

LOCATIONS = ["United States", "Zimbabwe", "Mexico", "Russia", "Sweden"]


class TestWidgetsInternationalLocations:
    """The seed's use case: one customer, a billing account per company location."""

    @pytest.fixture
    def desk(self, make_desk):
        desk = make_desk(allow_multi_customer_accounts=True)
        desk.custom_field("billing_account", "location", "dropdown", options=LOCATIONS)
        return desk

    def test_a_customer_gets_an_account_for_each_location_in_its_currency(self, desk):
        customer, default = desk.create_customer(
            "Widgets International",
            account=desk.account("USD", custom_fields={"location": "United States"}))
        for location, currency in [("Zimbabwe", "USD"), ("Mexico", "MXN"), ("Russia", "RUB"),
                                   ("Sweden", "SEK")]:
            desk.add_account(customer, currency, custom_fields={"location": location})

        rows = customer_accounts(desk.session, desk.scope, customer.id)
        assert [(a.custom_fields["location"], a.currency) for a in rows] == [
            ("United States", "USD"), ("Zimbabwe", "USD"), ("Mexico", "MXN"),
            ("Russia", "RUB"), ("Sweden", "SEK")]
        assert desk.reload(customer).default_billing_account_id == default.id

    def test_refuses_a_location_that_is_not_an_option(self, desk):
        customer, _ = desk.create_customer("Widgets International")

        with pytest.raises(ValidationFailed) as refused:
            desk.add_account(customer, "CAD", custom_fields={"location": "Canada"})

        assert fields_of(refused.value) == ["custom_fields.location"]

    def test_names_the_location_under_billing_account_when_creating_the_customer(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(account=desk.account(custom_fields={"location": "Canada"}))

        assert fields_of(refused.value) == ["billing_account.custom_fields.location"]

    def test_refuses_changing_the_location_to_one_that_is_not_an_option(self, desk):
        _, account = desk.create_customer(
            account=desk.account(custom_fields={"location": "Mexico"}))

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(account, custom_fields={"location": "Canada"})

        assert fields_of(refused.value) == ["custom_fields.location"]
        assert desk.reload(account).custom_fields == {"location": "Mexico"}


class TestCustomFieldTypes:
    @pytest.mark.parametrize(("field_type", "good", "bad"), [
        ("text", "Gold tier", 42),
        ("number", 12.5, "12.5"),
        ("number", 7, True),
        ("date", "2026-03-01", "01/03/2026"),
        ("boolean", False, "yes"),
    ])
    def test_accepts_a_value_of_the_fields_type_and_refuses_another(
            self, desk, field_type, good, bad):
        desk.custom_field("customer", "extra", field_type)

        customer, _ = desk.create_customer("Good Co", custom_fields={"extra": good})
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer("Bad Co", custom_fields={"extra": bad})

        assert customer.custom_fields == {"extra": good}
        assert fields_of(refused.value) == ["custom_fields.extra"]

    def test_refuses_text_over_1000_characters(self, desk):
        desk.custom_field("customer", "notes", "text")

        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(custom_fields={"notes": "x" * 1001})

        assert fields_of(refused.value) == ["custom_fields.notes"]

    def test_refuses_an_undefined_field(self, desk):
        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(custom_fields={"segment": "SMB"})

        assert fields_of(refused.value) == ["custom_fields.segment"]
        assert refused.value.errors[0].code == "unknown_field"

    def test_refuses_a_field_defined_for_the_other_object_type(self, desk):
        desk.custom_field("customer", "segment", "text")

        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer(account=desk.account(custom_fields={"segment": "SMB"}))

        assert fields_of(refused.value) == ["billing_account.custom_fields.segment"]


class TestRequiredCustomField:
    def test_refuses_a_customer_without_a_required_field(self, desk):
        desk.custom_field("customer", "segment", "text", required=True)

        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer()

        assert fields_of(refused.value) == ["custom_fields.segment"]
        assert refused.value.errors[0].code == "required"

    def test_accepts_a_customer_with_the_required_field(self, desk):
        desk.custom_field("customer", "segment", "text", required=True)

        customer, _ = desk.create_customer(custom_fields={"segment": "SMB"})

        assert customer.custom_fields == {"segment": "SMB"}

    def test_refuses_clearing_a_required_field(self, desk):
        desk.custom_field("billing_account", "region", "text", required=True)
        _, account = desk.create_customer(account=desk.account(custom_fields={"region": "EMEA"}))

        with pytest.raises(ValidationFailed) as refused:
            desk.update_account(account, custom_fields={"region": None})

        assert fields_of(refused.value) == ["custom_fields.region"]


class TestDefinitionsCachedAcrossRequests:
    """Definitions are cached for the whole process; a field another process defines must
    still be enforced by the very next request here."""

    def test_a_field_defined_elsewhere_after_the_cache_is_warm_is_enforced(
            self, desk, database_url):
        from billfold.core.db import make_engine, make_sessionmaker, transaction
        from billfold.tenants import service as tenants

        desk.create_customer()  # reads (and caches) the customer field definitions
        other = make_engine(database_url)  # another process's engine and connections
        try:
            with make_sessionmaker(other)() as s, transaction(s):
                tenants.create_custom_field(s, desk.scope, object_type="customer",
                                            key="segment", label="Segment",
                                            field_type="text", required=True)
        finally:
            other.dispose()

        with pytest.raises(ValidationFailed) as refused:
            desk.create_customer("Second Customer")

        assert fields_of(refused.value) == ["custom_fields.segment"]

    def test_a_bill_cycle_of_another_tenant_stays_unknown_once_cached(self, desk, make_desk):
        stranger = make_desk()
        desk.create_customer()  # caches this tenant's bill cycle

        with pytest.raises(ValidationFailed) as refused:
            stranger.create_customer(account=stranger.account(bill_cycle_id=desk.ref.cycle.id))

        assert fields_of(refused.value) == ["billing_account.bill_cycle_id"]
