"""The payments API: Cloud Payments V2 intake, native pay sessions, payments, refunds,
voids, the test clock, and the webhook and postback settings."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.conftest import customer_body, seed_reference
from tests.web.helpers import assert_problem

SEED = Path(__file__).resolve().parents[3] / "shared" / "seeds" / \
    "invoicecloud-cloud-payments-v2.txt"


def seed_sample() -> str:
    """The Cloud Payments V2 sample request exactly as the seed prints it."""
    lines = SEED.read_text().splitlines()
    return "\n".join(lines[17:60])


def basic(client: Any) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(client.secret.encode()).decode()}


@pytest.fixture
def biller(make_client: Any) -> Any:
    client = make_client(allowed_origins=["https://www.yourdomain.com"])
    client.ids = seed_reference(client)
    return client


def open_invoice(client: Any, amount_minor: int = 1000) -> dict[str, Any]:
    customer = client.post("/v1/customers", json=customer_body(client.ids)).json()
    account_id = customer["default_billing_account_id"]
    draft = client.post("/v1/invoices", json={"billing_account_id": account_id, "lines": [
        {"description": "Widgets", "quantity": 1, "unit_amount_minor": amount_minor}]}).json()
    return client.post(f"/v1/invoices/{draft['id']}/finalize").json()


class TestCloudPaymentsIntake:
    def test_the_seed_sample_verbatim_gets_a_400_naming_line_and_column(self, biller: Any) -> None:
        response = biller.post("/cloudpayments/v2", content=seed_sample(), headers={
            **basic(biller), "Content-Type": "application/json"})
        assert_problem(response, 400, "invalid_json")
        assert "line 35, column 45" in response.json()["detail"]

    def test_the_sample_made_valid_creates_a_session_and_records(self, biller: Any) -> None:
        body = seed_sample().replace("False", "false")
        response = biller.post("/cloudpayments/v2", content=body, headers={
            **basic(biller), "Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        data = response.json()["Data"]
        assert "/pay/" in data["CloudPaymentURL"]
        assert data["SessionId"].startswith("ps_")
        accounts = biller.get("/v1/billing_accounts", params={"query": "ACCT-TEST-001"}).json()
        assert [a["number"] for a in accounts["data"]] == ["ACCT-TEST-001"]
        invoices = biller.get("/v1/invoices", params={
            "billing_account_id": accounts["data"][0]["id"]}).json()["data"]
        assert [(i["number"], i["status"], i["amount_due_minor"]) for i in invoices] == [
            ("INV-TEST-001", "open", 1000)]
        again = biller.post("/cloudpayments/v2", content=body, headers={
            **basic(biller), "Content-Type": "application/json"})
        assert again.status_code == 200  # upsert: the same account and invoice are reused
        assert len(biller.get("/v1/invoices", params={
            "billing_account_id": accounts["data"][0]["id"]}).json()["data"]) == 1

    def test_without_records_nothing_is_created(self, biller: Any) -> None:
        body = json.loads(seed_sample().replace("False", "false"))
        body["CreateCustomerRecord"] = "false"
        response = biller.post("/cloudpayments/v2", json=body, headers=basic(biller))
        assert response.status_code == 200, response.text
        assert biller.get("/v1/billing_accounts", params={"query": "ACCT-TEST-001"}
                          ).json()["data"] == []

    def test_an_origin_not_allowed_is_refused_and_nothing_is_written(self, biller: Any) -> None:
        body = json.loads(seed_sample().replace("False", "false"))
        body["ReturnURL"] = "https://www.yourdomain.com.evil.example/back"
        response = biller.post("/cloudpayments/v2", json=body, headers=basic(biller))
        assert_problem(response, 422)
        assert response.json()["errors"][0]["field"] == "ReturnURL"
        assert biller.get("/v1/billing_accounts", params={"query": "ACCT-TEST-001"}
                          ).json()["data"] == []

    def test_card_present_payments_are_refused(self, biller: Any) -> None:
        body = json.loads(seed_sample().replace("False", "false"))
        body["AllowEMV"] = True
        response = biller.post("/cloudpayments/v2", json=body, headers=basic(biller))
        assert_problem(response, 422)
        assert response.json()["errors"][0]["field"] == "AllowEMV"

    def test_a_wrong_key_is_401_even_with_a_bad_body(self, biller: Any) -> None:
        response = biller.post("/cloudpayments/v2", content="{", headers={
            "Authorization": "Basic " + base64.b64encode(b"bf_test_nope").decode()})
        assert response.status_code == 401


class TestNativePaySessions:
    def test_creates_a_session_over_open_invoices(self, biller: Any) -> None:
        invoice = open_invoice(biller)
        response = biller.post("/v1/pay_sessions", json={"invoices": [
            {"invoice_id": invoice["id"], "card_fee_minor": 100}],
            "return_url": "https://www.yourdomain.com/done"})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["url"].startswith("http")
        assert body["status"] == "open"
        assert biller.get(f"/v1/pay_sessions/{body['id']}").json()["url"] is None

    @pytest.mark.postgres_only
    def test_its_one_insert_runs_without_a_transaction(self, biller: Any, engine: Any) -> None:
        """The route is declared one_write: on PostgreSQL its request sends no BEGIN or
        COMMIT (the driver's connection is in autocommit when it goes back to the pool),
        and the connection is transactional again for the next request."""
        invoice = open_invoice(biller)
        seen: list[bool] = []

        def before_the_pools_own(dbapi_connection: Any, *_: Any) -> None:
            seen.append(dbapi_connection.autocommit)

        event.listen(engine, "reset", before_the_pools_own, insert=True)
        try:
            response = biller.post("/v1/pay_sessions", json={"invoices": [
                {"invoice_id": invoice["id"]}]})
            assert response.status_code == 201, response.text
            assert seen == [True]
            assert biller.get(f"/v1/pay_sessions/{response.json()['id']}").status_code == 200
            assert seen == [True, False]
        finally:
            event.remove(engine, "reset", before_the_pools_own)

    def test_invoices_kept_elsewhere_are_given_inline(self, biller: Any) -> None:
        response = biller.post("/v1/pay_sessions", json={
            "currency": "USD", "payer": {"name": "Ada Payer", "email": "ada@example.com"},
            "invoices": [{"number": "EXT-1", "amount_due_minor": 4200, "allow_partial": True}]})
        assert response.status_code == 201, response.text
        line = response.json()["lines"][0]
        assert (line["invoice_id"], line["invoice_number"], line["balance_due_minor"]) == (
            None, "EXT-1", 4200)

    def test_inline_invoices_need_a_currency(self, biller: Any) -> None:
        response = biller.post("/v1/pay_sessions", json={
            "invoices": [{"number": "EXT-1", "amount_due_minor": 4200}]})
        assert_problem(response, 422)
        assert response.json()["errors"][0]["field"] == "currency"

    def test_refuses_a_paid_or_missing_invoice(self, biller: Any) -> None:
        response = biller.post("/v1/pay_sessions", json={"invoices": [
            {"invoice_id": "inv_" + "0" * 32}]})
        assert_problem(response, 422)
        assert response.json()["errors"][0]["field"] == "invoices[0].invoice_id"


class TestPaymentsAndRefunds:
    def pay(self, biller: Any, app: Any, invoice: dict[str, Any], card: str = "4242424242424242",
            bank: tuple[str, str] | None = None) -> dict[str, Any]:
        from billfold.payments import paying, sessions
        from billfold.payments.gateways.base import BankDetails, CardDetails

        created = biller.post("/v1/pay_sessions", json={"invoices": [
            {"invoice_id": invoice["id"]}]}).json()
        token = created["url"].rsplit("/", 1)[1]
        factory = app.state.sessions
        with factory() as s:
            lines = sessions.current_lines(s, sessions.find(s, token))
        details: Any = CardDetails(card, 12, 2030, "123", "Ada")
        if bank:
            details = BankDetails(bank[0], bank[1], "checking", "Ada")
        payment = paying.pay(factory, app.state.gateways(biller.scope), token, paying.Submission(
            nonce="n", amounts={line["key"]: line["balance_due_minor"] for line in lines},
            method="ach" if bank else "card", details=details))
        return dict(biller.get(f"/v1/payments/{payment.id}").json())

    def test_lists_payments_and_refunds_one(self, biller: Any, app: Any) -> None:
        invoice = open_invoice(biller, 3000)
        payment = self.pay(biller, app, invoice)
        assert payment["status"] == "succeeded"
        assert payment["last4"] == "4242"
        listed = biller.get("/v1/payments", params={"status": "succeeded"}).json()["data"]
        assert [p["id"] for p in listed] == [payment["id"]]
        refund = biller.post(f"/v1/payments/{payment['id']}/refunds", json={"amount_minor": 1000})
        assert refund.status_code == 201, refund.text
        assert biller.get(f"/v1/invoices/{invoice['id']}").json()["status"] == "partially_paid"
        too_much = biller.post(f"/v1/payments/{payment['id']}/refunds",
                               json={"amount_minor": 5000})
        assert_problem(too_much, 422)
        assert too_much.json()["errors"][0]["field"] == "amount_minor"

    def test_the_test_clock_settles_bank_payments(self, biller: Any, app: Any) -> None:
        payment = self.pay(biller, app, open_invoice(biller),
                           bank=("110000000", "000123456789"))
        assert payment["status"] == "pending"
        moved = biller.post("/v1/test_clock/advance", json={"days": 7})
        assert moved.status_code == 200
        assert moved.json()["clock_offset_days"] == 7
        assert biller.get(f"/v1/payments/{payment['id']}").json()["status"] == "succeeded"

    def test_void_reopens_the_invoice(self, biller: Any, app: Any) -> None:
        invoice = open_invoice(biller)
        payment = self.pay(biller, app, invoice, bank=("110000000", "000123456789"))
        voided = biller.post(f"/v1/payments/{payment['id']}/void")
        assert voided.json()["status"] == "voided"
        assert biller.get(f"/v1/invoices/{invoice['id']}").json()["status"] == "open"

    def test_live_mode_has_no_test_clock(self, make_client: Any) -> None:
        live = make_client(mode="live")
        assert_problem(live.post("/v1/test_clock/advance", json={"days": 1}), 409)


class TestWebhookSettings:
    def test_endpoint_secret_is_shown_once(self, biller: Any) -> None:
        biller.patch("/v1/settings", json={"allow_private_postback_targets": True})
        created = biller.post("/v1/webhook_endpoints", json={
            "url": "http://127.0.0.1:9/billfold", "enabled_events": ["payment.succeeded"]})
        assert created.status_code == 201, created.text
        assert created.json()["secret"].startswith("whsec_")
        again = biller.get(f"/v1/webhook_endpoints/{created.json()['id']}").json()
        assert again["secret"] is None

    def test_postback_secret_rotates(self, biller: Any) -> None:
        first = biller.post("/v1/postback_secret").json()["secret"]
        second = biller.post("/v1/postback_secret").json()["secret"]
        assert first.startswith("whsec_")
        assert first != second


class TestReturnUrlAttacks:
    """Every ReturnURL variant of the attack list is refused before a session exists, so
    the page can never link (or send a payer) off the allowed origins."""

    def test_no_attack_variant_makes_a_session(self, make_client: Any) -> None:
        from tests.unit.test_targets import ALLOWED, RETURN_URL_ATTACKS

        biller = make_client(allowed_origins=ALLOWED)
        biller.ids = seed_reference(biller)
        invoice = open_invoice(biller)
        accepted = []
        for attack in RETURN_URL_ATTACKS:
            response = biller.post("/v1/pay_sessions", json={
                "invoices": [{"invoice_id": invoice["id"]}], "return_url": attack})
            if response.status_code == 201:
                accepted.append(attack)
            elif response.status_code == 422 and response.json()["errors"]:
                assert response.json()["errors"][0]["field"] == "return_url"
        assert len(RETURN_URL_ATTACKS) >= 30
        assert accepted == []
        assert biller.get("/v1/pay_sessions").json()["data"] == []
