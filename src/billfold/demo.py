"""The demo biller: the seed's examples, loaded idempotently.

Acme Brick has one USD account; Widgets International has five billing accounts whose
Location custom field is United States (USD, default), Zimbabwe (USD), Mexico (MXN),
Russia (RUB) and Sweden (SEK); plus a responsible/managed pair and a parent/child pair.
Acme Brick and Widgets' US and Mexico offices have ordered from a small catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billfold.access import api_keys
from billfold.catalog import service as catalog
from billfold.core.db import transaction
from billfold.core.scope import Scope
from billfold.customers import service as customers
from billfold.customers import settings as settings_service
from billfold.customers.models import Customer
from billfold.orders import service as orders
from billfold.tenants import service as tenants
from billfold.tenants.models import AccountCategory, BillCycle, PaymentTerm

DEMO_TENANT = "Demo Biller"
ACTOR = "demo"


@dataclass(frozen=True, slots=True)
class DemoResult:
    tenant_id: str
    api_key: str
    summary: str


def _one(session: Session, scope: Scope, model: Any, name: str) -> Any:
    return session.scalars(select(model).where(
        model.tenant_id == scope.tenant_id, model.mode == scope.mode, model.name == name)).first()


def _customer(session: Session, scope: Scope, external_number: str) -> Customer | None:
    return session.scalars(select(Customer).where(
        Customer.tenant_id == scope.tenant_id, Customer.mode == scope.mode,
        Customer.external_number == external_number)).first()


def load(session: Session, data_dir: Path) -> DemoResult:
    key_file = data_dir / "demo-api-key.txt"
    with transaction(session):
        tenant = tenants.find_tenant_by_name(session, DEMO_TENANT)
        secret = key_file.read_text().strip() if key_file.exists() and tenant else None
        if tenant is None:
            tenant = tenants.create_tenant(session, name=DEMO_TENANT)
        scope = Scope(tenant.id, "test")
        if secret is None:
            secret = api_keys.create_api_key(session, tenant_id=tenant.id, mode="test").secret
            data_dir.mkdir(parents=True, exist_ok=True)
            key_file.write_text(secret + "\n")
            key_file.chmod(0o600)
        settings_service.update_settings(session, scope, {
            "allow_multi_customer_accounts": True,
            "enable_responsible_account_management": True,
            "enable_account_hierarchy_management": True,
            "invoice_distribution_options": ["none", "email", "paper", "paper_and_email"],
            "time_zone": "America/Chicago",
        })
        created = _seed(session, scope)
    summary = "created the seed's customers" if created else "already loaded, nothing duplicated"
    return DemoResult(tenant.id, secret, summary)


def _seed(session: Session, scope: Scope) -> bool:
    if _customer(session, scope, "WIDGETS-INTL") is not None:
        return False
    cycle = _one(session, scope, BillCycle, "Monthly on the 1st") or tenants.create_bill_cycle(
        session, scope, name="Monthly on the 1st", currency=None, frequency="monthly",
        bill_day=1, start_date=date(2026, 1, 1))
    category = _one(session, scope, AccountCategory, "Commercial") or \
        tenants.create_account_category(session, scope, name="Commercial")
    term = _one(session, scope, PaymentTerm, "Net 30") or tenants.create_payment_term(
        session, scope, name="Net 30", net_days=30)
    locations = ["United States", "Zimbabwe", "Mexico", "Russia", "Sweden"]
    if "location" not in tenants.custom_field_definitions(session, scope, "billing_account"):
        tenants.create_custom_field(session, scope, object_type="billing_account",
                                    key="location", label="Location", field_type="dropdown",
                                    options=locations)

    def account(currency: str, **extra: Any) -> dict[str, Any]:
        return {"currency": currency, "bill_cycle_id": cycle.id,
                "start_date": date(2026, 1, 1), "account_category_id": category.id,
                "invoice_type": "email", "payment_term_id": term.id, **extra}

    _, acme = customers.create_customer(session, scope, actor=ACTOR, data={
        "company_name": "Acme Brick", "external_number": "ACME-BRICK",
        "primary_email": "billing@acmebrick.example", "tax_number": "12-3456789",
        "phones": [{"type": "work", "number": "+1 817 332 4101"}],
        "billing_address": {"line1": "3024 Acme Brick Plaza", "city": "Fort Worth",
                            "region": "TX", "postal_code": "76109", "country": "US"},
        "service_address": {"same_as_billing": True},
        "billing_account": account("USD", external_number="ACME-US"),
    })
    widgets, us = customers.create_customer(session, scope, actor=ACTOR, data={
        "company_name": "Widgets International", "external_number": "WIDGETS-INTL",
        "primary_email": "ap@widgets.example", "secondary_emails": ["cfo@widgets.example"],
        "billing_address": {"line1": "1 Widget Way", "city": "Austin", "region": "TX",
                            "postal_code": "78701", "country": "US"},
        "billing_account": account("USD", external_number="WIDGETS-US",
                                   custom_fields={"location": "United States"}),
    })
    for location, currency in [("Zimbabwe", "USD"), ("Mexico", "MXN"), ("Russia", "RUB"),
                               ("Sweden", "SEK")]:
        customers.add_billing_account(session, scope, customer_id=widgets.id, actor=ACTOR,
                                      data=account(currency, custom_fields={"location": location},
                                                   external_number=f"WIDGETS-{location[:3].upper()}"))
    # A billing hierarchy: the Zimbabwe office is invoiced on the United States account.
    zimbabwe = next(a for a in customers.customer_accounts(session, scope, widgets.id)
                    if a.custom_fields.get("location") == "Zimbabwe")
    customers.update_billing_account(session, scope, account_id=zimbabwe.id, actor=ACTOR,
                                     changes={"responsible_account_id": us.id})
    customers.update_billing_account(session, scope, account_id=us.id, actor=ACTOR,
                                     changes={"invoice_rendering_type": "aggregated"})
    mexico = next(a for a in customers.customer_accounts(session, scope, widgets.id)
                  if a.custom_fields.get("location") == "Mexico")
    _seed_orders(session, scope, acme_id=acme.id, us_id=us.id, mexico_id=mexico.id)
    # A reporting hierarchy: Northwind's branch reports to its head office.
    _, head_account = customers.create_customer(session, scope, actor=ACTOR, data={
        "company_name": "Northwind Traders", "external_number": "NORTHWIND",
        "primary_email": "accounts@northwind.example",
        "billing_account": account("USD", external_number="NORTHWIND-HQ"),
    })
    customers.create_customer(session, scope, actor=ACTOR, data={
        "first_name": "Maria", "last_name": "Anders", "primary_email": "maria@northwind.example",
        "date_of_birth": date(1980, 5, 17),
        "billing_account": account("USD", external_number="NORTHWIND-BRANCH",
                                   parent_account_id=head_account.id),
    })
    return True


def _seed_orders(session: Session, scope: Scope, *, acme_id: str, us_id: str, mexico_id: str
                 ) -> None:
    """A small catalog priced in USD and MXN. Acme Brick pays an onboarding fee and
    subscribes to billing seats, adding three from mid-February; Widgets' United States
    and Mexico offices take premium support, billed in arrears."""
    onboarding = catalog.create_product(session, scope, name="Onboarding", sku="ONBOARD",
                                        tax_category="standard")
    seat = catalog.create_product(session, scope, name="Billing seat", sku="SEAT",
                                  tax_category="standard")
    support = catalog.create_product(session, scope, name="Premium support",
                                     sku="SUPPORT-PREMIUM", tax_category="standard")
    onboarding_fee = catalog.create_price(session, scope, product_id=onboarding.id,
                                          kind="one_time",
                                          amounts_minor={"USD": 25000, "MXN": 450000})
    seat_monthly = catalog.create_price(session, scope, product_id=seat.id, kind="recurring",
                                        amounts_minor={"USD": 1500, "MXN": 27000},
                                        billing_timing="in_advance", nickname="Monthly")
    support_monthly = catalog.create_price(session, scope, product_id=support.id,
                                           kind="recurring",
                                           amounts_minor={"USD": 9900, "MXN": 178000},
                                           billing_timing="in_arrears", nickname="Monthly")
    start = date(2026, 1, 1)
    acme_order = orders.create_order(session, scope, billing_account_id=acme_id, actor=ACTOR,
                                     lines=[
        {"price_id": onboarding_fee.id, "quantity": 1, "start_date": start},
        {"price_id": seat_monthly.id, "quantity": 5, "start_date": start}])
    seats = orders.order_lines(session, [acme_order.id])[acme_order.id][1].service_id
    assert seats is not None
    orders.change_quantity(session, scope, service_id=seats, quantity=8,
                           effective_date=date(2026, 2, 15), actor=ACTOR)
    for account_id in (us_id, mexico_id):
        orders.create_order(session, scope, billing_account_id=account_id, actor=ACTOR, lines=[
            {"price_id": onboarding_fee.id, "quantity": 1, "start_date": start},
            {"price_id": support_monthly.id, "quantity": 1, "start_date": start}])
