"""Webhook deliveries proved through HTTP and a receiver on this machine: a refund's
``payment.refunded`` event reaches the endpoint subscribed to it, signed with the
endpoint's secret; and a delivery resent through the API reaches the receiver again and
shows in the delivery log beside the first.

The module has a database of its own: its worker claims every due delivery in the
database, and other modules' deliveries are none of its business."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from tests.conftest import seed_reference
from tests.services.test_webhooks import Receiver
from tests.web.helpers import database_of_its_own
from tests.web.test_payments_api import open_invoice
from tests.web.test_postback_forms import VISA, deliver, pay_by_card

engine, sessions, app = database_of_its_own()


@pytest.fixture
def biller(make_client: Any) -> Any:
    """A test-mode tenant whose webhooks may go to this machine."""
    client = make_client(allow_private_postback_targets=True)
    client.ids = seed_reference(client)
    return client


def subscribe(biller: Any, receiver: Receiver, *events: str) -> str:
    """An endpoint at the receiver for ``events``; its signing secret."""
    created = biller.post("/v1/webhook_endpoints", json={
        "url": receiver.url("/hooks"), "enabled_events": list(events)})
    assert created.status_code == 201, created.text
    return str(created.json()["secret"])


class TestRefundEvent:
    def test_a_refund_reaches_the_endpoint_subscribed_to_payment_refunded(
            self, biller: Any, app: Any, sessions: sessionmaker[Session],
            receiver: Receiver) -> None:
        secret = subscribe(biller, receiver, "payment.refunded")
        invoice = open_invoice(biller, 3000)
        created = biller.post("/v1/pay_sessions", json={"invoices": [{"invoice_id": invoice["id"]}]})
        assert created.status_code == 201, created.text
        with TestClient(app) as payer:
            paid = pay_by_card(payer, urlsplit(created.json()["url"]).path, VISA)
        assert "RCT-" in paid.text
        [payment] = biller.get("/v1/payments").json()["data"]
        deliver(app, sessions)
        assert receiver.requests == []  # payment.succeeded: not subscribed

        refund = biller.post(f"/v1/payments/{payment['id']}/refunds",
                             json={"amount_minor": 1000, "reason": "one pallet short"})
        assert refund.status_code == 201, refund.text
        deliver(app, sessions)

        [request] = receiver.requests
        assert request.path == "/hooks"
        assert request.headers["content-type"] == "application/json"
        body = Webhook(secret).verify(request.body, request.headers)
        assert body["type"] == "payment.refunded"
        data = body["data"]
        assert (data["id"], data["status"], data["amount_minor"], data["refunded_minor"]) == (
            payment["id"], "partially_refunded", 3000, 1000)
        assert data["refund"] == {"id": refund.json()["id"], "amount_minor": 1000,
                                  "fee_minor": 0}
        [logged] = biller.get("/v1/webhook_deliveries").json()["data"]
        assert (logged["event_type"], logged["status"], logged["event_id"]) == (
            "payment.refunded", "succeeded", request.headers["webhook-id"])
        assert biller.get(f"/v1/invoices/{invoice['id']}").json()["status"] == "partially_paid"


class TestManualResend:
    def test_a_resent_delivery_reaches_the_receiver_again_and_the_log_lists_both(
            self, biller: Any, app: Any, sessions: sessionmaker[Session],
            receiver: Receiver) -> None:
        secret = subscribe(biller, receiver, "payment.succeeded")
        invoice = open_invoice(biller, 2500)
        recorded = biller.post("/v1/payments", json={
            "billing_account_id": invoice["billing_account_id"], "amount_minor": 2500,
            "method": "check", "reference": "CHK-1001"})
        assert recorded.status_code == 201, recorded.text
        deliver(app, sessions)
        [first_log] = biller.get("/v1/webhook_deliveries").json()["data"]
        assert first_log["status"] == "succeeded"

        resent = biller.post(f"/v1/webhook_deliveries/{first_log['id']}/resend")
        assert resent.status_code == 201, resent.text
        assert resent.json()["status"] == "queued"
        deliver(app, sessions)

        first, second = receiver.requests
        assert second.body == first.body
        assert second.headers["webhook-id"] == first.headers["webhook-id"]
        assert Webhook(secret).verify(second.body, second.headers)["data"]["id"] == \
            recorded.json()["id"]
        log = biller.get("/v1/webhook_deliveries").json()["data"]
        assert [(d["id"], d["status"], d["attempts"]) for d in log] == [
            (first_log["id"], "succeeded", 1), (resent.json()["id"], "succeeded", 1)]
        assert {d["event_id"] for d in log} == {first.headers["webhook-id"]}

    def test_another_tenants_delivery_cannot_be_resent(
            self, biller: Any, make_client: Any, app: Any, sessions: sessionmaker[Session],
            receiver: Receiver) -> None:
        subscribe(biller, receiver, "payment.succeeded")
        invoice = open_invoice(biller, 1200)
        recorded = biller.post("/v1/payments", json={
            "billing_account_id": invoice["billing_account_id"], "amount_minor": 1200,
            "method": "check"})
        assert recorded.status_code == 201, recorded.text
        deliver(app, sessions)
        [delivery] = biller.get("/v1/webhook_deliveries").json()["data"]

        stranger = make_client()
        assert stranger.post(f"/v1/webhook_deliveries/{delivery['id']}/resend"
                             ).status_code == 404
        deliver(app, sessions)
        assert len(receiver.requests) == 1
