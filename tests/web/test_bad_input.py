"""Bad input through HTTP: every refusal is a problem document that names the field, never
a 500, and nothing is written."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import account_body, customer_body, seed_reference
from tests.web.helpers import assert_problem, snapshot

JSON = {"content-type": "application/json"}
LIMIT = 1_048_576  # Settings.max_body_bytes


@pytest.fixture
def ids(client: Any) -> dict[str, str]:
    return seed_reference(client)


@pytest.fixture
def existing(client: Any, ids: dict[str, str]) -> dict[str, Any]:
    """A customer (and its default account) that PATCH tests try to spoil."""
    response = client.post("/v1/customers", json=customer_body(ids, name="Existing Co"))
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def nothing_written(client: Any, existing: dict[str, Any]) -> Callable[[], None]:
    """Call it after a refused request: the tenant's lists and the existing customer and
    account read exactly as they did before."""
    customer_path = f"/v1/customers/{existing['id']}"
    account_path = f"/v1/billing_accounts/{existing['billing_account']['id']}"
    before = snapshot(client), client.get(customer_path).json(), client.get(account_path).json()

    def check() -> None:
        after = snapshot(client), client.get(customer_path).json(), client.get(account_path).json()
        assert after == before

    return check


def post_raw(client: Any, path: str, content: bytes | str | Iterator[bytes]) -> Any:
    return client.post(path, content=content, headers=JSON)


class TestMalformedJson:
    def test_a_python_style_body_is_a_400_naming_line_and_column(self, client, nothing_written):
        response = post_raw(client, "/v1/customers", '{"company_name": "A", "x": False}')
        problem = assert_problem(response, 400, "malformed_json")
        assert "line 1 column 28" in problem["detail"]
        assert (problem["line"], problem["column"]) == (1, 28)
        nothing_written()

    def test_the_position_counts_lines_of_a_multi_line_body(self, client, nothing_written):
        body = '{\n  "company_name": "A",\n  "x": False\n}'
        problem = assert_problem(post_raw(client, "/v1/customers", body), 400, "malformed_json")
        assert "line 3 column 8" in problem["detail"]
        nothing_written()

    def test_a_truncated_body_is_malformed_json(self, client, nothing_written):
        problem = assert_problem(post_raw(client, "/v1/customers", '{"company_name": "A"'),
                                 400, "malformed_json")
        assert "line 1" in problem["detail"]
        nothing_written()

    def test_malformed_json_in_a_patch_changes_nothing(self, client, existing, nothing_written):
        response = client.patch(f"/v1/customers/{existing['id']}",
                                content='{"company_name": "Changed",}', headers=JSON)
        assert_problem(response, 400, "malformed_json")
        nothing_written()

    def test_json_nested_too_deeply_is_a_400_not_a_500(self, client, nothing_written):
        body = "[" * 100_000 + "]" * 100_000
        assert_problem(post_raw(client, "/v1/customers", body), 400)
        nothing_written()

    def test_a_body_that_is_not_utf8_is_a_400_not_a_500(self, client, nothing_written):
        assert_problem(post_raw(client, "/v1/customers", b'{"company_name": "\xff"}'), 400)
        nothing_written()

    def test_a_json_array_instead_of_an_object_is_a_422_naming_the_body(self, client,
                                                                         nothing_written):
        assert_problem(post_raw(client, "/v1/customers", "[]"), 422, "validation_failed",
                       field="body")
        nothing_written()


class TestWrongTypes:
    def test_a_string_for_a_boolean_names_the_nested_field(self, client, ids, nothing_written):
        body = customer_body(ids, billing_account=account_body(ids, taxable="yes"))
        assert_problem(client.post("/v1/customers", json=body), 422, "validation_failed",
                       field="billing_account.taxable")
        nothing_written()

    def test_a_string_for_an_integer_names_the_field(self, client, nothing_written):
        response = client.post("/v1/bill_cycles", json={
            "name": "Quoted", "frequency": "monthly", "bill_day": "1", "start_date": "2026-01-01"})
        assert_problem(response, 422, "validation_failed", field="bill_day")
        nothing_written()

    def test_a_number_for_a_string_names_the_field(self, client, ids, nothing_written):
        body = customer_body(ids, name=5)
        assert_problem(client.post("/v1/customers", json=body), 422, field="company_name")
        nothing_written()

    def test_a_wrong_type_in_a_patch_leaves_the_account_unchanged(self, client, existing,
                                                                  nothing_written):
        account_id = existing["billing_account"]["id"]
        response = client.patch(f"/v1/billing_accounts/{account_id}",
                                json={"external_number": "EXT-1", "taxable": "yes"})
        assert_problem(response, 422, field="taxable")
        nothing_written()

    def test_a_date_that_is_not_a_date_names_the_field(self, client, nothing_written):
        response = client.post("/v1/bill_cycles", json={
            "name": "Someday", "frequency": "monthly", "bill_day": 1, "start_date": "2026-02-30"})
        assert_problem(response, 422, field="start_date")
        nothing_written()


class TestUnknownFields:
    def test_a_typo_in_a_field_name_is_refused_by_name(self, client, ids, nothing_written):
        body = customer_body(ids, compnay_name="Typo Ltd")
        problem = assert_problem(client.post("/v1/customers", json=body), 422,
                                 "validation_failed", field="compnay_name")
        assert [e["field"] for e in problem["errors"]] == ["compnay_name"]
        nothing_written()

    def test_a_typo_inside_the_billing_account_names_the_nested_field(self, client, ids,
                                                                     nothing_written):
        body = customer_body(ids, billing_account=account_body(ids, taxble=False))
        assert_problem(client.post("/v1/customers", json=body), 422,
                       field="billing_account.taxble")
        nothing_written()

    def test_a_typo_in_a_patch_is_refused_and_nothing_changes(self, client, existing,
                                                              nothing_written):
        response = client.patch(f"/v1/customers/{existing['id']}",
                                json={"company_name": "Renamed", "compnay_name": "Renamed"})
        assert_problem(response, 422, field="compnay_name")
        nothing_written()

    def test_a_typo_in_a_setting_is_refused(self, client, nothing_written):
        before = client.get("/v1/settings").json()
        response = client.patch("/v1/settings", json={"allow_multi_customer_acounts": True})
        assert_problem(response, 422, field="allow_multi_customer_acounts")
        assert client.get("/v1/settings").json() == before
        nothing_written()


class TestOversizedBodies:
    def test_a_body_over_one_megabyte_is_a_413(self, client, ids, nothing_written):
        body = json.dumps(customer_body(ids)) + " " * LIMIT
        assert_problem(post_raw(client, "/v1/customers", body), 413, "body_too_large")
        nothing_written()

    def test_a_streamed_body_over_one_megabyte_is_a_413(self, client, nothing_written):
        def chunks() -> Iterator[bytes]:
            yield b'{"company_name": "'
            for _ in range(20):
                yield b"x" * 64_000
            yield b'"}'

        assert_problem(post_raw(client, "/v1/customers", chunks()), 413, "body_too_large")
        nothing_written()

    def test_an_oversized_patch_is_a_413_and_changes_nothing(self, client, existing,
                                                           nothing_written):
        body = json.dumps({"company_name": "Big"}) + " " * LIMIT
        response = client.patch(f"/v1/customers/{existing['id']}", content=body, headers=JSON)
        assert_problem(response, 413, "body_too_large")
        nothing_written()

    def test_a_body_just_under_the_limit_is_accepted(self, client, ids):
        body = json.dumps(customer_body(ids, name="Padded Co"))
        response = post_raw(client, "/v1/customers", body + " " * (LIMIT - len(body)))
        assert response.status_code == 201, response.text


class TestBadIds:
    def test_a_malformed_bill_cycle_id_names_billing_account_bill_cycle_id(
            self, client, ids, nothing_written):
        body = customer_body(ids, billing_account=account_body(ids, bill_cycle_id="nope"))
        assert_problem(client.post("/v1/customers", json=body), 422, "validation_failed",
                       field="billing_account.bill_cycle_id")
        nothing_written()

    def test_a_well_formed_id_of_nothing_names_the_field(self, client, ids, nothing_written):
        missing = "bc_" + "0" * 32
        body = customer_body(ids, billing_account=account_body(ids, bill_cycle_id=missing))
        problem = assert_problem(client.post("/v1/customers", json=body), 422,
                                 field="billing_account.bill_cycle_id")
        assert missing in problem["detail"]
        nothing_written()

    def test_an_id_of_another_kind_of_object_names_the_field(self, client, ids,
                                                             nothing_written):
        body = customer_body(ids, billing_account=account_body(
            ids, bill_cycle_id=ids["account_category_id"]))
        assert_problem(client.post("/v1/customers", json=body), 422,
                       field="billing_account.bill_cycle_id")
        nothing_written()

    def test_an_unknown_customer_is_a_404_problem(self, client):
        problem = assert_problem(client.get("/v1/customers/cus_doesnotexist"), 404, "not_found")
        assert "cus_doesnotexist" in problem["detail"]

    @pytest.mark.parametrize("path", [
        "/v1/billing_accounts/ba_doesnotexist",
        "/v1/billing_accounts/ba_doesnotexist/summary",
        "/v1/billing_accounts/ba_doesnotexist/history",
        "/v1/billing_accounts/ba_doesnotexist/notes",
        "/v1/billing_accounts/ba_doesnotexist/contacts",
        "/v1/customers/cus_doesnotexist/history",
        "/v1/customers/cus_doesnotexist/billing_accounts",
        "/v1/bill_cycles/bc_doesnotexist",
    ])
    def test_reading_below_an_unknown_id_is_a_404_problem(self, client, path):
        assert_problem(client.get(path), 404, "not_found")

    def test_changing_an_unknown_object_is_a_404_and_writes_nothing(self, client, ids,
                                                                    nothing_written):
        assert_problem(client.patch("/v1/customers/cus_doesnotexist", json={}), 404)
        assert_problem(client.patch("/v1/billing_accounts/ba_doesnotexist",
                                    json={"taxable": False}), 404)
        assert_problem(client.post("/v1/billing_accounts/ba_doesnotexist/notes",
                                   json={"body": "hello"}), 404)
        assert_problem(client.post("/v1/customers/cus_doesnotexist/billing_accounts",
                                   json=account_body(ids)), 404)
        nothing_written()

    def test_a_malformed_pagination_cursor_names_starting_after(self, client):
        assert_problem(client.get("/v1/customers", params={"starting_after": "x' OR 1=1"}), 422,
                       field="starting_after")


class TestBadEnumValues:
    def test_an_unknown_invoice_type_names_the_nested_field(self, client, ids, nothing_written):
        body = customer_body(ids, billing_account=account_body(ids, invoice_type="fax"))
        assert_problem(client.post("/v1/customers", json=body), 422, "validation_failed",
                       field="billing_account.invoice_type")
        nothing_written()

    def test_an_unknown_frequency_names_the_field(self, client, nothing_written):
        response = client.post("/v1/bill_cycles", json={
            "name": "Hourly", "frequency": "hourly", "bill_day": 1, "start_date": "2026-01-01"})
        assert_problem(response, 422, field="frequency")
        nothing_written()

    def test_an_invoice_type_the_tenant_does_not_offer_names_the_field(self, client, ids,
                                                                       nothing_written):
        body = customer_body(ids, billing_account=account_body(ids, invoice_type="paper"))
        problem = assert_problem(client.post("/v1/customers", json=body), 422,
                                 field="billing_account.invoice_type")
        assert "invoice_distribution_options" in problem["detail"]
        nothing_written()

    def test_an_unknown_status_filter_names_the_parameter(self, client):
        assert_problem(client.get("/v1/billing_accounts", params={"status": "closed"}), 422,
                       field="status")


class TestNestedAccountErrors:
    def test_a_schema_error_in_the_account_names_billing_account_field(self, client, ids,
                                                                       nothing_written):
        body = customer_body(ids, billing_account=account_body(ids, start_date="soon"))
        assert_problem(client.post("/v1/customers", json=body), 422,
                       field="billing_account.start_date")
        nothing_written()

    def test_a_rule_error_in_the_account_names_billing_account_field(self, client, ids,
                                                                     nothing_written):
        body = customer_body(ids, billing_account=account_body(ids, currency="XXX"))
        assert_problem(client.post("/v1/customers", json=body), 422,
                       field="billing_account.currency")
        nothing_written()

    def test_customer_and_account_errors_are_reported_together(self, client, ids,
                                                               nothing_written):
        body = customer_body(ids, primary_email="not an email",
                             billing_account=account_body(ids, currency="XXX"))
        problem = assert_problem(client.post("/v1/customers", json=body), 422)
        fields = {e["field"] for e in problem["errors"]}
        assert {"primary_email", "billing_account.currency"} <= fields
        nothing_written()

    def test_a_missing_billing_account_is_named(self, client, ids, nothing_written):
        body = customer_body(ids)
        del body["billing_account"]
        assert_problem(client.post("/v1/customers", json=body), 422, field="billing_account")
        nothing_written()

    def test_a_missing_required_account_field_is_named(self, client, ids, nothing_written):
        account = account_body(ids)
        del account["currency"]
        body = customer_body(ids, billing_account=account)
        assert_problem(client.post("/v1/customers", json=body), 422,
                       field="billing_account.currency")
        nothing_written()


class TestNulCharacters:
    def test_a_nul_in_a_string_is_a_422_naming_the_field(self, client, ids, nothing_written):
        body = customer_body(ids, name="Acme\x00Brick")
        assert_problem(client.post("/v1/customers", json=body), 422, "validation_failed",
                       field="company_name")
        nothing_written()

    def test_a_nul_in_a_nested_string_names_the_nested_field(self, client, ids,
                                                             nothing_written):
        body = customer_body(ids, billing_account=account_body(ids, external_number="A\x00"))
        assert_problem(client.post("/v1/customers", json=body), 422,
                       field="billing_account.external_number")
        nothing_written()

    def test_a_nul_in_a_list_item_names_its_position(self, client, ids, nothing_written):
        body = customer_body(ids, phones=[{"type": "work", "number": "+1 212\x00555 0100"}])
        assert_problem(client.post("/v1/customers", json=body), 422, field="phones[0].number")
        nothing_written()

    def test_a_nul_in_a_patch_changes_nothing(self, client, existing, nothing_written):
        response = client.patch(f"/v1/customers/{existing['id']}",
                                json={"company_name": "Fine", "external_number": "X\x00"})
        assert_problem(response, 422, field="external_number")
        nothing_written()

    def test_a_nul_in_a_note_is_a_422(self, client, existing, nothing_written):
        account_id = existing["billing_account"]["id"]
        response = client.post(f"/v1/billing_accounts/{account_id}/notes", json={"body": "a\x00"})
        assert_problem(response, 422, field="body")
        assert client.get(f"/v1/billing_accounts/{account_id}/notes").json()["data"] == []
        nothing_written()

    @pytest.mark.parametrize(("path", "parameter"), [
        ("/v1/customers?query=ac%00me", "query"),
        ("/v1/billing_accounts?customer_id=cus%00", "customer_id"),
        ("/v1/ledger/entries?source_id=x%00", "source_id"),
        ("/v1/ledger/accounts?billing_account_id=ba%00", "billing_account_id"),
    ])
    def test_a_nul_in_a_query_parameter_is_a_422_naming_it(self, client, path, parameter):
        assert_problem(client.get(path), 422, field=parameter)

    @pytest.mark.parametrize(("method", "path", "parameter"), [
        ("GET", "/v1/customers/cus_%00", "customer_id"),
        ("GET", "/v1/billing_accounts/ba_%00/notes", "account_id"),
        ("GET", "/v1/bill_cycles/bc_%00", "bill_cycle_id"),
        ("PATCH", "/v1/customers/cus_%00", "customer_id"),
        ("GET", "/portal/accounts/ba_%00", "account_id"),  # a router included in a router
    ])
    def test_a_nul_in_a_path_parameter_is_a_422_not_a_500(self, client, method, path,
                                                          parameter):
        response = client.request(method, path, json={} if method == "PATCH" else None)
        assert_problem(response, 422, field=parameter)


class TestHugeIntegers:
    def test_a_huge_bill_day_is_a_422(self, client, nothing_written):
        response = client.post("/v1/bill_cycles", json={
            "name": "Huge", "frequency": "monthly", "bill_day": 10**30, "start_date": "2026-01-01"})
        assert_problem(response, 422, field="bill_day")
        nothing_written()

    def test_a_huge_amount_names_the_nested_field(self, client, ids, nothing_written):
        body = customer_body(ids, billing_account=account_body(
            ids, minimum_invoice_amount_minor=10**30))
        assert_problem(client.post("/v1/customers", json=body), 422,
                       field="billing_account.minimum_invoice_amount_minor")
        nothing_written()

    def test_a_huge_net_days_is_a_422(self, client, nothing_written):
        response = client.post("/v1/payment_terms", json={"name": "Forever", "net_days": 10**30})
        assert_problem(response, 422, field="net_days")
        nothing_written()

    def test_a_huge_number_in_a_custom_field_names_it(self, client, ids):
        definition = client.post("/v1/custom_fields", json={
            "object_type": "customer", "key": "employees", "label": "Employees",
            "field_type": "number"})
        assert definition.status_code == 201, definition.text
        before = snapshot(client)
        for value in ("1" + "0" * 30, "1e400", "-1e400"):
            body = json.dumps(customer_body(ids)).replace(
                '"company_name"', f'"custom_fields": {{"employees": {value}}}, "company_name"')
            assert_problem(post_raw(client, "/v1/customers", body), 422,
                           field="custom_fields.employees")
        assert snapshot(client) == before

    def test_a_huge_page_size_is_a_422(self, client):
        assert_problem(client.get("/v1/customers", params={"limit": 10**30}), 422, field="limit")
