"""A Cloud Payments V2 session end to end: the seed's sample request (made valid JSON)
creates it, a payer has a card declined on the page and then pays, and the worker posts
Invoice Cloud's form postback of each attempt to a receiver on this machine, signed with
the tenant's postback secret so the Standard Webhooks reference library accepts it.

The module has a database of its own: its worker claims every due delivery in the
database, and other modules' deliveries are none of its business."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from billfold import cli
from billfold.core import clock, jobs
from billfold.notifications import webhooks
from tests.conftest import seed_reference
from tests.services.test_webhooks import Receiver
from tests.web.helpers import database_of_its_own
from tests.web.test_pay_page import form_to, post
from tests.web.test_payments_api import basic, seed_sample

# Invoice Cloud's postback fields, in the order Invoice Cloud documents them.
INVOICE_CLOUD_FIELDS = [
    "BillerGUID", "PaymentDate", "InvoiceNumber", "Approved", "CustomerName",
    "CustomerAddress", "CustomerCity", "CustomerState", "CustomerZip", "PaymentGUID",
    "PaymentAmount", "PaymentDescription", "PaymentTypeID", "CardType", "PaymentMessage",
    "BillerReference", "ConvenienceFee", "RemoteIP",
]
PAYER_ADDRESS = ("203.0.113.7", 50123)  # TEST-NET-3: where the payer's browser is
CARD = {"card_name": "John S", "card_expiry": "12/39", "card_cvc": "123"}
VISA = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0002"

engine, sessions, app = database_of_its_own()


def deliver(app: Any, sessions: sessionmaker[Session]) -> None:
    """What `billfold worker` does with webhook and postback deliveries, with its own
    handlers, until none is due."""
    handlers = cli._job_handlers(app.state.settings)
    while jobs.run_pending(sessions, handlers, worker_id="test-worker",
                           kinds=[webhooks.DELIVER_WEBHOOK]):
        pass


def pay_by_card(payer: TestClient, path: str, number: str) -> Any:
    """The page's two steps with the card chosen; the answer to the second."""
    page = payer.get(path)
    assert page.status_code == 200, page.text
    reviewed = post(payer, f"{path}/review", form_to(page.text, "/review").filled(method="card"))
    assert reviewed.status_code == 200, reviewed.text
    return post(payer, path, form_to(reviewed.text, path).filled(card_number=number, **CARD))


class TestCloudPaymentsV2Postbacks:
    def test_a_declined_then_approved_card_posts_invoice_clouds_fields_twice(
            self, make_client: Any, app: Any, sessions: sessionmaker[Session],
            receiver: Receiver) -> None:
        biller = make_client(allowed_origins=[receiver.url("")],
                             allow_private_postback_targets=True)
        seed_reference(biller)  # CreateCustomerRecord makes the account on this cycle
        secret = biller.post("/v1/postback_secret").json()["secret"]
        request = json.loads(seed_sample().replace("False", "false"))
        request["PostBackURL"] = receiver.url("/postback.aspx")
        [customer] = request["Customers"]

        created = biller.post("/cloudpayments/v2", content=json.dumps(request), headers={
            **basic(biller), "Content-Type": "application/json"})
        assert created.status_code == 200, created.text
        path = urlsplit(created.json()["Data"]["CloudPaymentURL"]).path
        with TestClient(app, client=PAYER_ADDRESS) as payer:
            declined = pay_by_card(payer, path, DECLINED)
            assert "Your card was declined." in declined.text
            paid = post(payer, path, form_to(declined.text, path).filled(
                card_number=VISA, **CARD))
            assert paid.url.path == f"{path}/receipt", paid.text
        payments = biller.get("/v1/payments").json()["data"]
        failed, succeeded = sorted(payments, key=lambda p: p["created_at"])
        assert (failed["status"], succeeded["status"]) == ("failed", "succeeded")
        deliver(app, sessions)

        posts = [r for r in receiver.requests if r.path == "/postback.aspx"]
        assert len(posts) == len(receiver.requests) == 2
        forms = [dict(parse_qsl(p.body.decode(), keep_blank_values=True)) for p in posts]
        for posted in posts:
            assert posted.headers["content-type"] == "application/x-www-form-urlencoded"
            assert [name for name, _ in parse_qsl(posted.body.decode(), keep_blank_values=True)
                    ] == INVOICE_CLOUD_FIELDS
            assert Webhook(secret).verify(posted.body, posted.headers, json_parse=False) is None
        assert [f["Approved"] for f in forms] == ["False", "True"]
        assert [f["PaymentGUID"] for f in forms] == [failed["id"], succeeded["id"]]
        assert [f["PaymentMessage"] for f in forms] == [failed["failure_message"], "Approved"]
        today = clock.utcnow().strftime("%m/%d/%Y")
        for form in forms:
            assert form["BillerGUID"] == biller.scope.tenant_id
            assert form["PaymentDate"] == today
            assert (form["CustomerName"], form["CustomerAddress"], form["CustomerCity"],
                    form["CustomerState"], form["CustomerZip"]) == (
                customer["Name"], customer["Address"], customer["City"], customer["State"],
                customer["Zip"])
            assert form["BillerReference"] == request["BillerReference"]
            assert form["InvoiceNumber"] == form["PaymentDescription"] == "INV-TEST-001"
            assert (form["PaymentAmount"], form["ConvenienceFee"]) == ("10.00", "1.00")
            assert form["PaymentTypeID"] == "1"
            assert form["RemoteIP"] == PAYER_ADDRESS[0]
        # The declined card's brand comes from the number typed (the gateway keeps no
        # instrument for a declined charge).
        assert forms[0]["CardType"] == forms[1]["CardType"] == "Visa"
        assert (succeeded["amount_minor"], succeeded["fee_minor"]) == (1000, 100)
