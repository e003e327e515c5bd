"""Property-based run over the whole OpenAPI document: whatever schemathesis sends to any
operation, with a valid API key, the answer is never a server error, and every refusal
is a problem document."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import account_body, customer_body, seed_reference

EXAMPLES_PER_OPERATION = 20


@pytest.fixture(scope="module")
def fuzz_tenant(app: Any, sessions: Any) -> dict[str, str]:
    """One tenant for the whole run, with real objects the path parameters can point at."""
    from fastapi.testclient import TestClient

    from billfold.access import api_keys
    from billfold.core.db import transaction
    from billfold.tenants import service as tenants

    with sessions() as s, transaction(s):
        tenant = tenants.create_tenant(s, name="Fuzzed Biller")
        secret = api_keys.create_api_key(s, tenant_id=tenant.id, mode="test").secret
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {secret}"
        client.patch("/v1/settings", json={"allow_multi_customer_accounts": True})
        ref = seed_reference(client)
        customer = client.post("/v1/customers", json=customer_body(ref)).json()
        account_id = customer["billing_account"]["id"]
        client.post(f"/v1/customers/{customer['id']}/billing_accounts", json=account_body(ref))
        client.post(f"/v1/billing_accounts/{account_id}/notes", json={"body": "A note"})
        tax_rate = client.post("/v1/tax_rates", json={
            "country": "US", "region": "US-TX", "tax_category": "standard", "percent": "8.25",
            "name": "Texas sales tax", "valid_from": "2026-01-01"}).json()
        tax_exemption = client.post(f"/v1/billing_accounts/{account_id}/tax_exemptions", json={
            "certificate_number": "TX-EX-1", "country": "US", "valid_from": "2026-01-01"}).json()
        product = client.post("/v1/products", json={
            "name": "Seat licence", "sku": "SEAT", "tax_category": "standard"}).json()
        price = client.post("/v1/prices", json={
            "product_id": product["id"], "kind": "recurring", "amounts_minor": {"USD": 3100},
            "billing_timing": "in_advance"}).json()
        order = client.post("/v1/orders", json={"billing_account_id": account_id, "lines": [
            {"price_id": price["id"], "start_date": "2026-03-01"}]}).json()
        bill_run = client.post("/v1/bill_runs", json={"as_of_date": "2026-03-01"}).json()
        # A draft, so finalize and void get past their checks; an adjustment of its own.
        line = {"description": "Consulting", "unit_amount_minor": 1500, "tax_percent": "10"}
        draft = client.post("/v1/invoices", json={"billing_account_id": account_id,
                                                  "lines": [line]}).json()
        issued = client.post("/v1/invoices", json={"billing_account_id": account_id,
                                                   "lines": [line]}).json()
        client.post(f"/v1/invoices/{issued['id']}/finalize")
        adjustment = client.post("/v1/adjustments", json={
            "billing_account_id": account_id, "invoice_id": issued["id"], "kind": "credit",
            "amount_minor": 100, "reason": "Goodwill"}).json()
        rule = client.post("/v1/invoice_distribution_rules", json={
            "billing_account_id": account_id}).json()
    return {"secret": secret, "customer_id": customer["id"], "account_id": account_id,
            "billing_account_id": account_id, "bill_cycle_id": ref["bill_cycle_id"],
            "tax_rate_id": tax_rate["id"], "tax_exemption_id": tax_exemption["id"],
            "product_id": product["id"], "price_id": price["id"], "order_id": order["id"],
            "service_id": order["lines"][0]["service_id"], "bill_run_id": bill_run["id"],
            "invoice_id": draft["id"], "adjustment_id": adjustment["id"],
            "distribution_rule_id": rule["id"]}


def _openapi_document() -> dict[str, Any]:
    """The app's /openapi.json. It depends on the code alone, so it is read at collection
    time from an app on a throwaway database; the requests go to the test database's app.
    (schemathesis.pytest.from_fixture would defer this, but breaks on pytest 9.)"""
    from billfold.core.config import Settings
    from billfold.web.app import create_app

    document: dict[str, Any] = create_app(Settings(database_url="sqlite://")).openapi()
    return document


schema = schemathesis.openapi.from_dict(_openapi_document())


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_with_a_server_error(case: Any, app: Any,
                                                  fuzz_tenant: dict[str, str]) -> None:
    # Point about half the generated path ids at real objects, so the operations get past
    # their 404 and into the code that reads and changes data.
    for name, value in list((case.path_parameters or {}).items()):
        if name in fuzz_tenant and isinstance(value, str) and len(value) % 2 == 0:
            case.path_parameters[name] = fuzz_tenant[name]
    response = case.call(app=app, headers={"Authorization": f"Bearer {fuzz_tenant['secret']}"})
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400:
        headers = {name.lower(): values for name, values in response.headers.items()}
        assert headers["content-type"][0].startswith("application/problem+json"), response.text
        problem = response.json()
        assert problem["status"] == response.status_code
        assert problem["code"]
        if problem["code"] == "validation_failed":
            assert problem["errors"], problem
            assert all(e["field"] for e in problem["errors"]), problem
