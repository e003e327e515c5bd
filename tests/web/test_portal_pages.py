"""The signed-in payer portal through HTTP, as a browser without JavaScript drives it:
invoice history (filters, sorting, keyset pages, totals, Pay selected), an invoice and its
PDF, accounts, payments and receipts, preferences and the profile."""

from __future__ import annotations

import html
import re
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from billfold.access import payers
from billfold.access.models import PayerUser
from billfold.core.db import transaction
from billfold.core.filestore import FileStore
from billfold.core.scope import Scope
from billfold.customers import service as customers
from billfold.customers import settings as settings_service
from billfold.customers.models import BillingAccount, ChangeRecord
from billfold.invoicing import service as invoicing
from billfold.invoicing.models import Invoice
from billfold.payments.models import PaySession
from billfold.web.pages import portal as portal_page
from billfold.web.pages import portal_base
from tests.conftest import Reference
from tests.web.test_pay_page import CARD, form_to, read

DETAIL = re.compile(r'href="/portal/invoices/(inv_[0-9a-f]+)"')
CHECKBOX = re.compile(r'<input type="checkbox" id="pay-(inv_[0-9a-f]+)"')


class Portal:
    """One biller whose payer user owns account A, may pay account B and only view account
    V; account C belongs to someone else. The client is the payer's browser."""

    def __init__(self, make_client: Any, sessions: sessionmaker[Session]) -> None:
        self.api = make_client()
        self.scope: Scope = self.api.scope
        self.sessions = sessions
        self.browser = make_client(self.scope)
        del self.browser.headers["Authorization"]
        with sessions() as s:
            self.ref = Reference(s, self.scope)
            with transaction(s):
                self.a = self._account(s, "Alder Foods")
                self.b = self._account(s, "Birch Metals")
                self.c = self._account(s, "Cedar Water")
                self.v = self._account(s, "Viewed Works")
                user = payers.new_user(s, self.scope, email="ada@example.com", name="Ada Payer",
                                       verified=True)
                self.user_id = user.id
                for account_id, role in ((self.a, "owner"), (self.b, "payer"), (self.v, "viewer")):
                    payers.grant(s, user, s.get_one(BillingAccount, account_id), role=role,
                                 source="staff")
        self.sign_in(self.browser, self.user_id)

    def _account(self, s: Session, name: str, currency: str = "USD") -> str:
        data = self.ref.customer(name, billing_account=self.ref.account(currency))
        _, account = customers.create_customer(s, self.scope, data=data, actor="test")
        return account.id

    def account(self, name: str, currency: str = "USD", role: str | None = None) -> str:
        with self.sessions() as s, transaction(s):
            account_id = self._account(s, name, currency)
            if role:
                payers.grant(s, s.get_one(PayerUser, self.user_id),
                             s.get_one(BillingAccount, account_id), role=role, source="staff")
        return account_id

    def sign_in(self, client: Any, user_id: str) -> None:
        with self.sessions() as s, transaction(s):
            _, cookie = payers.start_session(s, s.get_one(PayerUser, user_id), method="password")
        client.cookies.set(portal_base.SESSION_COOKIE, cookie)

    def invoice(self, account_id: str, minor: int, *, issued: date | None = None,
                due: date | None = None, description: str = "Bricks") -> str:
        with self.sessions() as s, transaction(s):
            draft = invoicing.create_draft(s, self.scope, billing_account_id=account_id,
                                           lines=[{"description": description, "quantity": 2,
                                                   "unit_amount_minor": minor // 2}],
                                           actor="test")
            invoice = invoicing.finalize(s, self.scope, invoice_id=draft.id, actor="test")
            if issued is not None:
                invoice.issue_date = issued
                invoice.due_date = due or issued + timedelta(days=30)
            return invoice.id

    def get(self, invoice_id: str) -> Invoice:
        with self.sessions() as s:
            return s.get_one(Invoice, invoice_id)

    def settings(self, **changes: Any) -> None:
        with self.sessions() as s, transaction(s):
            settings_service.update_settings(s, self.scope, changes)

    def pay_by_check(self, account_id: str, invoice_id: str, minor: int) -> str:
        response = self.api.post("/v1/payments", json={
            "billing_account_id": account_id, "amount_minor": minor, "method": "check",
            "invoice_ids": [invoice_id]})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def pay_sessions(self) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(PaySession).where(
                PaySession.tenant_id == self.scope.tenant_id)) or 0

    def page(self, path: str, **params: Any) -> Any:
        # httpx drops a URL's own query string when given params, even none.
        response = self.browser.get(path, params=params) if params else self.browser.get(path)
        assert response.status_code == 200, response.text
        return response

    def pay_selected(self, *invoice_ids: str, page: str = "/portal/invoices") -> Any:
        listed = self.page(page)
        form = form_to(listed.text, "/portal/pay")
        fields = form.filled() + [("invoice", i) for i in invoice_ids]
        return post(self.browser, "/portal/pay", fields)


@pytest.fixture
def portal(make_client: Any, sessions: sessionmaker[Session]) -> Portal:
    return Portal(make_client, sessions)


def post(client: Any, url: str, fields: list[tuple[str, str]]) -> Any:
    """Submit a form as a browser encodes it, without following the redirect."""
    return client.post(url, content=urlencode(fields), follow_redirects=False,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})


def ids_on(page_html: str) -> list[str]:
    return DETAIL.findall(page_html)


def link(page_html: str, text: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)"[^>]*>{re.escape(text)}</a>', page_html)
    return html.unescape(found.group(1)) if found else None


# -- invoice history ------------------------------------------------------------------------


class TestInvoiceHistory:
    def test_shows_the_invoices_of_granted_accounts_only(self, portal: Portal) -> None:
        a, b, c = (portal.invoice(x, 1000) for x in (portal.a, portal.b, portal.c))
        shown = ids_on(portal.page("/portal/invoices").text)
        assert a in shown
        assert b in shown
        assert c not in shown

    def test_leaves_out_drafts_and_shows_void_invoices(self, portal: Portal) -> None:
        with portal.sessions() as s, transaction(s):
            draft = invoicing.create_draft(s, portal.scope, billing_account_id=portal.a,
                                           lines=[{"description": "Draft", "quantity": 1,
                                                   "unit_amount_minor": 100}], actor="test")
        voided = portal.invoice(portal.a, 500)
        with portal.sessions() as s, transaction(s):
            invoicing.void(s, portal.scope, invoice_id=voided, actor="test")
        shown = ids_on(portal.page("/portal/invoices").text)
        assert voided in shown
        assert draft.id not in shown

    def test_filters_by_account_status_and_issue_date(self, portal: Portal) -> None:
        old = portal.invoice(portal.a, 1000, issued=date(2026, 1, 10))
        new = portal.invoice(portal.a, 2000, issued=date(2026, 3, 10))
        other = portal.invoice(portal.b, 3000, issued=date(2026, 3, 12))
        paid = portal.invoice(portal.b, 4000, issued=date(2026, 3, 15))
        portal.pay_by_check(portal.b, paid, 4000)
        assert set(ids_on(portal.page("/portal/invoices", account=portal.a).text)) == {old, new}
        assert set(ids_on(portal.page("/portal/invoices", status="paid").text)) == {paid}
        assert set(ids_on(portal.page("/portal/invoices", status="unpaid").text)) == \
            {old, new, other}
        ranged = portal.page("/portal/invoices", **{"from": "2026-03-01", "to": "2026-03-12"})
        assert set(ids_on(ranged.text)) == {new, other}

    def test_a_bad_date_is_named_and_left_out(self, portal: Portal) -> None:
        kept = portal.invoice(portal.a, 1000)
        response = portal.browser.get("/portal/invoices", params={"from": "31/03/2026"})
        assert response.status_code == 422
        assert "Enter dates like 2026-03-31." in response.text
        assert kept in ids_on(response.text)

    def test_an_ungranted_account_filter_is_not_found(self, portal: Portal) -> None:
        response = portal.browser.get("/portal/invoices", params={"account": portal.c})
        assert response.status_code == 404

    def test_totals_what_is_due_per_currency(self, portal: Portal) -> None:
        portal.invoice(portal.a, 1000)
        part = portal.invoice(portal.b, 3000)
        portal.pay_by_check(portal.b, part, 1000)
        paid = portal.invoice(portal.a, 700)
        portal.pay_by_check(portal.a, paid, 700)
        euros = portal.account("Euro Freight", "EUR", role="payer")
        portal.invoice(euros, 990)
        portal.invoice(portal.c, 50_000)  # not the payer's
        text = portal.page("/portal/invoices").text
        assert "Total due for these invoices: €9.90, $30.00" in " ".join(text.split())
        only_a = portal.page("/portal/invoices", account=portal.a).text
        assert "Total due for these invoices: $10.00" in " ".join(only_a.split())

    def test_marks_overdue_invoices(self, portal: Portal) -> None:
        portal.invoice(portal.a, 1000, issued=date(2020, 1, 1), due=date(2020, 1, 31))
        assert "Overdue" in portal.page("/portal/invoices").text

    def test_says_so_when_the_biller_turned_history_off(self, portal: Portal) -> None:
        invoice_id = portal.invoice(portal.a, 1000)
        portal.settings(invoice_history_enabled=False)
        page = portal.page("/portal/invoices")
        assert "Invoice history is not available" in page.text
        assert invoice_id not in page.text
        assert "Invoice history is not available" in \
            portal.browser.get(f"/portal/invoices/{invoice_id}").text

    def test_needs_a_signed_in_payer(self, portal: Portal) -> None:
        portal.browser.cookies.clear()
        for path in ("/portal/invoices", "/portal/accounts", "/portal/payments",
                     "/portal/preferences", "/portal/profile"):
            response = portal.browser.get(path)
            assert response.status_code == 401, path
            assert "Please sign in" in response.text

    def test_speaks_spanish_to_a_spanish_browser(self, portal: Portal) -> None:
        portal.invoice(portal.a, 1000)
        page = portal.browser.get("/portal/invoices", headers={"Accept-Language": "es-MX,es"})
        assert '<html lang="es' in page.text
        assert "Sus facturas" in page.text
        assert "Pagar las seleccionadas" in page.text
        assert "Fecha de vencimiento" in page.text

    def test_every_field_has_a_label(self, portal: Portal) -> None:
        portal.invoice(portal.a, 1000)
        page = read(portal.page("/portal/invoices").text)
        for element in page.inputs:
            assert element.get("id") in page.labels, element


class TestKeysetPages:
    @pytest.fixture
    def many(self, portal: Portal, monkeypatch: pytest.MonkeyPatch) -> dict[str, Invoice]:
        monkeypatch.setattr(portal_page, "PAGE_SIZE", 3)
        made = []
        for i in range(11):  # issue dates repeat, so the id must break ties
            account = (portal.a, portal.b, portal.v)[i % 3]
            made.append(portal.invoice(account, 1000 + 100 * (i % 4),
                                       issued=date(2026, 1, 1) + timedelta(days=i // 2),
                                       due=date(2026, 3, 1) - timedelta(days=i % 5)))
        return {i: portal.get(i) for i in made}

    def walk(self, portal: Portal, params: dict[str, str]) -> list[str]:
        url: str | None = "/portal/invoices"
        seen: list[str] = []
        for turn in range(10):  # more pages than there are would mean a loop
            page = portal.page(str(url), **(params if turn == 0 else {})).text
            seen += ids_on(page)
            url = link(page, "Next page")
            if url is None:
                return seen
        raise AssertionError(f"no last page: {seen}")

    @pytest.mark.parametrize(("sort", "order"), [
        ("issue_date", "desc"), ("issue_date", "asc"), ("due_date", "asc"),
        ("amount_due", "desc"), ("number", "asc")])
    def test_pages_cover_every_invoice_once_in_order(self, portal: Portal, many: dict[str, Invoice],
                                                     sort: str, order: str) -> None:
        def key(i: Invoice) -> Any:
            return {"issue_date": i.issue_date, "due_date": i.due_date,
                    "amount_due": i.amount_due_minor, "number": i.number}[sort]

        expected = [i.id for i in sorted(many.values(), key=lambda i: (key(i), i.id),
                                         reverse=order == "desc")]
        assert self.walk(portal, {"sort": sort, "order": order}) == expected

    def test_previous_page_walks_back_over_the_same_pages(self, portal: Portal,
                                                          many: dict[str, Invoice]) -> None:
        forward: list[list[str]] = []
        url: str | None = "/portal/invoices"
        while url and len(forward) < 10:
            page = portal.page(url).text
            forward.append(ids_on(page))
            url = link(page, "Next page")
            last = page
        assert len(forward) == 4
        assert sum(map(len, forward)) == 11
        assert link(portal.page("/portal/invoices").text, "Previous page") is None
        backward: list[list[str]] = [forward[-1]]
        url = link(last, "Previous page")
        while url and len(backward) < 10:
            page = portal.page(url).text
            backward.append(ids_on(page))
            url = link(page, "Previous page")
        assert backward[::-1] == forward

    def test_a_new_invoice_does_not_shift_the_next_page(self, portal: Portal,
                                                        many: dict[str, Invoice]) -> None:
        first = portal.page("/portal/invoices").text
        next_url = link(first, "Next page")
        assert next_url
        before = ids_on(portal.page(next_url).text)
        portal.invoice(portal.a, 500, issued=date(2027, 1, 1))  # newest: lands on page 1
        assert ids_on(portal.page(next_url).text) == before

    def test_a_mangled_cursor_starts_again_at_the_first_page(self, portal: Portal,
                                                             many: dict[str, Invoice]) -> None:
        first = ids_on(portal.page("/portal/invoices").text)
        assert ids_on(portal.page("/portal/invoices", after="not-a-cursor").text) == first


# -- pay selected ----------------------------------------------------------------------------


class TestPaySelected:
    def test_makes_a_session_over_exactly_the_chosen_invoices(self, portal: Portal) -> None:
        one = portal.invoice(portal.a, 1000)
        two = portal.invoice(portal.b, 2500)
        portal.invoice(portal.a, 4000)  # not chosen
        response = portal.pay_selected(one, two)
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        assert location.startswith("/pay/")
        with portal.sessions() as s:
            row = s.scalars(select(PaySession).where(
                PaySession.tenant_id == portal.scope.tenant_id)).one()
        assert sorted(line["invoice_id"] for line in row.lines) == sorted([one, two])
        assert row.options["payer_user_id"] == portal.user_id
        assert row.return_url == f"http://127.0.0.1:8000/portal/payments/after/{row.id}"
        assert row.locale == "en"
        page = portal.browser.get(location)
        assert page.status_code == 200
        assert portal.get(one).number in page.text

    def test_each_payable_invoice_has_a_checkbox_labelled_with_its_number(
            self, portal: Portal) -> None:
        payable = portal.invoice(portal.a, 1000)
        paid = portal.invoice(portal.a, 1000)
        portal.pay_by_check(portal.a, paid, 1000)
        text = portal.page("/portal/invoices").text
        assert CHECKBOX.findall(text) == [payable]
        number = portal.get(payable).number
        assert f'<label for="pay-{payable}">{number}</label>' in text

    def test_a_viewer_has_no_checkbox_and_cannot_pay(self, portal: Portal) -> None:
        viewed = portal.invoice(portal.v, 1000)
        portal.invoice(portal.a, 1000)
        text = portal.page("/portal/invoices").text
        assert viewed in ids_on(text)
        assert viewed not in CHECKBOX.findall(text)
        response = portal.pay_selected(viewed)
        assert response.status_code == 422
        assert "but not pay them" in response.text
        assert portal.pay_sessions() == 0

    def test_refuses_the_lot_when_one_invoice_is_not_the_payers(self, portal: Portal) -> None:
        mine = portal.invoice(portal.a, 1000)
        theirs = portal.invoice(portal.c, 1000)
        response = portal.pay_selected(mine, theirs)
        assert response.status_code == 422
        assert "not yours to pay, or does not exist" in response.text
        assert portal.pay_sessions() == 0

    def test_refuses_a_paid_invoice(self, portal: Portal) -> None:
        paid = portal.invoice(portal.a, 1000)
        portal.pay_by_check(portal.a, paid, 1000)
        response = portal.pay_selected(paid)
        assert response.status_code == 422
        assert "has nothing left to pay" in response.text
        assert portal.pay_sessions() == 0

    def test_different_currencies_are_an_error_on_the_history_page(self, portal: Portal) -> None:
        euros = portal.account("Euro Freight", "EUR", role="payer")
        dollars, eur = portal.invoice(portal.a, 1000), portal.invoice(euros, 1000)
        response = portal.pay_selected(dollars, eur, page=f"/portal/invoices?account={portal.a}")
        assert response.status_code == 422
        assert "different currencies (EUR, USD)" in response.text
        assert "Your invoices" in response.text
        assert set(CHECKBOX.findall(response.text)) == {dollars}  # the same filtered view
        assert 'checked' in response.text
        assert portal.pay_sessions() == 0

    def test_nothing_chosen_is_an_error(self, portal: Portal) -> None:
        portal.invoice(portal.a, 1000)
        response = portal.pay_selected()
        assert response.status_code == 422
        assert "Choose at least one invoice to pay." in response.text

    def test_refuses_a_post_without_the_csrf_token(self, portal: Portal) -> None:
        invoice_id = portal.invoice(portal.a, 1000)
        portal.page("/portal/invoices")
        response = post(portal.browser, "/portal/pay", [("invoice", invoice_id)])
        assert response.status_code == 403
        assert portal.pay_sessions() == 0

    def test_the_pay_page_returns_to_the_portal_receipt(self, portal: Portal) -> None:
        invoice_id = portal.invoice(portal.a, 1000)
        location = portal.pay_selected(invoice_id).headers["location"]
        token = location.removeprefix("/pay/")
        with portal.sessions() as s:
            session_id = s.scalars(select(PaySession.id).where(
                PaySession.tenant_id == portal.scope.tenant_id)).one()
        after = f"/portal/payments/after/{session_id}"
        assert "No payment was made" in portal.page(after).text
        choose = portal.page(location).text
        reviewed = post(portal.browser, f"/pay/{token}/review",
                        form_to(choose, "/review").filled())
        paid = post(portal.browser, f"/pay/{token}",
                    form_to(reviewed.text, f"/pay/{token}").filled(**CARD))
        assert paid.status_code == 303, paid.text
        back = portal.browser.get(after, follow_redirects=False)
        assert back.status_code == 303
        receipt = portal.page(back.headers["location"]).text
        assert portal.get(invoice_id).number in receipt
        assert "Visa ending 4242" in receipt
        assert portal.get(invoice_id).status == "paid"

    def test_another_users_session_is_not_found(self, portal: Portal) -> None:
        invoice_id = portal.invoice(portal.a, 1000)
        portal.pay_selected(invoice_id)
        with portal.sessions() as s, transaction(s):
            session_id = s.scalars(select(PaySession.id).where(
                PaySession.tenant_id == portal.scope.tenant_id)).one()
            other = payers.new_user(s, portal.scope, email="bob@example.com", name="Bob",
                                    verified=True)
            payers.grant(s, other, s.get_one(BillingAccount, portal.a), role="payer",
                         source="staff")
        portal.sign_in(portal.browser, other.id)
        assert portal.browser.get(f"/portal/payments/after/{session_id}").status_code == 404


# -- one invoice ---------------------------------------------------------------------------------


class TestInvoicePage:
    def test_shows_what_the_pdf_shows(self, portal: Portal) -> None:
        invoice_id = portal.invoice(portal.a, 2000, description="Red bricks")
        portal.pay_by_check(portal.a, invoice_id, 500)
        text = " ".join(portal.page(f"/portal/invoices/{invoice_id}").text.split())
        invoice = portal.get(invoice_id)
        assert f"Invoice {invoice.number}" in text
        assert "Red bricks" in text
        assert "Alder Foods" in text  # billed to
        assert "$20.00" in text
        assert "$5.00" in text
        assert "$15.00" in text
        assert "Pay this invoice" in text

    def test_another_tenants_or_an_ungranted_invoice_is_not_found(
            self, portal: Portal, make_client: Any, sessions: sessionmaker[Session]) -> None:
        theirs = portal.invoice(portal.c, 1000)
        elsewhere = Portal(make_client, sessions)
        foreign = elsewhere.invoice(elsewhere.a, 1000)
        for invoice_id in (theirs, foreign, "inv_nope"):
            for suffix in ("", "/pdf"):
                response = portal.browser.get(f"/portal/invoices/{invoice_id}{suffix}")
                assert response.status_code == 404, (invoice_id, suffix)
                assert "Not found" in response.text

    def test_downloads_the_rendered_pdf(self, portal: Portal, app: Any) -> None:
        invoice_id = portal.invoice(portal.a, 1000)
        missing = portal.browser.get(f"/portal/invoices/{invoice_id}/pdf")
        assert missing.status_code == 404
        assert "The PDF is not ready yet" in missing.text
        key = f"tenants/{portal.scope.tenant_id}/test/invoices/{invoice_id}.pdf"
        FileStore(app.state.settings.data_dir).put(key, b"%PDF-1.7 test")
        with portal.sessions() as s, transaction(s):
            s.get_one(Invoice, invoice_id).pdf_key = key
        response = portal.browser.get(f"/portal/invoices/{invoice_id}/pdf")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/pdf"
        assert response.headers["content-disposition"].startswith("attachment;")
        assert response.content == b"%PDF-1.7 test"


# -- accounts and payments ----------------------------------------------------------------------


class TestAccountsAndPayments:
    def test_lists_the_granted_accounts_with_role_and_balance(self, portal: Portal) -> None:
        portal.invoice(portal.a, 1234)
        text = portal.page("/portal/accounts").text
        with portal.sessions() as s:
            numbers = {i: s.get_one(BillingAccount, i).number
                       for i in (portal.a, portal.b, portal.c, portal.v)}
        assert numbers[portal.a] in text
        assert numbers[portal.b] in text
        assert numbers[portal.c] not in text
        assert "Owner" in text
        assert "Can pay" in text
        assert "Can view" in text
        assert "$12.34" in text

    def test_an_account_shows_its_summary_and_payments(self, portal: Portal) -> None:
        invoice_id = portal.invoice(portal.a, 3000)
        payment_id = portal.pay_by_check(portal.a, invoice_id, 1000)
        text = portal.page(f"/portal/accounts/{portal.a}").text
        assert "$20.00" in text  # balance
        assert "Next invoice date" in text
        assert f'href="/portal/payments/{payment_id}"' in text

    def test_an_ungranted_account_is_not_found(self, portal: Portal) -> None:
        assert portal.browser.get(f"/portal/accounts/{portal.c}").status_code == 404

    def test_payments_newest_first_and_a_receipt(self, portal: Portal) -> None:
        first = portal.invoice(portal.a, 1000)
        second = portal.invoice(portal.b, 2000)
        older = portal.pay_by_check(portal.a, first, 1000)
        newer = portal.pay_by_check(portal.b, second, 2000)
        hidden = portal.pay_by_check(portal.c, portal.invoice(portal.c, 500), 500)
        text = portal.page("/portal/payments").text
        assert text.index(newer) < text.index(older)
        assert hidden not in text
        receipt = portal.page(f"/portal/payments/{newer}").text
        assert portal.get(second).number in receipt
        assert "$20.00" in receipt
        assert "Check" in receipt
        assert portal.browser.get(f"/portal/payments/{hidden}").status_code == 404


# -- preferences and profile --------------------------------------------------------------------


class TestPreferences:
    def toggle(self, portal: Portal, account_id: str, **boxes: str) -> Any:
        page = portal.page("/portal/preferences").text
        form = form_to(page, f"/portal/preferences/{account_id}")
        fields = [(k, v) for k, v in form.fields if k == "csrf_token"] + list(boxes.items())
        return post(portal.browser, f"/portal/preferences/{account_id}", fields)

    def test_an_owner_changes_them_and_history_records_it(self, portal: Portal) -> None:
        portal.settings(payer_controlled_preferences=True)
        with portal.sessions() as s, transaction(s):
            s.get_one(BillingAccount, portal.a).invoice_type = "paper"
        response = self.toggle(portal, portal.a, paperless="on", email_notify="on")
        assert response.status_code == 303
        with portal.sessions() as s:
            account = s.get_one(BillingAccount, portal.a)
            assert (account.invoice_type, account.email_notify, account.email_confirmations) \
                == ("email", True, False)
            actors = s.scalars(select(ChangeRecord.actor).where(
                ChangeRecord.object_id == portal.a)).all()
        assert f"payer_user:{portal.user_id}" in actors
        assert "Your preferences have been saved." in portal.page(response.headers["location"]).text

    def test_refused_for_a_payer_who_is_not_the_owner(self, portal: Portal) -> None:
        portal.settings(payer_controlled_preferences=True)
        page = portal.page("/portal/preferences").text
        assert f'action="/portal/preferences/{portal.b}"' not in page
        owner_form = form_to(page, f"/portal/preferences/{portal.a}")
        response = post(portal.browser, f"/portal/preferences/{portal.b}",
                        [(k, v) for k, v in owner_form.fields if k == "csrf_token"])
        assert response.status_code == 403
        with portal.sessions() as s:
            assert s.get_one(BillingAccount, portal.b).email_notify is True

    def test_an_ungranted_account_is_not_found(self, portal: Portal) -> None:
        portal.settings(payer_controlled_preferences=True)
        page = portal.page("/portal/preferences").text
        token = dict(form_to(page, f"/portal/preferences/{portal.a}").fields)["csrf_token"]
        response = post(portal.browser, f"/portal/preferences/{portal.c}",
                        [("csrf_token", token)])
        assert response.status_code == 404

    def test_read_only_when_the_biller_sets_them(self, portal: Portal) -> None:
        page = portal.page("/portal/preferences").text
        assert "sets these preferences for you" in page
        assert 'type="checkbox"' not in page
        response = post(portal.browser, f"/portal/preferences/{portal.a}",
                        [("csrf_token", portal.browser.cookies.get("bf_portal_csrf"))])
        assert response.status_code == 403

    def test_notes_that_paper_still_comes(self, portal: Portal) -> None:
        portal.settings(paper_bill=True)
        assert "also sends a paper bill" in portal.page("/portal/preferences").text

    def test_refuses_a_post_without_the_csrf_token(self, portal: Portal) -> None:
        portal.settings(payer_controlled_preferences=True)
        portal.page("/portal/preferences")
        response = post(portal.browser, f"/portal/preferences/{portal.a}", [("paperless", "on")])
        assert response.status_code == 403


class TestProfile:
    def test_shows_who_and_which_accounts(self, portal: Portal) -> None:
        text = portal.page("/portal/profile").text
        assert "ada@example.com" in text
        assert "Ada Payer" in text
        assert "Add an account" in text
        assert "Sign out everywhere" in text
        assert 'action="/portal/logout-everywhere"' in text

    def test_adding_an_account_says_to_check_email(self, portal: Portal) -> None:
        page = portal.page("/portal/profile").text
        form = form_to(page, "/portal/profile/accounts")
        response = post(portal.browser, "/portal/profile/accounts", form.filled(
            account_number="nope", registration_value="00000"))
        assert response.status_code == 200
        assert "Check your email" in response.text

    def test_an_empty_account_number_is_named(self, portal: Portal) -> None:
        form = form_to(portal.page("/portal/profile").text, "/portal/profile/accounts")
        response = post(portal.browser, "/portal/profile/accounts",
                        form.filled(account_number="", registration_value=""))
        assert response.status_code == 422
        assert "Enter the account number." in response.text

    def test_the_payer_chooses_the_language_over_the_browsers(self, portal: Portal) -> None:
        english = portal.page("/portal/profile").text
        assert '<html lang="en' in english
        form = form_to(english, "/portal/profile/language")
        chosen = post(portal.browser, "/portal/profile/language", form.filled(language="es"))
        assert chosen.status_code == 303
        history = portal.browser.get("/portal/invoices", headers={"Accept-Language": "en-US"})
        assert '<html lang="es' in history.text
        assert "Sus facturas" in history.text
        refused = post(portal.browser, "/portal/profile/language", form.filled(language="xx"))
        assert refused.status_code == 422
        assert "Elija uno de los idiomas de la lista." in refused.text
        with portal.sessions() as s:
            assert s.get_one(PayerUser, portal.user_id).preferred_language == "es"
