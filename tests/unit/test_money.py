from decimal import Decimal
from fractions import Fraction

import pytest
from babel import UnknownLocaleError
from babel.numbers import format_currency
from hypothesis import given, settings
from hypothesis import strategies as st

from billfold.money import Money, MoneyError, active_currencies, exponent, is_active_currency

currencies = st.sampled_from(sorted(active_currencies()))
amounts = st.integers(min_value=-(10**15), max_value=10**15)
weights_lists = st.lists(
    st.one_of(st.just(0), st.integers(min_value=1, max_value=1_000)), min_size=1, max_size=12
).filter(lambda weights: sum(weights) > 0)
money_values = st.builds(Money, amounts, currencies)

property_settings = settings(max_examples=300, deadline=None)


class TestCurrencyExponents:
    @pytest.mark.parametrize(
        ("currency", "places"),
        [("JPY", 0), ("KRW", 0), ("USD", 2), ("EUR", 2), ("BHD", 3), ("KWD", 3), ("CLF", 4)],
    )
    def test_exponent_is_the_iso_4217_minor_unit(self, currency, places):
        assert exponent(currency) == places

    @pytest.mark.parametrize("currency", ["XAU", "XTS", "XDR"])
    def test_a_code_without_a_minor_unit_is_not_active(self, currency):
        assert currency not in active_currencies()
        assert not is_active_currency(currency)
        with pytest.raises(MoneyError, match=currency):
            exponent(currency)

    @pytest.mark.parametrize("currency", ["USD", "JPY", "BHD"])
    def test_a_currency_with_a_minor_unit_is_active(self, currency):
        assert currency in active_currencies()
        assert is_active_currency(currency)

    @pytest.mark.parametrize("currency", ["usd", "US", "ZZZ", ""])
    def test_an_unknown_or_misspelt_code_is_not_active(self, currency):
        assert not is_active_currency(currency)


class TestConstruction:
    def test_money_keeps_its_minor_units_and_currency(self):
        amount = Money(1234, "USD")
        assert (amount.minor, amount.currency) == (1234, "USD")

    @pytest.mark.parametrize("currency", ["XAU", "XTS", "usd", "ZZZ"])
    def test_refuses_a_currency_that_is_not_active(self, currency):
        with pytest.raises(MoneyError):
            Money(100, currency)

    @pytest.mark.parametrize("minor", [1.0, Decimal(1), "1", True, None])
    def test_refuses_minor_units_that_are_not_an_integer(self, minor):
        with pytest.raises(MoneyError, match="integer"):
            Money(minor, "USD")

    def test_zero_is_zero_minor_units_of_the_currency(self):
        assert Money.zero("BHD") == Money(0, "BHD")
        assert Money.zero("BHD").is_zero()
        assert not Money(1, "BHD").is_zero()


class TestParse:
    @pytest.mark.parametrize(
        ("text", "currency", "minor"),
        [
            ("10.00", "USD", 1000),
            ("10", "USD", 1000),
            ("10.5", "USD", 1050),
            ("0.01", "USD", 1),
            ("1234567.89", "USD", 123456789),
            ("1500", "JPY", 1500),
            ("1.234", "BHD", 1234),
            ("0.001", "BHD", 1),
            ("  10.00  ", "USD", 1000),
        ],
    )
    def test_reads_a_decimal_string_as_minor_units(self, text, currency, minor):
        assert Money.parse(text, currency) == Money(minor, currency)

    @pytest.mark.parametrize(
        ("text", "currency", "minor"),
        [("-10.00", "USD", -1000), ("-3.5", "USD", -350), ("-0.01", "USD", -1), ("-7", "JPY", -7)],
    )
    def test_reads_a_negative_amount(self, text, currency, minor):
        assert Money.parse(text, currency) == Money(minor, currency)

    def test_negative_zero_is_zero(self):
        assert Money.parse("-0.00", "USD") == Money(0, "USD")

    @pytest.mark.parametrize(
        ("text", "currency", "places"),
        [("10.001", "USD", 2), ("1.5", "JPY", 0), ("1.0", "JPY", 0), ("0.0001", "BHD", 3)],
    )
    def test_refuses_more_places_than_the_exponent_and_names_it(self, text, currency, places):
        with pytest.raises(MoneyError, match=rf"{currency} has exponent {places}\b"):
            Money.parse(text, currency)

    @pytest.mark.parametrize(
        "text",
        [
            "",
            " ",
            "abc",
            "10,00",
            "1,000.00",
            "$10",
            "10 USD",
            "10.",
            ".5",
            "+10",
            "--1",
            "- 1",
            "1-",
            "1e3",
            "10.0.0",
            "1_000",
            "NaN",
            "Infinity",
            "0x10",
            "\uff11\uff10.\uff10\uff10",  # full-width digits "10.00"
            "\u0661\u0660",  # Arabic-Indic digits "10"
        ],
    )
    def test_refuses_a_string_that_is_not_a_plain_decimal(self, text):
        with pytest.raises(MoneyError, match="not a decimal amount"):
            Money.parse(text, "USD")

    def test_refuses_an_inactive_currency(self):
        with pytest.raises(MoneyError, match="XAU"):
            Money.parse("1", "XAU")

    @property_settings
    @given(money_values)
    def test_str_parses_back_to_the_same_money(self, amount):
        text, currency = str(amount).split(" ")
        assert currency == amount.currency
        assert Money.parse(text, currency) == amount

    @property_settings
    @given(st.data(), currencies)
    def test_a_canonical_decimal_string_survives_parse_then_str(self, data, currency):
        places = exponent(currency)
        sign = data.draw(st.sampled_from(["", "-"]))
        whole = data.draw(st.integers(min_value=0, max_value=10**12))
        fraction = data.draw(st.text(alphabet="0123456789", min_size=places, max_size=places))
        if whole == 0 and set(fraction) <= {"0"}:
            sign = ""  # zero has no sign once parsed
        text = f"{sign}{whole}" + (f".{fraction}" if places else "")
        assert str(Money.parse(text, currency)) == f"{text} {currency}"


class TestArithmetic:
    def test_adds_and_subtracts_in_one_currency(self):
        assert Money(150, "USD") + Money(275, "USD") == Money(425, "USD")
        assert Money(150, "USD") - Money(275, "USD") == Money(-125, "USD")
        assert -Money(150, "USD") == Money(-150, "USD")

    def test_compares_in_one_currency(self):
        small, large = Money(1, "EUR"), Money(2, "EUR")
        assert small < large
        assert small <= large
        assert small <= Money(1, "EUR")
        assert large > small
        assert large >= small
        assert not large < small

    def test_amounts_in_different_currencies_are_not_equal(self):
        assert Money(100, "USD") != Money(100, "EUR")

    @pytest.mark.parametrize(
        "combine",
        [
            lambda a, b: a + b,
            lambda a, b: a - b,
            lambda a, b: a < b,
            lambda a, b: a <= b,
            lambda a, b: a > b,
            lambda a, b: a >= b,
        ],
        ids=["add", "subtract", "lt", "le", "gt", "ge"],
    )
    def test_refuses_to_combine_two_currencies(self, combine):
        with pytest.raises(MoneyError, match="cannot combine"):
            combine(Money(100, "USD"), Money(100, "EUR"))


def exact_share(amount: Money, weights: list[int], index: int) -> Fraction:
    return Fraction(amount.minor * weights[index], sum(weights))


class TestAllocate:
    def test_splits_in_proportion_to_the_weights(self):
        assert Money(1000, "USD").allocate([1, 3]) == [Money(250, "USD"), Money(750, "USD")]

    def test_gives_leftover_units_to_the_largest_remainders(self):
        # exact shares 2.4, 2.9 and 4.7: the units go to 2.9 then 4.7, not to the first share
        shares = Money(10, "USD").allocate([24, 29, 47])
        assert [s.minor for s in shares] == [2, 3, 5]

    def test_breaks_ties_in_favour_of_the_earlier_share(self):
        assert [s.minor for s in Money(100, "USD").allocate([1, 1, 1])] == [34, 33, 33]
        assert [s.minor for s in Money(1, "USD").allocate([1, 1, 1])] == [1, 0, 0]
        assert [s.minor for s in Money(5, "USD").allocate([3, 7])] == [2, 3]

    def test_splits_a_negative_amount_as_the_mirror_of_the_positive(self):
        assert [s.minor for s in Money(-100, "USD").allocate([1, 1, 1])] == [-34, -33, -33]

    def test_a_zero_weight_gets_nothing(self):
        assert [s.minor for s in Money(7, "JPY").allocate([0, 1, 0, 1])] == [0, 4, 0, 3]

    @pytest.mark.parametrize(
        "weights",
        [[], [0], [0, 0], [1, -1], [-1, 2], [1.5, 1], [True, 1], [Decimal(1)]],
        ids=repr,
    )
    def test_refuses_weights_that_cannot_split(self, weights):
        with pytest.raises(MoneyError):
            Money(100, "USD").allocate(weights)

    @property_settings
    @given(money_values, weights_lists)
    def test_never_loses_or_invents_a_minor_unit(self, amount, weights):
        shares = amount.allocate(weights)
        assert len(shares) == len(weights)
        assert all(s.currency == amount.currency for s in shares)
        assert sum(s.minor for s in shares) == amount.minor

    @property_settings
    @given(money_values, weights_lists)
    def test_each_share_is_within_one_minor_unit_of_its_exact_share(self, amount, weights):
        shares = amount.allocate(weights)
        for index, share in enumerate(shares):
            assert abs(share.minor - exact_share(amount, weights, index)) < 1

    @property_settings
    @given(money_values, weights_lists)
    def test_shares_keep_the_sign_of_the_amount_and_zero_weights_get_zero(self, amount, weights):
        for weight, share in zip(weights, amount.allocate(weights), strict=True):
            if weight == 0:
                assert share.minor == 0
            assert share.minor * amount.minor >= 0


class TestSplitEvenly:
    def test_splits_into_equal_parts_when_it_can(self):
        assert Money(900, "USD").split_evenly(3) == [Money(300, "USD")] * 3

    def test_gives_the_leftover_to_the_first_parts(self):
        assert [s.minor for s in Money(11, "USD").split_evenly(3)] == [4, 4, 3]
        assert [s.minor for s in Money(-11, "USD").split_evenly(3)] == [-4, -4, -3]

    def test_one_part_is_the_whole(self):
        assert Money(12345, "USD").split_evenly(1) == [Money(12345, "USD")]

    @pytest.mark.parametrize("parts", [0, -1])
    def test_refuses_fewer_than_one_part(self, parts):
        with pytest.raises(MoneyError, match="at least 1"):
            Money(100, "USD").split_evenly(parts)

    @property_settings
    @given(money_values, st.integers(min_value=1, max_value=50))
    def test_never_loses_or_invents_a_minor_unit(self, amount, parts):
        shares = amount.split_evenly(parts)
        assert len(shares) == parts
        assert all(s.currency == amount.currency for s in shares)
        assert sum(s.minor for s in shares) == amount.minor

    @property_settings
    @given(money_values, st.integers(min_value=1, max_value=50))
    def test_shares_differ_by_at_most_one_minor_unit(self, amount, parts):
        minors = [s.minor for s in amount.split_evenly(parts)]
        assert max(minors) - min(minors) <= 1


def half_away_from_zero(value: Fraction) -> int:
    magnitude = int(abs(value) + Fraction(1, 2))  # floor, as the operand is non-negative
    return magnitude if value >= 0 else -magnitude


class TestPercent:
    def test_takes_a_percentage_of_the_amount(self):
        assert Money(10000, "USD").percent(Decimal("7.5")) == Money(750, "USD")
        assert Money(1999, "USD").percent(Decimal(100)) == Money(1999, "USD")
        assert Money(1999, "USD").percent(Decimal(0)) == Money(0, "USD")

    @pytest.mark.parametrize(
        ("minor", "rate", "expected"),
        [
            (250, "1", 3),  # 2.5 → 3 (banker's rounding would give 2)
            (-250, "1", -3),
            (50, "1", 1),  # 0.5 → 1
            (-50, "1", -1),
            (249, "1", 2),  # 2.49 → 2
            (-249, "1", -2),
            (251, "1", 3),
            (1000, "0.05", 1),  # 0.5 → 1
            (1000, "-0.05", -1),
        ],
    )
    def test_rounds_half_away_from_zero(self, minor, rate, expected):
        assert Money(minor, "USD").percent(Decimal(rate)) == Money(expected, "USD")

    @property_settings
    @given(
        money_values,
        st.integers(min_value=-(10**7), max_value=10**7).map(lambda n: Decimal(n).scaleb(-4)),
    )
    def test_matches_exact_arithmetic_rounded_half_away_from_zero(self, amount, rate):
        expected = half_away_from_zero(Fraction(amount.minor) * Fraction(rate) / 100)
        result = amount.percent(rate)
        assert result == Money(expected, amount.currency)


class TestFormat:
    def test_formats_dollars_for_the_united_states(self):
        assert Money(123450, "USD").format("en_US") == "$1,234.50"

    def test_formats_in_en_us_by_default(self):
        assert Money(123450, "USD").format() == "$1,234.50"

    def test_keeps_the_cents_of_a_small_amount(self):
        assert Money(5, "USD").format("en_US") == "$0.05"

    def test_formats_euros_the_german_way(self):
        # dot for thousands, comma for decimals, symbol after a no-break space
        assert Money(123450, "EUR").format("de_DE") == "1.234,50\N{NO-BREAK SPACE}€"

    def test_formats_yen_without_decimals_in_japan(self):
        text = Money(1234, "JPY").format("ja_JP")
        assert text.endswith("1,234")
        assert text[0] in "\N{YEN SIGN}\N{FULLWIDTH YEN SIGN}"
        assert "." not in text

    def test_formats_three_decimals_for_dinars(self):
        assert "1,234.567" in Money(1234567, "BHD").format("en_US")

    @pytest.mark.parametrize(
        ("amount", "digits"),
        [(Money(1234567, "IQD"), "1,234.567"), (Money(1234501, "IRR"), "12,345.01")],
    )
    def test_never_rounds_away_minor_units_the_locale_data_would_hide(self, amount, digits):
        # CLDR shows these currencies without decimals, but ISO 4217 gives them a minor unit
        assert digits in amount.format("en_US")


    @pytest.mark.parametrize("locale", ["en_US", "de_DE", "fr_CH", "hi_IN", "ja_JP", "ar_EG"])
    @pytest.mark.parametrize("currency", ["USD", "EUR", "JPY", "BHD", "INR"])
    def test_is_babels_formatting_each_time(self, locale, currency):
        # Formatted amounts are remembered; what comes back is Babel's, for every amount.
        for minor in (0, 5, -5, 123450, 123456789012, 123450):
            shown = format_currency(Money(minor, currency).to_decimal(), currency,
                                    locale=locale, decimal_quantization=False)
            assert Money(minor, currency).format(locale) == shown

    def test_a_locale_babel_does_not_know_fails_every_time(self):
        for _ in range(2):
            with pytest.raises(UnknownLocaleError):
                Money(100, "USD").format("xx_NOPE")


class TestStr:
    @pytest.mark.parametrize(
        ("amount", "text"),
        [
            (Money(123450, "USD"), "1234.50 USD"),
            (Money(-5, "USD"), "-0.05 USD"),
            (Money(0, "BHD"), "0.000 BHD"),
            (Money(7, "JPY"), "7 JPY"),
        ],
    )
    def test_shows_the_plain_decimal_and_the_code(self, amount, text):
        assert str(amount) == text
