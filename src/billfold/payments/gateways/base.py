"""What crosses the gateway seam: frozen dataclasses in, frozen dataclasses out, and the
``Gateway`` protocol every processor adapter implements.

A card number and CVC live only in a ``CardDetails`` for the length of one ``charge``
call; what may be kept afterwards is an ``Instrument`` (token, brand, last four, expiry).
The reprs of ``CardDetails`` and ``BankDetails`` are masked so a log line or a traceback
that prints one leaks nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from billfold.core.scope import Scope
from billfold.payments.gateways.checks import card_brand, mask

CHARGE_STATUSES = ("succeeded", "pending", "declined")
EVENT_KINDS = ("settled", "returned", "dispute_opened", "dispute_won", "dispute_lost")


@dataclass(frozen=True, slots=True)
class CardDetails:
    """What the payer typed; held in memory for the charge call only."""

    number: str  # digits only; the caller strips spaces
    exp_month: int
    exp_year: int  # four digits
    cvc: str
    name: str

    def __repr__(self) -> str:
        return (f"CardDetails(brand={card_brand(self.number)!r}, number={mask(self.number)!r}, "
                f"exp={self.exp_month:02d}/{self.exp_year}, name={self.name!r})")


@dataclass(frozen=True, slots=True)
class BankDetails:
    routing_number: str  # 9 digits with a valid ABA checksum (the gateway checks again)
    account_number: str
    account_type: str  # "checking" | "savings"
    holder_name: str

    def __repr__(self) -> str:
        return (f"BankDetails(routing_number={self.routing_number!r}, "
                f"account_number={mask(self.account_number)!r}, "
                f"account_type={self.account_type!r}, holder_name={self.holder_name!r})")


@dataclass(frozen=True, slots=True)
class SavedInstrument:
    token: str  # a token this gateway issued in an earlier charge's Instrument


@dataclass(frozen=True, slots=True)
class Instrument:
    """A payment method as it may be stored: nothing in it can be charged without the
    gateway that issued the token."""

    token: str
    kind: str  # "card" | "bank"
    brand: str | None
    last4: str
    exp_month: int | None
    exp_year: int | None
    routing_number: str | None
    account_type: str | None
    holder_name: str
    fingerprint: str  # the same for the same card or bank account; keyed, not reversible


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    idempotency_key: str  # our payment id: the same key never charges twice
    amount_minor: int
    currency: str
    method: CardDetails | BankDetails | SavedInstrument
    description: str
    on_date: date  # the tenant's business date (the test clock in test mode)


@dataclass(frozen=True, slots=True)
class ChargeResult:
    status: str  # "succeeded" (card, captured) | "pending" (bank, until settled) | "declined"
    reference: str | None  # the gateway's charge id; None when declined before one existed
    instrument: Instrument | None  # None when declined
    decline_code: str | None
    message: str  # for the payer, in English
    settles_on: date | None  # bank charges


@dataclass(frozen=True, slots=True)
class RefundResult:
    status: str  # "succeeded" | "refused"
    reference: str | None  # the gateway's refund id when it succeeded
    message: str


@dataclass(frozen=True, slots=True)
class VoidResult:
    status: str  # "voided" | "refused"
    message: str


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    """A notification from the gateway about a charge made earlier. Event ids are unique
    per gateway, so a second delivery of one event can be recognised and ignored."""

    event_id: str
    reference: str  # the charge's reference
    kind: str  # one of EVENT_KINDS
    on_date: date
    return_code: str | None  # NACHA return reason ("R01", ...) of a returned bank charge
    amount_minor: int | None  # the returned or disputed amount
    fee_minor: int | None  # the dispute fee the processor charges


class GatewayTimeout(Exception):
    """The gateway did not answer: the charge (or refund) may or may not have happened.
    Ask ``lookup`` (``lookup_refund``) with the same idempotency key, or call again with it."""


class Gateway(Protocol):
    """A payment processor. Each method is a call to an external system: make it outside
    your own transaction, because nothing on our side can roll back what it did."""

    name: str

    def charge(self, scope: Scope, request: ChargeRequest) -> ChargeResult:
        """Charge once per idempotency key; a repeated key returns the first result.
        May raise GatewayTimeout."""
        ...

    def refund(self, scope: Scope, *, reference: str, amount_minor: int,
               idempotency_key: str) -> RefundResult:
        """Refund once per idempotency key; a repeated key returns the first result. A
        settled bank debit is refunded by a credit to the same account. May raise
        GatewayTimeout."""
        ...

    def void(self, scope: Scope, *, reference: str) -> VoidResult: ...

    def lookup(self, scope: Scope, *, idempotency_key: str) -> ChargeResult | None:
        """The result of the charge made with this key, or None if none was made."""
        ...

    def lookup_refund(self, scope: Scope, *, idempotency_key: str) -> RefundResult | None:
        """The result of the refund asked for with this key, or None if none was asked
        for: how a refund whose answer was lost is settled without refunding twice."""
        ...

    def events(self, scope: Scope, *, through: date) -> list[GatewayEvent]:
        """Notifications dated on or before ``through`` not yet acknowledged, oldest first."""
        ...

    def acknowledge(self, scope: Scope, event_ids: Sequence[str]) -> None: ...
