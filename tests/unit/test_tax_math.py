"""Percentages and tax arithmetic in money.py: exact, rounded once, never losing a unit."""

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billfold.money import (
    Money,
    MoneyError,
    parse_percent,
    percent_decimal,
    percent_units,
    tax_exclusive,
    tax_inclusive,
)

amounts = st.integers(min_value=-(10**15), max_value=10**15)
units = st.integers(min_value=0, max_value=1_000_000)  # ten-thousandths of a percent
property_settings = settings(max_examples=400, deadline=None)


def percent_text(ten_thousandths: int) -> str:
    """Some (not canonical) text for a percentage: always four decimal places."""
    return f"{ten_thousandths // 10_000}.{ten_thousandths % 10_000:04d}"


percents = units.map(percent_text)


def half_away(value: Fraction) -> int:
    """The oracle: round to an integer, halves away from zero."""
    magnitude = abs(value)
    whole = int(magnitude)
    if magnitude - whole >= Fraction(1, 2):
        whole += 1
    return whole if value >= 0 else -whole


class TestParsePercent:
    @pytest.mark.parametrize(("text", "canonical", "ten_thousandths"), [
        ("8.25", "8.25", 82_500), ("0", "0", 0), ("20", "20", 200_000),
        ("7.125", "7.125", 71_250), ("100", "100", 1_000_000), ("0.0001", "0.0001", 1),
        ("08.250", "8.25", 82_500), ("20.0", "20", 200_000), ("100.0000", "100", 1_000_000),
        ("0.0", "0", 0), ("007", "7", 70_000),
    ])
    def test_reads_decimal_text_into_its_canonical_form(self, text, canonical, ten_thousandths):
        assert parse_percent(text) == canonical
        assert percent_units(text) == ten_thousandths

    @pytest.mark.parametrize("text", [
        "abc", "-1", "-0", "+5", "1e2", "8.25%", "", " ", " 8", "8 ", "8.", ".5", "8,25",
        "1_0", "\uff18", "\u0668", "8.25\n", "0x10", "nan", "inf", "8..2",
    ])
    def test_refuses_text_that_is_not_a_plain_decimal(self, text):
        with pytest.raises(MoneyError, match="is not a percentage"):
            parse_percent(text)

    @pytest.mark.parametrize("text", ["100.0001", "101", "1000", "9" * 5000])
    def test_refuses_more_than_100_percent(self, text):
        with pytest.raises(MoneyError, match="over 100 percent"):
            parse_percent(text)

    @pytest.mark.parametrize("text", ["8.12345", "0.00001", "5." + "0" * 5000])
    def test_refuses_more_than_four_decimal_places(self, text):
        with pytest.raises(MoneyError, match="decimal places"):
            parse_percent(text)

    @pytest.mark.parametrize("value", [8.25, Decimal("8.25"), 8, None, b"8"])
    def test_refuses_anything_but_text(self, value):
        with pytest.raises(MoneyError):
            parse_percent(value)

    @property_settings
    @given(units)
    def test_canonical_text_means_the_same_percentage_and_is_stable(self, ten_thousandths):
        canonical = parse_percent(percent_text(ten_thousandths))
        assert percent_units(canonical) == ten_thousandths
        assert parse_percent(canonical) == canonical
        assert Decimal(canonical) == percent_decimal(canonical)
        assert Fraction(Decimal(canonical)) == Fraction(ten_thousandths, 10_000)
        assert canonical == "0" or (not canonical.startswith("0") or canonical.startswith("0."))
        assert not canonical.endswith("0") or "." not in canonical


class TestTaxExclusive:
    @pytest.mark.parametrize(("amount", "percent", "tax"), [
        (1000, "8.25", 83),  # 82.5 rounds up, not to even
        (1001, "8.25", 83),  # 82.5825
        (-1000, "8.25", -83),  # a credit mirrors the debit
        (200, "0.25", 1),  # 0.5 exactly
        (199, "0.25", 0),  # 0.4975
        (-200, "0.25", -1),
        (12345, "0", 0),
        (12345, "100", 12345),
        (0, "20", 0),
        (10**15, "7.125", 71_250_000_000_000),
    ])
    def test_is_the_amount_times_the_percentage_rounded_half_away_from_zero(
            self, amount, percent, tax):
        assert tax_exclusive(amount, percent) == tax

    @property_settings
    @given(amounts, percents)
    def test_equals_the_exact_product_rounded_once(self, amount, percent):
        exact = Fraction(amount) * Fraction(Decimal(percent)) / 100
        assert tax_exclusive(amount, percent) == half_away(exact)

    @property_settings
    @given(amounts, percents)
    def test_the_tax_of_a_credit_is_minus_the_tax_of_the_debit(self, amount, percent):
        assert tax_exclusive(-amount, percent) == -tax_exclusive(amount, percent)

    @property_settings
    @given(amounts, percents)
    def test_agrees_with_money_percent(self, amount, percent):
        assert tax_exclusive(amount, percent) == \
            Money(amount, "USD").percent(percent_decimal(percent)).minor

    @pytest.mark.parametrize("amount", [1.0, Decimal(1), "100", True, None])
    def test_refuses_an_amount_that_is_not_integer_minor_units(self, amount):
        with pytest.raises(MoneyError, match="integer"):
            tax_exclusive(amount, "8.25")

    def test_refuses_a_percentage_that_does_not_parse(self):
        with pytest.raises(MoneyError, match="is not a percentage"):
            tax_exclusive(1000, "8.25%")


class TestTaxInclusive:
    @pytest.mark.parametrize(("gross", "percent", "net", "tax"), [
        (10825, "8.25", 10000, 825),
        (-10825, "8.25", -10000, -825),
        (12000, "20", 10000, 2000),
        (100, "20", 83, 17),  # 16.67 of tax
        (3, "100", 1, 2),  # 1.5 of tax rounds away from zero
        (-3, "100", -1, -2),
        (999, "0", 999, 0),
        (0, "8.25", 0, 0),
    ])
    def test_splits_the_gross_into_net_and_tax(self, gross, percent, net, tax):
        assert tax_inclusive(gross, percent) == (net, tax)

    @property_settings
    @given(amounts, percents)
    def test_net_and_tax_always_sum_to_the_gross(self, gross, percent):
        net, tax = tax_inclusive(gross, percent)
        assert net + tax == gross

    @property_settings
    @given(amounts, percents)
    def test_the_tax_is_the_exact_share_rounded_once(self, gross, percent):
        p = Fraction(Decimal(percent))
        assert tax_inclusive(gross, percent)[1] == half_away(gross * p / (100 + p))

    @property_settings
    @given(amounts, percents)
    def test_a_credit_mirrors_the_debit(self, gross, percent):
        net, tax = tax_inclusive(gross, percent)
        assert tax_inclusive(-gross, percent) == (-net, -tax)

    @property_settings
    @given(amounts, percents)
    def test_the_tax_is_within_one_unit_of_the_tax_on_the_net(self, gross, percent):
        net, tax = tax_inclusive(gross, percent)
        assert abs(tax_exclusive(net, percent) - tax) <= 1

    @pytest.mark.parametrize("gross", [1.5, "10", False])
    def test_refuses_a_gross_that_is_not_integer_minor_units(self, gross):
        with pytest.raises(MoneyError, match="integer"):
            tax_inclusive(gross, "8.25")
