"""Money: an integer count of minor units plus an ISO 4217 currency code.

Only this module rounds or splits amounts. Exponents come from the ISO 4217 list
maintained in the ``iso4217`` package; a currency without a minor unit (gold, SDRs,
the testing code XTS) is not active and cannot be used for money.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, lru_cache

import iso4217
from babel import Locale
from babel.numbers import format_currency


@lru_cache(maxsize=256)
def _locale(name: str) -> Locale:
    """A locale by name, parsed once: parsing it took a third of formatting an amount.
    Raises as Babel does for a name it has no data for."""
    return Locale.parse(name)


class MoneyError(ValueError):
    """A money value or currency that cannot be used. The message names the problem."""


@cache
def _exponents() -> dict[str, int]:
    return {c.code: c.exponent for c in iso4217.Currency if c.exponent is not None}


def active_currencies() -> frozenset[str]:
    """ISO 4217 codes that have a minor unit, i.e. can carry an amount."""
    return frozenset(_exponents())


def exponent(currency: str) -> int:
    """Number of decimal places of the currency's minor unit (JPY 0, USD 2, BHD 3)."""
    try:
        return _exponents()[currency]
    except KeyError:
        raise MoneyError(f"{currency!r} is not an active ISO 4217 currency code") from None


def is_active_currency(currency: str) -> bool:
    return currency in _exponents()


# ASCII digits only: a bare \d would also accept Arabic-Indic or full-width digits.
_DECIMAL = re.compile(r"^(-)?([0-9]+)(?:\.([0-9]+))?$")


@dataclass(frozen=True, slots=True, order=False)
class Money:
    minor: int  # cents for USD, yen for JPY, fils for BHD
    currency: str  # ISO 4217

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise MoneyError(f"minor units must be an integer, got {self.minor!r}")
        exponent(self.currency)

    # -- construction -----------------------------------------------------------------
    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """Parse a plain decimal string ("10.00", "-3.5") into minor units.

        More decimal places than the currency's exponent is an error rather than a
        silent rounding: "10.001" USD and "1.5" JPY are refused.
        """
        places = exponent(currency)
        match = _DECIMAL.match(text.strip())
        if match is None:
            raise MoneyError(f"{text!r} is not a decimal amount")
        sign, whole, fraction = match.group(1), match.group(2), match.group(3) or ""
        if len(fraction) > places:
            raise MoneyError(
                f"{text!r} has {len(fraction)} decimal places but {currency} has "
                f"exponent {places} (at most {places} decimal places)"
            )
        minor = int(whole) * 10**places + int(fraction.ljust(places, "0") or "0")
        return cls(-minor if sign else minor, currency)

    # -- arithmetic -------------------------------------------------------------------
    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor

    def is_zero(self) -> bool:
        return self.minor == 0

    # -- splitting --------------------------------------------------------------------
    def allocate(self, weights: Sequence[int]) -> list[Money]:
        """Split in proportion to non-negative integer weights without losing a minor unit.

        Shares are floored, then the leftover units go one each to the shares with the
        largest remainders (ties to the earlier share), so the parts always sum to the whole.
        """
        if not weights:
            raise MoneyError("allocate needs at least one weight")
        if any(isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in weights):
            raise MoneyError("weights must be non-negative integers")
        total = sum(weights)
        if total == 0:
            raise MoneyError("at least one weight must be positive")
        sign = -1 if self.minor < 0 else 1
        amount = abs(self.minor)
        shares = [amount * w // total for w in weights]
        remainders = [amount * w % total for w in weights]
        leftover = amount - sum(shares)
        order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
        for i in order[:leftover]:
            shares[i] += 1
        return [Money(sign * s, self.currency) for s in shares]

    def split_evenly(self, parts: int) -> list[Money]:
        """Split into ``parts`` shares differing by at most one minor unit."""
        if parts < 1:
            raise MoneyError("parts must be at least 1")
        return self.allocate([1] * parts)

    def percent(self, rate: Decimal) -> Money:
        """This amount times ``rate`` percent, rounded half away from zero to a minor unit."""
        exact = Decimal(self.minor) * rate / Decimal(100)
        rounded = int(exact.copy_abs().quantize(Decimal(1), rounding="ROUND_HALF_UP"))
        return Money(rounded if exact >= 0 else -rounded, self.currency)

    # -- presentation -----------------------------------------------------------------
    def to_decimal(self) -> Decimal:
        return Decimal(self.minor).scaleb(-exponent(self.currency))

    def format(self, locale: str = "en_US") -> str:
        """Format for people, e.g. ``$1,234.50`` in en_US or ``1.234,50 €`` in de_DE."""
        return _formatted(self.minor, self.currency, locale)

    def __str__(self) -> str:
        return f"{self.to_decimal():f} {self.currency}"


# The same amounts are formatted again and again (a price on every invoice of a bill run,
# a payment's amount as its receipt's line and total), and Babel takes about 15 µs an
# amount (a quarter of writing a payment's receipt email): each is formatted once.
@lru_cache(maxsize=4096)
def _formatted(minor: int, currency: str, locale: str) -> str:
    return str(format_currency(Decimal(minor).scaleb(-exponent(currency)), currency,
                               locale=_locale(locale), decimal_quantization=False))


# -- percentages and tax ------------------------------------------------------------------
#
# A percentage travels and is stored as canonical decimal text ("8.25", "20", "7.125") and
# is computed as an exact integer count of ten-thousandths of a percent, so neither a
# float nor a Decimal context (with its limited precision) ever touches an amount.

PERCENT_PLACES = 4
_PERCENT_SCALE: int = 10**PERCENT_PLACES
_WHOLE: int = 100 * _PERCENT_SCALE  # 100 %, in ten-thousandths of a percent
_PERCENT = re.compile(r"([0-9]+)(?:\.([0-9]+))?")


def _shown(text: object) -> str:
    return repr(text) if not isinstance(text, str) or len(text) <= 24 else repr(text[:24]) + "…"


def percent_units(text: str) -> int:
    """``text`` as an integer count of ten-thousandths of a percent ("8.25" -> 82500).

    Accepts plain decimal text with at most 4 decimal places from 0 to 100; refuses signs,
    exponents, a percent sign, spaces and anything over 100.
    """
    match = _PERCENT.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise MoneyError(f"{_shown(text)} is not a percentage: give plain decimal text such as "
                         "'8.25'")
    whole, fraction = match.group(1).lstrip("0") or "0", match.group(2) or ""
    if len(whole) > 3:  # checked before int(), which refuses thousands of digits
        raise MoneyError(f"{_shown(text)} is over 100 percent")
    if len(fraction) > PERCENT_PLACES:
        raise MoneyError(f"{_shown(text)} has {len(fraction)} decimal places; a percentage has at "
                         f"most {PERCENT_PLACES}")
    units = int(whole) * _PERCENT_SCALE + int(fraction.ljust(PERCENT_PLACES, "0"))
    if units > _WHOLE:
        raise MoneyError(f"{_shown(text)} is over 100 percent")
    return units


def parse_percent(text: str) -> str:
    """The canonical text of a percentage: no leading zeros, no trailing decimal zeros
    ("08.250" -> "8.25", "20.0" -> "20"). Raises MoneyError as ``percent_units`` does."""
    whole, fraction = divmod(percent_units(text), _PERCENT_SCALE)
    if not fraction:
        return str(whole)
    return f"{whole}.{str(fraction).rjust(PERCENT_PLACES, '0').rstrip('0')}"


def percent_decimal(text: str) -> Decimal:
    """The exact Decimal of a percentage, for display and comparison; never for storage."""
    return Decimal(percent_units(text)).scaleb(-PERCENT_PLACES)


def _minor(amount_minor: int) -> int:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise MoneyError(f"minor units must be an integer, got {amount_minor!r}")
    return amount_minor


def _divide_half_away(numerator: int, denominator: int) -> int:
    """numerator / denominator (denominator > 0) rounded once, halves away from zero."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return -quotient if numerator < 0 else quotient


def tax_exclusive(amount_minor: int, percent: str) -> int:
    """Tax on a net amount: ``amount_minor * percent / 100`` in minor units, rounded once,
    halves away from zero, so the tax of a credit line is exactly minus that of the debit."""
    return _divide_half_away(_minor(amount_minor) * percent_units(percent), _WHOLE)


def tax_inclusive(gross_minor: int, percent: str) -> tuple[int, int]:
    """Split a gross amount that already includes tax into ``(net_minor, tax_minor)``.

    The tax, ``gross * p / (100 + p)``, is rounded once (halves away from zero) and the net
    is what remains, so ``net + tax == gross`` always and a credit mirrors its debit.
    """
    units = percent_units(percent)
    tax = _divide_half_away(_minor(gross_minor) * units, _WHOLE + units)
    return gross_minor - tax, tax
