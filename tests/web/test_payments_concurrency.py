"""Payments under real concurrency on PostgreSQL: one idempotency key, one nonce, one
session — exactly one charge, one payment, one ledger entry, whatever the stampede."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from billfold.core.db import transaction
from billfold.core.errors import BillfoldError
from billfold.invoicing import service as invoicing
from billfold.ledger.models import LedgerEntry
from billfold.payments import paying, sessions
from billfold.payments.gateways.base import CardDetails
from billfold.payments.gateways.test_models import TestGatewayCharge
from billfold.payments.models import Payment
from tests.conftest import customer_body, seed_reference
from tests.web.test_idempotency import fire_together, server_url  # noqa: F401

STAMPEDE = 50
ACTOR = "test"


def open_invoice(app: Any, scope: Any, account_id: str, amount: int) -> str:
    with app.state.sessions() as s, transaction(s):
        draft = invoicing.create_draft(s, scope, billing_account_id=account_id, lines=[
            {"description": "Widgets", "quantity": 1, "unit_amount_minor": amount}], actor=ACTOR)
        return invoicing.finalize(s, scope, invoice_id=draft.id, actor=ACTOR).id


def count(app: Any, statement: Any) -> int:
    with app.state.sessions() as s:
        return int(s.scalar(statement) or 0)


def new_session(app: Any, scope: Any, invoice_id: str) -> str:
    with app.state.sessions() as s, transaction(s):
        return sessions.create_native(s, scope, invoices=[{"invoice_id": invoice_id}]).token


def pay(app: Any, scope: Any, token: str, nonce: str, amount: int) -> Any:
    return paying.pay(app.state.sessions, app.state.gateways(scope), token, paying.Submission(
        nonce=nonce, amounts={"1": amount}, method="card",
        details=CardDetails("4242424242424242", 12, 2030, "123", "Ada")))


@pytest.fixture
def payer(client: Any, app: Any) -> Any:
    ids = seed_reference(client)
    customer = client.post("/v1/customers", json=customer_body(ids, name="Stampede Ltd")).json()
    client.account_id = customer["default_billing_account_id"]
    return client


def charges(app: Any, scope: Any) -> int:
    return count(app, select(func.count()).select_from(TestGatewayCharge).where(
        TestGatewayCharge.tenant_id == scope.tenant_id))


@pytest.mark.postgres_only
class TestOneIdempotencyKey:
    def test_fifty_identical_payment_posts_charge_once(self, payer: Any, app: Any,
                                                        server_url: str) -> None:  # noqa: F811
        scope = payer.scope
        first = pay(app, scope, new_session(app, scope, open_invoice(app, scope,
                                                                     payer.account_id, 1000)),
                    "first", 1000)
        invoice_id = open_invoice(app, scope, payer.account_id, 2500)
        before = charges(app, scope)
        headers = {"Authorization": f"Bearer {payer.secret}", "Idempotency-Key": "stampede"}
        body = {"billing_account_id": payer.account_id, "amount_minor": 2500, "method": "card",
                "instrument_token": first.instrument_token, "invoice_ids": [invoice_id]}
        responses = fire_together([("POST", f"{server_url}/v1/payments", body, headers)]
                                  * STAMPEDE)
        assert {r.status_code for r in responses} <= {201, 409}, [r.text for r in responses]
        made = {r.json()["id"] for r in responses if r.status_code == 201}
        assert len(made) == 1
        assert charges(app, scope) == before + 1
        assert count(app, select(func.count()).select_from(Payment).where(
            Payment.tenant_id == scope.tenant_id)) == 2
        assert count(app, select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.tenant_id == scope.tenant_id, LedgerEntry.source_type == "payment",
            LedgerEntry.source_id == made.pop())) == 1
        assert payer.get(f"/v1/invoices/{invoice_id}").json()["status"] == "paid"


@pytest.mark.postgres_only
class TestOnePaymentPage:
    def run_together(self, app: Any, scope: Any, token: str, nonces: list[str]) -> list[Any]:
        barrier = threading.Barrier(len(nonces))

        def one(nonce: str) -> Any:
            barrier.wait()
            try:
                return pay(app, scope, token, nonce, 1000)
            except BillfoldError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=len(nonces)) as pool:
            return list(pool.map(one, nonces))

    def test_fifty_submissions_of_one_form_charge_once(self, payer: Any, app: Any) -> None:
        scope = payer.scope
        token = new_session(app, scope, open_invoice(app, scope, payer.account_id, 1000))
        before = charges(app, scope)
        results = self.run_together(app, scope, token, ["same"] * STAMPEDE)
        payments = {r.id for r in results if isinstance(r, Payment)}
        assert len(payments) == 1
        assert all(isinstance(r, Payment) or r.code == "pay_session_busy" for r in results)
        assert charges(app, scope) == before + 1

    def test_fifty_different_submissions_of_one_session_charge_once(self, payer: Any, app: Any
                                                                     ) -> None:
        scope = payer.scope
        token = new_session(app, scope, open_invoice(app, scope, payer.account_id, 1000))
        before = charges(app, scope)
        results = self.run_together(app, scope, token, [f"n{i}" for i in range(STAMPEDE)])
        succeeded = [r for r in results if isinstance(r, Payment) and r.status == "succeeded"]
        assert len(succeeded) == 1
        assert charges(app, scope) == before + 1
        assert count(app, select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.tenant_id == scope.tenant_id, LedgerEntry.source_type == "payment")) == 1
