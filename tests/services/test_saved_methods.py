"""Saved payment methods of payer users: kept from a payment the gateway took (its token and
what may be shown, never a number), one row per card or bank account, listed newest first,
another user's never found, and removal refused while autopay uses the method."""

from __future__ import annotations

import secrets
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from billfold.access import payers
from billfold.access.models import PayerUser
from billfold.collections import enrollment
from billfold.core.db import transaction
from billfold.core.errors import NotFound
from billfold.core.scope import Scope
from billfold.customers.models import BillingAccount
from billfold.invoicing import service as invoicing
from billfold.invoicing.models import Invoice
from billfold.payments import paying, saved, sessions
from billfold.payments.gateways.base import BankDetails, CardDetails
from billfold.payments.gateways.test import TestGateway
from billfold.payments.models import Payment, SavedMethod
from tests.services.conftest import ACTOR, Desk

VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
DECLINED = "4000000000000002"
BANK = ("110000000", "000123456789")


class Wallet:
    """One tenant with a billing account on Net 30 and a payer user who owns it, paying
    invoices through pay sessions and keeping what they paid with."""

    def __init__(self, factory: sessionmaker[Session], session: Session, scope: Scope,
                 desk: Desk) -> None:
        self.factory, self.session, self.scope, self.desk = factory, session, scope, desk
        self.gateway = TestGateway(factory, fingerprint_key=b"test key")
        _, self.account = desk.create_customer(
            "Widgets International", account=desk.account(payment_term_id=desk.ref.term.id))
        self.owner = self.user("olive@widgets.example", role="owner")

    def user(self, email: str, role: str | None = None) -> PayerUser:
        """A payer user, with ``role`` on the wallet's account if given."""
        with self.factory() as s, transaction(s):
            user = payers.new_user(s, self.scope, email=email, name=email.split("@")[0])
            s.expunge(user)
        if role is not None:
            self.grant(user, self.account, role)
        return user

    def grant(self, user: PayerUser, account: BillingAccount, role: str) -> None:
        with self.factory() as s, transaction(s):
            found = s.get(BillingAccount, account.id)
            assert found is not None
            payers.grant(s, s.merge(user), found, role=role, source="registration")

    def invoice(self, amount_minor: int = 1000, account: Any = None) -> Invoice:
        with self.factory() as s, transaction(s):
            draft = invoicing.create_draft(
                s, self.scope, billing_account_id=(account or self.account).id, actor=ACTOR,
                lines=[{"description": "Widgets", "quantity": 1,
                        "unit_amount_minor": amount_minor}])
            invoice = invoicing.finalize(s, self.scope, invoice_id=draft.id, actor=ACTOR)
            s.expunge(invoice)
            return invoice

    def pay(self, *, card: str = VISA, exp: tuple[int, int] = (12, 2030),
            bank: tuple[str, str] | None = None, account: Any = None) -> Payment:
        """Pay a new invoice in full with a card (or a bank account)."""
        invoice = self.invoice(account=account)
        with self.factory() as s, transaction(s):
            token = sessions.create_native(s, self.scope,
                                           invoices=[{"invoice_id": invoice.id}]).token
        details: Any = CardDetails(card, exp[0], exp[1], "123", "Olive Owner")
        if bank is not None:
            details = BankDetails(bank[0], bank[1], "checking", "Olive Owner")
        return paying.pay(self.factory, self.gateway, token, paying.Submission(
            nonce=secrets.token_hex(8), amounts={"1": invoice.amount_due_minor},
            method="ach" if bank else "card", details=details))

    def save(self, payment: Payment | None = None, user: PayerUser | None = None
             ) -> SavedMethod:
        payment = payment or self.pay()
        with self.factory() as s, transaction(s):
            row = saved.save_from_payment(s, self.scope, payer_user_id=(user or self.owner).id,
                                          payment=payment)
            s.expunge(row)
            return row

    def listed(self, user: PayerUser | None = None) -> list[SavedMethod]:
        with self.factory() as s:
            return saved.list_for(s, self.scope, (user or self.owner).id)

    def remove(self, method: SavedMethod, user: PayerUser | None = None) -> SavedMethod:
        with self.factory() as s, transaction(s):
            row = saved.remove(s, self.scope, payer_user_id=(user or self.owner).id,
                               method_id=method.id)
            s.expunge(row)
            return row

    def enroll(self, method: SavedMethod, offset_days: int = 0, user: PayerUser | None = None,
               account: Any = None) -> Any:
        with self.factory() as s, transaction(s):
            return enrollment.enroll(s, self.scope, user=user or self.owner,
                                  billing_account_id=(account or self.account).id,
                                  saved_method_id=method.id, offset_days=offset_days)


@pytest.fixture
def wallet(sessions: sessionmaker[Session], session: Session, scope: Scope, ref: Any) -> Wallet:
    return Wallet(sessions, session, scope, Desk(session, scope, ref))


class TestSaveFromPayment:
    def test_keeps_the_token_brand_last_four_and_expiry(self, wallet: Wallet) -> None:
        payment = wallet.pay(exp=(11, 2031))
        method = wallet.save(payment)
        assert (method.kind, method.brand, method.last4) == ("card", "visa", "4242")
        assert (method.exp_month, method.exp_year) == (11, 2031)
        assert (method.token, method.gateway) == (payment.instrument_token, "test")
        assert method.fingerprint == payment.fingerprint
        assert method.holder_name == "Olive Owner"
        assert method.removed_at is None

    def test_never_stores_the_card_number(self, wallet: Wallet) -> None:
        method = wallet.save()
        with wallet.factory() as s:
            row = s.execute(select(SavedMethod.__table__).where(
                SavedMethod.id == method.id)).one()
        assert not any(VISA in str(value) for value in row)

    def test_the_same_card_again_refreshes_its_one_row(self, wallet: Wallet) -> None:
        first = wallet.save(wallet.pay(exp=(1, 2030)))
        wallet.remove(first)
        second_payment = wallet.pay(exp=(6, 2033))
        again = wallet.save(second_payment)
        assert again.id == first.id
        assert again.removed_at is None
        assert (again.exp_month, again.exp_year) == (6, 2033)
        assert again.token == second_payment.instrument_token
        assert [m.id for m in wallet.listed()] == [first.id]

    def test_a_bank_payment_is_kept_as_an_ach_method(self, wallet: Wallet) -> None:
        payment = wallet.pay(bank=BANK)
        assert payment.status == "pending"
        method = wallet.save(payment)
        assert (method.kind, method.last4, method.account_type) == ("ach", "6789", "checking")
        assert (method.brand, method.exp_month) == (None, None)

    def test_refuses_a_declined_payment(self, wallet: Wallet) -> None:
        payment = wallet.pay(card=DECLINED)
        with pytest.raises(saved.PaymentNotSavable, match="it is failed"):
            wallet.save(payment)
        assert wallet.listed() == []

    def test_refuses_a_payer_user_of_another_tenant(self, wallet: Wallet, make_scope: Any
                                                     ) -> None:
        elsewhere = make_scope("Other Biller")
        with wallet.factory() as s, transaction(s):
            stranger = payers.new_user(s, elsewhere, email="olive@widgets.example", name="O")
            stranger_id = stranger.id
        with wallet.factory() as s, pytest.raises(NotFound):
            saved.save_from_payment(s, wallet.scope, payer_user_id=stranger_id,
                                    payment=wallet.pay())


class TestListAndGet:
    def test_lists_the_users_methods_newest_first_without_removed_ones(self, wallet: Wallet
                                                                       ) -> None:
        visa = wallet.save(wallet.pay(card=VISA))
        mastercard = wallet.save(wallet.pay(card=MASTERCARD))
        bank = wallet.save(wallet.pay(bank=BANK))
        wallet.remove(mastercard)
        assert [m.id for m in wallet.listed()] == [bank.id, visa.id]

    def test_another_users_method_is_not_found(self, wallet: Wallet) -> None:
        method = wallet.save()
        other = wallet.user("otto@widgets.example", role="payer")
        assert wallet.listed(other) == []
        with wallet.factory() as s, pytest.raises(NotFound):
            saved.get_for(s, wallet.scope, other.id, method.id)
        with pytest.raises(NotFound):
            wallet.remove(method, user=other)
        with wallet.factory() as s:
            assert saved.get_for(s, wallet.scope, wallet.owner.id, method.id).id == method.id


class TestRemove:
    def test_a_removed_method_is_gone_for_its_user(self, wallet: Wallet) -> None:
        method = wallet.save()
        assert wallet.remove(method).removed_at is not None
        with wallet.factory() as s, pytest.raises(NotFound):
            saved.get_for(s, wallet.scope, wallet.owner.id, method.id)
        with pytest.raises(NotFound):
            wallet.remove(method)

    def test_refuses_a_method_autopay_uses_and_names_the_account(self, wallet: Wallet) -> None:
        method = wallet.save()
        wallet.enroll(method)
        with pytest.raises(saved.SavedMethodInUse) as refused:
            wallet.remove(method)
        assert refused.value.status == 409
        assert wallet.account.number in refused.value.detail
        assert [m.id for m in wallet.listed()] == [method.id]

    def test_a_method_can_be_removed_once_autopay_is_cancelled(self, wallet: Wallet) -> None:
        method = wallet.save()
        wallet.enroll(method)
        with wallet.factory() as s, transaction(s):
            assert enrollment.cancel(s, wallet.scope, user=wallet.owner,
                                  billing_account_id=wallet.account.id)
        assert wallet.remove(method).removed_at is not None


class TestExpiry:
    @pytest.mark.parametrize(("exp", "on_date", "expired"), [
        ((12, 2030), date(2030, 12, 31), False),
        ((12, 2030), date(2031, 1, 1), True),
        ((None, None), date(2099, 1, 1), False),
    ])
    def test_a_card_works_through_its_expiry_month(self, exp: tuple[Any, Any], on_date: date,
                                                   expired: bool) -> None:
        method = SavedMethod(exp_month=exp[0], exp_year=exp[1])
        assert saved.is_expired(method, on_date) is expired

