"""The payment page of a session the portal made for a signed-in payer: the payer's saved
methods are offered as choices and charged by token, and a new card or bank account can be
kept with a labelled checkbox. Driven through HTTP like a browser without JavaScript."""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from billfold.access import payers
from billfold.core import clock
from billfold.core.db import transaction
from billfold.payments import saved
from billfold.payments.gateways.base import BankDetails, CardDetails, ChargeRequest
from billfold.payments.models import Payment, SavedMethod
from tests.web.test_pay_page import (
    BANK,
    CARD,
    DECLINED,
    Biller,
    assert_labelled,
    form_to,
    post,
    read,
)

SAVE_LABEL = "Save this payment method for future payments"


class Payer:
    """A biller's payer user and the methods they keep, seeded through the gateway as a
    payment would (the card's token, brand, last four and expiry)."""

    def __init__(self, biller: Biller, email: str = "olive@widgets.example") -> None:
        self.biller = biller
        with biller.sessions() as s, transaction(s):
            self.id = payers.new_user(s, biller.scope, email=email, name="Olive").id

    def keep(self, details: CardDetails | BankDetails) -> SavedMethod:
        gateway = self.biller.client.app.state.gateways(self.biller.scope)
        result = gateway.charge(self.biller.scope, ChargeRequest(
            idempotency_key=f"seed-{secrets.token_hex(8)}", amount_minor=100,
            currency="USD", method=details, description="seed", on_date=clock.today("UTC")))
        found = result.instrument
        assert found is not None
        payment = Payment(
            id="pay_seed", tenant_id=self.biller.scope.tenant_id, mode=self.biller.scope.mode,
            method="card" if found.kind == "card" else "ach", status=result.status,
            gateway=gateway.name, instrument_token=found.token, brand=found.brand,
            last4=found.last4, exp_month=found.exp_month, exp_year=found.exp_year,
            account_type=found.account_type, holder_name=found.holder_name,
            fingerprint=found.fingerprint)
        with self.biller.sessions() as s, transaction(s):
            row = saved.save_from_payment(s, self.biller.scope, payer_user_id=self.id,
                                          payment=payment)
            s.expunge(row)
            return row

    def methods(self) -> list[SavedMethod]:
        with self.biller.sessions() as s:
            return saved.list_for(s, self.biller.scope, self.id)

    def session(self, **options: Any) -> str:
        return self.biller.pay_session(payer_user_id=self.id, **options)


VISA = CardDetails("4242424242424242", 12, 2039, "123", "Olive")
CHECKING = BankDetails("110000000", "000123456789", "checking", "Olive")


@pytest.fixture
def biller(make_client: Any, sessions: sessionmaker[Session]) -> Biller:
    return Biller(make_client(), sessions)


@pytest.fixture
def payer(biller: Biller) -> Payer:
    return Payer(biller)


def choice(method: SavedMethod) -> str:
    return f"saved:{method.id}"


class TestSavedChoices:
    def test_offers_the_payers_saved_methods_by_their_labels(self, payer: Payer) -> None:
        payer.keep(VISA)
        payer.keep(CHECKING)
        html = payer.biller.client.get(f"/pay/{payer.session()}").text
        labels = re.findall(r'<label for="method-[^"]+">([^<]+)</label>', html)
        assert labels == ["Checking account ending 6789", "Visa ending 4242, expires 12/39",
                          "New card", "New bank account"]
        assert_labelled(html)
        assert re.search(r'id="method-saved-1"[^>]*checked', html)  # the newest one

    def test_offers_only_the_kinds_the_session_takes(self, payer: Payer) -> None:
        payer.keep(VISA)
        payer.keep(CHECKING)
        html = payer.biller.client.get(f"/pay/{payer.session(allow_ach=False)}").text
        assert "Visa ending 4242" in html
        assert "Checking account" not in html
        assert 'value="ach"' not in html

    def test_an_expired_card_is_not_offered(self, payer: Payer) -> None:
        method = payer.keep(CardDetails("5555555555554444", 12, 2039, "123", "Olive"))
        with payer.biller.sessions() as s, transaction(s):  # kept years ago
            s.execute(update(SavedMethod).where(SavedMethod.id == method.id)
                      .values(exp_year=2020))
        html = payer.biller.client.get(f"/pay/{payer.session()}").text
        assert "Mastercard" not in html
        assert ">Card</label>" in html

    def test_a_session_without_a_payer_user_offers_none(self, payer: Payer) -> None:
        payer.keep(VISA)
        html = payer.biller.client.get(f"/pay/{payer.biller.pay_session()}").text
        assert "ending 4242" not in html
        assert ">Card</label>" in html

    def test_another_payers_methods_are_not_offered(self, payer: Payer) -> None:
        payer.keep(VISA)
        other = Payer(payer.biller, "otto@widgets.example")
        html = payer.biller.client.get(f"/pay/{other.session()}").text
        assert "ending 4242" not in html

    def test_spanish_labels(self, payer: Payer) -> None:
        method = payer.keep(VISA)
        spanish = {"Accept-Language": "es"}
        token = payer.session()
        html = payer.biller.client.get(f"/pay/{token}", headers=spanish).text
        assert "Visa terminada en 4242, vence 12/39" in html
        reviewed = payer.biller.review(token, headers=spanish, method="card").text
        assert ">Guardar esta forma de pago para futuros pagos</label>" in reviewed
        saved_review = payer.biller.review(token, headers=spanish, method=choice(method)).text
        assert "Número de tarjeta" not in saved_review


class TestPayingWithASavedMethod:
    def test_charges_the_saved_card_without_asking_for_its_details(self, payer: Payer) -> None:
        method = payer.keep(VISA)
        token = payer.session()
        reviewed = payer.biller.review(token, method=choice(method))
        assert reviewed.status_code == 200, reviewed.text
        assert "Visa ending 4242, expires 12/39" in reviewed.text
        assert "card_number" not in reviewed.text
        assert SAVE_LABEL not in reviewed.text
        assert "Pay $21.00" in reviewed.text  # the card fee
        paid = post(payer.biller.client, f"/pay/{token}",
                    form_to(reviewed.text, f"/pay/{token}").fields)
        assert paid.status_code == 200, paid.text
        assert "Visa •••• 4242" in paid.text
        assert payer.biller.invoice().status == "paid"
        with payer.biller.sessions() as s:
            payment = s.scalars(select(Payment).where(
                Payment.pay_session_id == payer.biller.session_id)).one()
        assert (payment.instrument_token, payment.method) == (method.token, "card")
        assert (payment.amount_minor, payment.fee_minor) == (2000, 100)

    def test_a_saved_bank_account_carries_the_bank_fee_and_is_pending(self, payer: Payer
                                                                      ) -> None:
        method = payer.keep(CHECKING)
        token = payer.session()
        reviewed = payer.biller.review(token, method=choice(method))
        assert "Pay $20.50" in reviewed.text
        assert "routing_number" not in reviewed.text
        paid = post(payer.biller.client, f"/pay/{token}",
                    form_to(reviewed.text, f"/pay/{token}").fields)
        assert "Pending: bank payments settle in a few business days" in paid.text
        assert "Bank account •••• 6789" in paid.text

    def test_the_same_form_posted_twice_charges_once(self, payer: Payer) -> None:
        method = payer.keep(VISA)
        token = payer.session()
        reviewed = payer.biller.review(token, method=choice(method))
        fields = form_to(reviewed.text, f"/pay/{token}").fields
        first = post(payer.biller.client, f"/pay/{token}", fields)
        second = post(payer.biller.client, f"/pay/{token}", fields)
        assert "RCT-" in first.text
        assert "RCT-" in second.text
        assert payer.biller.payments() == 1

    def test_another_payers_method_cannot_be_forged_into_the_form(self, payer: Payer) -> None:
        theirs = Payer(payer.biller, "otto@widgets.example").keep(VISA)
        token = payer.session()
        page = payer.biller.review(token, method=choice(theirs))
        assert page.status_code == 422
        assert "Choose a payment method" in page.text
        reviewed = payer.biller.review(token, method="card")
        forged = form_to(reviewed.text, f"/pay/{token}").filled(method=choice(theirs))
        answer = post(payer.biller.client, f"/pay/{token}", forged)
        assert answer.status_code == 422
        assert payer.biller.payments() == 0

    def test_a_saved_method_needs_the_csrf_token_too(self, payer: Payer) -> None:
        method = payer.keep(VISA)
        token = payer.session()
        reviewed = payer.biller.review(token, method=choice(method))
        fields = [(k, v) for k, v in form_to(reviewed.text, f"/pay/{token}").fields
                  if k != "csrf_token"]
        assert post(payer.biller.client, f"/pay/{token}", fields).status_code == 403
        assert payer.biller.payments() == 0


class TestSavingANewMethod:
    def test_the_review_offers_an_unticked_labelled_box(self, payer: Payer) -> None:
        html = payer.biller.review(payer.session()).text
        assert f'<label for="save-method">{SAVE_LABEL}</label>' in html
        box = re.search(r'<input type="checkbox" id="save-method"[^>]*>', html)
        assert box is not None
        assert "checked" not in box.group(0)
        assert_labelled(html)
        assert "<script" not in html.lower()

    def test_a_ticked_card_is_saved_and_offered_next_time(self, payer: Payer) -> None:
        page = payer.biller.pay(payer.session(), {**CARD, "save_method": "1"})
        assert "RCT-" in page.text
        (method,) = payer.methods()
        assert (method.kind, method.brand, method.last4) == ("card", "visa", "4242")
        assert (method.exp_month, method.exp_year) == (12, 2039)
        with payer.biller.sessions() as s:
            payment = s.scalars(select(Payment).where(
                Payment.pay_session_id == payer.biller.session_id)).one()
        assert method.token == payment.instrument_token
        payer.biller.invoice_id = new_invoice(payer.biller)
        html = payer.biller.client.get(f"/pay/{payer.session()}").text
        assert "Visa ending 4242, expires 12/39" in html

    def test_a_ticked_bank_account_is_saved_while_pending(self, payer: Payer) -> None:
        page = payer.biller.pay(payer.session(), {**BANK, "save_method": "1"}, method="ach")
        assert "Pending" in page.text
        (method,) = payer.methods()
        assert (method.kind, method.last4, method.account_type) == ("ach", "6789", "checking")

    def test_an_unticked_box_saves_nothing(self, payer: Payer) -> None:
        page = payer.biller.pay(payer.session(), CARD)
        assert "RCT-" in page.text
        assert payer.methods() == []

    def test_a_declined_card_is_not_saved_and_the_box_stays_ticked(self, payer: Payer) -> None:
        page = payer.biller.pay(payer.session(), {**CARD, "card_number": DECLINED,
                                                  "save_method": "1"})
        assert "Your card was declined." in page.text
        assert re.search(r'<input type="checkbox" id="save-method"[^>]*checked', page.text)
        assert payer.methods() == []

    def test_a_session_without_a_payer_user_has_no_box(self, payer: Payer) -> None:
        html = payer.biller.review(payer.biller.pay_session()).text
        assert SAVE_LABEL not in html
        assert not any(i.get("name") == "save_method" for i in read(html).inputs)
        with payer.biller.sessions() as s:
            assert s.scalar(select(func.count()).select_from(SavedMethod).where(
                SavedMethod.tenant_id == payer.biller.scope.tenant_id)) == 0


def new_invoice(biller: Biller) -> str:
    from billfold.invoicing import service as invoicing

    with biller.sessions() as s, transaction(s):
        draft = invoicing.create_draft(s, biller.scope, billing_account_id=biller.account.id,
                                       lines=[{"description": "More bricks", "quantity": 1,
                                               "unit_amount_minor": 2000}], actor="test")
        return invoicing.finalize(s, biller.scope, invoice_id=draft.id, actor="test").id
