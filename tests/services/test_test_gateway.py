"""The test gateway behaves like a processor with fixed test numbers, keeps its records in
the database, and never keeps a card number."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from itertools import count

import pytest
from sqlalchemy import String, func, select

from billfold.core.scope import Scope
from billfold.payments.gateways import UnknownGateway, get_gateway
from billfold.payments.gateways.base import (
    BankDetails,
    CardDetails,
    ChargeRequest,
    ChargeResult,
    GatewayTimeout,
    SavedInstrument,
)
from billfold.payments.gateways.test import TestGateway
from billfold.payments.gateways.test_models import (
    TestGatewayCharge,
    TestGatewayEvent,
    TestGatewayRefund,
)

THURSDAY = date(2026, 12, 3)
SETTLES = date(2026, 12, 7)  # two business days after THURSDAY, over the weekend
ROUTING = "110000000"
CARD_NUMBERS = ("4242424242424242", "4000000000000002", "4000000000009995",
                "4000000000000259", "4000000000002685", "4000000000000119")
ACCOUNT_NUMBERS = ("000123456789", "000111111116", "000111111113")
_keys = count(1)


def card(number: str = "4242424242424242", *, cvc: str = "123", exp_month: int = 12,
         exp_year: int = 2030) -> CardDetails:
    return CardDetails(number=number, exp_month=exp_month, exp_year=exp_year, cvc=cvc,
                       name="Ada Lovelace")


def bank(account: str = "000123456789", *, routing: str = ROUTING,
         account_type: str = "checking") -> BankDetails:
    return BankDetails(routing_number=routing, account_number=account,
                       account_type=account_type, holder_name="Ada Lovelace")


def new_key() -> str:
    return f"pay_test_{next(_keys)}"


def charge(gateway, scope, method, *, key: str | None = None, amount: int = 5000,
           on_date: date = THURSDAY) -> ChargeResult:
    return gateway.charge(scope, ChargeRequest(
        idempotency_key=key or new_key(), amount_minor=amount, currency="USD", method=method,
        description="Invoice INV-1", on_date=on_date))


def charge_rows(sessions, scope) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(TestGatewayCharge).where(
            TestGatewayCharge.tenant_id == scope.tenant_id)) or 0


@pytest.fixture
def gateway(sessions):
    return TestGateway(sessions, fingerprint_key=b"fingerprint key for tests")


class TestCardCharges:
    def test_4242_succeeds_captured_with_a_stored_instrument(self, gateway, scope):
        result = charge(gateway, scope, card())
        assert result.status == "succeeded"
        assert result.reference is not None
        assert result.reference.startswith("tgc_")
        assert result.decline_code is None
        assert result.settles_on is None
        instrument = result.instrument
        assert instrument is not None
        assert instrument.token.startswith("tok_")
        assert (instrument.kind, instrument.brand, instrument.last4) == ("card", "visa", "4242")
        assert (instrument.exp_month, instrument.exp_year) == (12, 2030)
        assert instrument.holder_name == "Ada Lovelace"
        assert len(instrument.fingerprint) == 64
        assert instrument.routing_number is None

    @pytest.mark.parametrize(("number", "code"), [("4000000000000002", "card_declined"),
                                                  ("4000000000009995", "insufficient_funds")])
    def test_issuer_declines_create_a_declined_charge(self, gateway, scope, number, code):
        result = charge(gateway, scope, card(number))
        assert (result.status, result.decline_code) == ("declined", code)
        assert result.reference is not None
        assert result.instrument is None
        assert result.message

    @pytest.mark.parametrize(("details", "code"), [
        (card("4242424242424241"), "invalid_number"),  # fails Luhn
        (card("1234567812345670"), "invalid_number"),  # Luhn-valid, no known brand
        (card(exp_month=11, exp_year=2026), "expired_card"),
        (card(exp_month=13), "invalid_expiry"),
        (card(exp_year=30), "invalid_expiry"),
        (card(cvc="12"), "invalid_cvc"),
        (card(cvc="1234"), "invalid_cvc"),
        (card(cvc="12a"), "invalid_cvc"),
        (card("378282246310005", cvc="123"), "invalid_cvc"),  # Amex needs four digits
        (card("4000000000000002", cvc="1"), "invalid_cvc"),  # checked before the issuer
    ])
    def test_invalid_details_are_declined_before_a_charge_exists(self, gateway, scope,
                                                                 details, code):
        result = charge(gateway, scope, details)
        assert (result.status, result.decline_code) == ("declined", code)
        assert result.reference is None
        assert result.instrument is None

    def test_a_card_is_good_through_its_expiry_month(self, gateway, scope):
        assert charge(gateway, scope, card(exp_month=12, exp_year=2026)).status == "succeeded"

    @pytest.mark.parametrize(("number", "cvc", "brand"), [
        ("5555555555554444", "123", "mastercard"), ("2223003122003222", "123", "mastercard"),
        ("378282246310005", "1234", "amex"), ("6011111111111117", "123", "discover"),
        ("3566002020360505", "123", "jcb"), ("6200000000000005", "123", "unionpay"),
    ])
    def test_any_other_valid_card_of_a_known_brand_succeeds(self, gateway, scope, number, cvc,
                                                            brand):
        result = charge(gateway, scope, card(number, cvc=cvc))
        assert result.status == "succeeded"
        assert result.instrument is not None
        assert result.instrument.brand == brand

    def test_the_same_card_keeps_its_fingerprint_but_gets_a_new_token(self, gateway, scope,
                                                                      sessions):
        first = charge(gateway, scope, card()).instrument
        second = charge(gateway, scope, card(cvc="999")).instrument
        other = charge(gateway, scope, card("5555555555554444")).instrument
        rekeyed = charge(TestGateway(sessions, fingerprint_key=b"another key"), scope,
                         card()).instrument
        assert first
        assert second
        assert other
        assert rekeyed
        assert first.fingerprint == second.fingerprint
        assert first.token != second.token
        assert other.fingerprint != first.fingerprint
        assert rekeyed.fingerprint != first.fingerprint


class TestIdempotentCharge:
    def test_a_repeated_key_returns_the_first_result_and_charges_nothing_new(
            self, gateway, scope, sessions):
        key = new_key()
        first = charge(gateway, scope, card(), key=key)
        again = charge(gateway, scope, card("5555555555554444"), key=key, amount=9999)
        assert again == first
        assert charge_rows(sessions, scope) == 1

    def test_concurrent_charges_with_one_key_charge_once(self, gateway, scope, sessions):
        key = new_key()
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda _: charge(gateway, scope, card(), key=key), range(4)))
        assert len(set(results)) == 1
        assert charge_rows(sessions, scope) == 1

    def test_a_declined_result_is_replayed_too(self, gateway, scope, sessions):
        key = new_key()
        first = charge(gateway, scope, card("4000000000000002"), key=key)
        assert charge(gateway, scope, card(), key=key) == first
        assert charge_rows(sessions, scope) == 1

    def test_keys_belong_to_one_tenant_and_mode(self, gateway, make_scope):
        key, one, other = new_key(), make_scope(), make_scope()
        live = Scope(one.tenant_id, "live")
        references = {charge(gateway, s, card(), key=key).reference for s in (one, other, live)}
        assert len(references) == 3

    def test_refuses_a_request_no_processor_would_accept(self, gateway, scope):
        with pytest.raises(ValueError, match="positive"):
            charge(gateway, scope, card(), amount=0)
        with pytest.raises(ValueError, match="currency"):
            gateway.charge(scope, ChargeRequest(new_key(), 100, "usd", card(), "x", THURSDAY))


class TestTimeout:
    def test_the_charge_is_made_though_the_call_times_out(self, gateway, scope, sessions):
        key = new_key()
        with pytest.raises(GatewayTimeout) as raised:
            charge(gateway, scope, card("4000000000000119"), key=key)
        assert "4000000000000119" not in str(raised.value)
        found = gateway.lookup(scope, idempotency_key=key)
        assert found is not None
        assert found.status == "succeeded"
        assert found.instrument is not None
        assert found.instrument.last4 == "0119"

        again = charge(gateway, scope, card("4000000000000119"), key=key)
        assert again == found
        assert charge_rows(sessions, scope) == 1

    def test_lookup_of_a_key_never_charged_is_none(self, gateway, scope):
        assert gateway.lookup(scope, idempotency_key="pay_never") is None

    def test_lookup_returns_the_stored_result(self, gateway, scope):
        key = new_key()
        result = charge(gateway, scope, bank(), key=key)
        assert gateway.lookup(scope, idempotency_key=key) == result


class TestBankCharges:
    def test_a_bank_charge_is_pending_until_two_business_days_later(self, gateway, scope):
        result = charge(gateway, scope, bank())
        assert (result.status, result.settles_on) == ("pending", SETTLES)
        assert result.reference is not None
        instrument = result.instrument
        assert instrument is not None
        assert (instrument.kind, instrument.brand, instrument.last4) == ("bank", None, "6789")
        assert (instrument.routing_number, instrument.account_type) == (ROUTING, "checking")
        assert instrument.exp_month is None

    def test_settlement_days_are_configurable(self, sessions, scope):
        slow = TestGateway(sessions, settlement_business_days=3, fingerprint_key=b"k")
        assert charge(slow, scope, bank()).settles_on == date(2026, 12, 8)

    @pytest.mark.parametrize(("details", "code"), [
        (bank(routing="110000001"), "invalid_routing_number"),
        (bank(routing="11000000"), "invalid_routing_number"),
        (bank("123"), "invalid_account_number"),
        (bank("123456789012345678"), "invalid_account_number"),
        (bank("0001234x6789"), "invalid_account_number"),
        (bank(account_type="brokerage"), "invalid_account_type"),
    ])
    def test_invalid_details_are_declined(self, gateway, scope, details, code):
        result = charge(gateway, scope, details)
        assert (result.status, result.decline_code) == ("declined", code)
        assert result.reference is None
        assert result.settles_on is None


class TestEvents:
    def test_a_bank_charge_settles_on_its_settlement_date_after_the_weekend(self, gateway,
                                                                           scope):
        reference = charge(gateway, scope, bank(), on_date=THURSDAY).reference
        for day in (THURSDAY, date(2026, 12, 4), date(2026, 12, 5), date(2026, 12, 6)):
            assert gateway.events(scope, through=day) == []
        [event] = gateway.events(scope, through=SETTLES)
        assert (event.kind, event.reference, event.on_date) == ("settled", reference, SETTLES)
        assert event.return_code is None
        assert event.fee_minor is None

    @pytest.mark.parametrize(("account", "code"), [("000111111116", "R01"),
                                                   ("000111111113", "R03")])
    def test_return_accounts_come_back_returned(self, gateway, scope, account, code):
        reference = charge(gateway, scope, bank(account), amount=7300).reference
        [event] = gateway.events(scope, through=SETTLES)
        assert (event.kind, event.return_code, event.reference) == ("returned", code, reference)
        assert (event.on_date, event.amount_minor) == (SETTLES, 7300)

    @pytest.mark.parametrize(("number", "outcome"), [("4000000000000259", "dispute_lost"),
                                                     ("4000000000002685", "dispute_won")])
    def test_dispute_cards_open_after_3_days_and_close_after_30(self, gateway, scope, number,
                                                                outcome):
        reference = charge(gateway, scope, card(number), amount=12000).reference
        assert gateway.events(scope, through=THURSDAY + timedelta(days=2)) == []
        [opened] = gateway.events(scope, through=THURSDAY + timedelta(days=29))
        assert (opened.kind, opened.reference) == ("dispute_opened", reference)
        assert (opened.on_date, opened.amount_minor, opened.fee_minor) == (
            THURSDAY + timedelta(days=3), 12000, 1500)

        events = gateway.events(scope, through=THURSDAY + timedelta(days=30))
        assert [e.kind for e in events] == ["dispute_opened", outcome]
        assert events[1].on_date == THURSDAY + timedelta(days=30)
        assert events[1].amount_minor == 12000

    def test_ordinary_cards_send_no_events(self, gateway, scope):
        charge(gateway, scope, card())
        assert gateway.events(scope, through=THURSDAY + timedelta(days=365)) == []

    def test_events_come_oldest_first_across_charges(self, gateway, scope):
        charge(gateway, scope, bank(), on_date=date(2026, 12, 10))
        charge(gateway, scope, bank("000111111116"), on_date=THURSDAY)
        events = gateway.events(scope, through=date(2026, 12, 31))
        assert [(e.kind, e.on_date) for e in events] == [("returned", SETTLES),
                                                         ("settled", date(2026, 12, 14))]

    def test_acknowledged_events_are_not_delivered_again(self, gateway, scope):
        charge(gateway, scope, card("4000000000000259"))
        late = THURSDAY + timedelta(days=40)
        opened, lost = gateway.events(scope, through=late)
        gateway.acknowledge(scope, [opened.event_id])
        assert gateway.events(scope, through=late) == [lost]
        gateway.acknowledge(scope, [opened.event_id, lost.event_id])
        gateway.acknowledge(scope, [lost.event_id])  # again: harmless
        gateway.acknowledge(scope, [])
        assert gateway.events(scope, through=late) == []

    def test_events_belong_to_their_tenant(self, gateway, make_scope):
        mine, theirs = make_scope(), make_scope()
        charge(gateway, mine, bank())
        [event] = gateway.events(mine, through=SETTLES)
        assert gateway.events(theirs, through=SETTLES) == []
        gateway.acknowledge(theirs, [event.event_id])  # not theirs to acknowledge
        assert gateway.events(mine, through=SETTLES) == [event]


class TestRefunds:
    def test_partial_refunds_up_to_the_charge_amount(self, gateway, scope):
        reference = charge(gateway, scope, card(), amount=1000).reference
        first = gateway.refund(scope, reference=reference, amount_minor=600,
                               idempotency_key=new_key())
        assert first.status == "succeeded"
        assert first.reference is not None
        assert first.reference.startswith("tgr_")
        too_much = gateway.refund(scope, reference=reference, amount_minor=401,
                                  idempotency_key=new_key())
        assert (too_much.status, too_much.reference) == ("refused", None)
        rest = gateway.refund(scope, reference=reference, amount_minor=400,
                              idempotency_key=new_key())
        assert rest.status == "succeeded"
        assert gateway.refund(scope, reference=reference, amount_minor=1,
                              idempotency_key=new_key()).status == "refused"

    def test_a_repeated_key_returns_the_first_result_and_refunds_once(self, gateway, scope,
                                                                      sessions):
        reference = charge(gateway, scope, card(), amount=1000).reference
        key = new_key()
        first = gateway.refund(scope, reference=reference, amount_minor=700, idempotency_key=key)
        again = gateway.refund(scope, reference=reference, amount_minor=700, idempotency_key=key)
        assert again == first
        assert gateway.refund(scope, reference=reference, amount_minor=300,
                              idempotency_key=new_key()).status == "succeeded"
        with sessions() as session:
            assert session.get(TestGatewayCharge, reference).refunded_minor == 1000
            assert session.scalar(select(func.count()).select_from(TestGatewayRefund).where(
                TestGatewayRefund.charge_id == reference)) == 2

    def test_concurrent_refunds_never_exceed_the_charge(self, gateway, scope, sessions):
        reference = charge(gateway, scope, card(), amount=1000).reference
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda _: gateway.refund(
                scope, reference=reference, amount_minor=400, idempotency_key=new_key()),
                range(4)))
        assert sorted(r.status for r in results) == ["refused", "refused", "succeeded",
                                                     "succeeded"]
        with sessions() as session:
            assert session.get(TestGatewayCharge, reference).refunded_minor == 800

    def test_a_refused_refund_is_replayed_too(self, gateway, scope):
        reference = charge(gateway, scope, card(), amount=1000).reference
        key = new_key()
        refused = gateway.refund(scope, reference=reference, amount_minor=5000,
                                 idempotency_key=key)
        assert refused.status == "refused"
        assert gateway.refund(scope, reference=reference, amount_minor=5000,
                              idempotency_key=key) == refused

    def test_a_pending_bank_charge_must_be_voided_instead(self, gateway, scope):
        reference = charge(gateway, scope, bank()).reference
        result = gateway.refund(scope, reference=reference, amount_minor=100,
                                idempotency_key=new_key())
        assert result.status == "refused"
        assert "void before settlement" in result.message

    def test_refuses_declined_unknown_and_other_tenants_charges(self, gateway, scope,
                                                                make_scope):
        declined = charge(gateway, scope, card("4000000000000002")).reference
        theirs = charge(gateway, make_scope(), card()).reference
        for reference in (declined, theirs, "tgc_nothing"):
            result = gateway.refund(scope, reference=reference, amount_minor=100,
                                    idempotency_key=new_key())
            assert result.status == "refused"

    def test_refuses_an_amount_that_is_not_positive(self, gateway, scope):
        reference = charge(gateway, scope, card()).reference
        assert gateway.refund(scope, reference=reference, amount_minor=0,
                              idempotency_key=new_key()).status == "refused"


class TestVoid:
    def test_voiding_a_pending_bank_charge_cancels_its_settlement(self, gateway, scope):
        reference = charge(gateway, scope, bank("000111111116")).reference
        assert gateway.void(scope, reference=reference).status == "voided"
        assert gateway.events(scope, through=SETTLES + timedelta(days=30)) == []
        assert gateway.void(scope, reference=reference).status == "voided"  # again: harmless
        assert gateway.refund(scope, reference=reference, amount_minor=100,
                              idempotency_key=new_key()).status == "refused"

    def test_a_settled_bank_charge_can_no_longer_be_voided(self, gateway, scope):
        reference = charge(gateway, scope, bank()).reference
        [settled] = gateway.events(scope, through=SETTLES)
        result = gateway.void(scope, reference=reference)
        assert result.status == "refused"
        assert "settled" in result.message
        assert gateway.events(scope, through=SETTLES) == [settled]

    def test_a_returned_bank_charge_cannot_be_voided(self, gateway, scope):
        reference = charge(gateway, scope, bank("000111111113")).reference
        gateway.events(scope, through=SETTLES)
        assert gateway.void(scope, reference=reference).status == "refused"

    def test_card_declined_unknown_and_other_tenants_charges_are_refused(
            self, gateway, scope, make_scope):
        captured = charge(gateway, scope, card()).reference
        declined = charge(gateway, scope, card("4000000000009995")).reference
        theirs = charge(gateway, make_scope(), bank()).reference
        for reference in (captured, declined, theirs, "tgc_nothing"):
            assert gateway.void(scope, reference=reference).status == "refused"


class TestSavedInstrument:
    def test_a_saved_card_behaves_like_its_first_charge(self, gateway, scope):
        first = charge(gateway, scope, card("4000000000000259"))
        assert first.instrument is not None
        later = THURSDAY + timedelta(days=10)
        again = charge(gateway, scope, SavedInstrument(first.instrument.token), on_date=later,
                       amount=2500)
        assert again.status == "succeeded"
        assert again.reference != first.reference
        assert again.instrument == first.instrument
        disputes = [e for e in gateway.events(scope, through=later + timedelta(days=3))
                    if e.reference == again.reference]
        assert [(e.kind, e.on_date, e.amount_minor) for e in disputes] == [
            ("dispute_opened", later + timedelta(days=3), 2500)]

    def test_a_saved_bank_account_settles_like_its_first_charge(self, gateway, scope):
        token = charge(gateway, scope, bank("000111111116")).instrument.token
        again = charge(gateway, scope, SavedInstrument(token), on_date=SETTLES)
        assert (again.status, again.settles_on) == ("pending", date(2026, 12, 9))
        returned = [e for e in gateway.events(scope, through=date(2026, 12, 9))
                    if e.reference == again.reference]
        assert [(e.kind, e.return_code) for e in returned] == [("returned", "R01")]

    def test_a_saved_timeout_card_times_out_again(self, gateway, scope):
        key = new_key()
        with pytest.raises(GatewayTimeout):
            charge(gateway, scope, card("4000000000000119"), key=key)
        token = gateway.lookup(scope, idempotency_key=key).instrument.token
        with pytest.raises(GatewayTimeout):
            charge(gateway, scope, SavedInstrument(token))

    def test_a_saved_card_past_its_expiry_is_declined(self, gateway, scope):
        token = charge(gateway, scope, card(exp_month=12, exp_year=2026)).instrument.token
        result = charge(gateway, scope, SavedInstrument(token), on_date=date(2027, 1, 1))
        assert (result.status, result.decline_code) == ("declined", "expired_card")

    def test_an_unknown_or_foreign_token_is_declined(self, gateway, scope, make_scope):
        theirs = charge(gateway, make_scope(), card()).instrument.token
        for token in (theirs, "tok_unknown"):
            result = charge(gateway, scope, SavedInstrument(token))
            assert (result.status, result.decline_code) == ("declined", "unknown_token")
            assert result.reference is None


class TestFactory:
    def test_builds_the_test_gateway_by_name(self, sessions):
        assert get_gateway("test", sessions=sessions, fingerprint_key=b"k").name == "test"

    def test_an_unknown_name_is_a_clear_error(self, sessions):
        with pytest.raises(UnknownGateway, match=r"'acme'.*known gateways: test"):
            get_gateway("acme", sessions=sessions, fingerprint_key=b"k")

    def test_a_fingerprint_key_is_required(self, sessions):
        with pytest.raises(ValueError, match="fingerprint key"):
            TestGateway(sessions, fingerprint_key=b"")


class TestNoCardNumberIsKept:
    def _exercise_every_test_number(self, gateway, scope):
        for number in CARD_NUMBERS:
            try:
                result = charge(gateway, scope, card(number, cvc="731"))
            except GatewayTimeout:
                continue
            if result.status == "succeeded":
                gateway.refund(scope, reference=result.reference, amount_minor=100,
                               idempotency_key=new_key())
                charge(gateway, scope, SavedInstrument(result.instrument.token))
        for account in ACCOUNT_NUMBERS:
            charge(gateway, scope, bank(account))
        gateway.events(scope, through=THURSDAY + timedelta(days=60))

    def test_no_row_of_the_gateway_tables_holds_a_card_or_account_number(
            self, gateway, scope, sessions):
        self._exercise_every_test_number(gateway, scope)
        secrets = (*CARD_NUMBERS, *ACCOUNT_NUMBERS)
        with sessions() as session:
            for model in (TestGatewayCharge, TestGatewayEvent, TestGatewayRefund):
                text_columns = [c for c in model.__table__.columns if isinstance(c.type, String)]
                # Every tenant's rows, so what earlier tests charged is scanned as well.
                for row in session.execute(select(*text_columns)):
                    for value in row:
                        assert not any(s in (value or "") for s in secrets), (model, value)

    def test_no_card_number_reaches_the_sql_log(self, gateway, scope, caplog):
        caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
        self._exercise_every_test_number(gateway, scope)
        assert "INSERT INTO test_gateway_charge" in caplog.text  # the log did record SQL
        for number in (*CARD_NUMBERS, *ACCOUNT_NUMBERS):
            assert number not in caplog.text
