"""The payment page in a real browser: Debian's Chromium, driven by Playwright, against
Billfold served by uvicorn on this machine. A payer pays two invoices by card (one of
them in part), another session by bank account, and has a card declined; each payment is
then followed to its receipt, the signed postback a local receiver gets, the invoices and
the ledger.

Reads go through sessions of their own that end at once: on SQLite a transaction left
open would hold the writer's lock the server needs to take the payment."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    Locator,
    Page,
    expect,
)
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from billfold.core import jobs
from billfold.core.db import transaction
from billfold.core.scope import Scope
from billfold.customers import service as customers
from billfold.invoicing import service as invoicing
from billfold.invoicing.models import Invoice
from billfold.ledger import service as ledger
from billfold.ledger.models import LedgerAccount, LedgerEntry
from billfold.ledger.verify import verify
from billfold.notifications import webhooks
from billfold.payments import sessions as pay_sessions
from billfold.payments.models import Payment, PaySession
from tests.conftest import Reference
from tests.web.browser import Served, checked_page, chromium, needs_chromium, served

BILLER = "Harbour Bricks"
PAYER = "Ada Lovelace"
VISA = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0002"

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with checked_page(browser) as opened:
        yield opened


# -- Billfold served over HTTP, a postback receiver, a browser ----------------------------


@pytest.fixture(scope="module")
def server(database_url: str, engine: Engine, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:
    """Billfold on the suite's database, served by uvicorn in a thread of this process."""
    with served(database_url, engine, Path(tmp_path_factory.mktemp("browser_data"))) as found:
        yield found


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


class Receiver:
    """An HTTP server on 127.0.0.1 that answers every POST with 200 and keeps it."""

    def __init__(self) -> None:
        self._posts: list[Post] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver._posts.append(Post(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def posts(self, path: str) -> list[Post]:
        with self._lock:
            return [p for p in self._posts if p.path == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    thread = threading.Thread(target=found.httpd.serve_forever, daemon=True)
    thread.start()
    yield found
    found.httpd.shutdown()
    found.httpd.server_close()
    thread.join(timeout=10)


# -- the biller's side --------------------------------------------------------------------


class Biller:
    """A fresh tenant whose pages may return to Billfold and post back to the receiver,
    with one customer account and the postback secret in hand."""

    def __init__(self, sessions: sessionmaker[Session], scope: Scope, server: Served,
                 receiver: Receiver) -> None:
        self.sessions, self.scope, self.server, self.receiver = sessions, scope, server, receiver
        self.postback_url = f"{receiver.origin}/postbacks/{scope.tenant_id}"
        with sessions() as s:
            ref = Reference(s, scope)
            with transaction(s):
                _, self.account = customers.create_customer(
                    s, scope, data=ref.customer("Lovelace Analytical"), actor="test")
                self.secret = webhooks.rotate_postback_secret(s, scope)

    def invoice(self, amount_minor: int) -> Invoice:
        with self.sessions() as s, transaction(s):
            draft = invoicing.create_draft(
                s, self.scope, billing_account_id=self.account.id, actor="test",
                lines=[{"description": "Bricks", "quantity": 1, "unit_amount_minor": amount_minor}])
            return invoicing.finalize(s, self.scope, invoice_id=draft.id, actor="test")

    def pay_link(self, *lines: dict[str, Any], **options: Any) -> str:
        """The URL of a new pay session over ``lines`` that posts back to the receiver."""
        with self.sessions() as s, transaction(s):
            created = pay_sessions.create_native(s, self.scope, invoices=list(lines),
                                                 postback_url=self.postback_url, **options)
        return created.url(self.server.origin)

    # -- what came of it (each read in a session that ends at once) ---------------------
    def session_of(self, link: str) -> PaySession:
        with self.sessions() as s:
            return pay_sessions.find(s, link.rsplit("/", 1)[1])

    def payments_of(self, link: str) -> list[Payment]:
        row = self.session_of(link)
        with self.sessions() as s:
            return list(s.scalars(select(Payment).where(Payment.pay_session_id == row.id)
                                  .order_by(Payment.created_at, Payment.id)))

    def reread(self, invoice: Invoice) -> Invoice:
        with self.sessions() as s:
            found = s.get(Invoice, invoice.id)
            assert found is not None
            return found

    def receivable(self) -> dict[str, int]:
        with self.sessions() as s:
            return ledger.billing_account_balances(s, self.scope, self.account.id)["receivable"]

    def open_balance(self) -> int:
        with self.sessions() as s:
            return sum(i.amount_due_minor for i in s.scalars(select(Invoice).where(
                Invoice.tenant_id == self.scope.tenant_id,
                Invoice.billing_account_id == self.account.id)))

    def ledger_problems(self) -> list[str]:
        """What ``verify`` finds wrong with this tenant's entries and accounts."""
        with self.sessions() as s:
            mine = set(s.scalars(select(LedgerEntry.id).where(
                LedgerEntry.tenant_id == self.scope.tenant_id)))
            mine |= set(s.scalars(select(LedgerAccount.id).where(
                LedgerAccount.tenant_id == self.scope.tenant_id)))
            assert mine, "the tenant has no ledger to verify"
            return [str(p) for p in verify(s) if p.object_id in mine]

    def deliver(self) -> list[Post]:
        """Run the worker's webhook jobs until none is due; the postbacks received."""
        handlers = webhooks.handlers(self.server.settings)
        while jobs.run_pending(self.sessions, handlers, worker_id="browser-test",
                               kinds=[webhooks.DELIVER_WEBHOOK]):
            pass
        return self.receiver.posts(self.postback_url.removeprefix(self.receiver.origin))

    def verified(self, post: Post) -> dict[str, Any]:
        """The postback's JSON, once its Standard Webhooks signature checks out."""
        body: dict[str, Any] = Webhook(self.secret).verify(post.body, post.headers)
        return body


@pytest.fixture
def biller(make_scope: Any, sessions: sessionmaker[Session], server: Served,
           receiver: Receiver) -> Biller:
    scope = make_scope(name=BILLER, allowed_origins=[receiver.origin, server.origin],
                       allow_private_postback_targets=True)
    return Biller(sessions, scope, server, receiver)


# -- reading the page ----------------------------------------------------------------------


def cells(page: Page, rows: str) -> list[list[str]]:
    """The text of each cell of each row ``rows`` selects, once the page is parsed."""
    page.wait_for_load_state("domcontentloaded")
    return [[text.strip() for text in row.locator("th, td").all_inner_texts()]
            for row in page.locator(rows).all()]


def facts(page: Page) -> dict[str, str]:
    """The receipt's facts: its terms and what each says."""
    page.wait_for_load_state("domcontentloaded")
    terms = page.locator("dl.receipt-facts dt").all_inner_texts()
    values = page.locator("dl.receipt-facts dd").all_inner_texts()
    return dict(zip(terms, values, strict=True))


def fill_card(page: Page, number: str) -> None:
    page.get_by_label("Name on card", exact=True).fill(PAYER)
    page.get_by_label("Card number", exact=True).fill(number)
    page.get_by_label("Expiry (MM/YY)", exact=True).fill("12/39")
    page.get_by_label("CVC", exact=True).fill("123")


def heading(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


# -- tests ---------------------------------------------------------------------------------


class TestPayingTwoInvoicesByCard:
    def test_pays_one_in_full_and_one_in_part_and_the_biller_hears_of_it(
            self, page: Page, biller: Biller) -> None:
        first, second = biller.invoice(3000), biller.invoice(5000)
        return_url = f"{biller.server.origin}/docs"
        link = biller.pay_link(
            {"invoice_id": first.id, "card_fee_minor": 100},
            {"invoice_id": second.id, "card_fee_minor": 100, "allow_partial": True,
             "minimum_amount_minor": 1000},
            return_url=return_url)
        account = biller.account.number

        # Step 1: both invoices kept, part of the second, by card.
        page.goto(link)
        expect(heading(page)).to_have_text(f"Pay {BILLER}")
        expect(page.get_by_label(str(first.number), exact=True)).to_be_checked()
        expect(page.get_by_label(str(second.number), exact=True)).to_be_checked()
        part = page.get_by_label(f"Amount for {second.number}", exact=True)
        expect(part).to_have_value("50.00")
        part.fill("20.00")
        page.get_by_label("Card", exact=True).check()
        page.get_by_role("button", name="Review payment").click()

        # Step 2: the total with the fees, on the button too.
        expect(heading(page)).to_have_text("Review your payment")
        assert cells(page, "table.summary tbody tr") == [
            [first.number, account, "$30.00"], [second.number, account, "$20.00"]]
        assert cells(page, "table.summary tfoot tr") == [
            ["Amount", "$50.00"], ["Service fee", "$2.00"], ["Total", "$52.00"]]
        pay = page.get_by_role("button", name="Pay $52.00", exact=True)
        expect(pay).to_be_visible()
        fill_card(page, VISA)
        pay.click()

        # The receipt.
        expect(page).to_have_url(f"{link}/receipt")
        expect(heading(page)).to_have_text("Thank you for your payment")
        [payment] = biller.payments_of(link)
        assert (payment.status, payment.amount_minor, payment.fee_minor) == ("succeeded", 5000, 200)
        receipt = facts(page)
        assert receipt["Receipt number"] == payment.receipt_number
        assert receipt["Receipt number"].startswith("RCT-")
        assert receipt["Paid to"] == BILLER
        assert receipt["Payment method"] == "Visa •••• 4242"
        assert cells(page, "table.summary tbody tr") == [
            [first.number, account, "$30.00"], [second.number, account, "$20.00"]]
        assert cells(page, "table.summary tfoot tr") == [
            ["Amount", "$50.00"], ["Service fee", "$2.00"], ["Total", "$52.00"]]
        expect(page.get_by_text("Pending:")).to_have_count(0)
        expect(page.get_by_role("link", name=f"Return to {BILLER}", exact=True)
               ).to_have_attribute("href", return_url)

        # The invoices and the ledger.
        assert (biller.reread(first).status, biller.reread(first).amount_due_minor) == ("paid", 0)
        assert (biller.reread(second).status, biller.reread(second).amount_due_minor) == \
            ("partially_paid", 3000)
        assert biller.receivable() == {"USD": biller.open_balance()} == {"USD": 3000}
        assert biller.ledger_problems() == []

        # One postback, signed with the tenant's postback secret.
        [postback] = biller.deliver()
        assert postback.headers["content-type"] == "application/json"
        assert postback.headers["webhook-id"]
        body = biller.verified(postback)
        assert body["type"] == "payment.succeeded"
        data = body["data"]
        assert (data["id"], data["status"], data["method"]) == (payment.id, "succeeded", "card")
        assert (data["amount_minor"], data["fee_minor"], data["currency"]) == (5000, 200, "USD")
        assert (data["receipt_number"], data["last4"]) == (payment.receipt_number, "4242")
        assert data["pay_session_id"] == biller.session_of(link).id
        assert data["invoices"] == [
            {"invoice_id": first.id, "invoice_number": first.number, "amount_minor": 3000},
            {"invoice_id": second.id, "invoice_number": second.number, "amount_minor": 2000}]
        assert biller.deliver() == [postback]

    def test_a_postback_altered_on_the_way_fails_its_signature(
            self, page: Page, biller: Biller) -> None:
        invoice = biller.invoice(1500)
        link = biller.pay_link({"invoice_id": invoice.id})
        page.goto(link)
        page.get_by_role("button", name="Review payment").click()
        fill_card(page, VISA)
        page.get_by_role("button", name="Pay $15.00", exact=True).click()
        expect(heading(page)).to_have_text("Thank you for your payment")
        [postback] = biller.deliver()
        assert biller.verified(postback)["data"]["amount_minor"] == 1500
        altered = json.loads(postback.body)
        altered["data"]["amount_minor"] = 1
        with pytest.raises(WebhookVerificationError):
            Webhook(biller.secret).verify(json.dumps(altered), postback.headers)


class TestPayingByBankAccount:
    def test_the_receipt_says_pending_and_the_invoice_is_paid(
            self, page: Page, biller: Biller) -> None:
        invoice = biller.invoice(4000)
        link = biller.pay_link({"invoice_id": invoice.id, "card_fee_minor": 100,
                                "ach_fee_minor": 50}, allow_ach=True)

        page.goto(link)
        page.get_by_label("Bank account", exact=True).check()
        page.get_by_role("button", name="Review payment").click()
        expect(heading(page)).to_have_text("Review your payment")
        assert cells(page, "table.summary tfoot tr") == [
            ["Amount", "$40.00"], ["Service fee", "$0.50"], ["Total", "$40.50"]]
        page.get_by_label("Account holder", exact=True).fill(PAYER)
        page.get_by_label("Routing number", exact=True).fill("110000000")
        page.get_by_label("Account number", exact=True).fill("000123456789")
        page.get_by_label("Account type", exact=True).select_option("checking")
        page.get_by_role("button", name="Pay $40.50", exact=True).click()

        expect(page).to_have_url(f"{link}/receipt")
        expect(heading(page)).to_have_text("Thank you for your payment")
        expect(page.get_by_text("Pending: bank payments settle in a few business days",
                                exact=True)).to_be_visible()
        [payment] = biller.payments_of(link)
        assert (payment.status, payment.method, payment.amount_minor, payment.fee_minor) == \
            ("pending", "ach", 4000, 50)
        receipt = facts(page)
        assert receipt["Receipt number"] == payment.receipt_number
        assert receipt["Payment method"] == "Bank account •••• 6789"
        assert cells(page, "table.summary tbody tr") == [
            [invoice.number, biller.account.number, "$40.00"]]
        assert cells(page, "table.summary tfoot tr")[-1] == ["Total", "$40.50"]

        assert biller.reread(invoice).status == "paid"
        assert biller.receivable() == {"USD": biller.open_balance()} == {"USD": 0}
        assert biller.ledger_problems() == []

        [postback] = biller.deliver()
        body = biller.verified(postback)
        assert body["type"] == "payment.succeeded"
        data = body["data"]
        assert (data["id"], data["status"], data["method"]) == (payment.id, "pending", "ach")
        assert (data["amount_minor"], data["fee_minor"]) == (4000, 50)
        assert (data["last4"], data["routing_number"], data["account_type"]) == \
            ("6789", "110000000", "checking")
        assert data["settles_on"] is not None
        assert data["invoices"] == [{"invoice_id": invoice.id, "invoice_number": invoice.number,
                                     "amount_minor": 4000}]


class TestADeclinedCard:
    def test_shows_the_reason_and_the_form_again_which_then_pays(
            self, page: Page, biller: Biller) -> None:
        invoice = biller.invoice(2500)
        link = biller.pay_link({"invoice_id": invoice.id, "card_fee_minor": 100})

        page.goto(link)
        page.get_by_role("button", name="Review payment").click()
        fill_card(page, DECLINED)
        page.get_by_role("button", name="Pay $26.00", exact=True).click()

        expect(page.get_by_role("heading", name="Your payment did not go through")).to_be_visible()
        expect(page.locator(".failure-reason")).to_have_text("Your card was declined.")
        expect(page.get_by_label("Name on card", exact=True)).to_have_value(PAYER)
        expect(page.get_by_label("Card number", exact=True)).to_have_value("")
        pay = page.get_by_role("button", name="Pay $26.00", exact=True)
        expect(pay).to_be_visible()
        [failed] = biller.payments_of(link)
        assert (failed.status, failed.failure_code) == ("failed", "card_declined")
        assert biller.session_of(link).status == "open"
        assert biller.reread(invoice).status == "open"

        fill_card(page, VISA)
        pay.click()
        expect(heading(page)).to_have_text("Thank you for your payment")
        assert facts(page)["Payment method"] == "Visa •••• 4242"
        assert [p.status for p in biller.payments_of(link)] == ["failed", "succeeded"]
        assert biller.reread(invoice).status == "paid"
        assert [biller.verified(p)["type"] for p in biller.deliver()] == \
            ["payment.failed", "payment.succeeded"]
