"""Tenancy and modes through HTTP (DESIGN.md decisions 3 and 4): another tenant's objects,
and the other mode's objects, answer 404 on every route and never appear in a list; keys
that are missing, garbage or revoked answer 401."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.routing import APIRoute

from billfold.access import api_keys
from billfold.core.db import transaction
from billfold.core.scope import Scope
from tests.conftest import account_body, customer_body, seed_reference
from tests.web.helpers import assert_problem, list_ids, snapshot

MUTATING = {"POST", "PATCH", "PUT", "DELETE"}


def api_operations(app: Any) -> list[tuple[str, str, Any]]:
    """(method, path template, route) of every /v1 APIRoute, found by walking the app's
    routes however its routers are nested."""
    try:  # FastAPI >= 0.16x includes routers lazily; this walks them
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - older FastAPI flattens included routes
        found = [(r, r.path, r.methods) for r in app.routes]
    else:
        found = [(c.original_route, c.path, c.methods) for c in iter_route_contexts(app.routes)]
    return sorted(
        (method, path, route)
        for route, path, methods in found
        if isinstance(route, APIRoute) and path and path.startswith("/v1")
        for method in methods or ()
        if method != "HEAD"
    )


def path_parameters(path: str) -> list[str]:
    return re.findall(r"{([^}:]+)(?::[^}]*)?}", path)


def query_parameters(app: Any, method: str, path: str) -> list[str]:
    operation = app.openapi()["paths"][path][method.lower()]
    return [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]


TAX_RATE = {"country": "US", "region": "US-TX", "tax_category": "standard", "percent": "8.25",
            "name": "Texas sales tax", "valid_from": "2026-01-01"}
TAX_EXEMPTION = {"certificate_number": "TX-EX-1", "country": "US", "valid_from": "2026-01-01"}
PRODUCT = {"name": "Seat licence", "sku": "SEAT", "tax_category": "standard"}
RECURRING_PRICE = {"kind": "recurring", "amounts_minor": {"USD": 3100},
                   "billing_timing": "in_advance"}
ONE_TIME_PRICE = {"kind": "one_time", "amounts_minor": {"USD": 5000}}


@dataclass
class Owner:
    """Tenant A and everything it owns, by the parameter names routes use for them."""

    client: Any
    by_parameter: dict[str, str]
    all_ids: set[str] = field(default_factory=set)


@pytest.fixture
def owner(make_client: Any) -> Owner:
    a = make_client(allow_multi_customer_accounts=True, allow_private_postback_targets=True)
    ref = seed_reference(a)
    field_def = a.post("/v1/custom_fields", json={
        "object_type": "billing_account", "key": "region", "label": "Region",
        "field_type": "text"})
    customer = a.post("/v1/customers", json=customer_body(ref, name="Owner Industries"))
    assert customer.status_code == 201, customer.text
    body = customer.json()
    customer_id, account_id = body["id"], body["billing_account"]["id"]
    second = a.post(f"/v1/customers/{customer_id}/billing_accounts",
                    json=account_body(ref, custom_fields={"region": "North"}))
    assert second.status_code == 201, second.text
    a.patch(f"/v1/customers/{customer_id}", json={"external_number": "OWN-1"})
    note = a.post(f"/v1/billing_accounts/{account_id}/notes", json={"body": "Owner's note"})
    contact = a.post(f"/v1/billing_accounts/{account_id}/contacts",
                     json={"name": "Olive Owner", "email": "olive@owner.example"})
    tax_rate = a.post("/v1/tax_rates", json=TAX_RATE)
    tax_exemption = a.post(f"/v1/billing_accounts/{account_id}/tax_exemptions",
                           json=TAX_EXEMPTION)
    assert tax_exemption.status_code == 201, tax_exemption.text
    product = a.post("/v1/products", json=PRODUCT).json()
    recurring = a.post("/v1/prices", json={**RECURRING_PRICE, "product_id": product["id"]}).json()
    one_time = a.post("/v1/prices", json={**ONE_TIME_PRICE, "product_id": product["id"]}).json()
    order = a.post("/v1/orders", json={"billing_account_id": account_id, "lines": [
        {"price_id": recurring["id"], "quantity": 2, "start_date": "2026-03-01"},
        {"price_id": one_time["id"], "start_date": "2026-03-01"}]})
    assert order.status_code == 201, order.text
    service_line, charge_line = order.json()["lines"]
    run = a.post("/v1/bill_runs", json={"as_of_date": "2026-03-01"})
    assert run.status_code == 201, run.text
    invoice = a.post("/v1/invoices", json={"billing_account_id": account_id, "lines": [
        {"description": "Owner's fee", "unit_amount_minor": 1000}]}).json()
    assert a.post(f"/v1/invoices/{invoice['id']}/finalize").status_code == 200
    adjustment = a.post("/v1/adjustments", json={
        "billing_account_id": account_id, "invoice_id": invoice["id"], "kind": "credit",
        "amount_minor": 100, "reason": "Goodwill"})
    assert adjustment.status_code == 201, adjustment.text
    rule = a.post("/v1/invoice_distribution_rules", json={"billing_account_id": account_id})
    assert rule.status_code == 201, rule.text
    endpoint = a.post("/v1/webhook_endpoints", json={"url": "http://127.0.0.1:9/hooks"})
    assert endpoint.status_code == 201, endpoint.text
    pay_session = a.post("/v1/pay_sessions", json={"invoices": [{"invoice_id": invoice["id"]}]})
    assert pay_session.status_code == 201, pay_session.text
    payment = a.post("/v1/payments", json={"billing_account_id": account_id, "amount_minor": 500,
                                           "method": "check", "invoice_ids": [invoice["id"]]})
    assert payment.status_code == 201, payment.text
    entry = a.post("/v1/entries", json={"assignment_key": "OWN-SO-1", "amount_minor": 900,
                                        "currency": "USD", "billing_account_id": account_id})
    assert entry.status_code == 201, entry.text
    delivery = a.get("/v1/webhook_deliveries").json()["data"][0]
    by_parameter = {
        "customer_id": customer_id, "account_id": account_id, "billing_account_id": account_id,
        "bill_cycle_id": ref["bill_cycle_id"], "account_category_id": ref["account_category_id"],
        "payment_term_id": ref["payment_term_id"], "custom_field_id": field_def.json()["id"],
        "note_id": note.json()["id"], "contact_id": contact.json()["id"],
        "tax_rate_id": tax_rate.json()["id"], "tax_exemption_id": tax_exemption.json()["id"],
        "product_id": product["id"], "price_id": recurring["id"], "order_id": order.json()["id"],
        "service_id": service_line["service_id"], "bill_run_id": run.json()["id"],
        "invoice_id": invoice["id"], "adjustment_id": adjustment.json()["id"],
        "distribution_rule_id": rule.json()["id"], "endpoint_id": endpoint.json()["id"],
        "session_id": pay_session.json()["id"], "payment_id": payment.json()["id"],
        "entry_id": entry.json()["id"], "delivery_id": delivery["id"],
    }
    all_ids = {*by_parameter.values(), second.json()["id"], one_time["id"],
               charge_line["pending_charge_id"], service_line["id"], charge_line["id"]}
    for history in (f"/v1/customers/{customer_id}/history",
                    f"/v1/billing_accounts/{account_id}/history"):
        all_ids.update(list_ids(a, history))
    return Owner(a, by_parameter, all_ids)


INTRUDERS = ["another tenant", "another tenant in live mode", "the same tenant in live mode"]


@pytest.fixture(params=INTRUDERS)
def intruder(request: Any, make_client: Any, owner: Owner) -> Any:
    if request.param == "another tenant":
        return make_client(allow_multi_customer_accounts=True)
    if request.param == "another tenant in live mode":
        return make_client(mode="live", allow_multi_customer_accounts=True)
    return make_client(scope=Scope(owner.client.scope.tenant_id, "live"),
                       allow_multi_customer_accounts=True)


def sample_body(method: str, path: str, intruder_ref: dict[str, str]) -> dict[str, Any]:
    """A body the route accepts, so the answer depends on the path's ids alone. Routes
    not listed get {} - enough for PATCH routes, whose fields are all optional."""
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/v1/customers/{customer_id}/billing_accounts"): account_body(intruder_ref),
        ("POST", "/v1/billing_accounts/{account_id}/notes"): {"body": "Intruder's note"},
        ("POST", "/v1/billing_accounts/{account_id}/contacts"):
            {"name": "Ivan Intruder", "email": "ivan@intruder.example"},
        ("PATCH", "/v1/customers/{customer_id}"): {"company_name": "Hijacked"},
        ("PATCH", "/v1/billing_accounts/{account_id}"): {"taxable": False},
        ("POST", "/v1/billing_accounts/{account_id}/tax_exemptions"): TAX_EXEMPTION,
        ("PATCH", "/v1/tax_rates/{tax_rate_id}"): {"valid_to": "2026-01-31"},
        ("PATCH", "/v1/billing_accounts/{account_id}/tax_exemptions/{tax_exemption_id}"):
            {"valid_to": "2026-01-31"},
        ("POST", "/v1/services/{service_id}/quantity"):
            {"quantity": 5, "effective_date": "2026-04-01"},
        ("POST", "/v1/services/{service_id}/cancel"): {"end_date": "2026-06-30"},
        ("PATCH", "/v1/prices/{price_id}"): {"active": False},
    }
    return bodies.get((method, path), {})


class TestEveryRouteHidesAnotherTenantsObjects:
    def test_every_route_answers_404_for_ids_and_lists_nothing_of_theirs(
            self, app, owner, intruder):
        operations = api_operations(app)
        assert ("GET", "/v1/customers/{customer_id}") in {(m, p) for m, p, _ in operations}
        intruder_ref = seed_reference(intruder)
        owner_view = {p: owner.client.get(p).json() for p in self._owner_paths(operations, owner)}
        leaks: list[str] = []
        for method, template, _route in operations:
            names = path_parameters(template)
            unknown = [n for n in names if n not in owner.by_parameter]
            assert not unknown, (
                f"{method} {template}: the sweep has no object of tenant A for {unknown}; "
                "create one in the `owner` fixture so this route is covered")
            path = template.format(**{n: owner.by_parameter[n] for n in names})
            if names:
                body = sample_body(method, template, intruder_ref) if method in MUTATING else None
                response = intruder.request(method, path, json=body)
                if response.status_code != 404:
                    leaks.append(f"{method} {path} -> {response.status_code} {response.text[:200]}")
                else:
                    assert_problem(response, 404, "not_found")
            elif method == "GET":
                params = {q: owner.by_parameter[q] for q in query_parameters(app, method, template)
                          if q in owner.by_parameter}
                response = intruder.get(path, params=params)
                seen = [i for i in owner.all_ids if i in response.text]
                if response.status_code != 200 or seen:
                    leaks.append(f"GET {path} {params} -> {response.status_code} shows {seen}")
        assert not leaks, "\n".join(leaks)
        assert {p: owner.client.get(p).json() for p in owner_view} == owner_view

    @staticmethod
    def _owner_paths(operations: list[tuple[str, str, Any]], owner: Owner) -> list[str]:
        return [template.format(**{n: owner.by_parameter[n] for n in path_parameters(template)})
                for method, template, _ in operations
                if method == "GET" and path_parameters(template)
                and all(n in owner.by_parameter for n in path_parameters(template))]

    def test_the_sweep_sees_every_operation_the_openapi_document_lists(self, app):
        swept = {(m, p) for m, p, _ in api_operations(app)}
        documented = {(m.upper(), p) for p, ops in app.openapi()["paths"].items()
                      if p.startswith("/v1") for m in ops}
        assert documented <= swept


class TestReferencesToAnotherTenantsObjects:
    """Ids of another tenant's objects inside a body are refused as if they did not exist."""

    @pytest.fixture
    def intruder_ref(self, intruder: Any) -> dict[str, str]:
        return seed_reference(intruder)

    @pytest.mark.parametrize("name", ["bill_cycle_id", "account_category_id", "payment_term_id"])
    def test_a_new_account_cannot_use_their_reference_data(self, owner, intruder, intruder_ref,
                                                           name):
        before = snapshot(intruder)
        body = customer_body(intruder_ref, billing_account=account_body(
            intruder_ref, **{name: owner.by_parameter[name]}))
        assert_problem(intruder.post("/v1/customers", json=body), 422,
                       field=f"billing_account.{name}")
        assert snapshot(intruder) == before

    def test_their_account_cannot_become_our_customers_default(self, owner, intruder,
                                                              intruder_ref):
        mine = intruder.post("/v1/customers", json=customer_body(intruder_ref)).json()
        response = intruder.patch(f"/v1/customers/{mine['id']}", json={
            "default_billing_account_id": owner.by_parameter["account_id"]})
        assert_problem(response, 422, field="default_billing_account_id")
        after = intruder.get(f"/v1/customers/{mine['id']}").json()
        assert after == {k: v for k, v in mine.items() if k != "billing_account"}

    @pytest.mark.parametrize(("setting", "name"), [
        ("enable_responsible_account_management", "responsible_account_id"),
        ("enable_account_hierarchy_management", "parent_account_id"),
    ])
    def test_their_account_cannot_be_our_responsible_or_parent_account(
            self, owner, intruder, intruder_ref, setting, name):
        assert intruder.patch("/v1/settings", json={setting: True}).status_code == 200
        mine = intruder.post("/v1/customers", json=customer_body(intruder_ref)).json()
        account_path = f"/v1/billing_accounts/{mine['billing_account']['id']}"
        before = intruder.get(account_path).json()
        response = intruder.patch(account_path, json={name: owner.by_parameter["account_id"]})
        assert_problem(response, 422, field=name)
        assert intruder.get(account_path).json() == before


class TestTestModeAndLiveMode:
    @pytest.fixture
    def test_client(self, make_client: Any) -> Any:
        return make_client(allow_multi_customer_accounts=True)

    @pytest.fixture
    def live_client(self, make_client: Any, test_client: Any) -> Any:
        return make_client(scope=Scope(test_client.scope.tenant_id, "live"),
                           allow_multi_customer_accounts=True)

    @staticmethod
    def _create_everything(client: Any, name: str) -> dict[str, Any]:
        ref = seed_reference(client)
        customer = client.post("/v1/customers", json=customer_body(ref, name=name))
        assert customer.status_code == 201, customer.text
        body = customer.json()
        account_id = body["billing_account"]["id"]
        client.post(f"/v1/billing_accounts/{account_id}/notes", json={"body": "a note"})
        return {"customer": body, "account_id": account_id, "ref": ref}

    @staticmethod
    def _assert_invisible(viewer: Any, made: dict[str, Any]) -> None:
        customer = made["customer"]
        assert_problem(viewer.get(f"/v1/customers/{customer['id']}"), 404, "not_found")
        assert_problem(viewer.get(f"/v1/billing_accounts/{made['account_id']}"), 404)
        assert_problem(viewer.get(f"/v1/billing_accounts/{made['account_id']}/notes"), 404)
        assert_problem(viewer.get(f"/v1/bill_cycles/{made['ref']['bill_cycle_id']}"), 404)
        assert all(ids == [] for ids in snapshot(viewer).values())
        for query in (customer["company_name"][:4], customer["number"]):
            assert viewer.get("/v1/customers", params={"query": query}).json()["data"] == []
            assert viewer.get("/v1/billing_accounts",
                              params={"query": query}).json()["data"] == []

    def test_what_the_test_key_creates_the_live_key_never_sees(self, test_client, live_client):
        made = self._create_everything(test_client, "Testing Tools")
        assert made["customer"]["mode"] == "test"
        self._assert_invisible(live_client, made)

    def test_what_the_live_key_creates_the_test_key_never_sees(self, test_client, live_client):
        made = self._create_everything(live_client, "Live Lumber")
        assert made["customer"]["mode"] == "live"
        self._assert_invisible(test_client, made)

    def test_both_modes_keep_their_own_numbers_and_data(self, test_client, live_client):
        in_test = self._create_everything(test_client, "Same Name")
        in_live = self._create_everything(live_client, "Same Name")
        assert in_test["customer"]["id"] != in_live["customer"]["id"]
        for client, made in ((test_client, in_test), (live_client, in_live)):
            assert list_ids(client, "/v1/customers") == [made["customer"]["id"]]

    def test_reference_data_of_one_mode_cannot_be_used_in_the_other(self, test_client,
                                                                   live_client):
        test_ref = seed_reference(test_client)
        before = snapshot(live_client)
        response = live_client.post("/v1/customers", json=customer_body(test_ref))
        assert_problem(response, 422, field="billing_account.bill_cycle_id")
        assert snapshot(live_client) == before

    def test_settings_are_kept_per_mode(self, test_client, live_client):
        live_before = live_client.get("/v1/settings").json()
        response = test_client.patch("/v1/settings", json={"time_zone": "Europe/Stockholm"})
        assert response.status_code == 200, response.text
        assert response.json()["mode"] == "test"
        assert live_client.get("/v1/settings").json() == live_before
        assert live_before["time_zone"] == "UTC"


class TestAuthentication:
    @pytest.fixture
    def anonymous(self, app: Any) -> Iterator[Any]:
        from fastapi.testclient import TestClient

        with TestClient(app, raise_server_exceptions=False) as client:
            yield client

    @pytest.mark.parametrize("authorization", [
        None, "", "Bearer", "Bearer ", "Bearer garbage", "Bearer bf_test_garbage",
        "Bearer bf_live_" + "x" * 43, "Bearer bf_test_" + "x" * 500, "Basic dXNlcjpwYXNz",
        "bf_test_without_scheme",
    ])
    def test_a_missing_or_garbage_key_is_a_401_problem(self, anonymous, authorization):
        headers = {} if authorization is None else {"Authorization": authorization}
        assert_problem(anonymous.get("/v1/customers", headers=headers), 401, "unauthorized")

    def test_every_api_route_refuses_a_request_without_a_key(self, app, anonymous):
        refused = []
        for method, template, _route in api_operations(app):
            path = template.format(**dict.fromkeys(path_parameters(template), "x_1"))
            response = anonymous.request(method, path, json={} if method in MUTATING else None)
            if response.status_code != 401:
                refused.append(f"{method} {path} -> {response.status_code}")
        assert not refused, "\n".join(refused)

    def test_every_api_route_refuses_an_unknown_key_before_checking_the_request(
            self, app, anonymous):
        # The key is looked up in the route's own thread, after the body and parameters
        # are validated; a request that fails validation has its key checked all the same.
        refused = []
        headers = {"Authorization": "Bearer bf_test_" + "x" * 43}
        for method, template, _route in api_operations(app):
            path = template.format(**dict.fromkeys(path_parameters(template), "x_1"))
            response = anonymous.request(method, f"{path}?limit=0&starting_after=%24",
                                         headers=headers,
                                         json={"no_such_field": 1} if method in MUTATING else None)
            if response.status_code != 401:
                refused.append(f"{method} {path} -> {response.status_code}")
        assert not refused, "\n".join(refused)

    def test_an_unknown_key_is_refused_before_a_dependency_refuses_the_request(self, anonymous):
        # Not a validation error FastAPI collects but one a dependency raises (the page).
        response = anonymous.get("/v1/customers?starting_after=%24",
                                 headers={"Authorization": "Bearer bf_test_" + "x" * 43})
        assert_problem(response, 401, "unauthorized")

    def test_a_known_key_with_a_wrong_body_is_told_what_is_wrong(self, client):
        assert_problem(client.post("/v1/customers", json={"no_such_field": 1}), 422,
                       "validation_failed")
        assert_problem(client.get("/v1/customers?limit=0"), 422, "validation_failed")
        assert_problem(client.get("/v1/customers?starting_after=%24"), 422)

    def test_a_garbage_key_with_an_idempotency_key_is_a_401_and_writes_nothing(
            self, client, anonymous):
        ids = seed_reference(client)
        before = snapshot(client)
        response = anonymous.post("/v1/customers", json=customer_body(ids), headers={
            "Authorization": "Bearer bf_test_garbage", "Idempotency-Key": "k-1"})
        assert_problem(response, 401, "unauthorized")
        assert snapshot(client) == before

    def test_a_revoked_key_is_a_401_problem_and_writes_nothing(self, client, make_client,
                                                               sessions):
        ids = seed_reference(client)
        other_key = make_client(scope=client.scope)
        before = snapshot(other_key)
        with sessions() as s, transaction(s):
            [key] = [k for k in api_keys.list_api_keys(s, client.scope)
                     if k.hint.endswith(client.secret[-4:])]
            api_keys.revoke_api_key(s, tenant_id=client.scope.tenant_id, key_id=key.id)
        assert_problem(client.get("/v1/customers"), 401, "unauthorized")
        assert_problem(client.post("/v1/customers", json=customer_body(ids)), 401)
        assert_problem(client.post("/v1/customers", json=customer_body(ids),
                                   headers={"Idempotency-Key": "after-revoke"}), 401)
        assert snapshot(other_key) == before
        assert other_key.get("/v1/customers").status_code == 200

    def test_the_health_check_needs_no_key(self, anonymous):
        assert anonymous.get("/healthz").json()["status"] == "ok"

    @pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
    def test_the_api_description_needs_no_key(self, anonymous, path):
        assert anonymous.get(path).status_code == 200

    def test_unknown_paths_are_404_problems(self, client):
        assert_problem(client.get("/v1/no_such_thing"), 404, "not_found")
        assert_problem(client.delete("/v1/customers"), 405)
