"""The payer portal in a real browser (Debian's Chromium through Playwright) against
Billfold served by uvicorn, on a database of this module's own (a worker run here must
not pick up other tests' jobs):

- SSO with a token the test builds as a biller would (joserfc) → invoice history with the
  invoices of two accounts → one invoice of each paid in one payment → receipt → both paid;
- registration → the verification email read from a real SMTP server (aiosmtpd) → login;
- the paperless toggle;
- autopay enrollment with a method saved while paying, then `billfold worker --once` pays
  an invoice that falls due.

Every page visited is checked with axe-core (from npm, pinned in package-lock.json) for
serious and critical violations, and each test keeps a screenshot under
``var/screenshots/portal/``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from joserfc import jwe
from joserfc.jwk import OctKey
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from billfold.access import payers, sso
from billfold.core import jobs
from billfold.core.db import make_engine, make_sessionmaker, transaction
from billfold.core.scope import Scope
from billfold.customers import service as customers
from billfold.customers import settings as settings_service
from billfold.customers.models import BillingAccount
from billfold.invoicing import service as invoicing
from billfold.invoicing.models import Invoice
from billfold.notifications import outbox
from billfold.tenants import service as tenants
from tests.conftest import Reference, migrated_database
from tests.services.test_outbox import Mailbox, unused_port
from tests.web.browser import Served, checked_page, chromium, needs_chromium, served

pytestmark = needs_chromium

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = ROOT / "var" / "screenshots" / "portal"
BILLER = "Riverside Water"
VISA = "4242 4242 4242 4242"


# -- a database, a server, a mail server and a browser of this module's own --------------


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with migrated_database(tmp_path_factory.mktemp("portal_db")) as url:
        yield url


@pytest.fixture(scope="module")
def engine(database: str) -> Iterator[Engine]:
    made = make_engine(database)
    yield made
    made.dispose()


@pytest.fixture(scope="module")
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    found, port = Mailbox(), unused_port()
    controller = Controller(found, hostname="127.0.0.1", port=port)
    controller.start()
    yield found, port
    controller.stop()


@pytest.fixture(scope="module")
def server(database: str, engine: Engine, mailbox: tuple[Mailbox, int],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = Path(tmp_path_factory.mktemp("portal_data"))
    with served(database, engine, data_dir, smtp_url=f"smtp://127.0.0.1:{mailbox[1]}",
                mail_from="Riverside Water <billing@riverside.example>") as found:
        yield found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: make test installs it (npm ci)")
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    with checked_page(browser, bypass_csp=True) as opened:
        yield opened
        SHOTS.mkdir(parents=True, exist_ok=True)
        opened.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)


def accessible(page: Page) -> None:
    """axe-core finds no serious or critical violation on the page shown."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    violations = page.evaluate("""async () => (await axe.run(document, {
        resultTypes: ["violations"]})).violations.map(v => ({
            id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(" "))}))""")
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{page.url}: {bad}"


# -- the biller's side ----------------------------------------------------------------------


@dataclass
class Biller:
    sessions: sessionmaker[Session]
    server: Served
    scope: Scope
    ref: Reference
    accounts: list[BillingAccount]

    def invoice(self, account: BillingAccount, amount_minor: int) -> Invoice:
        with self.sessions() as s, transaction(s):
            draft = invoicing.create_draft(
                s, self.scope, billing_account_id=account.id, actor="test",
                lines=[{"description": "Water service", "quantity": 1,
                        "unit_amount_minor": amount_minor}])
            return invoicing.finalize(s, self.scope, invoice_id=draft.id, actor="test")

    def status(self, invoice: Invoice) -> str:
        with self.sessions() as s:
            return str(s.get(Invoice, invoice.id).status)  # type: ignore[union-attr]

    def account(self, account: BillingAccount) -> BillingAccount:
        with self.sessions() as s:
            found = s.get(BillingAccount, account.id)
            assert found is not None
            return found

    def owner(self, email: str, password: str, *accounts: BillingAccount) -> None:
        with self.sessions() as s, transaction(s):
            user = payers.new_user(s, self.scope, email=email, name="Olive Owner",
                                   password=password, verified=True)
            for account in accounts:
                payers.grant(s, user, s.get(BillingAccount, account.id),  # type: ignore[arg-type]
                             role="owner", source="staff")

    def login_url(self) -> str:
        return f"{self.server.origin}/portal/b/{self.scope.tenant_id}/{self.scope.mode}/login"

    def deliver_mail(self) -> None:
        jobs.run_pending(self.sessions, outbox.handlers(self.server.settings),
                         worker_id="browser-test")


@pytest.fixture
def biller(sessions: sessionmaker[Session], server: Served) -> Biller:
    with sessions() as s, transaction(s):
        tenant = tenants.create_tenant(s, name=BILLER)
        scope = Scope(tenant.id, "test")
        settings_service.update_settings(s, scope, {
            "sso_enabled": True, "payer_controlled_preferences": True,
            "allow_multi_customer_accounts": True,
            "invoice_distribution_options": ["none", "email", "paper", "paper_and_email"]})
    with sessions() as s:
        ref = Reference(s, scope)
        with transaction(s):
            due_now = tenants.create_payment_term(s, scope, name="Due on receipt", net_days=0)
            customer, first = customers.create_customer(s, scope, data=ref.customer(
                "Olive Household", primary_email="olive@household.example",
                billing_address={"line1": "1 Elm St", "city": "Tampa", "region": "FL",
                                 "postal_code": "33602", "country": "US"},
                billing_account=ref.account(invoice_type="paper",
                                            payment_term_id=due_now.id)), actor="test")
            second = customers.add_billing_account(
                s, scope, customer_id=customer.id, data=ref.account(invoice_type="paper_and_email",
                                                        payment_term_id=due_now.id),
                actor="test")
    return Biller(sessions, server, scope, ref, [first, second])


def sso_link(biller: Biller, accounts: list[str], user: str = "olive") -> str:
    """The link a biller's site sends its payer to, built with joserfc as the README shows."""
    with biller.sessions() as s, transaction(s):
        credentials = sso.rotate(s, biller.scope, base_url=biller.server.origin)
    key = OctKey.import_key(base64.urlsafe_b64decode(credentials.encryption_key + "="))
    now = int(time.time())
    claims = {"iss": credentials.client_guid, "aud": credentials.sso_url, "sub": user,
              "email": "olive@household.example", "name": "Olive Household",
              "accounts": accounts, "iat": now, "exp": now + 300,
              "jti": secrets.token_urlsafe(16)}
    token = jwe.encrypt_compact({"alg": "dir", "enc": "A256GCM"}, json.dumps(claims), key)
    return f"{credentials.sso_url}?token={token}"


def heading(page: Page) -> Any:
    return page.get_by_role("heading", level=1)


def sign_in(page: Page, biller: Biller, email: str, password: str) -> None:
    page.goto(biller.login_url())
    accessible(page)
    page.get_by_label("Email address", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(re.compile(r"/portal/invoices$"))


def pay_by_card(page: Page, *, save: bool = False) -> None:
    """On the hosted payment page: by card, review, card details, pay."""
    page.get_by_label("Card", exact=True).check()
    page.get_by_role("button", name="Review payment").click()
    page.get_by_label("Name on card", exact=True).fill("Olive Household")
    page.get_by_label("Card number", exact=True).fill(VISA)
    page.get_by_label("Expiry (MM/YY)", exact=True).fill("12/39")
    page.get_by_label("CVC", exact=True).fill("123")
    if save:
        page.get_by_label("Save this payment method for future payments").check()
    page.get_by_role("button", name=re.compile(r"^Pay \$")).click()


# -- tests ---------------------------------------------------------------------------------------


def test_sso_then_pay_one_invoice_of_each_account_in_one_payment(page: Page, biller: Biller
                                                                  ) -> None:
    first, second = biller.accounts
    a = biller.invoice(first, 4200)
    b = biller.invoice(second, 1850)
    page.goto(sso_link(biller, [first.number, second.number]))

    expect(page).to_have_url(re.compile(r"/portal/invoices$"))
    accessible(page)
    rows = page.locator("table tbody tr")
    expect(rows.filter(has_text=str(a.number))).to_have_count(1)
    expect(rows.filter(has_text=str(b.number))).to_have_count(1)
    page.get_by_label(str(a.number), exact=True).check()
    page.get_by_label(str(b.number), exact=True).check()
    page.get_by_role("button", name="Pay selected").click()

    expect(page).to_have_url(re.compile(r"/pay/"))
    accessible(page)
    expect(page.get_by_label(str(a.number), exact=True)).to_be_checked()
    expect(page.get_by_label(str(b.number), exact=True)).to_be_checked()
    pay_by_card(page)
    expect(heading(page)).to_have_text("Thank you for your payment")
    accessible(page)
    page.get_by_role("link", name=f"Return to {BILLER}", exact=True).click()

    expect(page).to_have_url(re.compile(r"/portal/"))
    accessible(page)
    expect(page.get_by_text("$60.50").first).to_be_visible()
    page.goto(f"{biller.server.origin}/portal/invoices")
    for invoice in (a, b):
        expect(rows.filter(has_text=str(invoice.number))).to_contain_text("Paid")
        assert biller.status(invoice) == "paid"
    expect(page.get_by_label(str(a.number), exact=True)).to_have_count(0)  # nothing to pay


def test_registration_by_email_then_sign_in(page: Page, biller: Biller,
                                            mailbox: tuple[Mailbox, int]) -> None:
    first = biller.accounts[0]
    biller.invoice(first, 990)
    page.goto(biller.login_url())
    page.get_by_role("link", name="New here? Register with your account number").click()
    accessible(page)
    page.get_by_label("Account number", exact=True).fill(first.number)
    page.get_by_label("Billing postal code", exact=True).fill("33602")
    page.get_by_label("Your name", exact=True).fill("Reggie Registrant")
    email = f"reggie+{secrets.token_hex(4)}@household.example"
    page.get_by_label("Email address", exact=True).fill(email)
    page.get_by_label("Choose a password", exact=True).fill("correct horse battery")
    page.get_by_role("button", name="Register", exact=True).click()
    expect(heading(page)).to_have_text("Check your email")

    biller.deliver_mail()
    [message] = [m for m in mailbox[0].emails() if m["To"] == email]
    assert message["Subject"] == f"{BILLER}: confirm your registration"
    body = str(message.get_body(preferencelist=("plain",)).get_content())  # type: ignore[union-attr]
    [link] = re.findall(r"http://\S+/portal/verify\?token=\S+", body)
    page.goto(link)
    accessible(page)
    page.get_by_role("button", name="Confirm and sign in").click()
    expect(page).to_have_url(re.compile(r"/portal/invoices$"))

    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(heading(page)).to_have_text("You have signed out")
    sign_in(page, biller, email, "correct horse battery")
    expect(page.locator("table tbody tr").first).to_contain_text(first.number)


def test_paperless_toggle(page: Page, biller: Biller) -> None:
    first = biller.accounts[0]
    biller.owner("olive.paper@household.example", "paper-cuts-hurt", first)
    sign_in(page, biller, "olive.paper@household.example", "paper-cuts-hurt")
    page.goto(f"{biller.server.origin}/portal/preferences")
    accessible(page)
    paperless = page.get_by_label("Paperless billing").first
    expect(paperless).not_to_be_checked()
    paperless.check()
    page.get_by_role("button", name=re.compile("^Save")).first.click()
    expect(page.get_by_label("Paperless billing").first).to_be_checked()
    assert biller.account(first).invoice_type == "email"

    page.get_by_label("Paperless billing").first.uncheck()
    page.get_by_role("button", name=re.compile("^Save")).first.click()
    expect(page.get_by_label("Paperless billing").first).not_to_be_checked()
    assert biller.account(first).invoice_type in ("paper", "paper_and_email")


def test_autopay_enrollment_then_the_worker_pays_what_falls_due(page: Page, biller: Biller
                                                                ) -> None:
    first = biller.accounts[0]
    biller.owner("olive.auto@household.example", "autopay-saves-time", first)
    earlier = biller.invoice(first, 1500)
    sign_in(page, biller, "olive.auto@household.example", "autopay-saves-time")

    # Pay once, keeping the card for later.
    page.get_by_label(str(earlier.number), exact=True).check()
    page.get_by_role("button", name="Pay selected").click()
    pay_by_card(page, save=True)
    expect(heading(page)).to_have_text("Thank you for your payment")

    page.goto(f"{biller.server.origin}/portal/autopay")
    accessible(page)
    page.get_by_label(f"Payment method for account {first.number}").select_option(
        label="Visa ending 4242, expires 12/39")
    page.get_by_label(re.compile(r"^Days after the due date")).fill("0")
    page.get_by_role("button", name=f"Turn on autopay for account {first.number}").click()
    expect(page.get_by_text("Autopay is on: Visa ending 4242")).to_be_visible()
    accessible(page)
    assert biller.account(first).authorize_auto_payment

    due = biller.invoice(first, 2750)  # due on receipt: today
    assert due.due_date is not None
    assert due.due_date <= date.today()
    worker = subprocess.run(
        [str(Path(sys.executable).parent / "billfold"), "worker", "--once"], capture_output=True,
        text=True, timeout=120, env={**os.environ,
                                     "BILLFOLD_DATABASE_URL": biller.server.settings.database_url,
                                     "BILLFOLD_DATA_DIR": str(biller.server.settings.data_dir),
                                     "BILLFOLD_BASE_URL": biller.server.origin})
    assert worker.returncode == 0, worker.stderr[-2000:]
    assert biller.status(due) == "paid"
    page.goto(f"{biller.server.origin}/portal/invoices")
    expect(page.locator("table tbody tr").filter(has_text=str(due.number))).to_contain_text("Paid")


def test_every_portal_page_passes_axe_in_english_and_spanish(browser: Browser, biller: Biller
                                                              ) -> None:
    """The pages the flows above do not visit: invoice, accounts, an account, payments, a
    receipt, profile, saved methods; in English, then in Spanish (the payer's account
    language wins over the browser's, so the account is switched to Spanish for it)."""
    first = biller.accounts[0]
    invoice = biller.invoice(first, 3300)
    biller.owner("olive.axe@household.example", "accessible-to-all", first)
    for language, locale, heading_text in (("en", "en-US", "Your invoices"),
                                           ("es", "es-ES", "Sus facturas")):
        with biller.sessions() as s, transaction(s):
            user = payers.find_by_email(s, biller.scope, "olive.axe@household.example")
            assert user is not None
            user.preferred_language = language
        with checked_page(browser, locale=locale, bypass_csp=True) as page:
            page.goto(biller.login_url())
            page.locator("#f-email").fill("olive.axe@household.example")
            page.locator("#f-password").fill("accessible-to-all")
            page.locator("form button[type=submit]").click()
            expect(heading(page)).to_have_text(heading_text)
            expect(page.locator("html")).to_have_attribute("lang", re.compile(f"^{language}"))
            origin = biller.server.origin
            for path in ("/portal/invoices", f"/portal/invoices/{invoice.id}", "/portal/accounts",
                         f"/portal/accounts/{first.id}", f"/portal/accounts/{first.id}/people",
                         "/portal/payments", "/portal/profile",
                         "/portal/preferences", "/portal/autopay", "/portal/methods"):
                page.goto(origin + path)
                accessible(page)
            # Keyboard: the first Tab reaches the skip link, which moves focus to main.
            page.goto(origin + "/portal/invoices")
            page.keyboard.press("Tab")
            expect(page.locator(".skip-link")).to_be_focused()
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"every_page_{language}.png"), full_page=True)
