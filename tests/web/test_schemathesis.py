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
    return {"secret": secret, "customer_id": customer["id"], "account_id": account_id,
            "billing_account_id": account_id, "bill_cycle_id": ref["bill_cycle_id"]}


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
