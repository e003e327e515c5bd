"""Creating many customers at once: the same rules as one at a time, all or nothing."""

from datetime import date

import pytest
from sqlalchemy import func, select

from billfold.core.db import transaction
from billfold.core.errors import Conflict, ValidationFailed
from billfold.customers import bulk, history
from billfold.customers import service as customers
from billfold.customers import settings as settings_service
from billfold.customers.accounts import ACCOUNT_FIELDS
from billfold.customers.models import BillingAccount, Customer
from billfold.customers.service import CUSTOMER_FIELDS


def count(session, scope, model) -> int:
    return session.scalar(select(func.count()).select_from(model)
                          .where(model.tenant_id == scope.tenant_id)) or 0


def item(ref, name="Acme Brick", accounts=None, **extra):
    data = ref.customer(name, **extra)
    del data["billing_account"]
    return data | {"billing_accounts": accounts or [ref.account()]}


class TestCreateCustomers:
    def test_creates_customers_with_their_accounts_and_defaults(self, session, scope, ref):
        with transaction(session):
            settings_service.update_settings(session, scope,
                                             {"allow_multi_customer_accounts": True})
            created = bulk.create_customers(session, scope, actor="import", items=[
                item(ref, "Acme Brick", [ref.account("USD"), ref.account("EUR")]),
                item(ref, "Widgets International", external_number="W-1"),
            ])
        assert [len(c.billing_account_ids) for c in created] == [2, 1]
        acme = customers.get_customer(session, scope, created[0].customer_id)
        assert acme.default_billing_account_id == created[0].billing_account_ids[0]
        assert [a.currency for a in customers.customer_accounts(session, scope, acme.id)] == \
            ["USD", "EUR"]
        assert created[0].customer_number == "CUST-000001"
        assert created[1].customer_number == "CUST-000002"
        assert created[0].billing_account_numbers == ["ACCT-000001", "ACCT-000002"]

    def test_rows_equal_those_created_one_at_a_time(self, session, scope, ref):
        data = item(ref, phones=[{"type": "work", "number": "+1 817 332 4101"}],
                    billing_address={"line1": "1 Main", "city": "Fort Worth", "country": "US"})
        single_data = {k: v for k, v in data.items() if k != "billing_accounts"} | {
            "billing_account": data["billing_accounts"][0], "external_number": "ONE"}
        with transaction(session):
            one, one_account = customers.create_customer(session, scope, data=single_data,
                                                         actor="import")
            (many,) = bulk.create_customers(session, scope, actor="import",
                                            items=[data | {"external_number": "MANY"}])
        session.expire_all()
        two = customers.get_customer(session, scope, many.customer_id)
        two_account = customers.get_billing_account(session, scope, many.billing_account_ids[0])
        skip = {"number", "external_number"}
        assert {f: getattr(one, f) for f in CUSTOMER_FIELDS if f not in skip} == \
            {f: getattr(two, f) for f in CUSTOMER_FIELDS if f not in skip}
        skip |= {"customer_id"}
        assert {f: getattr(one_account, f) for f in ACCOUNT_FIELDS if f not in skip} == \
            {f: getattr(two_account, f) for f in ACCOUNT_FIELDS if f not in skip}
        assert two.name_key == one.name_key
        assert two_account.customer_name_key == one_account.customer_name_key

    def test_records_the_creation_in_the_history(self, session, scope, ref):
        with transaction(session):
            (created,) = bulk.create_customers(session, scope, actor="import",
                                               items=[item(ref)])
        (entry,) = history.list_history(session, scope, object_type="billing_account",
                                        object_id=created.billing_account_ids[0], limit=10)
        assert entry.action == "created"
        assert entry.actor == "import"
        assert {"field": "currency", "old_value": None, "new_value": "USD"} in entry.changes

    def test_one_wrong_item_refuses_the_whole_batch_and_is_named(self, session, scope, ref):
        bad = item(ref, "Broken", [ref.account(currency="ZZZ")])
        with pytest.raises(ValidationFailed) as refused, transaction(session):
            bulk.create_customers(session, scope, actor="import",
                                  items=[item(ref), bad, item(ref, primary_email="nope")])
        fields = {e.field for e in refused.value.errors}
        assert "items[1].billing_accounts[0].currency" in fields
        assert "items[2].primary_email" in fields
        assert count(session, scope, Customer) == 0
        assert count(session, scope, BillingAccount) == 0

    def test_refuses_two_accounts_without_the_multi_account_setting(self, session, scope, ref):
        with pytest.raises(ValidationFailed) as refused, transaction(session):
            bulk.create_customers(session, scope, actor="import", items=[
                item(ref, accounts=[ref.account(), ref.account()])])
        assert refused.value.errors[0].field == "items[0].billing_accounts"
        assert refused.value.errors[0].code == "multi_customer_accounts_disabled"

    def test_refuses_an_external_number_taken_in_the_batch_or_before(self, session, scope, ref):
        with pytest.raises(Conflict), transaction(session):
            bulk.create_customers(session, scope, actor="import", items=[
                item(ref, external_number="X-1"), item(ref, external_number="x-1")])
        with transaction(session):
            customers.create_customer(session, scope, actor="t",
                                      data=ref.customer(external_number="X-2"))
        with pytest.raises(Conflict) as refused, transaction(session):
            bulk.create_customers(session, scope, actor="import",
                                  items=[item(ref, external_number="x-2")])
        assert refused.value.errors[0].field == "external_number"
        assert count(session, scope, Customer) == 1

    def test_generated_numbers_skip_numbers_given_by_hand(self, session, scope, ref):
        with transaction(session):
            customers.create_customer(session, scope, actor="t",
                                      data=ref.customer(number="CUST-000002"))
            created = bulk.create_customers(session, scope, actor="import",
                                            items=[item(ref), item(ref)])
        assert [c.customer_number for c in created] == ["CUST-000001", "CUST-000003"]

    def test_refuses_an_empty_batch(self, session, scope):
        with pytest.raises(ValidationFailed):
            bulk.create_customers(session, scope, actor="import", items=[])

    def test_start_dates_still_follow_the_bill_cycle(self, session, scope, ref):
        early = ref.account(start_date=date(2025, 12, 31))
        with pytest.raises(ValidationFailed) as refused, transaction(session):
            bulk.create_customers(session, scope, actor="import", items=[item(ref, accounts=[early])])
        assert refused.value.errors[0].field == "items[0].billing_accounts[0].start_date"
