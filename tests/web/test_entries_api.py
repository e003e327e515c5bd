"""/v1/entries over HTTP: an entry made for an account or a new customer, refused for
another currency or an origin not allowed, a fresh payment link, the reason an entry is
not assigned, and the signed JSON postbacks of its payment and assignment.

The module has a database of its own: its worker claims every due delivery in the
database, and other modules' deliveries are none of its business."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from tests.conftest import account_body, customer_body, seed_reference
from tests.services.test_webhooks import Receiver
from tests.web.helpers import assert_problem, database_of_its_own
from tests.web.test_pay_page import form_to, post
from tests.web.test_postback_forms import CARD, DECLINED, VISA, deliver, pay_by_card

SHOP = "https://shop.example"


engine, sessions, app = database_of_its_own()


@pytest.fixture
def shop(make_client: Any) -> Any:
    client = make_client(allowed_origins=[SHOP])
    client.ids = seed_reference(client)
    client.account_id = client.post("/v1/customers", json=customer_body(client.ids)).json()[
        "default_billing_account_id"]
    return client


def entry_body(shop: Any, key: str, **extra: Any) -> dict[str, Any]:
    return {"assignment_key": key, "amount_minor": 2500, "currency": "USD",
            "billing_account_id": shop.account_id, "description": "Order SO-1",
            "return_url": f"{SHOP}/thanks", **extra}


def keyed_invoice(client: Any, account_id: str, key: str, amount_minor: int) -> dict[str, Any]:
    draft = client.post("/v1/invoices", json={
        "billing_account_id": account_id, "assignment_key": key,
        "lines": [{"description": "Order", "quantity": 1, "unit_amount_minor": amount_minor}]})
    assert draft.status_code == 201, draft.text
    return dict(client.post(f"/v1/invoices/{draft.json()['id']}/finalize").json())


class TestCreatingEntries:
    def test_an_entry_is_open_with_a_link_to_its_payment_page(self, shop: Any) -> None:
        response = shop.post("/v1/entries", json=entry_body(shop, "SO-1"))

        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["object"], body["status"], body["assignment_key"]) == (
            "entry", "open", "SO-1")
        assert (body["amount_minor"], body["currency"]) == (2500, "USD")
        assert urlsplit(body["payment_url"]).path.startswith("/pay/")
        assert body["assignment_problem"] is None
        again = shop.get(f"/v1/entries/{body['id']}").json()
        assert (again["status"], again["payment_url"]) == ("open", None)

    def test_inline_customer_details_make_a_customer_with_an_account(self, shop: Any) -> None:
        body = entry_body(shop, "SO-2", customer={
            "first_name": "Ada", "last_name": "Lovelace", "primary_email": "ada@example.com"})
        del body["billing_account_id"]

        response = shop.post("/v1/entries", json=body)

        assert response.status_code == 201, response.text
        account = shop.get(f"/v1/billing_accounts/{response.json()['billing_account_id']}")
        assert account.status_code == 200, account.text
        assert account.json()["currency"] == "USD"
        customer = shop.get(f"/v1/customers/{account.json()['customer_id']}").json()
        assert customer["primary_email"] == "ada@example.com"

    def test_another_currency_than_the_accounts_is_refused(self, shop: Any) -> None:
        response = shop.post("/v1/entries", json=entry_body(shop, "SO-3", currency="EUR"))

        assert_problem(response, 422)
        assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [
            ("currency", "currency_mismatch")]
        assert shop.get("/v1/entries").json()["data"] == []

    @pytest.mark.parametrize("field", ["return_url", "postback_url"])
    def test_a_url_off_the_allowed_origins_is_refused(self, shop: Any, field: str) -> None:
        response = shop.post("/v1/entries", json=entry_body(
            shop, "SO-4", **{field: "https://shop.example.evil.test/thanks"}))

        assert_problem(response, 422)
        assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [
            (field, "origin_not_allowed")]


class TestPaymentLinks:
    def test_a_fresh_link_replaces_the_one_given_before(self, shop: Any, app: Any) -> None:
        made = shop.post("/v1/entries", json=entry_body(shop, "SO-5")).json()

        fresh = shop.post(f"/v1/entries/{made['id']}/payment_url")

        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["status"] == "open"
        new_path = urlsplit(fresh.json()["payment_url"]).path
        assert new_path != urlsplit(made["payment_url"]).path
        with TestClient(app) as payer:
            assert payer.get(urlsplit(made["payment_url"]).path).status_code == 404
            assert payer.get(new_path).status_code == 200

    def test_an_entry_paid_already_gets_no_link(self, shop: Any, app: Any) -> None:
        made = shop.post("/v1/entries", json=entry_body(shop, "SO-6")).json()
        with TestClient(app) as payer:
            paid = pay_by_card(payer, urlsplit(made["payment_url"]).path, VISA)
            assert paid.status_code == 200, paid.text

        refused = shop.post(f"/v1/entries/{made['id']}/payment_url")

        assert_problem(refused, 409, "entry_not_open")


class TestAssignmentProblems:
    def test_an_invoice_of_another_customer_is_named_on_the_entry(
            self, shop: Any, app: Any) -> None:
        made = shop.post("/v1/entries", json=entry_body(shop, "SO-7")).json()
        with TestClient(app) as payer:
            pay_by_card(payer, urlsplit(made["payment_url"]).path, VISA)
        other = shop.post("/v1/customers", json=customer_body(
            shop.ids, "Other Co", billing_account=account_body(shop.ids))).json()
        invoice = keyed_invoice(shop, other["default_billing_account_id"], "SO-7", 2500)

        found = shop.get(f"/v1/entries/{made['id']}").json()

        assert found["status"] == "balanced"
        assert found["assignment_problem"]["code"] == "other_customer"
        assert found["assignment_problem"]["invoice_id"] == invoice["id"]
        assert shop.get(f"/v1/invoices/{invoice['id']}").json()["status"] == "open"


class TestEntryPostbacks:
    def test_a_decline_the_payment_and_the_assignment_are_posted_signed(
            self, make_client: Any, app: Any, sessions: sessionmaker[Session],
            receiver: Receiver) -> None:
        shop = make_client(allowed_origins=[receiver.url("")],
                           allow_private_postback_targets=True)
        ids = seed_reference(shop)
        account_id = shop.post("/v1/customers", json=customer_body(ids)).json()[
            "default_billing_account_id"]
        secret = shop.post("/v1/postback_secret").json()["secret"]
        made = shop.post("/v1/entries", json={
            "assignment_key": "SO-8", "amount_minor": 5000, "currency": "USD",
            "billing_account_id": account_id, "postback_url": receiver.url("/entries")}).json()
        path = urlsplit(made["payment_url"]).path

        with TestClient(app) as payer:
            declined = pay_by_card(payer, path, DECLINED)
            paid = post(payer, path, form_to(declined.text, path).filled(
                card_number=VISA, **CARD))
            assert paid.url.path == f"{path}/receipt", paid.text
        invoice = keyed_invoice(shop, account_id, "SO-8", 3000)  # smaller than the entry
        deliver(app, sessions)

        assert shop.get(f"/v1/invoices/{invoice['id']}").json()["status"] == "paid"
        entry = shop.get(f"/v1/entries/{made['id']}").json()
        assert (entry["status"], entry["invoice_id"]) == ("assigned", invoice["id"])
        posts = [r for r in receiver.requests if r.path == "/entries"]
        bodies = [json.loads(p.body) for p in posts]
        assert [b["type"] for b in bodies] == ["payment.failed", "entry.balanced",
                                               "entry.assigned"]
        for posted in posts:
            assert posted.headers["content-type"].startswith("application/json")
            assert Webhook(secret).verify(posted.body, posted.headers) is not None
        assert {b["data"]["id"] for b in bodies} == {made["id"]}
        assert bodies[2]["data"]["invoice_id"] == invoice["id"]
        summary = shop.get(f"/v1/billing_accounts/{account_id}/summary").json()
        assert summary["unapplied_payments"]["amount_minor"] == 2000  # the entry's rest
        assert summary["balance"]["amount_minor"] == 0
