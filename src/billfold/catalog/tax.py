"""Which tax applies to a line, and how much. Pure: the bill run loads a tenant's rates once
(``tax_service.load_tax_rules``) and its accounts' exemptions once per chunk
(``tax_service.exemptions_for``), then calls ``resolve`` and ``line_tax`` per line.

Which address decides: the customer's service address when it has one of its own (tax
follows where the service is delivered), otherwise its billing address; ``tax_address``
picks it. Regions are ISO 3166-2 subdivision codes ("US-TX"); the free-text region of an
address ("TX", "Texas", "us-tx") is read by ``region_code``.

A regional rate replaces the country-wide rate of the same category rather than adding to
it: record the combined percentage on the regional rate (e.g. GST + PST for "CA-BC").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

import pycountry

from billfold import money

# Products and rates name their category with the same code, compared exactly; the same
# form catalog/service.py asks of a product's tax_category.
TAX_CATEGORY = re.compile(r"[a-z][a-z0-9_]{0,39}")


def is_tax_category(value: object) -> bool:
    """A tax category code: a lowercase letter, then up to 39 lowercase letters, digits or
    '_' ("standard", "reduced_food")."""
    return isinstance(value, str) and TAX_CATEGORY.fullmatch(value) is not None


def _valid_on(valid_from: date, valid_to: date | None, day: date) -> bool:
    # valid_to is the last day of the period, inclusive.
    return valid_from <= day and (valid_to is None or day <= valid_to)


@dataclass(frozen=True, slots=True)
class RateRule:
    """One tax rate, as the bill run sees it."""

    id: str
    country: str
    region: str | None  # ISO 3166-2 code; None for the whole country
    tax_category: str
    percent: str  # canonical, see money.parse_percent
    name: str
    valid_from: date
    valid_to: date | None  # last day it applies; None = until further notice

    def valid_on(self, day: date) -> bool:
        return _valid_on(self.valid_from, self.valid_to, day)


@dataclass(frozen=True, slots=True)
class ExemptionRule:
    """One exemption certificate of a billing account, as the bill run sees it."""

    id: str
    certificate_number: str
    country: str
    region: str | None  # None: exempt in the whole country
    valid_from: date
    valid_to: date | None

    def valid_on(self, day: date) -> bool:
        return _valid_on(self.valid_from, self.valid_to, day)

    def covers(self, country: str, region: str | None) -> bool:
        return self.country == country and (self.region is None or self.region == region)


class TaxRules:
    """A tenant's tax rates, indexed by (country, region, tax category)."""

    def __init__(self, rates: Iterable[RateRule] = ()) -> None:
        self._rates = tuple(rates)
        grouped: dict[tuple[str, str | None, str], list[RateRule]] = {}
        for rate in self._rates:
            grouped.setdefault((rate.country, rate.region, rate.tax_category), []).append(rate)
        # Latest first: should periods ever overlap, the newest rate wins, never a random one.
        self._by_key = {key: sorted(rates, key=lambda r: (r.valid_from, r.id), reverse=True)
                        for key, rates in grouped.items()}
        self._by_id = {rate.id: rate for rate in self._rates}

    def __len__(self) -> int:
        return len(self._rates)

    def __iter__(self) -> Iterator[RateRule]:
        return iter(self._rates)

    def get(self, rate_id: str) -> RateRule | None:
        return self._by_id.get(rate_id)

    def rate_on(self, *, country: str, region: str | None, tax_category: str,
                on_date: date) -> RateRule | None:
        """The rate for exactly this country, region (None = country-wide) and category
        that is valid on ``on_date``; no fallback."""
        for rate in self._by_key.get((country, region, tax_category), ()):
            if rate.valid_on(on_date):
                return rate
        return None


@dataclass(frozen=True, slots=True)
class TaxDecision:
    """The percentage a line is taxed at and why: a rate, an exemption, or neither."""

    percent: str
    rate_id: str | None = None
    exemption_certificate: str | None = None
    rate_name: str | None = None  # shown on the invoice line, e.g. "Texas sales tax"


NO_TAX = TaxDecision("0")


def subdivision_code(country: str, code: str) -> str | None:
    """``code`` in capitals when it is the ISO 3166-2 code of a subdivision of ``country``
    ("us-tx" in "US" -> "US-TX"); otherwise None."""
    found = pycountry.subdivisions.get(code=code.upper())  # type: ignore[no-untyped-call]
    return str(found.code) if found is not None and found.country_code == country else None


@lru_cache(maxsize=4096)
def region_code(country: str | None, region: str | None) -> str | None:
    """The ISO 3166-2 code of a region of ``country`` given as its code ("US-TX", "us-tx"),
    its code without the country ("TX") or its exact name ("Texas"); None when it names no
    single subdivision of that country."""
    if not country or not region or not region.strip():
        return None
    country, text = country.strip().upper(), region.strip()
    prefixed = text[:len(country) + 1].upper() == f"{country}-"
    found = subdivision_code(country, text if prefixed else f"{country}-{text}")
    if found is not None:
        return found
    subdivisions = pycountry.subdivisions.get(country_code=country)  # type: ignore[no-untyped-call]
    named = [s for s in subdivisions or () if s.name.casefold() == text.casefold()]
    return str(named[0].code) if len(named) == 1 else None


def tax_address(billing_address: Mapping[str, Any] | None,
                service_address: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """(country, ISO 3166-2 region or None) of the address that decides a customer's tax:
    the service address unless it is missing or "same as billing", else the billing
    address."""
    address = billing_address
    if service_address and not service_address.get("same_as_billing"):
        address = service_address
    if not address or not isinstance(address.get("country"), str):
        return None, None
    country = str(address["country"]).upper()
    region = address.get("region")
    return country, region_code(country, region if isinstance(region, str) else None)


def _exemption_on(exemptions: Iterable[ExemptionRule], country: str, region: str | None,
                  on_date: date) -> ExemptionRule | None:
    matching = [e for e in exemptions if e.valid_on(on_date) and e.covers(country, region)]
    if not matching:
        return None
    # The most specific certificate, then the newest: the same answer on every run.
    return max(matching, key=lambda e: (e.region is not None, e.valid_from,
                                        e.certificate_number, e.id))


def resolve(rules: TaxRules, *, taxable: bool, country: str | None, region: str | None,
            tax_category: str | None, on_date: date,
            exemptions: Iterable[ExemptionRule] = ()) -> TaxDecision:
    """The tax of one line billed on ``on_date`` to an address in ``country``/``region``.

    Not taxable: 0. An exemption valid that day for the country and for the whole country
    or this region: 0, with its certificate. Otherwise the rate of (country, region,
    category) valid that day, falling back to the country-wide rate of the category; with
    neither (or no country, or no category), 0. ``region`` may be a code or address text.
    """
    if not taxable or not country:
        return NO_TAX
    country = country.strip().upper()
    region = region_code(country, region)
    exemption = _exemption_on(exemptions, country, region, on_date)
    if exemption is not None:
        return TaxDecision("0", exemption_certificate=exemption.certificate_number)
    if tax_category is None:
        return NO_TAX
    rate = None
    if region is not None:
        rate = rules.rate_on(country=country, region=region, tax_category=tax_category,
                             on_date=on_date)
    if rate is None:
        rate = rules.rate_on(country=country, region=None, tax_category=tax_category,
                             on_date=on_date)
    if rate is None:
        return NO_TAX
    return TaxDecision(rate.percent, rate_id=rate.id, rate_name=rate.name)


def line_tax(amount_minor: int, decision: TaxDecision, *, inclusive: bool) -> tuple[int, int]:
    """(net_minor, tax_minor) of a line. ``inclusive``: ``amount_minor`` is the gross and is
    split so net + tax == gross; otherwise it is the net and the tax comes on top."""
    if inclusive:
        return money.tax_inclusive(amount_minor, decision.percent)
    return amount_minor, money.tax_exclusive(amount_minor, decision.percent)
