"""The hosted payment page, driven through HTTP the way a browser without JavaScript
drives it: read the form out of the page, fill it in, post it."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from billfold.core import clock
from billfold.core.config import Settings
from billfold.core.db import transaction
from billfold.core.scope import Scope
from billfold.customers import service as customers
from billfold.customers import settings as settings_service
from billfold.invoicing import service as invoicing
from billfold.invoicing.models import Invoice
from billfold.payments import sessions as pay_sessions
from billfold.payments.models import Payment, PaySession
from tests.conftest import Reference

VISA = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0002"
TIMES_OUT = "4000 0000 0000 0119"
SHOP = "https://shop.example.com"
CARD = {"card_name": "Ada Lovelace", "card_number": VISA, "card_expiry": "12/39",
        "card_cvc": "123"}
BANK = {"bank_holder": "Ada Lovelace", "routing_number": "110000000",
        "account_number": "000123456789", "account_type": "checking"}


# -- reading forms out of pages ----------------------------------------------------------


@dataclass
class Form:
    action: str
    fields: list[tuple[str, str]] = field(default_factory=list)

    def filled(self, **values: str) -> list[tuple[str, str]]:
        """The fields as a browser sends them, with ``values`` typed over the named ones."""
        kept = [(k, v) for k, v in self.fields if k not in values]
        return kept + list(values.items())


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.inputs: list[dict[str, str | None]] = []
        self.labels: list[str] = []
        self._select: tuple[str, list[tuple[str, bool]]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append(Form(str(a.get("action"))))
        elif tag == "label":
            self.labels.append(str(a.get("for")))
        elif tag == "input":
            self._input(a)
        elif tag == "select":
            self.inputs.append(a)
            self._select = (str(a.get("name")), [])
        elif tag == "option" and self._select is not None:
            self._select[1].append((str(a.get("value")), "selected" in a))

    def _input(self, a: dict[str, str | None]) -> None:
        kind = a.get("type", "text")
        if kind != "hidden":
            self.inputs.append(a)
        if kind in ("checkbox", "radio") and "checked" not in a:
            return
        if a.get("name") and self.forms:
            self.forms[-1].fields.append((str(a["name"]), a.get("value") or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self._select is not None and self.forms:
            name, options = self._select
            chosen = next((v for v, selected in options if selected), options[0][0])
            self.forms[-1].fields.append((name, chosen))
            self._select = None


def post(client: Any, url: str, fields: list[tuple[str, str]],
         headers: dict[str, str] | None = None) -> Any:
    """Post ``fields`` in order, repeated names included, as a browser encodes a form."""
    return client.post(url, content=urlencode(fields), headers={
        "Content-Type": "application/x-www-form-urlencoded", **(headers or {})})


def read(html: str) -> _FormReader:
    reader = _FormReader()
    reader.feed(html)
    return reader


def form_to(html: str, action_end: str) -> Form:
    return next(f for f in read(html).forms if f.action.endswith(action_end))


# -- a biller with an invoice and a pay session ------------------------------------------


class Biller:
    """One tenant with a customer, a $20.00 invoice and pay sessions over it; the page is
    reached without the API key, as a payer would reach it."""

    def __init__(self, client: Any, sessions: sessionmaker[Session]) -> None:
        self.client, self.sessions = client, sessions
        self.scope: Scope = client.scope
        del client.headers["Authorization"]
        with sessions() as s:
            ref = Reference(s, self.scope)
            with transaction(s):
                _, self.account = customers.create_customer(s, self.scope, data=ref.customer(),
                                                            actor="test")
                draft = invoicing.create_draft(s, self.scope, billing_account_id=self.account.id,
                                               lines=[{"description": "Bricks", "quantity": 1,
                                                       "unit_amount_minor": 2000}], actor="test")
                invoice = invoicing.finalize(s, self.scope, invoice_id=draft.id, actor="test")
                self.invoice_id, self.invoice_number = invoice.id, str(invoice.number)

    def pay_session(self, *, view_mode: int = 0, **options: Any) -> str:
        line = {"invoice_id": self.invoice_id, "allow_partial": True,
                "minimum_amount_minor": 100, "card_fee_minor": 100, "ach_fee_minor": 50,
                **options.pop("line", {})}
        with self.sessions() as s, transaction(s):
            created = pay_sessions.create_native(s, self.scope, invoices=[line], **options)
            created.session.view_mode = view_mode
            self.session_id = created.session.id
            return created.token

    def allow_origins(self, *origins: str) -> None:
        with self.sessions() as s, transaction(s):
            settings_service.update_settings(s, self.scope, {"allowed_origins": list(origins)})

    def invoice(self) -> Invoice:
        with self.sessions() as s:
            found = s.get(Invoice, self.invoice_id)
            assert found is not None
            return found

    def row(self) -> PaySession:
        with self.sessions() as s:
            found = s.get(PaySession, self.session_id)
            assert found is not None
            return found

    def payments(self) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(Payment).where(
                Payment.pay_session_id == self.session_id)) or 0

    # -- the payer's steps ---------------------------------------------------------------
    def review(self, token: str, headers: dict[str, str] | None = None, **values: str) -> Any:
        page = self.client.get(f"/pay/{token}", headers=headers)
        assert page.status_code == 200, page.text
        return post(self.client, f"/pay/{token}/review",
                    form_to(page.text, "/review").filled(**values), headers)

    def pay(self, token: str, details: dict[str, str], **choices: str) -> Any:
        reviewed = self.review(token, **choices)
        assert reviewed.status_code == 200, reviewed.text
        return post(self.client, f"/pay/{token}",
                    form_to(reviewed.text, f"/pay/{token}").filled(**details))


@pytest.fixture
def biller(make_client: Any, sessions: sessionmaker[Session]) -> Biller:
    return Biller(make_client(), sessions)


def amount_field(html: str) -> str:
    found = re.search(r'name="(amounts\[[^"]+\])"', html)
    assert found is not None, html
    return found.group(1)


def assert_labelled(html: str) -> None:
    """Every visible input has a <label for> naming its id."""
    page = read(html)
    for element in page.inputs:
        assert element.get("id") in page.labels, element


# -- tests ---------------------------------------------------------------------------------


class TestShowPage:
    def test_lists_the_biller_account_invoices_and_balances(self, biller: Biller) -> None:
        page = biller.client.get(f"/pay/{biller.pay_session()}")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "HTTP Biller" in page.text
        assert biller.account.number in page.text
        assert biller.invoice_number in page.text
        assert "$20.00" in page.text
        assert "Review payment" in page.text

    def test_is_accessible_markup(self, biller: Biller) -> None:
        html = biller.client.get(f"/pay/{biller.pay_session()}").text
        assert '<html lang="en">' in html
        assert "<main" in html
        assert '<th scope="col">Invoice</th>' in html
        assert '<th scope="row"' in html
        assert_labelled(html)
        checkbox = re.search(r'<input type="checkbox"[^>]*>\s*<label for="([^"]+)">([^<]+)<', html)
        assert checkbox is not None
        assert checkbox.group(2) == biller.invoice_number
        headings = [int(level) for level in re.findall(r"<h([1-6])", html)]
        assert headings[0] == 1
        assert all(b - a <= 1 for a, b in itertools.pairwise(headings))

    def test_offers_only_the_allowed_methods(self, biller: Biller) -> None:
        html = biller.client.get(f"/pay/{biller.pay_session(allow_ach=False)}").text
        assert 'value="card"' in html
        assert 'value="ach"' not in html

    def test_without_remove_there_is_no_checkbox(self, biller: Biller) -> None:
        html = biller.client.get(f"/pay/{biller.pay_session(allow_remove=False)}").text
        assert 'type="checkbox"' not in html

    def test_the_receipt_of_an_unpaid_session_is_its_form(self, biller: Biller) -> None:
        token = biller.pay_session()
        page = biller.client.get(f"/pay/{token}/receipt", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"] == f"/pay/{token}"

    def test_answers_a_mangled_link_with_the_pages_own_404(self, biller: Biller) -> None:
        token = biller.pay_session()
        response = biller.client.get(f"/pay/{token}/receipt/extra")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in response.headers["content-security-policy"]

    def test_answers_an_unknown_token_with_an_html_404(self, biller: Biller) -> None:
        page = biller.client.get("/pay/no-such-token")
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "Payment page not found" in page.text

    def test_serves_a_stylesheet_that_prints_without_navigation(self, biller: Biller) -> None:
        css = biller.client.get("/static/pay.css")
        assert css.status_code == 200
        assert "@media print" in css.text
        assert re.search(r"@media print \{[^}]*nav", css.text)


class TestReview:
    def test_shows_the_fee_total_and_pay_button(self, biller: Biller) -> None:
        page = biller.review(biller.pay_session())
        assert page.status_code == 200
        assert "Service fee" in page.text
        assert "$1.00" in page.text
        assert "$21.00" in page.text
        assert re.search(r"<button[^>]*>Pay \$21\.00</button>", page.text)

    def test_card_fields_carry_their_exact_labels(self, biller: Biller) -> None:
        html = biller.review(biller.pay_session()).text
        for label in ("Name on card", "Card number", "Expiry (MM/YY)", "CVC"):
            assert re.search(rf'<label for="[^"]+">{re.escape(label)}</label>', html), label
        assert_labelled(html)

    def test_bank_fields_carry_their_exact_labels_and_the_bank_fee(self, biller: Biller) -> None:
        html = biller.review(biller.pay_session(), method="ach").text
        for label in ("Account holder", "Routing number", "Account number", "Account type"):
            assert re.search(rf'<label for="[^"]+">{re.escape(label)}</label>', html), label
        assert "Pay $20.50" in html
        assert 'value="checking"' in html
        assert 'value="savings"' in html
        assert_labelled(html)

    def test_a_part_payment_below_the_minimum_is_shown_on_its_field(self, biller: Biller) -> None:
        token = biller.pay_session()
        html = biller.client.get(f"/pay/{token}").text
        page = biller.review(token, **{amount_field(html): "0.50"})
        assert page.status_code == 422
        assert "Enter at least the minimum of $1.00" in page.text
        assert 'href="#amount-1"' in page.text
        assert re.search(r'id="amount-1"[^>]*aria-invalid="true"', page.text)
        assert re.search(r'aria-describedby="amount-1-hint amount-1-error"', page.text)

    def test_more_than_the_balance_is_refused(self, biller: Biller) -> None:
        token = biller.pay_session()
        html = biller.client.get(f"/pay/{token}").text
        page = biller.review(token, **{amount_field(html): "25"})
        assert page.status_code == 422
        assert "Enter no more than the balance of $20.00" in page.text

    def test_an_amount_that_is_not_a_number_is_refused(self, biller: Biller) -> None:
        token = biller.pay_session()
        html = biller.client.get(f"/pay/{token}").text
        page = biller.review(token, **{amount_field(html): "ten"})
        assert page.status_code == 422
        assert "Enter an amount such as 20.00" in page.text

    def test_removing_every_invoice_is_refused(self, biller: Biller) -> None:
        token = biller.pay_session()
        page = biller.client.get(f"/pay/{token}")
        fields = [(k, v) for k, v in form_to(page.text, "/review").fields if k != "include"]
        answer = post(biller.client, f"/pay/{token}/review", fields)
        assert answer.status_code == 422
        assert "Choose at least one invoice to pay" in answer.text

    def test_change_goes_back_with_the_choices_kept(self, biller: Biller) -> None:
        token = biller.pay_session()
        html = biller.client.get(f"/pay/{token}").text
        reviewed = biller.review(token, **{amount_field(html): "7.25"})
        change = form_to(reviewed.text, "/review")
        back = post(biller.client, f"/pay/{token}/review", change.fields)
        assert back.status_code == 200
        assert 'value="7.25"' in back.text
        assert "Review payment" in back.text


class TestPay:
    def test_by_card_shows_a_receipt_and_pays_the_invoice(self, biller: Biller) -> None:
        token = biller.pay_session(return_url=None)
        page = biller.pay(token, CARD)
        assert page.status_code == 200
        assert page.url.path == f"/pay/{token}/receipt"
        assert "RCT-" in page.text
        assert "Visa •••• 4242" in page.text
        assert "$21.00" in page.text
        assert biller.invoice_number in page.text
        assert "Return to" not in page.text
        assert biller.invoice().status == "paid"
        again = biller.client.get(f"/pay/{token}")
        assert again.status_code == 200
        assert "RCT-" in again.text

    def test_the_receipt_links_back_to_the_biller(self, biller: Biller) -> None:
        biller.allow_origins(SHOP)
        page = biller.pay(biller.pay_session(return_url=f"{SHOP}/done"), CARD)
        assert f'href="{SHOP}/done">Return to HTTP Biller</a>' in page.text

    def test_a_part_payment_leaves_the_invoice_partially_paid(self, biller: Biller) -> None:
        token = biller.pay_session()
        html = biller.client.get(f"/pay/{token}").text
        page = biller.pay(token, CARD, **{amount_field(html): "5.00"})
        assert page.status_code == 200, page.text
        assert "$6.00" in page.text
        invoice = biller.invoice()
        assert invoice.status == "partially_paid"
        assert invoice.amount_paid_minor == 500

    def test_a_declined_card_shows_the_reason_and_the_form_again(self, biller: Biller) -> None:
        token = biller.pay_session()
        page = biller.pay(token, {**CARD, "card_number": DECLINED})
        assert page.status_code == 200
        assert "Your card was declined." in page.text
        assert "Pay $21.00" in page.text
        assert 'value="Ada Lovelace"' in page.text
        assert biller.row().status == "open"
        assert biller.invoice().status == "open"
        retried = post(biller.client, f"/pay/{token}",
                       form_to(page.text, f"/pay/{token}").filled(**CARD))
        assert "Visa •••• 4242" in retried.text
        assert biller.payments() == 2

    def test_the_same_form_posted_twice_charges_once(self, biller: Biller) -> None:
        token = biller.pay_session()
        reviewed = biller.review(token)
        data = form_to(reviewed.text, f"/pay/{token}").filled(**CARD)
        first = post(biller.client, f"/pay/{token}", data)
        second = post(biller.client, f"/pay/{token}", data)
        assert first.status_code == second.status_code == 200
        assert "RCT-" in second.text
        assert biller.payments() == 1

    @pytest.mark.parametrize("csrf", [None, "x" * 43])
    def test_a_missing_or_wrong_csrf_token_is_refused(self, biller: Biller,
                                                      csrf: str | None) -> None:
        token = biller.pay_session()
        reviewed = biller.review(token)
        data = [(k, v) for k, v in form_to(reviewed.text, f"/pay/{token}").filled(**CARD)
                if k != "csrf_token"]
        if csrf is not None:
            data.append(("csrf_token", csrf))
        page = post(biller.client, f"/pay/{token}", data)
        assert page.status_code == 403
        assert "This form has expired" in page.text
        assert f'href="/pay/{token}"' in page.text
        assert biller.payments() == 0

    def test_a_missing_csrf_cookie_is_refused(self, biller: Biller) -> None:
        token = biller.pay_session()
        reviewed = biller.review(token)
        biller.client.cookies.clear()
        page = post(biller.client, f"/pay/{token}",
                    form_to(reviewed.text, f"/pay/{token}").filled(**CARD))
        assert page.status_code == 403
        assert biller.payments() == 0

    def test_a_bad_routing_checksum_is_a_field_error(self, biller: Biller) -> None:
        token = biller.pay_session()
        page = biller.pay(token, {**BANK, "routing_number": "110000001"}, method="ach")
        assert page.status_code == 422
        assert "Enter a valid 9-digit routing number" in page.text
        assert re.search(r'id="routing-number"[^>]*aria-invalid="true"'
                         r'[^>]*aria-describedby="routing-number-error"', page.text)
        assert 'href="#routing-number"' in page.text
        assert "000123456789" not in page.text
        assert biller.payments() == 0

    def test_a_bank_payment_shows_a_pending_receipt(self, biller: Biller) -> None:
        page = biller.pay(biller.pay_session(), BANK, method="ach")
        assert page.status_code == 200
        assert "Pending: bank payments settle in a few business days" in page.text
        assert "Bank account •••• 6789" in page.text
        assert "$20.50" in page.text

    def test_a_gateway_that_does_not_answer_says_do_not_pay_again(self, biller: Biller) -> None:
        token = biller.pay_session()
        page = biller.pay(token, {**CARD, "card_number": TIMES_OUT})
        assert ("We could not confirm your payment. Do not pay again; you will be told the "
                "outcome.") in page.text
        assert "Pay $" not in biller.client.get(f"/pay/{token}").text

    def test_an_attempt_still_charging_says_the_receipt_is_coming(self, biller: Biller) -> None:
        token = biller.pay_session()
        biller.pay(token, {**CARD, "card_number": TIMES_OUT})
        with biller.sessions() as s, transaction(s):
            s.execute(update(Payment).where(Payment.pay_session_id == biller.session_id)
                      .values(status="processing"))
        page = biller.client.get(f"/pay/{token}")
        assert "Your payment is being processed" in page.text
        assert f'href="/pay/{token}/receipt"' in page.text

    def test_bad_card_details_are_shown_on_their_fields(self, biller: Biller) -> None:
        token = biller.pay_session()
        page = biller.pay(token, {**CARD, "card_number": "4242 4242 4242 4241",
                                  "card_expiry": "13/30", "card_cvc": "1"})
        assert page.status_code == 422
        for message in ("Enter a valid card number", "Enter the expiry date as MM/YY",
                        "Enter the security code from the card"):
            assert message in page.text
        assert biller.payments() == 0


class TestClosedSessions:
    def test_an_expired_session_answers_410(self, biller: Biller) -> None:
        token = biller.pay_session()
        page = biller.client.get(f"/pay/{token}")
        previous = clock.set_clock(clock.FrozenClock(datetime.now(UTC) + timedelta(hours=2)))
        try:
            expired = biller.client.get(f"/pay/{token}")
            posted = post(biller.client, f"/pay/{token}/review",
                          form_to(page.text, "/review").fields)
        finally:
            clock.set_clock(previous)
        assert expired.status_code == posted.status_code == 410
        assert "This payment link has expired" in expired.text
        assert "Review payment" not in expired.text


class TestHeaders:
    def test_an_unframed_page_may_not_be_framed(self, biller: Biller) -> None:
        page = biller.client.get(f"/pay/{biller.pay_session()}")
        assert page.headers["content-security-policy"] == (
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'")
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"
        cookie = page.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Path=/pay/" in cookie

    def test_a_framed_page_allows_only_the_tenants_origins(self, biller: Biller) -> None:
        biller.allow_origins(SHOP, "https://pay.example.org")
        token = biller.pay_session(view_mode=1, css_url=f"{SHOP}/brand.css")
        page = biller.client.get(f"/pay/{token}")
        csp = page.headers["content-security-policy"]
        assert f"style-src 'self' {SHOP};" in csp
        assert csp.endswith(f"frame-ancestors {SHOP} https://pay.example.org")
        assert "x-frame-options" not in page.headers
        assert f'<link rel="stylesheet" href="{SHOP}/brand.css">' in page.text
        assert "SameSite=lax" in page.headers["set-cookie"]  # None needs Secure, so https

    def test_a_framed_page_with_no_allowed_origins_may_not_be_framed(self, biller: Biller) -> None:
        page = biller.client.get(f"/pay/{biller.pay_session(view_mode=1)}")
        assert page.headers["content-security-policy"].endswith("frame-ancestors 'none'")

    def test_a_framed_page_on_https_sends_its_cookie_cross_site(
            self, biller: Biller, engine: Engine, tmp_path: Path) -> None:
        from fastapi.testclient import TestClient

        from billfold.web.app import create_app

        app = create_app(Settings(database_url=str(engine.url), data_dir=tmp_path,
                                  base_url="https://pay.example.net"), engine)
        biller.allow_origins(SHOP)
        token = biller.pay_session(view_mode=1)
        with TestClient(app, base_url="https://pay.example.net") as secure:
            cookie = secure.get(f"/pay/{token}").headers["set-cookie"]
        assert "SameSite=none" in cookie
        assert "Secure" in cookie

    def test_error_pages_carry_the_headers_too(self, biller: Biller) -> None:
        page = biller.client.get("/pay/unknown")
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"


class TestLanguages:
    def test_a_spanish_browser_gets_spanish_labels(self, biller: Biller) -> None:
        token = biller.pay_session()
        spanish = {"Accept-Language": "es-ES,es;q=0.9,en;q=0.5"}
        first = biller.client.get(f"/pay/{token}", headers=spanish)
        assert '<html lang="es-ES">' in first.text
        assert "Revisar el pago" in first.text
        assert "Facturas" in first.text
        reviewed = biller.review(token, headers=spanish)
        for label in ("Nombre en la tarjeta", "Número de tarjeta", "Vencimiento (MM/AA)"):
            assert f">{label}</label>" in reviewed.text
        assert "Pagar 21,00" in reviewed.text
        assert "Name on card" not in reviewed.text

    def test_the_sessions_own_locale_wins(self, biller: Biller) -> None:
        page = biller.client.get(f"/pay/{biller.pay_session(locale='es')}",
                                 headers={"Accept-Language": "de"})
        assert '<html lang="es">' in page.text

    def test_an_unsupported_language_falls_back_to_english(self, biller: Biller) -> None:
        page = biller.client.get(f"/pay/{biller.pay_session()}",
                                 headers={"Accept-Language": "ja, *;q=0.1"})
        assert '<html lang="en">' in page.text


class TestNothingLeaks:
    def test_no_card_number_and_no_script_in_any_response(self, biller: Biller) -> None:
        token = biller.pay_session()
        bodies = [biller.client.get(f"/pay/{token}").text, biller.review(token).text]
        bodies.append(biller.pay(token, {**CARD, "card_expiry": "nope"}).text)
        bodies.append(biller.pay(token, {**CARD, "card_number": DECLINED}).text)
        paid = biller.pay(token, CARD)
        bodies += [paid.text, biller.client.get(f"/pay/{token}/receipt").text]
        for body in bodies:
            digits = re.sub(r"[\s-]", "", body)
            assert "4242424242424242" not in digits
            assert "4000000000000002" not in digits
            assert 'value="123"' not in body
            assert "<script" not in body.lower()
            assert "style=" not in body
        assert biller.row().status == "paid"
