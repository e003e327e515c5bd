from datetime import date

import pytest

from billfold.payments.gateways.base import BankDetails, CardDetails, ChargeRequest
from billfold.payments.gateways.checks import aba_ok, card_brand, last4, luhn_ok, mask
from billfold.payments.gateways.test_rules import CARD_BEHAVIOURS, add_business_days


class TestLuhn:
    @pytest.mark.parametrize("number", ["4242424242424242", "378282246310005", "79927398713",
                                        *CARD_BEHAVIOURS])
    def test_accepts_valid_numbers(self, number):
        assert luhn_ok(number)

    @pytest.mark.parametrize("number", ["4242424242424241", "79927398710", "1234567812345678"])
    def test_refuses_a_wrong_check_digit(self, number):
        assert not luhn_ok(number)

    @pytest.mark.parametrize("number", ["", "0", "4242 4242 4242 4242", "4242-4242", "٤٢٤٢٤٢٤٢",
                                        "42424242424242²"])
    def test_refuses_anything_but_ascii_digits(self, number):
        assert not luhn_ok(number)


class TestCardBrand:
    @pytest.mark.parametrize(("number", "brand"), [
        ("4242424242424242", "visa"),
        ("4222222222222", "visa"),
        ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("2720999999999996", "mastercard"),
        ("378282246310005", "amex"),
        ("340000000000009", "amex"),
        ("6011111111111117", "discover"),
        ("6445644564456445", "discover"),
        ("6500000000000002", "discover"),
        ("3056930009020004", "diners"),
        ("36227206271667", "diners"),
        ("3566002020360505", "jcb"),
        ("6200000000000005", "unionpay"),
    ])
    def test_knows_each_network(self, number, brand):
        assert card_brand(number) == brand

    @pytest.mark.parametrize("number", [
        "2220999999999999",  # just below the Mastercard 2-series
        "2721000000000000",  # just above it
        "1234567812345670",
        "42424242",  # a Visa prefix but no Visa length
        "37828224631000",  # Amex prefix, 14 digits
        "",
        "4242abcd42424242",
    ])
    def test_knows_no_brand_for_other_numbers(self, number):
        assert card_brand(number) is None


class TestAba:
    @pytest.mark.parametrize("routing", ["110000000", "011000015", "021000021", "122105278"])
    def test_accepts_valid_routing_numbers(self, routing):
        assert aba_ok(routing)

    @pytest.mark.parametrize("routing", ["110000001", "021000022", "11000000", "1100000000",
                                         "11000000a", "", "\uff11\uff11" + "\uff10" * 7])
    def test_refuses_a_bad_checksum_or_shape(self, routing):
        assert not aba_ok(routing)


class TestMasking:
    def test_keeps_only_the_last_four(self):
        assert mask("4242424242424242") == "****4242"
        assert last4("000123456789") == "6789"

    def test_hides_a_short_value_entirely(self):
        assert mask("1234") == "****"
        assert mask("") == "****"

    def test_card_details_repr_hides_number_and_cvc(self):
        card = CardDetails(number="4000000000000259", exp_month=4, exp_year=2031, cvc="987",
                           name="Ada Lovelace")
        shown = repr(card)
        assert "4000000000000259" not in shown
        assert "987" not in shown
        assert "visa" in shown
        assert "****0259" in shown
        assert "Ada Lovelace" in shown
        assert str(card) == shown

    def test_bank_details_repr_hides_the_account_number(self):
        bank = BankDetails(routing_number="110000000", account_number="000123456789",
                           account_type="checking", holder_name="Ada Lovelace")
        shown = repr(bank)
        assert "000123456789" not in shown
        assert "****6789" in shown
        assert "checking" in shown

    def test_a_charge_request_repr_hides_the_card_inside_it(self):
        card = CardDetails(number="4242424242424242", exp_month=12, exp_year=2030, cvc="1234",
                           name="A")
        request = ChargeRequest(idempotency_key="pay_1", amount_minor=100, currency="USD",
                                method=card, description="x", on_date=date(2026, 12, 3))
        assert "4242424242424242" not in repr(request)
        assert "1234" not in repr(request)


class TestBusinessDays:
    @pytest.mark.parametrize(("start", "days", "expected"), [
        (date(2026, 12, 1), 2, date(2026, 12, 3)),  # Tuesday -> Thursday
        (date(2026, 12, 3), 2, date(2026, 12, 7)),  # Thursday -> Monday, over the weekend
        (date(2026, 12, 4), 2, date(2026, 12, 8)),  # Friday -> Tuesday
        (date(2026, 12, 5), 2, date(2026, 12, 8)),  # Saturday -> Tuesday
        (date(2026, 12, 5), 0, date(2026, 12, 5)),
    ])
    def test_counts_mondays_to_fridays(self, start, days, expected):
        assert add_business_days(start, days) == expected
