"""A benchmark tenant and plausible customers for it.

Customers are generated deterministically (seeded), so every run and both backends see the
same names, and prefix queries match a realistic spread of rows: a three-letter name prefix
matches a few hundred of 50,000 customers, not one and not all.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from billfold.access import api_keys
from billfold.core.db import transaction
from billfold.core.scope import Scope
from billfold.customers import settings as settings_service
from billfold.tenants import service as tenants

ACTOR = "bench"
COMPANY_WORDS = (
    "Acme", "Apex", "Atlas", "Aurora", "Beacon", "Birch", "Blue", "Bright", "Cardinal", "Cedar",
    "Cobalt", "Comet", "Copper", "Crescent", "Crown", "Delta", "Eagle", "Ember", "Evergreen",
    "Falcon", "Forge", "Frontier", "Galaxy", "Granite", "Harbor", "Horizon", "Iron", "Juniper",
    "Keystone", "Lakeside", "Liberty", "Lighthouse", "Maple", "Meridian", "Summit", "Northwind",
    "Oak", "Orchid", "Pacific", "Pinnacle", "Pioneer", "Prairie", "Quartz", "Redwood", "Ridge",
    "River", "Sage", "Sierra", "Silver", "Sterling", "Stone", "Sunrise", "Tidewater", "Timber",
    "Trident", "Union", "Valley", "Vertex", "Willow", "Zenith",
)
COMPANY_KINDS = (
    "Brick", "Logistics", "Foods", "Analytics", "Dental", "Freight", "Media", "Metals",
    "Networks", "Pharma", "Robotics", "Solar", "Textiles", "Travel", "Water", "Works",
)
COMPANY_SUFFIXES = ("Inc", "LLC", "Ltd", "Co", "Group", "GmbH")
FIRST_NAMES = (
    "Maria", "James", "Aisha", "Chen", "Olga", "Liam", "Sofia", "Mateo", "Priya", "Noah",
    "Fatima", "Lucas", "Yuki", "Emma", "Omar", "Hannah", "Diego", "Ingrid", "Kwame", "Elena",
    "Arjun", "Nora", "Tomas", "Leila", "Viktor", "Grace", "Ravi", "Chloe", "Hiro", "Amara",
)
LAST_NAMES = (
    "Anders", "Okafor", "Nakamura", "Schmidt", "Garcia", "Kowalski", "Haddad", "Johansson",
    "Patel", "Rossi", "Dubois", "Novak", "Silva", "Kim", "Murphy", "Ivanova", "Mensah", "Larsen",
    "Moreau", "Costa", "Fischer", "Tanaka", "Romero", "Nguyen", "Walsh", "Petrov", "Yilmaz",
    "Berg", "Santos", "Hughes",
)
CITIES = (("New York", "NY", "10001"), ("Austin", "TX", "78701"), ("Denver", "CO", "80202"),
          ("Seattle", "WA", "98101"), ("Chicago", "IL", "60601"), ("Miami", "FL", "33101"))
STREETS = ("Main", "Oak", "Pine", "Market", "Harbor", "Lake", "Hill", "Park")


@dataclass(frozen=True, slots=True)
class BenchTenant:
    scope: Scope
    api_key: str
    bill_cycle_id: str
    account_category_id: str
    payment_term_id: str

    def account(self, currency: str = "USD") -> dict[str, Any]:
        """A billing-account body as the service layer takes it."""
        return {"currency": currency, "bill_cycle_id": self.bill_cycle_id,
                "start_date": date(2026, 2, 1), "account_category_id": self.account_category_id,
                "payment_term_id": self.payment_term_id, "invoice_type": "email"}

    def account_json(self, currency: str = "USD") -> dict[str, Any]:
        """The same body as the HTTP API takes it."""
        return self.account(currency) | {"start_date": "2026-02-01"}


def create_tenant(sessions: sessionmaker[Session], name: str = "Bench Biller") -> BenchTenant:
    """A tenant with allow_multi_customer_accounts on, reference data and a test API key."""
    with sessions() as session, transaction(session):
        tenant = tenants.create_tenant(session, name=name)
        scope = Scope(tenant.id, "test")
        settings_service.update_settings(session, scope, {"allow_multi_customer_accounts": True})
        cycle = tenants.create_bill_cycle(session, scope, name="Monthly", currency=None,
                                          frequency="monthly", bill_day=1,
                                          start_date=date(2026, 1, 1))
        category = tenants.create_account_category(session, scope, name="Commercial")
        term = tenants.create_payment_term(session, scope, name="Net 30", net_days=30)
        secret = api_keys.create_api_key(session, tenant_id=tenant.id, mode="test").secret
    return BenchTenant(scope, secret, cycle.id, category.id, term.id)


def customers(seed: int, count: int) -> Iterator[dict[str, Any]]:
    """``count`` customer bodies (without the billing account): seven in ten companies,
    the rest people; all with an email and a US billing address, half with a phone."""
    rng = random.Random(seed)
    for i in range(count):
        if rng.random() < 0.7:
            name = (f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_KINDS)} "
                    f"{rng.choice(COMPANY_SUFFIXES)}")
            who: dict[str, Any] = {"company_name": name}
            mailbox = "billing"
        else:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            who = {"first_name": first, "last_name": last}
            name, mailbox = f"{first} {last}", first.lower()
        domain = name.split()[0].lower() + name.split()[1].lower()
        city, region, postal = rng.choice(CITIES)
        body = who | {
            "primary_email": f"{mailbox}.{seed}.{i}@{domain}.example",
            "billing_address": {"line1": f"{rng.randint(1, 9999)} {rng.choice(STREETS)} St",
                                "city": city, "region": region, "postal_code": postal,
                                "country": "US"},
        }
        if i % 2 == 0:
            body["phones"] = [{"type": "work", "number": f"+1 212 555 {rng.randint(100, 199):04d}"}]
        yield body
