from tests.conftest import customer_body, seed_reference


def test_create_and_read_a_customer(client):
    ids = seed_reference(client)
    r = client.post("/v1/customers", json=customer_body(ids))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["billing_account"]["is_default"] is True
    assert body["default_billing_account_id"] == body["billing_account"]["id"]
    r = client.get(f"/v1/customers/{body['id']}")
    assert r.status_code == 200
    r = client.get("/v1/customers", params={"query": "acm"})
    assert [c["id"] for c in r.json()["data"]] == [body["id"]]
    r = client.get(f"/v1/billing_accounts/{body['billing_account']['id']}/summary")
    assert r.status_code == 200, r.text
