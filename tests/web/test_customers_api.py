"""Customers and billing accounts end to end through the API: the seed's Location dropdown
example, settings, change history, notes and contacts, the account summary and search."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from billfold.core import clock
from tests.conftest import account_body, customer_body, seed_reference
from tests.web.helpers import assert_problem, list_ids, snapshot

LOCATIONS = ["United States", "Zimbabwe", "Mexico", "Russia", "Sweden"]


@pytest.fixture
def ids(client: Any) -> dict[str, str]:
    return seed_reference(client)


@pytest.fixture
def acme(client: Any, ids: dict[str, str]) -> dict[str, Any]:
    response = client.post("/v1/customers", json=customer_body(ids))
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def frozen_clock() -> Iterator[clock.FrozenClock]:
    frozen = clock.FrozenClock(datetime(2026, 3, 10, 15, 0, tzinfo=UTC))
    previous = clock.set_clock(frozen)
    yield frozen
    clock.set_clock(previous)


class TestTheLocationDropdownExample:
    """GTV's example: one customer, Widgets International, billed in five countries from
    five billing accounts, each tagged with a Location dropdown custom field."""

    @pytest.fixture
    def location_field(self, client: Any) -> dict[str, Any]:
        response = client.post("/v1/custom_fields", json={
            "object_type": "billing_account", "key": "location", "label": "Location",
            "field_type": "dropdown", "options": LOCATIONS})
        assert response.status_code == 201, response.text
        return dict(response.json())

    @pytest.fixture
    def widgets(self, client: Any, ids: dict[str, str], location_field: dict[str, Any]
                ) -> dict[str, Any]:
        settings = client.patch("/v1/settings", json={"allow_multi_customer_accounts": True})
        assert settings.json()["allow_multi_customer_accounts"] is True
        response = client.post("/v1/customers", json=customer_body(
            ids, name="Widgets International", primary_email="ap@widgets.example",
            billing_account=account_body(ids, "USD",
                                         custom_fields={"location": "United States"})))
        assert response.status_code == 201, response.text
        return dict(response.json())

    def test_the_definition_is_listed_with_its_options(self, client, location_field):
        listed = client.get("/v1/custom_fields").json()["data"]
        assert [(f["key"], f["field_type"], f["options"]) for f in listed] == [
            ("location", "dropdown", LOCATIONS)]
        assert location_field["object_type"] == "billing_account"

    def test_widgets_international_gets_five_accounts_in_five_currencies(self, client, ids,
                                                                         widgets):
        for location, currency in [("Zimbabwe", "USD"), ("Mexico", "MXN"), ("Russia", "RUB"),
                                   ("Sweden", "SEK")]:
            response = client.post(
                f"/v1/customers/{widgets['id']}/billing_accounts",
                json=account_body(ids, currency, custom_fields={"location": location}))
            assert response.status_code == 201, response.text
            assert response.json()["is_default"] is False
        listed = client.get("/v1/billing_accounts", params={"customer_id": widgets["id"]})
        accounts = listed.json()["data"]
        assert sorted((a["custom_fields"]["location"], a["currency"]) for a in accounts) == [
            ("Mexico", "MXN"), ("Russia", "RUB"), ("Sweden", "SEK"),
            ("United States", "USD"), ("Zimbabwe", "USD")]
        assert all(a["customer_id"] == widgets["id"] for a in accounts)
        assert all(a["invoice_currency"] == a["currency"] for a in accounts)
        [default] = [a for a in accounts if a["is_default"]]
        assert default["custom_fields"] == {"location": "United States"}
        assert default["id"] == widgets["default_billing_account_id"]
        assert len(list_ids(client, f"/v1/customers/{widgets['id']}/billing_accounts")) == 5

    def test_a_location_outside_the_dropdown_is_refused_naming_the_field(self, client, ids,
                                                                        widgets):
        before = snapshot(client)
        response = client.post(f"/v1/customers/{widgets['id']}/billing_accounts",
                               json=account_body(ids, "CAD", custom_fields={"location": "Canada"}))
        problem = assert_problem(response, 422, "validation_failed",
                                 field="custom_fields.location")
        assert "Sweden" in problem["detail"]
        assert snapshot(client) == before

    def test_a_new_customer_outside_the_dropdown_names_the_nested_field(self, client, ids,
                                                                       location_field):
        response = client.post("/v1/customers", json=customer_body(
            ids, billing_account=account_body(ids, custom_fields={"location": "Canada"})))
        assert_problem(response, 422, field="billing_account.custom_fields.location")
        assert list_ids(client, "/v1/customers") == []

    def test_changing_the_location_of_an_account_is_checked_too(self, client, widgets):
        path = f"/v1/billing_accounts/{widgets['billing_account']['id']}"
        moved = client.patch(path, json={"custom_fields": {"location": "Sweden"}})
        assert moved.json()["custom_fields"] == {"location": "Sweden"}
        refused = client.patch(path, json={"custom_fields": {"location": "Canada"}})
        assert_problem(refused, 422, field="custom_fields.location")
        assert client.get(path).json()["custom_fields"] == {"location": "Sweden"}

    def test_a_second_account_needs_multi_customer_accounts(self, client, ids, acme):
        response = client.post(f"/v1/customers/{acme['id']}/billing_accounts",
                               json=account_body(ids))
        assert_problem(response, 409, "multi_customer_accounts_disabled")
        assert len(list_ids(client, "/v1/billing_accounts")) == 1


class TestSettings:
    def test_a_new_tenant_starts_with_the_documented_defaults(self, client):
        settings = client.get("/v1/settings").json()
        assert settings["allow_multi_customer_accounts"] is False
        assert settings["enable_responsible_account_management"] is False
        assert settings["enable_account_hierarchy_management"] is False
        assert settings["invoice_distribution_options"] == ["none", "email"]
        assert settings["time_zone"] == "UTC"
        assert settings["mode"] == "test"

    def test_a_patch_changes_only_the_settings_it_names(self, client):
        before = client.get("/v1/settings").json()
        response = client.patch("/v1/settings", json={
            "time_zone": "America/Mexico_City",
            "invoice_distribution_options": ["email", "paper"]})
        assert response.status_code == 200, response.text
        after = client.get("/v1/settings").json()
        assert after == response.json()
        assert after["time_zone"] == "America/Mexico_City"
        assert after["invoice_distribution_options"] == ["email", "paper"]
        unchanged = {k for k in before if k not in ("time_zone", "invoice_distribution_options",
                                                    "updated_at")}
        assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}

    def test_an_unknown_time_zone_is_refused(self, client):
        assert_problem(client.patch("/v1/settings", json={"time_zone": "Mars/Olympus"}), 422,
                       field="time_zone")
        assert client.get("/v1/settings").json()["time_zone"] == "UTC"

    def test_multi_accounts_cannot_be_turned_off_while_a_customer_has_several(self, client,
                                                                             ids, acme):
        client.patch("/v1/settings", json={"allow_multi_customer_accounts": True})
        client.post(f"/v1/customers/{acme['id']}/billing_accounts", json=account_body(ids))
        response = client.patch("/v1/settings", json={"allow_multi_customer_accounts": False})
        assert_problem(response, 422, field="allow_multi_customer_accounts")
        assert client.get("/v1/settings").json()["allow_multi_customer_accounts"] is True

    def test_an_invoice_type_in_use_cannot_be_withdrawn(self, client, acme):
        response = client.patch("/v1/settings", json={"invoice_distribution_options": ["none"]})
        problem = assert_problem(response, 422, field="invoice_distribution_options")
        assert "email" in problem["detail"]
        assert client.get("/v1/settings").json()["invoice_distribution_options"] == [
            "none", "email"]


class TestHistory:
    def test_a_new_customer_and_account_have_a_created_record(self, client, acme):
        [created] = client.get(f"/v1/customers/{acme['id']}/history").json()["data"]
        assert created["action"] == "created"
        assert created["actor"].startswith("api_key:bf_test")
        assert {"field": "company_name", "old_value": None, "new_value": "Acme Brick"} in \
            created["changes"]
        account_history = client.get(
            f"/v1/billing_accounts/{acme['billing_account']['id']}/history").json()["data"]
        assert [h["action"] for h in account_history] == ["created"]

    def test_each_change_records_the_fields_it_changed(self, client, acme):
        customer_path = f"/v1/customers/{acme['id']}"
        client.patch(customer_path, json={"external_number": "EXT-1"})
        client.patch(customer_path, json={"external_number": "EXT-2", "tax_number": "12-3456789"})
        history = client.get(f"{customer_path}/history").json()["data"]
        assert [h["action"] for h in history] == ["created", "updated", "updated"]
        assert history[1]["changes"] == [
            {"field": "external_number", "old_value": None, "new_value": "EXT-1"}]
        assert {c["field"] for c in history[2]["changes"]} == {"external_number", "tax_number"}

    def test_an_account_change_is_recorded_on_the_account(self, client, acme):
        path = f"/v1/billing_accounts/{acme['billing_account']['id']}"
        client.patch(path, json={"taxable": False})
        updated = client.get(f"{path}/history").json()["data"][-1]
        assert updated["action"] == "updated"
        assert updated["changes"] == [{"field": "taxable", "old_value": True, "new_value": False}]

    def test_a_patch_that_changes_nothing_records_nothing(self, client, acme):
        client.patch(f"/v1/customers/{acme['id']}", json={"company_name": "Acme Brick"})
        assert len(client.get(f"/v1/customers/{acme['id']}/history").json()["data"]) == 1

    def test_history_pages_with_limit_and_starting_after(self, client, acme):
        for n in range(3):
            client.patch(f"/v1/customers/{acme['id']}", json={"external_number": f"E-{n}"})
        path = f"/v1/customers/{acme['id']}/history"
        first = client.get(path, params={"limit": 2}).json()
        assert first["has_more"] is True
        rest = client.get(path, params={"limit": 2, "starting_after": first["data"][-1]["id"]})
        assert [h["id"] for h in first["data"] + rest.json()["data"]] == list_ids(client, path)
        assert len(list_ids(client, path)) == 4


class TestNotesAndContacts:
    @pytest.fixture
    def account_path(self, acme: dict[str, Any]) -> str:
        return f"/v1/billing_accounts/{acme['billing_account']['id']}"

    def test_notes_are_kept_in_order_with_their_author(self, client, account_path):
        for text in ("Called about the March invoice", "Promised to pay Friday"):
            response = client.post(f"{account_path}/notes", json={"body": text})
            assert response.status_code == 201, response.text
        notes = client.get(f"{account_path}/notes").json()["data"]
        assert [n["body"] for n in notes] == ["Called about the March invoice",
                                              "Promised to pay Friday"]
        assert all(n["author"].startswith("api_key:") for n in notes)

    def test_a_blank_note_is_refused(self, client, account_path):
        assert_problem(client.post(f"{account_path}/notes", json={"body": "   "}), 422,
                       field="body")
        assert client.get(f"{account_path}/notes").json()["data"] == []

    def test_a_contact_may_have_an_email_or_a_phone(self, client, account_path):
        by_email = client.post(f"{account_path}/contacts", json={
            "name": "Pat Payable", "email": "pat@acme.example", "category": "billing"})
        by_phone = client.post(f"{account_path}/contacts", json={
            "name": "Sam Support", "phone": "+1 212 555 0100", "category": "support"})
        assert (by_email.status_code, by_phone.status_code) == (201, 201), by_phone.text
        assert by_phone.json()["phone"] == "+12125550100"
        contacts = client.get(f"{account_path}/contacts").json()["data"]
        assert [c["name"] for c in contacts] == ["Pat Payable", "Sam Support"]

    @pytest.mark.parametrize(("body", "field"), [
        ({"name": "Nobody"}, "email"),
        ({"name": "Bad Phone", "phone": "12"}, "phone"),
        ({"name": "Bad Mail", "email": "not-an-address"}, "email"),
        ({"name": "  ", "email": "blank@acme.example"}, "name"),
        ({"name": "Odd", "email": "odd@acme.example", "category": "janitor"}, "category"),
    ])
    def test_a_contact_without_a_way_to_reach_them_is_refused(self, client, account_path, body,
                                                              field):
        assert_problem(client.post(f"{account_path}/contacts", json=body), 422, field=field)
        assert client.get(f"{account_path}/contacts").json()["data"] == []


class TestAccountSummary:
    def test_the_summary_shows_balances_dates_and_reference_data(self, client, ids, acme,
                                                                 frozen_clock):
        account_id = acme["billing_account"]["id"]
        client.patch(f"/v1/billing_accounts/{account_id}",
                     json={"payment_term_id": ids["payment_term_id"]})
        summary = client.get(f"/v1/billing_accounts/{account_id}/summary").json()
        assert summary["billing_account_id"] == account_id
        assert summary["customer_id"] == acme["id"]
        assert summary["customer_name"] == "Acme Brick"
        assert summary["customer_number"] == acme["number"]
        assert summary["account_number"] == acme["billing_account"]["number"]
        zero = {"amount_minor": 0, "currency": "USD"}
        assert summary["balance"] == summary["unapplied_payments"] == zero
        assert summary["pending_charges"] == zero
        assert summary["next_invoice_date"] == "2026-04-01"  # monthly on the 1st, today 10 March
        assert summary["bill_cycle"]["id"] == ids["bill_cycle_id"]
        assert summary["payment_term"]["net_days"] == 30
        assert summary["is_default"] is True
        assert summary["managed_accounts_count"] == 0

    def test_a_deactivated_account_has_no_next_invoice_date(self, client, acme, ids):
        client.patch("/v1/settings", json={"allow_multi_customer_accounts": True})
        other = client.post(f"/v1/customers/{acme['id']}/billing_accounts",
                            json=account_body(ids)).json()
        response = client.patch(f"/v1/billing_accounts/{other['id']}",
                                json={"status": "deactivated"})
        assert response.status_code == 200, response.text
        summary = client.get(f"/v1/billing_accounts/{other['id']}/summary").json()
        assert summary["next_invoice_date"] is None
        assert summary["is_default"] is False


class TestDefaultAccount:
    @pytest.fixture
    def two_accounts(self, client: Any, ids: dict[str, str], acme: dict[str, Any]
                     ) -> tuple[str, str]:
        client.patch("/v1/settings", json={"allow_multi_customer_accounts": True})
        second = client.post(f"/v1/customers/{acme['id']}/billing_accounts",
                             json=account_body(ids)).json()
        return acme["billing_account"]["id"], second["id"]

    def _defaults(self, client: Any, customer_id: str) -> list[str]:
        accounts = client.get("/v1/billing_accounts", params={"customer_id": customer_id})
        return [a["id"] for a in accounts.json()["data"] if a["is_default"]]

    def test_a_new_account_may_become_the_default_when_added(self, client, ids, acme):
        client.patch("/v1/settings", json={"allow_multi_customer_accounts": True})
        added = client.post(f"/v1/customers/{acme['id']}/billing_accounts",
                            json=account_body(ids, set_as_default=True)).json()
        assert added["is_default"] is True
        assert self._defaults(client, acme["id"]) == [added["id"]]

    def test_patching_is_default_moves_the_default(self, client, acme, two_accounts):
        _, second = two_accounts
        response = client.patch(f"/v1/billing_accounts/{second}", json={"is_default": True})
        assert response.json()["is_default"] is True
        assert self._defaults(client, acme["id"]) == [second]
        assert client.get(f"/v1/customers/{acme['id']}").json()[
            "default_billing_account_id"] == second

    def test_patching_the_customer_moves_the_default(self, client, acme, two_accounts):
        _, second = two_accounts
        client.patch(f"/v1/customers/{acme['id']}", json={"default_billing_account_id": second})
        assert self._defaults(client, acme["id"]) == [second]

    def test_the_default_cannot_simply_be_unset(self, client, acme, two_accounts):
        first, _ = two_accounts
        response = client.patch(f"/v1/billing_accounts/{first}", json={"is_default": False})
        assert_problem(response, 422, field="is_default")
        assert self._defaults(client, acme["id"]) == [first]


class TestExplicitNulls:
    """null for a field that always has a value is refused by name, not stored."""

    @pytest.mark.parametrize("field", ["taxable", "authorize_auto_payment",
                                       "auto_pay_offset_days", "minimum_invoice_amount_minor",
                                       "status"])
    def test_a_null_in_a_new_account_names_the_field(self, client, ids, field):
        body = customer_body(ids, billing_account=account_body(ids, **{field: None}))
        assert_problem(client.post("/v1/customers", json=body), 422,
                       field=f"billing_account.{field}")
        assert list_ids(client, "/v1/customers") == []

    @pytest.mark.parametrize("field", ["taxable", "authorize_auto_payment",
                                       "auto_pay_offset_days", "minimum_invoice_amount_minor"])
    def test_a_null_in_an_account_patch_names_the_field(self, client, acme, field):
        path = f"/v1/billing_accounts/{acme['billing_account']['id']}"
        before = client.get(path).json()
        assert_problem(client.patch(path, json={field: None}), 422, field=field)
        assert client.get(path).json() == before


class TestSearch:
    @pytest.fixture
    def customers(self, client: Any, ids: dict[str, str]) -> dict[str, dict[str, Any]]:
        made = {}
        for name, email, external in [("Acme Brick", "ap@acme.example", "ERP-100"),
                                      ("Acme Glass", "billing@glass.example", "ERP-200"),
                                      ("Bolt Hardware", "accounts@bolt.example", None)]:
            extra = {"external_number": external} if external else {}
            response = client.post("/v1/customers", json=customer_body(
                ids, name=name, primary_email=email, **extra))
            assert response.status_code == 201, response.text
            made[name] = response.json()
        return made

    def _names(self, client: Any, query: str, path: str = "/v1/customers") -> list[str]:
        data = client.get(path, params={"query": query}).json()["data"]
        return sorted(c.get("company_name") or c["customer_id"] for c in data)

    @pytest.mark.parametrize(("query", "expected"), [
        ("acme", ["Acme Brick", "Acme Glass"]),
        ("ACME G", ["Acme Glass"]),
        ("bolt", ["Bolt Hardware"]),
        ("erp-1", ["Acme Brick"]),
        ("accounts@", ["Bolt Hardware"]),
        ("zzz", []),
    ])
    def test_customers_are_found_by_name_external_number_or_email(self, client, customers,
                                                                  query, expected):
        assert self._names(client, query) == expected

    def test_customers_are_found_by_number(self, client, customers):
        number = customers["Bolt Hardware"]["number"]
        assert self._names(client, number.lower()) == ["Bolt Hardware"]

    def test_billing_accounts_are_found_by_customer_name_and_account_number(self, client,
                                                                           customers):
        glass = customers["Acme Glass"]
        found = client.get("/v1/billing_accounts", params={"query": "acme g"}).json()["data"]
        assert [a["id"] for a in found] == [glass["billing_account"]["id"]]
        number = glass["billing_account"]["number"]
        found = client.get("/v1/billing_accounts", params={"query": number}).json()["data"]
        assert [a["id"] for a in found] == [glass["billing_account"]["id"]]

    def test_billing_accounts_are_filtered_by_status(self, client, customers):
        bolt = customers["Bolt Hardware"]["billing_account"]["id"]
        client.patch(f"/v1/billing_accounts/{bolt}", json={"status": "suspended"})
        suspended = client.get("/v1/billing_accounts", params={"status": "suspended"})
        assert [a["id"] for a in suspended.json()["data"]] == [bolt]
        active = client.get("/v1/billing_accounts", params={"status": "active"}).json()["data"]
        assert bolt not in [a["id"] for a in active]
        assert len(active) == 2

    def test_results_page_with_limit_and_starting_after(self, client, customers):
        first = client.get("/v1/customers", params={"limit": 2}).json()
        assert first["has_more"] is True
        rest = client.get("/v1/customers", params={
            "limit": 2, "starting_after": first["data"][-1]["id"]}).json()
        assert rest["has_more"] is False
        ids_seen = [c["id"] for c in first["data"] + rest["data"]]
        assert ids_seen == sorted(c["id"] for c in customers.values())


class TestReadingAndChangingACustomer:
    def test_a_customer_reads_back_as_created(self, client, acme):
        read = client.get(f"/v1/customers/{acme['id']}").json()
        assert read == {k: v for k, v in acme.items() if k != "billing_account"}
        assert acme["number"].startswith("CUST-")
        assert acme["billing_account"]["number"].startswith("ACCT-")

    def test_a_person_gets_a_person_name(self, client, ids):
        response = client.post("/v1/customers", json={
            "first_name": "Ada", "last_name": "Lovelace", "primary_email": "ada@example.com",
            "date_of_birth": "1990-12-10", "billing_account": account_body(ids)})
        assert response.status_code == 201, response.text
        assert response.json()["customer_name"] == "Ada Lovelace"

    def test_a_patch_changes_the_customer_and_its_search_keys(self, client, acme):
        response = client.patch(f"/v1/customers/{acme['id']}", json={"company_name": "Zenith Co"})
        assert response.json()["customer_name"] == "Zenith Co"
        assert [c["id"] for c in client.get("/v1/customers", params={"query": "zenith"})
                .json()["data"]] == [acme["id"]]
        accounts = client.get("/v1/billing_accounts", params={"query": "zenith"}).json()["data"]
        assert [a["id"] for a in accounts] == [acme["billing_account"]["id"]]

    def test_the_customer_number_cannot_be_changed(self, client, acme):
        assert_problem(client.patch(f"/v1/customers/{acme['id']}", json={"number": "NEW-1"}),
                       422, field="number")

    def test_a_duplicate_customer_number_is_a_conflict_naming_it(self, client, ids, acme):
        response = client.post("/v1/customers", json=customer_body(ids, number=acme["number"]))
        assert_problem(response, 409, "duplicate_number", field="number")
        assert list_ids(client, "/v1/customers") == [acme["id"]]
