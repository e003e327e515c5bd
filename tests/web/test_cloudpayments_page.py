"""What the hosted page does with a Cloud Payments V2 session's options: the account
number it shows (DisplayAccountNumber), invoices the payer leaves out (AllowRemove), the
methods it takes (AllowCCPayment/AllowACHPayment), the invoice PDFs it offers
(AllowViewStatement), and the receipt's date."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy.orm import Session, sessionmaker

from billfold.core import clock
from billfold.core.db import transaction
from billfold.core.filestore import FileStore
from billfold.invoicing import delivery
from billfold.invoicing.models import Invoice
from billfold.payments import sessions as pay_sessions
from billfold.payments.models import PaySession
from tests.conftest import seed_reference
from tests.web.helpers import list_ids
from tests.web.test_cloudpayments_records import SHOP, create, request_body
from tests.web.test_pay_page import BANK, CARD, form_to, post
from tests.web.test_payments_api import open_invoice

PDF = b"%PDF-1.7 the invoice as rendered"


class Payer:
    """A biller's API client and a payer's browser (no API key) on the same tenant."""

    def __init__(self, make_client: Any) -> None:
        self.api = make_client(allowed_origins=[SHOP])
        self.api.ids = seed_reference(self.api)
        self.browser = make_client(self.api.scope)
        del self.browser.headers["Authorization"]

    def session(self, *, records: bool = True, top: dict[str, Any] | None = None,
                options: dict[str, Any] | None = None, **customer: Any) -> str:
        """A Cloud Payments V2 session: ``customer`` over its one customer's fields,
        ``top`` over the request's, ``options`` over its InvoiceOptions. Its page's path."""
        body = request_body(records=records, **customer)
        body.update(top or {})
        body["PageResultOptions"]["InvoiceOptions"].update(options or {})
        return str(urlsplit(create(self.api, body)["CloudPaymentURL"]).path)

    def page(self, path: str) -> str:
        page = self.browser.get(path)
        assert page.status_code == 200, page.text
        return str(page.text)

    def review(self, path: str, fields: list[tuple[str, str]]) -> Any:
        return post(self.browser, f"{path}/review", fields)

    def invoices(self) -> dict[str, str]:
        return {i["number"]: i["status"] for i in self.api.get(
            "/v1/invoices", params={"limit": 100}).json()["data"]}

    def payments(self) -> int:
        return len(list_ids(self.api, "/v1/payments"))


@pytest.fixture
def payer(make_client: Any) -> Payer:
    return Payer(make_client)


THREE = [{"InvoiceNumber": f"INV-{n}", "BalanceDue": f"{n}0.00"} for n in (1, 2, 3)]


class TestRemovingInvoices:
    def test_the_payer_leaves_one_out_and_pays_the_rest(self, payer: Payer) -> None:
        path = payer.session(Invoices=THREE)
        choose = form_to(payer.page(path), "/review")
        assert [v for k, v in choose.fields if k == "include"] == ["1", "2", "3"]
        fields = [(k, v) for k, v in choose.fields if (k, v) != ("include", "2")]
        reviewed = payer.review(path, [*fields, ("method", "card")])
        assert reviewed.status_code == 200, reviewed.text
        assert "Pay $40.00" in reviewed.text
        assert "INV-2" not in reviewed.text
        paid = post(payer.browser, path, form_to(reviewed.text, path).filled(**CARD))
        assert paid.status_code == 200, paid.text
        assert "INV-1" in paid.text
        assert "INV-3" in paid.text
        assert "INV-2" not in paid.text
        assert payer.invoices() == {"INV-1": "paid", "INV-2": "open", "INV-3": "paid"}

    def test_without_allow_remove_a_forged_omission_is_refused(self, payer: Payer) -> None:
        path = payer.session(Invoices=THREE, options={"AllowRemove": False})
        choose = form_to(payer.page(path), "/review")
        forged = [(k, v) for k, v in choose.fields if (k, v) != ("include", "2")]
        refused = payer.review(path, forged)
        assert refused.status_code == 422
        assert "Every invoice on this page must be paid" in refused.text
        # And straight to the Pay form: a whole review's form, less one invoice.
        reviewed = payer.review(path, choose.fields)
        assert reviewed.status_code == 200, reviewed.text
        pay_fields = [(k, v) for k, v in form_to(reviewed.text, path).filled(**CARD)
                      if (k, v) != ("include", "2")]
        answer = post(payer.browser, path, pay_fields)
        assert answer.status_code == 422
        assert "Every invoice on this page must be paid" in answer.text
        assert payer.payments() == 0
        assert set(payer.invoices().values()) == {"open"}


class TestMethods:
    def test_a_card_only_session_refuses_a_bank_payment_posted_directly(
            self, payer: Payer) -> None:
        path = payer.session(top={"AllowACHPayment": False})
        html = payer.page(path)
        assert 'value="ach"' not in html
        choose = form_to(html, "/review")
        refused = payer.review(path, choose.filled(method="ach"))
        assert refused.status_code == 422
        assert "Choose a payment method" in refused.text
        reviewed = payer.review(path, choose.fields)
        assert reviewed.status_code == 200, reviewed.text
        answer = post(payer.browser, path,
                      form_to(reviewed.text, path).filled(method="ach", **BANK))
        assert answer.status_code == 422
        assert "Choose a payment method" in answer.text
        assert payer.payments() == 0
        assert payer.invoices() == {"INV-TEST-001": "open"}


class TestAccountShown:
    @pytest.mark.parametrize("records", [True, False])
    def test_the_display_account_number_everywhere_the_account_is_shown(
            self, payer: Payer, records: bool) -> None:
        path = payer.session(records=records, DisplayAccountNumber="Water ••• 001")
        html = payer.page(path)
        assert "John S, account Water ••• 001" in html
        assert re.search(r"<td>Water ••• 001</td>", html)
        reviewed = payer.review(path, form_to(html, "/review").filled(method="card"))
        assert re.search(r"<td>Water ••• 001</td>", reviewed.text)
        receipt = post(payer.browser, path, form_to(reviewed.text, path).filled(**CARD))
        assert "Thank you for your payment" in receipt.text
        assert re.search(r"<td>Water ••• 001</td>", receipt.text)
        for text in (html, reviewed.text, receipt.text):
            assert "ACCT-TEST-001" not in text

    def test_on_the_accounts_open_invoices_too(self, payer: Payer) -> None:
        invoice = open_invoice(payer.api, 1500)
        number = payer.api.get(f"/v1/billing_accounts/{invoice['billing_account_id']}"
                               ).json()["number"]
        path = payer.session(AccountNumber=number, DisplayAccountNumber="Shown-7", Invoices=[])
        html = payer.page(path)
        assert invoice["number"] in html
        assert re.search(r"<td>Shown-7</td>", html)
        assert number not in html

    def test_without_one_the_account_number_is_shown(self, payer: Payer) -> None:
        html = payer.page(payer.session())
        assert re.search(r"<td>ACCT-TEST-001</td>", html)


class TestReceipt:
    def test_shows_the_payment_date(self, payer: Payer) -> None:
        frozen = clock.FrozenClock(datetime(2031, 3, 14, 12, tzinfo=UTC))
        previous = clock.set_clock(frozen)
        try:
            path = payer.session()
            reviewed = payer.review(path, form_to(payer.page(path), "/review").fields)
            receipt = post(payer.browser, path, form_to(reviewed.text, path).filled(**CARD))
            frozen.advance(timedelta(days=3))
            again = payer.browser.get(f"{path}/receipt")
        finally:
            clock.set_clock(previous)
        for page in (receipt, again):
            assert "<dt>Date</dt><dd>Mar 14, 2031</dd>" in page.text


# -- AllowViewStatement ---------------------------------------------------------------------


class Statements:
    """A tenant's invoice with its rendered PDF in the file store, and a Cloud Payments V2
    session over it and over one invoice the request creates (which has no PDF)."""

    def __init__(self, payer: Payer, app: Any, sessions: sessionmaker[Session]) -> None:
        self.payer, self.sessions = payer, sessions
        self.invoice = open_invoice(payer.api, 2500)
        self.account = payer.api.get(
            f"/v1/billing_accounts/{self.invoice['billing_account_id']}").json()["number"]
        key = delivery.pdf_key(payer.api.scope, self.invoice["id"])
        FileStore(app.state.settings.data_dir).put(key, PDF)
        with sessions() as s, transaction(s):
            s.get_one(Invoice, self.invoice["id"]).pdf_key = key

    def session(self, allow: bool) -> str:
        return self.payer.session(AccountNumber=self.account, options={
            "AllowViewStatement": allow}, Invoices=[
                {"InvoiceNumber": self.invoice["number"]},
                {"InvoiceNumber": "FROM-ELSEWHERE-1", "BalanceDue": "3.00"}])


@pytest.fixture
def statements(payer: Payer, app: Any, sessions: sessionmaker[Session]) -> Statements:
    return Statements(payer, app, sessions)


def links(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<a href="([^"]+/pdf)">([^<]+)</a>', html)


class TestViewStatement:
    def test_links_each_rendered_invoice_to_its_pdf(self, statements: Statements) -> None:
        path = statements.session(allow=True)
        html = statements.payer.page(path)
        number = statements.invoice["number"]
        assert links(html) == [(f"{path}/invoices/1/pdf", f"View invoice {number} (PDF)")]
        assert '<th scope="col">Invoice PDF</th>' in html
        response = statements.payer.browser.get(f"{path}/invoices/1/pdf")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/pdf"
        assert response.headers["content-disposition"] == f'attachment; filename="{number}.pdf"'
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert response.headers["cache-control"] == "no-store"
        assert response.content == PDF

    def test_an_invoice_without_a_pdf_has_no_link(self, statements: Statements) -> None:
        path = statements.session(allow=True)
        response = statements.payer.browser.get(f"{path}/invoices/2/pdf")
        assert response.status_code == 404
        assert "Payment page not found" in response.text

    def test_nothing_is_offered_without_the_option(self, statements: Statements) -> None:
        path = statements.session(allow=False)
        html = statements.payer.page(path)
        assert links(html) == []
        assert "Invoice PDF" not in html
        assert statements.payer.browser.get(f"{path}/invoices/1/pdf").status_code == 404

    def test_only_the_sessions_own_lines_are_served(self, statements: Statements,
                                                    make_client: Any, app: Any) -> None:
        path = statements.session(allow=True)
        other = Statements(Payer(make_client), app, statements.sessions)
        for wrong in (other.invoice["id"], statements.invoice["id"], "3", "..", "1%2F..%2F2"):
            response = statements.payer.browser.get(f"{path}/invoices/{wrong}/pdf")
            assert response.status_code == 404, wrong
            assert response.content != PDF

    def test_a_line_naming_another_tenants_invoice_is_not_served(
            self, statements: Statements, make_client: Any, app: Any) -> None:
        """However a stored line came to name another tenant's invoice, its PDF stays
        that tenant's."""
        path = statements.session(allow=True)
        other = Statements(Payer(make_client), app, statements.sessions)
        token = path.rsplit("/", 1)[-1]
        with statements.sessions() as s, transaction(s):
            row = pay_sessions.find(s, token)
            lines = [dict(line) for line in row.lines]
            lines[0]["invoice_id"] = other.invoice["id"]
            s.get_one(PaySession, row.id).lines = lines
        assert statements.payer.browser.get(f"{path}/invoices/1/pdf").status_code == 404
        assert links(statements.payer.page(path)) == []

    def test_not_once_the_session_has_expired_or_been_paid(self, statements: Statements
                                                           ) -> None:
        path = statements.session(allow=True)
        previous = clock.set_clock(clock.FrozenClock(datetime.now(UTC) + timedelta(hours=2)))
        try:
            expired = statements.payer.browser.get(f"{path}/invoices/1/pdf")
        finally:
            clock.set_clock(previous)
        assert expired.status_code == 410
        # Paid leaving the invoice with the PDF out: it is still open, the page is not.
        html = statements.payer.page(path)
        fields = [(k, v) for k, v in form_to(html, "/review").fields if (k, v) != ("include", "1")]
        reviewed = statements.payer.review(path, fields)
        paid = post(statements.payer.browser, path, form_to(reviewed.text, path).filled(**CARD))
        assert "Thank you for your payment" in paid.text
        assert statements.payer.invoices()[statements.invoice["number"]] == "open"
        assert statements.payer.browser.get(f"{path}/invoices/1/pdf").status_code == 404

    def test_a_pdf_missing_from_the_store_says_so(self, statements: Statements,
                                                  app: Any) -> None:
        path = statements.session(allow=True)
        FileStore(app.state.settings.data_dir).path(
            delivery.pdf_key(statements.payer.api.scope, statements.invoice["id"])).unlink()
        response = statements.payer.browser.get(f"{path}/invoices/1/pdf")
        assert response.status_code == 404
        assert "This invoice&#39;s PDF is not available" in response.text
        assert f'href="{path}">Back to the payment page</a>' in response.text
