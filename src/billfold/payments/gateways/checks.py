"""Checks a payer's card or bank details can pass before any gateway sees them, and the
masking that lets them appear in logs and reprs without their secret parts."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]+")

# (brand, IIN prefix ranges as inclusive (low, high) strings of equal length, card lengths).
# The ranges follow the card networks' published IIN tables as card libraries use them;
# 622126-622925 is co-branded, and like most libraries we call all of 62 UnionPay.
_BRANDS: tuple[tuple[str, tuple[tuple[str, str], ...], frozenset[int]], ...] = (
    ("amex", (("34", "34"), ("37", "37")), frozenset({15})),
    ("visa", (("4", "4"),), frozenset({13, 16, 19})),
    ("mastercard", (("51", "55"), ("2221", "2720")), frozenset({16})),
    ("discover", (("6011", "6011"), ("644", "649"), ("65", "65")), frozenset(range(16, 20))),
    ("diners", (("300", "305"), ("36", "36"), ("38", "39")), frozenset(range(14, 20))),
    ("jcb", (("3528", "3589"),), frozenset(range(16, 20))),
    ("unionpay", (("62", "62"), ("81", "81")), frozenset(range(14, 20))),
)


def is_digits(value: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts "²" and other scripts' digits)."""
    return _DIGITS.fullmatch(value) is not None


def luhn_ok(number: str) -> bool:
    """Whether ``number`` (digits only) passes the Luhn mod-10 check every card number has."""
    if len(number) < 2 or not is_digits(number):
        return False
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def card_brand(number: str) -> str | None:
    """The network of a card number from its leading digits and length, or None."""
    if not is_digits(number):
        return None
    for brand, ranges, lengths in _BRANDS:
        if len(number) not in lengths:
            continue
        for low, high in ranges:
            if low <= number[:len(low)] <= high:
                return brand
    return None


def aba_ok(routing_number: str) -> bool:
    """Whether a US routing number has nine digits and passes the ABA 3-7-1 checksum."""
    if len(routing_number) != 9 or not is_digits(routing_number):
        return False
    d = [int(c) for c in routing_number]
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 0


def last4(number: str) -> str:
    return number[-4:]


def mask(number: str) -> str:
    """``****4242``: the last four only, and always four stars so the length stays hidden.
    A value of four characters or fewer is hidden entirely."""
    return "****" + (number[-4:] if len(number) > 4 else "")
