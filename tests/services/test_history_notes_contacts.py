from datetime import UTC, date, datetime

import pytest

from billfold.core.db import transaction
from billfold.core.errors import NotFound, ValidationFailed
from billfold.customers import history, records
from tests.services.conftest import ACTOR, fields_of, frozen_at

CREATED_AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
CHANGED_AT = datetime(2026, 3, 5, 14, 0, tzinfo=UTC)


def history_of(desk, obj, object_type):
    return history.list_history(desk.session, desk.scope, object_type=object_type,
                                object_id=obj.id, limit=50)


def change(entry, field):
    """The one change the entry records for ``field``."""
    (found,) = [c for c in entry.changes if c["field"] == field]
    return found["old_value"], found["new_value"]


class TestCustomerHistory:
    def test_records_the_creation_with_actor_time_and_values(self, desk):
        with frozen_at(CREATED_AT):
            customer, _ = desk.create_customer("Acme Brick", primary_email="ap@acme.example")

        (created,) = history_of(desk, customer, "customer")
        assert (created.action, created.actor, created.at) == ("created", ACTOR, CREATED_AT)
        assert change(created, "company_name") == (None, "Acme Brick")
        assert change(created, "primary_email") == (None, "ap@acme.example")
        assert change(created, "number") == (None, "CUST-000001")

    def test_records_each_changed_field_with_its_old_and_new_value(self, desk):
        customer, _ = desk.create_customer("Acme Brick", primary_email="ap@acme.example")

        with frozen_at(CHANGED_AT):
            desk.update_customer(customer, actor="mia@biller.example",
                                 primary_email="billing@acme.example")

        entries = history_of(desk, customer, "customer")
        assert [e.action for e in entries] == ["created", "updated"]
        updated = entries[-1]
        assert (updated.action, updated.actor, updated.at) == (
            "updated", "mia@biller.example", CHANGED_AT)
        assert [c["field"] for c in updated.changes] == ["primary_email"]
        assert change(updated, "primary_email") == ("ap@acme.example", "billing@acme.example")

    def test_records_a_name_change_and_the_customer_name_it_implies(self, desk):
        customer, _ = desk.create_customer("Acme Brick")

        desk.update_customer(customer, company_name="Acme Brick & Tile")

        updated = history_of(desk, customer, "customer")[-1]
        assert change(updated, "company_name") == ("Acme Brick", "Acme Brick & Tile")
        assert change(updated, "customer_name") == ("Acme Brick", "Acme Brick & Tile")

    def test_records_a_date_as_text(self, desk):
        customer, _ = desk.create(desk.person(date_of_birth=date(1990, 12, 10)))

        (created,) = history_of(desk, customer, "customer")
        assert change(created, "date_of_birth") == (None, "1990-12-10")

    def test_records_nothing_for_an_update_that_changes_nothing(self, desk):
        customer, _ = desk.create_customer("Acme Brick")

        desk.update_customer(customer, company_name="Acme Brick")

        assert len(history_of(desk, customer, "customer")) == 1

    def test_records_nothing_for_a_refused_update(self, desk):
        customer, _ = desk.create_customer()

        with pytest.raises(ValidationFailed):
            desk.update_customer(customer, primary_email="nope")

        assert len(history_of(desk, customer, "customer")) == 1

    def test_records_a_change_of_default_account(self, make_desk):
        desk = make_desk(allow_multi_customer_accounts=True)
        customer, first = desk.create_customer()
        second = desk.add_account(customer)

        desk.update_customer(customer, default_billing_account_id=second.id)

        updated = history_of(desk, customer, "customer")[-1]
        assert change(updated, "default_billing_account_id") == (first.id, second.id)

    def test_records_a_new_default_chosen_on_the_account(self, make_desk):
        desk = make_desk(allow_multi_customer_accounts=True)
        customer, first = desk.create_customer()
        second = desk.add_account(customer)

        desk.update_account(second, is_default=True)

        updated = history_of(desk, customer, "customer")[-1]
        assert change(updated, "default_billing_account_id") == (first.id, second.id)


class TestBillingAccountHistory:
    def test_records_the_creation_of_the_first_account(self, desk):
        with frozen_at(CREATED_AT):
            _, account = desk.create_customer(account=desk.account("SEK"))

        (created,) = history_of(desk, account, "billing_account")
        assert (created.action, created.actor, created.at) == ("created", ACTOR, CREATED_AT)
        assert change(created, "currency") == (None, "SEK")
        assert change(created, "status") == (None, "active")
        assert change(created, "start_date") == (None, "2026-02-01")

    def test_records_the_creation_of_an_added_account(self, make_desk):
        desk = make_desk(allow_multi_customer_accounts=True)
        customer, _ = desk.create_customer()

        added = desk.add_account(customer, "EUR")

        (created,) = history_of(desk, added, "billing_account")
        assert change(created, "currency") == (None, "EUR")

    def test_records_a_status_change(self, desk):
        _, account = desk.create_customer()

        with frozen_at(CHANGED_AT):
            desk.update_account(account, actor="ops@biller.example", status="suspended")

        updated = history_of(desk, account, "billing_account")[-1]
        assert (updated.actor, updated.at) == ("ops@biller.example", CHANGED_AT)
        assert updated.changes == [
            {"field": "status", "old_value": "active", "new_value": "suspended"}]

    def test_pages_through_history(self, desk):
        _, account = desk.create_customer()
        for status in ("suspended", "active", "deactivated"):
            desk.update_account(account, status=status)

        first = history.list_history(desk.session, desk.scope, object_type="billing_account",
                                     object_id=account.id, limit=2)
        rest = history.list_history(desk.session, desk.scope, object_type="billing_account",
                                    object_id=account.id, limit=2, starting_after=first[-1].id)

        assert [e.action for e in [*first, *rest]] == ["created", "updated", "updated", "updated"]

    def test_another_tenant_sees_no_history_of_the_account(self, desk, make_desk):
        _, account = desk.create_customer()
        other = make_desk()

        assert history_of(other, account, "billing_account") == []


def add_note(desk, account, body, author=ACTOR):
    with transaction(desk.session):
        return records.add_note(desk.session, desk.scope, account_id=account.id, body=body,
                                author=author)


def add_contact(desk, account, name="Mia Wong", email=None, phone=None, category=None):
    with transaction(desk.session):
        return records.add_contact(desk.session, desk.scope, account_id=account.id, name=name,
                                   email=email, phone=phone, category=category)


class TestNotes:
    def test_adds_a_note_with_its_author(self, desk):
        _, account = desk.create_customer()

        note = add_note(desk, account, "  Called about the March invoice.  ")

        assert (note.body, note.author) == ("Called about the March invoice.", ACTOR)
        assert records.list_notes(desk.session, desk.scope, account_id=account.id,
                                  limit=10) == [note]

    @pytest.mark.parametrize("body", ["", "   "])
    def test_refuses_an_empty_note(self, desk, body):
        _, account = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused:
            add_note(desk, account, body)

        assert fields_of(refused.value) == ["body"]

    def test_refuses_a_note_over_10000_characters(self, desk):
        _, account = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused:
            add_note(desk, account, "x" * 10_001)

        assert fields_of(refused.value) == ["body"]

    def test_refuses_a_note_on_another_tenants_account(self, desk, make_desk):
        _, account = make_desk().create_customer()

        with pytest.raises(NotFound):
            add_note(desk, account, "Hello")

    def test_pages_through_notes(self, desk):
        _, account = desk.create_customer()
        notes = [add_note(desk, account, f"Note {i}") for i in range(3)]

        first = records.list_notes(desk.session, desk.scope, account_id=account.id, limit=2)
        rest = records.list_notes(desk.session, desk.scope, account_id=account.id, limit=2,
                                  starting_after=first[-1].id)

        assert [*first, *rest] == notes


class TestContacts:
    def test_adds_a_contact_with_email_and_an_e164_phone(self, desk):
        _, account = desk.create_customer()

        contact = add_contact(desk, account, email="mia@acme.example",
                              phone="+1 (817) 332-4101", category="billing")

        assert (contact.name, contact.email, contact.phone, contact.category) == (
            "Mia Wong", "mia@acme.example", "+18173324101", "billing")
        assert records.list_contacts(desk.session, desk.scope, account_id=account.id,
                                     limit=10) == [contact]

    def test_adds_a_contact_with_only_a_phone(self, desk):
        _, account = desk.create_customer()

        contact = add_contact(desk, account, phone="+46 8 123 456 78")

        assert (contact.email, contact.phone) == (None, "+46812345678")

    def test_refuses_a_contact_without_a_name(self, desk):
        _, account = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused:
            add_contact(desk, account, name="  ", email="mia@acme.example")

        assert fields_of(refused.value) == ["name"]

    def test_refuses_a_contact_without_email_or_phone(self, desk):
        _, account = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused:
            add_contact(desk, account)

        assert fields_of(refused.value) == ["email"]

    def test_refuses_an_invalid_email(self, desk):
        _, account = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused:
            add_contact(desk, account, email="mia at acme")

        assert fields_of(refused.value) == ["email"]

    def test_refuses_a_phone_without_its_country_code(self, desk):
        _, account = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused:
            add_contact(desk, account, phone="(817) 332-4101")

        assert fields_of(refused.value) == ["phone"]

    def test_refuses_an_unknown_category(self, desk):
        _, account = desk.create_customer()

        with pytest.raises(ValidationFailed) as refused:
            add_contact(desk, account, email="mia@acme.example", category="gossip")

        assert fields_of(refused.value) == ["category"]

    def test_refuses_a_contact_on_another_tenants_account(self, desk, make_desk):
        _, account = make_desk().create_customer()

        with pytest.raises(NotFound):
            add_contact(desk, account, email="mia@acme.example")
