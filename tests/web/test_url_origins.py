"""Every URL a request hands Billfold to send a payer to, post back to or load a stylesheet
from must be on one of the tenant's allowed origins: Cloud Payments V2's PostBackURL and
CssUrl, a native pay session's postback_url and css_url, an entry's return_url and
postback_url. Each field refuses attack variants from the ReturnURL list with a 422 naming
it, writes nothing, and accepts the allowed origin (so the refusal is the origin's)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import seed_reference
from tests.unit.test_targets import ALLOWED, RETURN_URL_ATTACKS
from tests.web.test_payments_api import basic, open_invoice, seed_sample

GOOD = "https://shop.example.com/billfold"
# Variants that stay attacks after Cloud Payments V2 trims surrounding whitespace.
ATTACKS = [
    "https://shop.example.com.evil.com",
    "https://shop.example.com@evil.com",
    "https://evil.com#@shop.example.com",
    "//shop.example.com",
    "javascript:alert(1)",
    "https://shop.example.com:444",
    "http://shop.example.com",
    "https://shop.example.com\\@evil.com",
    "https://shop.example.com\n.evil.com",
    "https://shop.ex\u0430mple.com",  # Cyrillic a
    "https://%73hop.example.com",
    "/return",
]


def test_the_variants_are_from_the_attack_list() -> None:
    assert set(ATTACKS) <= set(RETURN_URL_ATTACKS)


@pytest.fixture
def biller(make_client: Any) -> Any:
    client = make_client(allowed_origins=ALLOWED)
    client.ids = seed_reference(client)
    return client


def refusals(send: Any, field: str) -> list[str]:
    """The variants ``send`` did not answer with a 422 naming ``field``."""
    missed = []
    for index, attack in enumerate(ATTACKS):
        response = send(index, attack)
        fields = [e["field"] for e in response.json().get("errors", [])] \
            if response.status_code == 422 else []
        if fields != [field]:
            missed.append(f"{attack!r}: {response.status_code} {fields}")
    return missed


class TestCloudPaymentsV2:
    @pytest.mark.parametrize("field", ["PostBackURL", "CssUrl"])
    def test_an_off_list_origin_is_refused_naming_the_field(self, biller: Any,
                                                            field: str) -> None:
        request = json.loads(seed_sample().replace("False", "false"))
        request["PostBackURL"] = GOOD

        def send(_: int, url: str) -> Any:
            return biller.post("/cloudpayments/v2", json={**request, field: url},
                               headers=basic(biller))

        assert refusals(send, field) == []
        assert biller.get("/v1/pay_sessions").json()["data"] == []
        assert biller.get("/v1/billing_accounts", params={"query": "ACCT-TEST-001"}
                          ).json()["data"] == []
        accepted = send(0, GOOD)
        assert accepted.status_code == 200, accepted.text


class TestNativePaySessions:
    @pytest.mark.parametrize("field", ["postback_url", "css_url"])
    def test_an_off_list_origin_is_refused_naming_the_field(self, biller: Any,
                                                            field: str) -> None:
        invoice = open_invoice(biller)

        def send(_: int, url: str) -> Any:
            return biller.post("/v1/pay_sessions", json={
                "invoices": [{"invoice_id": invoice["id"]}], field: url})

        assert refusals(send, field) == []
        assert biller.get("/v1/pay_sessions").json()["data"] == []
        accepted = send(0, GOOD)
        assert accepted.status_code == 201, accepted.text


class TestEntries:
    @pytest.mark.parametrize("field", ["return_url", "postback_url"])
    def test_an_off_list_origin_is_refused_naming_the_field(self, biller: Any,
                                                            field: str) -> None:
        account_id = open_invoice(biller)["billing_account_id"]

        def send(index: int, url: str) -> Any:
            return biller.post("/v1/entries", json={
                "assignment_key": f"ORDER-{index}", "amount_minor": 5000, "currency": "USD",
                "billing_account_id": account_id, field: url})

        assert refusals(send, field) == []
        assert biller.get("/v1/entries").json()["data"] == []
        assert biller.get("/v1/pay_sessions").json()["data"] == []
        accepted = send(0, GOOD)
        assert accepted.status_code == 201, accepted.text


class TestPrivatePostbackTargets:
    """A postback URL on an allowed origin whose host is a literal private address is
    refused when given, on each of the three requests that take one (sessions.check_urls
    names them by field)."""

    ORIGIN = "http://10.0.0.7:8080"

    @pytest.fixture
    def private(self, make_client: Any) -> Any:
        client = make_client(allowed_origins=[self.ORIGIN])
        client.ids = seed_reference(client)
        return client

    def test_each_request_refuses_it_naming_its_field(self, private: Any) -> None:
        url = f"{self.ORIGIN}/postbacks"
        invoice = open_invoice(private)
        request = json.loads(seed_sample().replace("False", "false"))
        sent = {
            "PostBackURL": private.post(
                "/cloudpayments/v2", json={**request, "PostBackURL": url, "ReturnURL": None,
                                           "CssUrl": None}, headers=basic(private)),
            "postback_url": private.post("/v1/pay_sessions", json={
                "invoices": [{"invoice_id": invoice["id"]}], "postback_url": url}),
        }
        entry = private.post("/v1/entries", json={
            "assignment_key": "ORDER-P", "amount_minor": 5000, "currency": "USD",
            "billing_account_id": invoice["billing_account_id"], "postback_url": url})
        for field, response in [*sent.items(), ("postback_url", entry)]:
            assert response.status_code == 422, response.text
            [error] = [e for e in response.json()["errors"] if e["field"] == field]
            assert (error["code"], error["message"]) == (
                "unsafe_target", "10.0.0.7 is a private address")
        assert private.get("/v1/pay_sessions").json()["data"] == []
        assert private.get("/v1/entries").json()["data"] == []
