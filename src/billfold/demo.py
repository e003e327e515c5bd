"""The demo biller: the seed's examples, loaded idempotently, and billed once.

Acme Brick (Fort Worth, Texas) has one USD account, invoiced on paper and by email. Widgets
International (Austin, Texas) has five billing accounts whose Location custom field is
United States (USD, default), Zimbabwe (USD), Mexico (MXN, Spanish), Russia (RUB, Russian)
and Sweden (SEK, Swedish): the Zimbabwe office is billed on the United States account's
aggregated invoice, and the Russian office's invoices under its minimum amount are
suppressed and carried forward. Tax follows the customer's address, so Widgets' offices
abroad are marked not taxable and Texas sales tax falls on its United States office alone.
Nordvik Logistik (Stockholm) is responsible for its Gothenburg depot, whose invoices are
its own but owed by the head office (per-account rendering), in SEK and Swedish with
Swedish VAT. Northwind Traders (Houston, Texas) holds a Texas resale certificate (a tax
exemption) and gets its invoices on paper; a branch account reports to its head office.

``load`` seeds all this and starts one bill run as of ``BILL_RUN_AS_OF``. A worker bills
it, renders every invoice's PDF and the run's print batch, and mails the invoices;
``billfold demo`` runs one right after ``load`` (``billing`` then says what it left).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billfold.access import api_keys, payers
from billfold.catalog import service as catalog
from billfold.catalog import tax_service
from billfold.core.db import transaction
from billfold.core.filestore import FileStore
from billfold.core.scope import Scope
from billfold.customers import service as customers
from billfold.customers import settings as settings_service
from billfold.customers.models import Customer
from billfold.invoicing import billrun, delivery, distribution
from billfold.invoicing.models import BillRun, Invoice
from billfold.notifications import mailer
from billfold.notifications.models import OutboxMessage
from billfold.orders import service as orders
from billfold.orders.models import Order
from billfold.payments import sessions as pay_sessions
from billfold.tenants import service as tenants
from billfold.tenants.models import AccountCategory, BillCycle, PaymentTerm

DEMO_TENANT = "Demo Biller"
# The demo's payer portal login (test mode only; printed by `billfold demo`).
PORTAL_EMAIL = "wanda@widgets.example"
PORTAL_PASSWORD = "demo-portal-2026"  # noqa: S105 (a published demo login, test mode)
ACTOR = "demo"
START = date(2026, 1, 1)
# Every account starts on 2026-01-01 on the cycle billed monthly on the 1st, so a run as of
# 2026-03-01 bills three bill dates: January's invoices carry the onboarding fees and the
# first month of seats (billed in advance); February's the first month of support (billed
# in arrears) and Acme's seats prorated around its change from five to eight on
# 2026-02-15; March's eight seats for the whole month. A fixed date bills the same
# invoices whenever the demo is loaded.
BILL_RUN_AS_OF = date(2026, 3, 1)
TEXAS_RESALE_CERTIFICATE = "TX-RESALE-32045871"

AccountData = Callable[..., dict[str, Any]]


@dataclass(frozen=True, slots=True)
class DemoResult:
    tenant_id: str
    api_key: str
    summary: str


@dataclass(frozen=True, slots=True)
class DemoBilling:
    """Where the demo's bill run stands and where its documents went."""

    run_id: str
    as_of_date: date
    status: str  # running until a worker has billed it, then completed
    issued: int  # invoices with a number
    suppressed: int  # under the owing account's minimum: no number, carried forward
    currencies: tuple[str, ...]  # of the issued invoices
    rendered: int  # issued invoices whose PDF is stored
    emailed: int  # invoice emails delivered (as .eml files when no SMTP server is set)
    pdf_dir: Path
    print_batch: Path | None  # None until a worker has made it
    mail_dir: Path


@dataclass(frozen=True, slots=True)
class _Prices:
    onboarding: str
    seat: str
    support: str


def _one(session: Session, scope: Scope, model: Any, name: str) -> Any:
    return session.scalars(select(model).where(
        model.tenant_id == scope.tenant_id, model.mode == scope.mode, model.name == name)).first()


def _customer(session: Session, scope: Scope, external_number: str) -> Customer | None:
    return session.scalars(select(Customer).where(
        Customer.tenant_id == scope.tenant_id, Customer.mode == scope.mode,
        Customer.external_number == external_number)).first()


def load(session: Session, data_dir: Path, base_url: str = "http://127.0.0.1:8000"
         ) -> DemoResult:
    """Create the demo tenant, its customers and orders and start its bill run, unless
    they exist. Writes the test-mode API key to ``data_dir``/demo-api-key.txt."""
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
            # The demo's own pages may be ReturnURL, and postbacks may go to a receiver on
            # this machine (test mode only); pay links live a day.
            "allowed_origins": [_origin(base_url)],
            "allow_private_postback_targets": True,
            "pay_session_minutes": 1440,
            # The payer portal: SSO from a biller's site (billfold sso-link) and sign-in.
            "sso_enabled": True,
        })
        created = _seed(session, scope)
        _portal_payer(session, scope)
    summary = (f"created the seed's customers and orders and started a bill run as of "
               f"{BILL_RUN_AS_OF}" if created else "already loaded, nothing duplicated")
    return DemoResult(tenant.id, secret, summary)


def _portal_payer(session: Session, scope: Scope) -> None:
    """A payer who may see and pay every Widgets International account in the portal."""
    customer = _customer(session, scope, "WIDGETS-INTL")
    if customer is None or payers.find_by_email(session, scope, PORTAL_EMAIL) is not None:
        return
    user = payers.new_user(session, scope, email=PORTAL_EMAIL, name="Wanda Widgets",
                           password=PORTAL_PASSWORD, verified=True)
    for account in customers.customer_accounts(session, scope, customer.id):
        payers.grant(session, user, account, role="owner", source="staff")


def portal_hints(session: Session, tenant_id: str, base_url: str) -> list[str]:
    """How to enter the demo's payer portal: by password, or by SSO as a biller would."""
    scope = Scope(tenant_id, "test")
    customer = _customer(session, scope, "WIDGETS-INTL")
    numbers = [a.number for a in customers.customer_accounts(session, scope, customer.id)
               ] if customer else []
    accounts = " ".join(f"--account {n}" for n in numbers[:2])
    return [f"payer portal: {base_url}/portal/b/{tenant_id}/test/login "
            f"(sign in as {PORTAL_EMAIL} / {PORTAL_PASSWORD})",
            f"  or by SSO:  billfold sso-link --tenant {tenant_id} --user wanda {accounts}"]


def _seed(session: Session, scope: Scope) -> bool:
    if _customer(session, scope, "WIDGETS-INTL") is not None:
        return False
    # As `billfold tenant create` does: an account whose invoice type is email gets email.
    distribution.enable_for_all_accounts(session, tenant_id=scope.tenant_id, actor=ACTOR)
    _seed_tax_rates(session, scope)
    account = _account_data(session, scope)
    prices = _seed_catalog(session, scope)
    _seed_acme(session, scope, account, prices)
    _seed_widgets(session, scope, account, prices)
    _seed_nordvik(session, scope, account, prices)
    _seed_northwind(session, scope, account, prices)
    billrun.start_bill_run(session, scope, as_of_date=BILL_RUN_AS_OF, actor=ACTOR)
    return True


def _seed_tax_rates(session: Session, scope: Scope) -> None:
    tax_service.create_tax_rate(session, scope, country="US", region="US-TX",
                                tax_category="standard", percent="8.25",
                                name="Texas sales tax", valid_from=START)
    tax_service.create_tax_rate(session, scope, country="SE", region=None,
                                tax_category="standard", percent="25",
                                name="Swedish VAT (moms)", valid_from=START)


def _account_data(session: Session, scope: Scope) -> AccountData:
    """The bill cycle, category, payment term and Location field every demo account uses;
    returns a maker of billing-account data in a currency."""
    cycle = _one(session, scope, BillCycle, "Monthly on the 1st") or tenants.create_bill_cycle(
        session, scope, name="Monthly on the 1st", currency=None, frequency="monthly",
        bill_day=1, start_date=START)
    category = _one(session, scope, AccountCategory, "Commercial") or \
        tenants.create_account_category(session, scope, name="Commercial")
    term = _one(session, scope, PaymentTerm, "Net 30") or tenants.create_payment_term(
        session, scope, name="Net 30", net_days=30)
    if "location" not in tenants.custom_field_definitions(session, scope, "billing_account"):
        tenants.create_custom_field(
            session, scope, object_type="billing_account", key="location", label="Location",
            field_type="dropdown", options=["United States", "Zimbabwe", "Mexico", "Russia",
                                            "Sweden"])

    def account(currency: str, **extra: Any) -> dict[str, Any]:
        return {"currency": currency, "bill_cycle_id": cycle.id, "start_date": START,
                "account_category_id": category.id, "invoice_type": "email",
                "payment_term_id": term.id, **extra}

    return account


def _seed_catalog(session: Session, scope: Scope) -> _Prices:
    """A small catalog priced in USD, MXN and SEK (seats in RUB too): a one-time
    onboarding fee, billing seats billed in advance and premium support in arrears."""
    onboarding = catalog.create_product(session, scope, name="Onboarding", sku="ONBOARD",
                                        tax_category="standard")
    seat = catalog.create_product(session, scope, name="Billing seat", sku="SEAT",
                                  tax_category="standard")
    support = catalog.create_product(session, scope, name="Premium support",
                                     sku="SUPPORT-PREMIUM", tax_category="standard")
    onboarding_fee = catalog.create_price(
        session, scope, product_id=onboarding.id, kind="one_time",
        amounts_minor={"USD": 25000, "MXN": 450000, "SEK": 260000})
    seat_monthly = catalog.create_price(
        session, scope, product_id=seat.id, kind="recurring",
        amounts_minor={"USD": 1500, "MXN": 27000, "SEK": 15900, "RUB": 140000},
        billing_timing="in_advance", nickname="Monthly")
    support_monthly = catalog.create_price(
        session, scope, product_id=support.id, kind="recurring",
        amounts_minor={"USD": 9900, "MXN": 178000, "SEK": 105000},
        billing_timing="in_arrears", nickname="Monthly")
    return _Prices(onboarding_fee.id, seat_monthly.id, support_monthly.id)


def _order(session: Session, scope: Scope, account_id: str, *lines: tuple[str, int]
           ) -> Order:
    """An order of (price id, quantity) lines, all starting with the accounts."""
    return orders.create_order(session, scope, billing_account_id=account_id, actor=ACTOR,
                               lines=[{"price_id": price_id, "quantity": quantity,
                                       "start_date": START} for price_id, quantity in lines])


def _seed_acme(session: Session, scope: Scope, account: AccountData, prices: _Prices) -> None:
    """Acme Brick pays an onboarding fee and subscribes to five billing seats, eight from
    mid-February; Texas sales tax applies and its invoices go on paper and by email."""
    _, acme = customers.create_customer(session, scope, actor=ACTOR, data={
        "company_name": "Acme Brick", "external_number": "ACME-BRICK",
        "primary_email": "billing@acmebrick.example", "tax_number": "12-3456789",
        "phones": [{"type": "work", "number": "+1 817 332 4101"}],
        "billing_address": {"line1": "3024 Acme Brick Plaza", "city": "Fort Worth",
                            "region": "TX", "postal_code": "76109", "country": "US"},
        "service_address": {"same_as_billing": True},
        "billing_account": account("USD", external_number="ACME-US",
                                   invoice_type="paper_and_email"),
    })
    order = _order(session, scope, acme.id, (prices.onboarding, 1), (prices.seat, 5))
    seats = orders.order_lines(session, [order.id])[order.id][1].service_id
    assert seats is not None
    orders.change_quantity(session, scope, service_id=seats, quantity=8,
                           effective_date=date(2026, 2, 15), actor=ACTOR)


def _seed_widgets(session: Session, scope: Scope, account: AccountData, prices: _Prices
                  ) -> None:
    """Widgets International and its offices. The Zimbabwe office's seats are billed on
    the United States account's aggregated invoice; the Russian office's seat costs less
    than its minimum invoice amount, so every other month's invoice is suppressed and its
    lines carried to the next."""
    widgets, us = customers.create_customer(session, scope, actor=ACTOR, data={
        "company_name": "Widgets International", "external_number": "WIDGETS-INTL",
        "primary_email": "ap@widgets.example", "secondary_emails": ["cfo@widgets.example"],
        "billing_address": {"line1": "1 Widget Way", "city": "Austin", "region": "TX",
                            "postal_code": "78701", "country": "US"},
        "billing_account": account("USD", external_number="WIDGETS-US",
                                   custom_fields={"location": "United States"}),
    })
    abroad: list[tuple[str, str, dict[str, Any]]] = [
        ("Zimbabwe", "USD", {"responsible_account_id": us.id}),
        ("Mexico", "MXN", {"preferred_language": "es"}),
        ("Russia", "RUB", {"preferred_language": "ru", "minimum_invoice_amount_minor": 200000}),
        ("Sweden", "SEK", {"preferred_language": "sv"})]
    offices = {}
    for location, currency, extra in abroad:
        offices[location] = customers.add_billing_account(
            session, scope, customer_id=widgets.id, actor=ACTOR, data=account(
                currency, custom_fields={"location": location}, taxable=False,
                external_number=f"WIDGETS-{location[:3].upper()}", **extra))
    customers.update_billing_account(session, scope, account_id=us.id, actor=ACTOR,
                                     changes={"invoice_rendering_type": "aggregated"})
    _order(session, scope, us.id, (prices.onboarding, 1), (prices.support, 1))
    _order(session, scope, offices["Zimbabwe"].id, (prices.seat, 2))
    _order(session, scope, offices["Mexico"].id, (prices.onboarding, 1), (prices.support, 1))
    _order(session, scope, offices["Russia"].id, (prices.seat, 1))
    _order(session, scope, offices["Sweden"].id, (prices.support, 1))


def _seed_nordvik(session: Session, scope: Scope, account: AccountData, prices: _Prices
                  ) -> None:
    """Nordvik Logistik's head office is responsible for its Gothenburg depot, which gets
    invoices of its own (per_account) owed by the head office."""
    nordvik, head_office = customers.create_customer(session, scope, actor=ACTOR, data={
        "company_name": "Nordvik Logistik AB", "external_number": "NORDVIK",
        "primary_email": "faktura@nordvik.example", "tax_number": "SE556677889901",
        "billing_address": {"line1": "Sveavägen 44", "city": "Stockholm",
                            "postal_code": "111 34", "country": "SE"},
        "billing_account": account("SEK", external_number="NORDVIK-STO",
                                   preferred_language="sv"),
    })
    depot = customers.add_billing_account(
        session, scope, customer_id=nordvik.id, actor=ACTOR, data=account(
            "SEK", external_number="NORDVIK-GOT", preferred_language="sv",
            responsible_account_id=head_office.id))
    customers.update_billing_account(session, scope, account_id=head_office.id, actor=ACTOR,
                                     changes={"invoice_rendering_type": "per_account"})
    _order(session, scope, head_office.id, (prices.onboarding, 1), (prices.seat, 3))
    _order(session, scope, depot.id, (prices.seat, 2))


def _seed_northwind(session: Session, scope: Scope, account: AccountData, prices: _Prices
                    ) -> None:
    """Northwind Traders resells, so its Texas resale certificate exempts it from sales
    tax; its invoices are printed. Its branch reports to it (a reporting hierarchy)."""
    _, head_account = customers.create_customer(session, scope, actor=ACTOR, data={
        "company_name": "Northwind Traders", "external_number": "NORTHWIND",
        "primary_email": "accounts@northwind.example",
        "billing_address": {"line1": "900 Travis St", "city": "Houston", "region": "TX",
                            "postal_code": "77002", "country": "US"},
        "billing_account": account("USD", external_number="NORTHWIND-HQ", invoice_type="paper"),
    })
    tax_service.create_tax_exemption(
        session, scope, billing_account_id=head_account.id,
        certificate_number=TEXAS_RESALE_CERTIFICATE, country="US", region="US-TX",
        valid_from=START, actor=ACTOR)
    _order(session, scope, head_account.id, (prices.support, 1))
    customers.create_customer(session, scope, actor=ACTOR, data={
        "first_name": "Maria", "last_name": "Anders", "primary_email": "maria@northwind.example",
        "date_of_birth": date(1980, 5, 17),
        "billing_account": account("USD", external_number="NORTHWIND-BRANCH",
                                   parent_account_id=head_account.id),
    })


def billing(session: Session, tenant_id: str, data_dir: Path) -> DemoBilling | None:
    """What the demo's bill run has done so far, and where its files are (``data_dir`` as
    the worker's); None when the demo has no bill run."""
    scope = Scope(tenant_id, "test")
    run = session.scalars(select(BillRun).where(
        BillRun.tenant_id == scope.tenant_id, BillRun.mode == scope.mode,
        BillRun.as_of_date == BILL_RUN_AS_OF).order_by(BillRun.id)).first()
    if run is None:
        return None
    invoices = session.execute(select(Invoice.status, Invoice.currency, Invoice.pdf_key).where(
        Invoice.tenant_id == scope.tenant_id, Invoice.mode == scope.mode,
        Invoice.bill_run_id == run.id)).all()
    issued = [i for i in invoices if i.status != "suppressed"]
    emailed = session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.tenant_id == scope.tenant_id, OutboxMessage.mode == scope.mode,
        OutboxMessage.about_type == "invoice", OutboxMessage.status == "sent")) or 0
    files = FileStore(data_dir)
    print_batch = files.path(delivery.print_batch_key(scope, run.id, "pdf"))
    return DemoBilling(
        run_id=run.id, as_of_date=run.as_of_date, status=run.status, issued=len(issued),
        suppressed=len(invoices) - len(issued),
        currencies=tuple(sorted({i.currency for i in issued})),
        rendered=sum(1 for i in issued if i.pdf_key is not None), emailed=emailed,
        pdf_dir=files.path(delivery.pdf_key(scope, run.id)).parent,
        print_batch=print_batch if print_batch.is_file() else None,
        mail_dir=files.path(mailer.eml_key(run.id)).parent)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def pay_link(session: Session, tenant_id: str, base_url: str) -> str | None:
    """A fresh payment page for an open invoice of Widgets International, or None while
    the demo's bill run has not issued one."""
    scope = Scope(tenant_id, "test")
    customer = _customer(session, scope, "WIDGETS-INTL")
    if customer is None:
        return None
    invoice = session.scalars(select(Invoice).where(
        Invoice.tenant_id == scope.tenant_id, Invoice.mode == scope.mode,
        Invoice.customer_id == customer.id, Invoice.status.in_(("open", "partially_paid")))
        .order_by(Invoice.currency != "USD", Invoice.id).limit(1)).first()
    if invoice is None:
        return None
    with transaction(session):
        created = pay_sessions.create_native(session, scope, invoices=[{
            "invoice_id": invoice.id, "allow_partial": True, "card_fee_minor": 0}],
            return_url=f"{_origin(base_url)}/docs")
    return created.url(base_url)


def cloud_payments_curl(api_key: str, base_url: str) -> str:
    """A ready curl of a Cloud Payments V2 request against this demo."""
    body = json.dumps({
        "CreateCustomerRecord": True,
        "Customers": [{"AccountNumber": "CP-DEMO-001", "Name": "John S",
                       "Address": "123 Main Street", "City": "Tampa", "State": "FL",
                       "Zip": "33602", "EmailAddress": "john@example.com",
                       "Invoices": [{"InvoiceNumber": "CP-INV-001", "TypeID": 6,
                                     "DueDate": "08/20/2099", "InvoiceDate": "04/27/2024",
                                     "BalanceDue": 10.00, "CCServiceFee": 1.00,
                                     "AchServiceFee": 1.00, "AllowPartialPayments": True}]}],
        "AllowSwipe": False, "AllowCCPayment": True, "AllowACHPayment": True, "AllowEMV": False,
        "ReturnURL": f"{_origin(base_url)}/docs", "PostBackURL": "",
        "BillerReference": "DEMO-REF-1", "ViewMode": 0,
        "PageResultOptions": {"AllowRegisterAccount": False, "InvoiceOptions": {
            "AllowViewStatement": False, "AllowRemove": True, "AllowViewRelated": False,
            "AllowRemindMe": False}}})
    basic = base64.b64encode(api_key.encode()).decode()
    return (f"curl -s -X POST {base_url}/cloudpayments/v2 -H 'Authorization: Basic {basic}' "
            f"-H 'Content-Type: application/json' -d '{body}'")
