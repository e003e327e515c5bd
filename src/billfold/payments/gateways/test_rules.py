"""What the test gateway decides from a request alone, before it touches its records: which
test number asks for what, which details are declined, and which events a charge will
send. The behaviour table is in the docstring of ``billfold.payments.gateways.test``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from billfold.payments.gateways.base import (
    BankDetails,
    CardDetails,
    ChargeRequest,
    SavedInstrument,
)
from billfold.payments.gateways.checks import aba_ok, card_brand, is_digits, luhn_ok

# Keyed by the full test number, which is public; only the behaviour code is ever stored.
CARD_BEHAVIOURS = {
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
    "4000000000000259": "dispute_lost",
    "4000000000002685": "dispute_won",
    "4000000000000119": "timeout",
}
BANK_BEHAVIOURS = {
    "000111111116": "return_R01",
    "000111111113": "return_R03",
}
DISPUTE_FEE_MINOR = 1500
DISPUTE_OPENS_AFTER = timedelta(days=3)
DISPUTE_CLOSES_AFTER = timedelta(days=30)

# The issuer's declines come after a charge exists, so they carry a reference; the other
# codes refuse the details before any charge is made.
ISSUER_DECLINES = ("card_declined", "insufficient_funds")
MESSAGES = {
    "card_declined": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "invalid_number": "Your card number is incorrect.",
    "invalid_expiry": "Your card's expiration date is incorrect.",
    "expired_card": "Your card has expired.",
    "invalid_cvc": "Your card's security code is incorrect.",
    "invalid_routing_number": "The bank routing number is incorrect.",
    "invalid_account_number": "The bank account number is incorrect.",
    "invalid_account_type": "The bank account type must be checking or savings.",
    "unknown_token": "This saved payment method is not on file.",
}
_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    kind: str
    on_date: date
    return_code: str | None = None
    amount_minor: int | None = None
    fee_minor: int | None = None


def check_request(request: ChargeRequest) -> None:
    """Refuse what no processor's API would accept. These are programming errors, not
    declines, so they raise."""
    if not 0 < len(request.idempotency_key) <= 100:
        raise ValueError("an idempotency key must have 1 to 100 characters")
    if request.amount_minor <= 0:
        raise ValueError("a charge amount must be positive")
    if _CURRENCY.fullmatch(request.currency) is None:
        raise ValueError("a currency must be three capital letters (ISO 4217)")
    if len(request.description) > 500:
        raise ValueError("a charge description must have at most 500 characters")
    if not isinstance(request.method, CardDetails | BankDetails | SavedInstrument):
        raise TypeError(f"cannot charge a {type(request.method).__name__}")


def card_decline(card: CardDetails, on_date: date) -> str | None:
    """Why the card's details are refused before any charge, or None."""
    brand = card_brand(card.number)
    if brand is None or not luhn_ok(card.number):
        return "invalid_number"
    if not 1 <= card.exp_month <= 12 or not 1000 <= card.exp_year <= 9999:
        return "invalid_expiry"
    if expired(card.exp_month, card.exp_year, on_date):
        return "expired_card"
    if not is_digits(card.cvc) or len(card.cvc) != (4 if brand == "amex" else 3):
        return "invalid_cvc"
    return None


def expired(exp_month: int, exp_year: int, on_date: date) -> bool:
    """A card is good through the last day of its expiry month."""
    return (exp_year, exp_month) < (on_date.year, on_date.month)


def bank_decline(bank: BankDetails) -> str | None:
    """Why the bank account's details are refused, or None."""
    if not aba_ok(bank.routing_number):
        return "invalid_routing_number"
    if not (is_digits(bank.account_number) and 4 <= len(bank.account_number) <= 17):
        return "invalid_account_number"
    if bank.account_type not in ("checking", "savings"):
        return "invalid_account_type"
    return None


def add_business_days(start: date, days: int) -> date:
    """``days`` Mondays-to-Fridays after ``start`` (no holiday calendar)."""
    current = start
    while days > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


def planned_events(behaviour: str | None, *, charge_date: date, settle_date: date | None,
                   amount_minor: int) -> list[PlannedEvent]:
    """The events an accepted charge will send, all known when it is made."""
    if behaviour in ("dispute_lost", "dispute_won"):
        return [PlannedEvent("dispute_opened", charge_date + DISPUTE_OPENS_AFTER,
                             amount_minor=amount_minor, fee_minor=DISPUTE_FEE_MINOR),
                PlannedEvent(behaviour, charge_date + DISPUTE_CLOSES_AFTER,
                             amount_minor=amount_minor)]
    if settle_date is None or behaviour is None:
        return []
    if behaviour.startswith("return_"):
        return [PlannedEvent("returned", settle_date, return_code=behaviour.removeprefix(
            "return_"), amount_minor=amount_minor)]
    return [PlannedEvent("settled", settle_date)]
