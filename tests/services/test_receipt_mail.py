"""The payer's payment confirmation, all the way to a real SMTP server (aiosmtpd): paying a
session queues the receipt job, and the worker's own handlers write the email and send it.
An account with email confirmations off gets none.

Every test has a database of its own: a worker claims every due job, so one test's mail
would arrive in another's mailbox."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from billfold import cli
from billfold.core import jobs
from billfold.core.config import Settings
from billfold.core.db import transaction
from billfold.core.scope import Scope
from billfold.customers import service as customers
from billfold.customers.models import BillingAccount
from billfold.invoicing import service as invoicing
from billfold.invoicing.models import Invoice
from billfold.payments import paying
from billfold.payments import sessions as pay_sessions
from billfold.payments.gateways.base import CardDetails
from billfold.payments.gateways.test import TestGateway
from billfold.payments.models import Payment
from tests.conftest import Reference
from tests.services.conftest import sessions_on_a_fresh_database
from tests.services.test_outbox import Mailbox, smtp_server, unused_port

PAYER = "billing@acme.example"  # the customer's primary email (tests.conftest.Reference)
SENDER = "billing@biller.example"


sessions = sessions_on_a_fresh_database()


@pytest.fixture
def port() -> int:
    return unused_port()


@pytest.fixture
def mailbox(port: int) -> Iterator[Mailbox]:
    with smtp_server(port) as started:
        yield started


@pytest.fixture
def settings(tmp_path: Path, port: int) -> Settings:
    return Settings(data_dir=tmp_path / "var", smtp_url=f"smtp://127.0.0.1:{port}",
                    mail_from=f"Test Biller <{SENDER}>")


class Shop:
    """One tenant's customer with invoices, paid by card on a pay session."""

    def __init__(self, sessions: sessionmaker[Session], scope: Scope) -> None:
        self.sessions, self.scope = sessions, scope
        with sessions() as s:
            ref = Reference(s, scope)
            with transaction(s):
                _, account = customers.create_customer(s, scope, data=ref.customer(),
                                                       actor="test")
        self.account_id = account.id

    def confirmations(self, on: bool) -> None:
        with self.sessions() as s, transaction(s):
            customers.update_billing_account(s, self.scope, account_id=self.account_id,
                                             changes={"email_confirmations": on}, actor="test")
        with self.sessions() as s:
            account = s.get(BillingAccount, self.account_id)
            assert account is not None
            assert account.email_confirmations is on

    def invoice(self, amount_minor: int) -> Invoice:
        with self.sessions() as s, transaction(s):
            draft = invoicing.create_draft(
                s, self.scope, billing_account_id=self.account_id, actor="test",
                lines=[{"description": "Bricks", "quantity": 1, "unit_amount_minor": amount_minor}])
            return invoicing.finalize(s, self.scope, invoice_id=draft.id, actor="test")

    def pay(self, *invoices: Invoice, card_fee_minor: int) -> Payment:
        with self.sessions() as s, transaction(s):
            token = pay_sessions.create_native(s, self.scope, invoices=[
                {"invoice_id": i.id, "card_fee_minor": card_fee_minor} for i in invoices]).token
        with self.sessions() as s:
            amounts = {line["key"]: line["balance_due_minor"]
                       for line in pay_sessions.current_lines(s, pay_sessions.find(s, token))}
        gateway = TestGateway(self.sessions, fingerprint_key=b"test key")
        return paying.pay(self.sessions, gateway, token, paying.Submission(
            nonce=secrets.token_hex(8), amounts=amounts, method="card",
            details=CardDetails("4242424242424242", 12, 2039, "123", "Ada Payer")))


@pytest.fixture
def shop(sessions: sessionmaker[Session], scope: Scope) -> Shop:
    return Shop(sessions, scope)


def work(sessions: sessionmaker[Session], settings: Settings) -> None:
    """What `billfold worker` does, with its own handlers, until nothing is due."""
    handlers = cli._job_handlers(settings)
    while jobs.run_pending(sessions, handlers, worker_id="test-worker"):
        pass


def receipts(mailbox: Mailbox) -> list[EmailMessage]:
    return [m for m in mailbox.emails() if "payment received" in str(m["Subject"])]


class TestPaymentConfirmationEmail:
    def test_the_payer_receives_the_receipt_over_smtp(
            self, shop: Shop, sessions: sessionmaker[Session], settings: Settings,
            mailbox: Mailbox) -> None:
        shop.confirmations(True)
        bricks, mortar = shop.invoice(1000), shop.invoice(2500)
        payment = shop.pay(bricks, mortar, card_fee_minor=100)
        assert (payment.status, payment.amount_minor, payment.fee_minor) == ("succeeded", 3500, 200)

        work(sessions, settings)

        [mail] = receipts(mailbox)
        [envelope] = [e for e in mailbox.envelopes if e.rcpt_tos == [PAYER]
                      and b"payment received" in e.original_content]
        assert envelope.mail_from == SENDER
        assert mail["To"] == PAYER
        assert mail["Subject"] == f"Test Biller: payment received, receipt {payment.receipt_number}"
        text = mail.get_content()
        assert f"Receipt number: {payment.receipt_number}" in text
        assert f"  {bricks.number}: $10.00" in text
        assert f"  {mortar.number}: $25.00" in text
        assert "  Service fee: $2.00" in text
        assert "Total: $37.00" in text
        assert "Visa •••• 4242" in text
        assert "4242424242424242" not in text

        work(sessions, settings)
        assert len(receipts(mailbox)) == 1  # once

    def test_no_email_when_the_account_has_confirmations_off(
            self, shop: Shop, sessions: sessionmaker[Session], settings: Settings,
            mailbox: Mailbox) -> None:
        shop.confirmations(False)
        payment = shop.pay(shop.invoice(1000), card_fee_minor=100)
        assert payment.status == "succeeded"

        work(sessions, settings)

        assert receipts(mailbox) == []
        assert [e for e in mailbox.envelopes if payment.receipt_number.encode()
                in e.original_content] == []


def test_the_smtp_server_is_reachable_with_these_settings(
        sessions: sessionmaker[Session], scope: Scope, settings: Settings,
        mailbox: Mailbox) -> None:
    """The 'no email' test above means something only if mail would get through."""
    from billfold.notifications import outbox

    with sessions() as s, transaction(s):
        outbox.enqueue_email(s, scope, to=[PAYER], subject="ping", text="ping")
    work(sessions, settings)

    assert [m["Subject"] for m in mailbox.emails()] == ["ping"]
