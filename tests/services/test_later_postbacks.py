"""What a session's postback URL hears after the payment: a native session's gets the
later events (here a refund) as JSON; a Cloud Payments V2 PostBackURL only the payment's
result as Invoice Cloud's form — its receivers parse those fields and a refund has none.
The tenant's webhook endpoints hear of the refund either way."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from billfold.core.db import transaction
from billfold.notifications import webhooks
from billfold.payments import refunds, sessions
from tests.conftest import Reference
from tests.services.conftest import Desk
from tests.services.test_payments import Till

ORIGIN = "https://erp.biller.example"
URL = f"{ORIGIN}/postbacks"


@pytest.fixture
def till(sessions: sessionmaker[Session], session: Session, make_scope: Any) -> Till:
    scope = make_scope(allowed_origins=[ORIGIN])
    return Till(sessions, session, scope, Desk(session, scope, Reference(session, scope)))


def postbacks(till: Till, payment_id: str) -> list[tuple[str, Any]]:
    """(content type, body) of each postback queued about the payment, oldest first."""
    with till.factory() as session:
        return [(d.content_type, d.body) for d in webhooks.list_deliveries(
            session, till.scope, about=("payment", payment_id), limit=100)
            if d.kind == "postback"]


def native_session(till: Till) -> sessions.Created:
    with transaction(till.session):
        return sessions.create_native(
            till.session, till.scope, invoices=[{"invoice_id": till.invoice(1000).id}],
            postback_url=URL)


@pytest.mark.parametrize("kind", ["native", "cloudpayments_v2"])
def test_a_refund_is_posted_back_to_native_sessions_only(till: Till, kind: str) -> None:
    created = native_session(till)
    token = created.token
    if kind == "cloudpayments_v2":
        with transaction(till.session):
            token = sessions.new_session(
                till.session, till.scope, kind=kind, currency="USD",
                lines=created.session.lines, payers=created.session.payers,
                postback_url=URL).token
    payment = till.pay(token)
    assert len(postbacks(till, payment.id)) == 1  # the result of the payment
    refunds.refund(till.factory, till.gateway, till.scope, payment_id=payment.id,
                 amount_minor=400)
    sent = postbacks(till, payment.id)
    assert till.events("payment.refunded") == 1
    if kind == "native":
        assert len(sent) == 2
        content_type, body = sent[1]
        assert content_type == "application/json"
        assert json.loads(body)["type"] == "payment.refunded"
    else:
        assert len(sent) == 1
        assert sent[0][0] == "application/x-www-form-urlencoded"
