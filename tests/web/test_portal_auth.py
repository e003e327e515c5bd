"""Signing in to the payer portal without SSO, driven through HTTP as a browser without
JavaScript drives it: registration with an account number and the biller's registration
value, the verification email read from a real SMTP server (aiosmtpd) after the worker
delivered it, sign-in, password reset, sign-out (everywhere), rate limits and CSRF.

The module has a database of its own: the worker delivers every due email, and other
tests' emails must not arrive here (nor ours there)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from billfold.access import passwords, payers
from billfold.access.models import PayerUser
from billfold.core import jobs
from billfold.core.config import Settings
from billfold.core.db import make_engine, make_sessionmaker, transaction
from billfold.core.scope import Scope
from billfold.customers import service as customers
from billfold.customers import settings as settings_service
from billfold.invoicing import service as invoicing
from billfold.notifications import outbox
from billfold.tenants import service as tenants
from billfold.web.pages import limits
from tests.conftest import Reference, migrated_database
from tests.services.test_outbox import Mailbox, smtp_server, unused_port

BASE_URL = "http://portal.example.test"
PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple gun orbit 42"
CSRF_VALUE = re.compile(r'value="[A-Za-z0-9_-]{43}"')


# -- a database, mail server and app of the module's own ------------------------------------


@dataclass
class Stack:
    engine: Engine
    sessions: sessionmaker[Session]
    settings: Settings
    mailbox: Mailbox
    app: Any


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from billfold.web.app import create_app

    port = unused_port()
    with migrated_database(tmp_path_factory.mktemp("portal_db")) as url, \
            smtp_server(port) as mailbox:
        engine = make_engine(url)
        settings = Settings(database_url=url, data_dir=Path(tmp_path_factory.mktemp("var")),
                            base_url=BASE_URL, smtp_url=f"smtp://127.0.0.1:{port}")
        yield Stack(engine, make_sessionmaker(engine), settings, mailbox,
                    create_app(settings, engine))
        engine.dispose()


# -- reading pages as a browser does ---------------------------------------------------------


@dataclass
class Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[str] = field(default_factory=list)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._in_button = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append(Form(str(a.get("action"))))
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1].fields[str(a["name"])] = a.get("value") or ""
        elif tag == "button" and self.forms:
            self._in_button = True
            self.forms[-1].buttons.append("")

    def handle_data(self, data: str) -> None:
        if self._in_button:
            self.forms[-1].buttons[-1] += data.strip()

    def handle_endtag(self, tag: str) -> None:
        if tag == "button":
            self._in_button = False


def form_to(html: str, action_end: str) -> Form:
    reader = _Forms()
    reader.feed(html)
    found = [f for f in reader.forms if f.action.endswith(action_end)]
    assert len(found) == 1, [f.action for f in reader.forms]
    return found[0]


def same_page(html: str) -> str:
    """The page without what differs between two renderings: the CSRF token."""
    return CSRF_VALUE.sub('value=""', html)


class Browser:
    """One payer's browser: its own cookies, no API key."""

    def __init__(self, app: Any) -> None:
        self.http = TestClient(app, base_url=BASE_URL, raise_server_exceptions=False)

    def get(self, path: str, **params: str) -> Any:
        return self.http.get(path, params=params, follow_redirects=False)

    def submit(self, page_path: str, action_end: str, **values: str) -> Any:
        """Open ``page_path``, fill the form posting to ``action_end`` and send it."""
        page = self.get(page_path)
        assert page.status_code == 200, page.text
        form = form_to(page.text, action_end)
        return self.http.post(form.action, data={**form.fields, **values},
                              follow_redirects=False)

    def post_without_csrf(self, path: str, **values: str) -> Any:
        return self.http.post(path, data=values, follow_redirects=False)

    @property
    def session_value(self) -> str | None:
        return self.http.cookies.get("bf_portal")

    def close(self) -> None:
        self.http.close()


# -- a biller with one account ------------------------------------------------------------------


class Biller:
    """A tenant with one billing account (number ACC-1001, billing postal code 75201) and
    a $20.00 invoice on it."""

    def __init__(self, stack: Stack, **settings: Any) -> None:
        self.stack, self.sessions = stack, stack.sessions
        with self.sessions() as s:
            with transaction(s):
                tenant = tenants.create_tenant(s, name="Lone Star Power")
                self.scope = Scope(tenant.id, "test")
                if settings:
                    settings_service.update_settings(s, self.scope, settings)
            ref = Reference(s, self.scope)
            with transaction(s):
                _, self.account = customers.create_customer(s, self.scope, data=ref.customer(
                    "Ada's Bakery", billing_address={"line1": "1 Elm St", "city": "Dallas",
                                                     "postal_code": "75201", "country": "US"},
                    billing_account=ref.account(number="ACC-1001", start_date=date(2026, 1, 1))),
                    actor="test")
                draft = invoicing.create_draft(s, self.scope, billing_account_id=self.account.id,
                                               lines=[{"description": "Power", "quantity": 1,
                                                       "unit_amount_minor": 2000}], actor="test")
                invoicing.finalize(s, self.scope, invoice_id=draft.id, actor="test")
        self.entry = f"/portal/b/{self.scope.tenant_id}/test"
        self.browsers: list[Browser] = []

    def browser(self) -> Browser:
        made = Browser(self.stack.app)
        self.browsers.append(made)
        return made

    def register(self, browser: Browser | None = None, **values: str) -> Any:
        fields = {"account_number": "ACC-1001", "registration_value": "75201",
                  "name": "Ada Baker", "email": "", "password": PASSWORD, **values}
        return (browser or self.browser()).submit(f"{self.entry}/register", "/register",
                                                  **fields)

    def sign_in(self, browser: Browser, email: str, password: str = PASSWORD) -> Any:
        return browser.submit(f"{self.entry}/login", "/login", email=email, password=password)

    def mail_to(self, address: str) -> list[EmailMessage]:
        """Deliver every due email (as ``billfold worker`` does) and return those the SMTP
        server accepted for ``address``."""
        jobs.run_pending(self.sessions, outbox.handlers(self.stack.settings),
                         worker_id="test-worker", kinds=[outbox.DELIVER])
        return [m for m in self.stack.mailbox.emails()
                if address in [a.strip() for a in str(m["To"]).split(",")]]

    def user(self, email: str) -> PayerUser | None:
        with self.sessions() as s:
            return payers.find_by_email(s, self.scope, email)

    def roles(self, email: str) -> dict[str, str]:
        with self.sessions() as s:
            user = payers.find_by_email(s, self.scope, email)
            assert user is not None
            return {g.account.number: g.grant.role for g in payers.grants_of(s, user)}

    def signed_in(self, browser: Browser) -> bool:
        return self.alive(browser.session_value)

    def alive(self, cookie_value: str | None) -> bool:
        """Whether a session cookie's value still names a live session (checked in the
        database, whatever the browser did with the cookie)."""
        assert cookie_value
        with self.sessions() as s:
            return payers.session_of(s, cookie_value) is not None

    def close(self) -> None:
        for browser in self.browsers:
            browser.close()


@pytest.fixture
def make_biller(stack: Stack) -> Iterator[Any]:
    made: list[Biller] = []

    def make(**settings: Any) -> Biller:
        made.append(Biller(stack, **settings))
        return made[-1]

    yield make
    for biller in made:
        biller.close()


@pytest.fixture
def biller(make_biller: Any) -> Biller:
    return make_biller()


def new_address() -> str:
    return f"payer-{uuid.uuid4().hex[:10]}@customer.example"


def link_in(mail: EmailMessage, path: str) -> tuple[str, str]:
    """The (path, token) of the link to ``path`` in an email's text."""
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = re.search(rf"{re.escape(BASE_URL)}({re.escape(path)})\?token=([A-Za-z0-9_-]+)",
                      text)
    assert found, text
    return found.group(1), found.group(2)


def registered(biller: Biller, email: str | None = None) -> tuple[str, Browser]:
    """A verified payer (through the whole registration story) and their signed-in browser."""
    email = email or new_address()
    assert "Check your email" in biller.register(email=email).text
    (mail,) = biller.mail_to(email)
    path, token = link_in(mail, "/portal/verify")
    browser = biller.browser()
    page = browser.get(path, token=token)
    form = form_to(page.text, "/portal/verify")
    assert browser.http.post(form.action, data=form.fields,
                             follow_redirects=False).status_code == 303
    return email, browser


# -- registration ---------------------------------------------------------------------------------


class TestRegistration:
    def test_the_emailed_link_confirms_signs_in_and_makes_the_user_owner(
            self, biller: Biller) -> None:
        email = new_address()
        response = biller.register(email=email.upper())
        assert response.status_code == 200
        assert "Check your email" in response.text
        (mail,) = biller.mail_to(email)
        assert "confirm your registration" in str(mail["Subject"])
        assert "ACC-1001" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        path, token = link_in(mail, "/portal/verify")
        user = biller.user(email)
        assert user is not None
        assert user.email_verified_at is None

        browser = biller.browser()
        for _ in range(2):  # a mail scanner fetching the link spends nothing
            page = browser.get(path, token=token)
            assert page.status_code == 200, page.text
        form = form_to(page.text, "/portal/verify")
        assert form.buttons == ["Confirm and sign in"]
        assert form.fields["token"] == token
        assert biller.user(email).email_verified_at is None  # type: ignore[union-attr]

        confirmed = browser.http.post(form.action, data=form.fields, follow_redirects=False)
        assert confirmed.status_code == 303
        assert confirmed.headers["location"] == "/portal/invoices"
        assert biller.signed_in(browser)
        assert biller.user(email).email_verified_at is not None  # type: ignore[union-attr]
        assert biller.roles(email) == {"ACC-1001": "owner"}
        # The link works once.
        assert browser.get(path, token=token).status_code == 410
        again = browser.http.post(form.action, data=form.fields, follow_redirects=False)
        assert again.status_code == 410

    def test_a_verified_user_signs_in_with_the_password(self, biller: Biller) -> None:
        email, _ = registered(biller)
        browser = biller.browser()
        response = biller.sign_in(browser, email)
        assert response.status_code == 303
        assert response.headers["location"] == "/portal/invoices"
        cookie = next(h for h in response.headers.get_list("set-cookie")
                      if h.startswith("bf_portal="))
        assert {"httponly", "samesite=lax"} <= {p.strip().lower() for p in cookie.split(";")}
        assert biller.signed_in(browser)

    @pytest.mark.parametrize("wrong", [{"registration_value": "75202"},
                                       {"account_number": "ACC-9999"},
                                       {"registration_value": ""}])
    def test_wrong_details_show_the_same_page_and_send_nothing(
            self, biller: Biller, wrong: dict[str, str]) -> None:
        good_email, bad_email = new_address(), new_address()
        good = biller.register(email=good_email)
        bad = biller.register(email=bad_email, **wrong)
        assert bad.status_code == good.status_code == 200
        assert same_page(bad.text) == same_page(good.text)
        assert len(biller.mail_to(good_email)) == 1
        assert biller.mail_to(bad_email) == []
        assert biller.user(bad_email) is None

    def test_an_email_with_a_login_gets_a_harmless_note_and_the_same_page(
            self, biller: Biller) -> None:
        email, _ = registered(biller)
        fresh = biller.register(email=new_address())
        existing = biller.register(email=email, password="another password 9")
        assert existing.status_code == 200
        assert same_page(existing.text) == same_page(fresh.text)
        notes = biller.mail_to(email)[1:]  # after the first registration's link
        assert len(notes) == 1
        note = notes[0]
        assert [a.strip() for a in str(note["To"]).split(",")] == [email]
        text = note.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "already has a login" in text
        assert "token=" not in text
        # The note's sign-in link leads to this biller's sign-in page.
        sign_in_link = re.search(rf"{re.escape(BASE_URL)}(/portal/\S+)", text)
        assert sign_in_link, text
        page = biller.browser().get(sign_in_link.group(1))
        assert page.status_code == 200, sign_in_link.group(1)
        assert form_to(page.text, "/login")
        # The password given in the second registration changed nothing.
        assert biller.sign_in(biller.browser(), email, "another password 9").status_code == 401
        assert biller.sign_in(biller.browser(), email).status_code == 303

    def test_registering_again_before_verifying_sends_a_new_link(self, biller: Biller) -> None:
        email = new_address()
        biller.register(email=email)
        assert len(biller.mail_to(email)) == 1
        second = biller.register(email=email, password=NEW_PASSWORD)
        assert "Check your email" in second.text
        mails = biller.mail_to(email)
        assert len(mails) == 2
        path, token = link_in(mails[1], "/portal/verify")
        browser = biller.browser()
        form = form_to(browser.get(path, token=token).text, "/portal/verify")
        assert browser.http.post(form.action, data=form.fields,
                                 follow_redirects=False).status_code == 303
        assert biller.roles(email) == {"ACC-1001": "owner"}
        # The password of the registration the link came from is the one that works.
        assert biller.sign_in(biller.browser(), email, NEW_PASSWORD).status_code == 303

    def test_a_second_registration_cannot_set_the_password_of_the_first_link(
            self, biller: Biller) -> None:
        email = new_address()
        biller.register(email=email)
        biller.register(email=email, password=NEW_PASSWORD)  # someone else, same address
        first, _ = biller.mail_to(email)
        path, token = link_in(first, "/portal/verify")
        browser = biller.browser()
        form = form_to(browser.get(path, token=token).text, "/portal/verify")
        assert browser.http.post(form.action, data=form.fields,
                                 follow_redirects=False).status_code == 303
        assert biller.sign_in(biller.browser(), email, NEW_PASSWORD).status_code == 401
        assert biller.sign_in(biller.browser(), email).status_code == 303

    def test_every_outcome_does_the_same_password_hashing(
            self, biller: Biller, monkeypatch: pytest.MonkeyPatch) -> None:
        """The slow step (argon2) happens once whatever the outcome, so the time an answer
        takes does not tell a new address from one with a login."""
        known, _ = registered(biller)
        pending = new_address()
        biller.register(email=pending)
        hashed: list[str] = []
        real = passwords.hash_password
        monkeypatch.setattr(passwords, "hash_password",
                            lambda password: hashed.append(password) or real(password))
        outcomes = {"new address": {"email": new_address()},
                    "address with a login": {"email": known},
                    "address not yet verified": {"email": pending},
                    "wrong value": {"email": new_address(), "registration_value": "00000"},
                    "unknown account": {"email": new_address(), "account_number": "ACC-0"}}
        for kind, values in outcomes.items():
            hashed.clear()
            assert biller.register(**values).status_code == 200, kind
            assert hashed == [PASSWORD], kind

    def test_bad_fields_are_shown_on_the_form(self, biller: Biller) -> None:
        response = biller.register(email="not an email", password="short")
        assert response.status_code == 422
        assert 'id="f-email-error"' in response.text
        assert 'id="f-password-error"' in response.text
        assert biller.mail_to("not an email") == []

    def test_the_last_invoice_amount_can_be_the_registration_value(self, make_biller: Any
                                                                   ) -> None:
        biller = make_biller(registration_check="last_invoice_amount")
        page = biller.browser().get(f"{biller.entry}/register")
        assert "Amount of your last bill" in page.text
        right, wrong, postal = new_address(), new_address(), new_address()
        biller.register(email=right, registration_value="20.00")
        biller.register(email=wrong, registration_value="19.99")
        biller.register(email=postal, registration_value="75201")
        assert len(biller.mail_to(right)) == 1
        assert biller.mail_to(wrong) == biller.mail_to(postal) == []

    def test_an_unknown_tenant_has_no_registration_page(self, biller: Biller) -> None:
        browser = biller.browser()
        assert browser.get("/portal/b/ten_nope/test/register").status_code == 404
        assert browser.get(f"{biller.entry.rsplit('/', 1)[0]}/prod/register").status_code == 404

    def test_registration_is_rate_limited(self, biller: Biller) -> None:
        browser = biller.browser()
        for _ in range(limits.REGISTER.count):
            assert biller.register(browser, email=new_address()).status_code == 200
        email = new_address()
        assert biller.register(browser, email=email).status_code == 429
        assert len(biller.mail_to(email)) == 0


# -- sign-in ----------------------------------------------------------------------------------------


class TestSignIn:
    def test_failures_look_the_same_whatever_went_wrong(self, biller: Biller) -> None:
        email, _ = registered(biller)
        unverified = new_address()
        biller.register(email=unverified)
        attempts = {"wrong password": (email, "not the password 1"),
                    "unknown email": ("nobody@customer.example", PASSWORD),
                    "unverified": (unverified, PASSWORD),
                    "not an email": ("nobody", PASSWORD)}
        pages = {}
        for kind, (address, password) in attempts.items():
            browser = biller.browser()
            response = biller.sign_in(browser, address, password)
            assert response.status_code == 401, kind
            assert "Sign-in failed" in response.text
            assert "bf_portal=" not in response.headers.get("set-cookie", "")
            assert browser.session_value is None
            pages[kind] = same_page(response.text).replace(address, "ADDRESS")
        assert len(set(pages.values())) == 1, pages

    def test_the_eleventh_attempt_in_the_window_is_refused(self, biller: Biller) -> None:
        email, _ = registered(biller)
        browser = biller.browser()
        for i in range(limits.SIGN_IN.count):
            assert biller.sign_in(browser, email, f"wrong password {i}").status_code == 401
        # Even the right password waits now.
        refused = biller.sign_in(browser, email)
        assert refused.status_code == 429
        assert refused.headers["retry-after"]
        assert browser.session_value is None

    def test_attempts_on_one_address_are_limited_across_clients(self, biller: Biller) -> None:
        email, _ = registered(biller)
        for i in range(limits.SIGN_IN_PER_EMAIL.count):
            limits.SIGN_IN.reset()  # as if from ever new client addresses
            assert biller.sign_in(biller.browser(), email, f"wrong {i} guess").status_code == 401
        limits.SIGN_IN.reset()
        assert biller.sign_in(biller.browser(), email).status_code == 429


# -- password reset, sign-out ---------------------------------------------------------------------


class TestPasswordReset:
    def test_the_emailed_link_sets_a_new_password_and_ends_every_session(
            self, biller: Biller) -> None:
        email, first = registered(biller)
        second = biller.browser()
        assert biller.sign_in(second, email).status_code == 303
        asked = biller.browser().submit(f"{biller.entry}/forgot", "/forgot", email=email)
        assert "Check your email" in asked.text
        mail = biller.mail_to(email)[-1]
        assert "reset your password" in str(mail["Subject"])
        path, token = link_in(mail, "/portal/reset")

        browser = biller.browser()
        page = browser.get(path, token=token)
        assert page.status_code == 200
        form = form_to(page.text, "/portal/reset")
        short = browser.http.post(form.action, data={**form.fields, "password": "short"},
                                  follow_redirects=False)
        assert short.status_code == 422  # and the token is not spent by a refused password
        done = browser.http.post(form.action, data={**form.fields, "password": NEW_PASSWORD},
                                 follow_redirects=False)
        assert done.status_code == 200, done.text
        assert "Your password has been changed" in done.text

        assert not biller.signed_in(first)
        assert not biller.signed_in(second)
        assert first.session_value
        assert second.session_value
        assert biller.sign_in(biller.browser(), email).status_code == 401
        assert biller.sign_in(biller.browser(), email, NEW_PASSWORD).status_code == 303
        # The link works once.
        assert browser.get(path, token=token).status_code == 410
        again = browser.http.post(form.action, data={**form.fields, "password": "third pass 333"},
                                  follow_redirects=False)
        assert again.status_code == 410

    def test_an_unknown_address_gets_the_same_page_and_no_email(self, biller: Biller) -> None:
        email, _ = registered(biller)
        nobody = new_address()
        known = biller.browser().submit(f"{biller.entry}/forgot", "/forgot", email=email)
        unknown = biller.browser().submit(f"{biller.entry}/forgot", "/forgot", email=nobody)
        assert same_page(known.text) == same_page(unknown.text)
        assert biller.mail_to(nobody) == []

    def test_reset_requests_are_rate_limited(self, biller: Biller) -> None:
        email, _ = registered(biller)
        browser = biller.browser()
        for _ in range(limits.RESET.count):
            assert browser.submit(f"{biller.entry}/forgot", "/forgot",
                                  email=new_address()).status_code == 200
        refused = browser.submit(f"{biller.entry}/forgot", "/forgot", email=email)
        assert refused.status_code == 429
        assert [m for m in biller.mail_to(email) if "reset" in str(m["Subject"])] == []

    def test_a_link_from_another_purpose_does_not_reset(self, biller: Biller) -> None:
        email = new_address()
        biller.register(email=email)
        _, token = link_in(biller.mail_to(email)[0], "/portal/verify")
        assert biller.browser().get("/portal/reset", token=token).status_code == 410


class TestSignOut:
    def test_sign_out_ends_this_session_only(self, biller: Biller) -> None:
        email, first = registered(biller)
        second = biller.browser()
        biller.sign_in(second, email)
        page = first.get(f"{biller.entry}/login")  # any portal page carries the CSRF cookie
        csrf = first.http.cookies.get("bf_portal_csrf")
        assert csrf
        assert csrf in page.text
        cookie = first.session_value
        response = first.http.post("/portal/logout", data={"csrf_token": csrf},
                                   follow_redirects=False)
        assert response.status_code == 200
        assert "You have signed out" in response.text
        assert first.session_value is None  # the browser dropped the cookie
        assert not biller.alive(cookie)  # and the server ended the session
        assert biller.signed_in(second)

    def test_sign_out_everywhere_ends_every_session_of_the_user(self, biller: Biller) -> None:
        email, first = registered(biller)
        others = [biller.browser() for _ in range(2)]
        for browser in others:
            assert biller.sign_in(browser, email).status_code == 303
        first.get(f"{biller.entry}/login")
        csrf = first.http.cookies.get("bf_portal_csrf")
        cookies = [b.session_value for b in [first, *others]]
        response = first.http.post("/portal/logout-everywhere", data={"csrf_token": csrf},
                                   follow_redirects=False)
        assert response.status_code == 200
        assert not any(biller.alive(c) for c in cookies)
        # A new sign-in works again afterwards.
        assert biller.sign_in(biller.browser(), email).status_code == 303

    def test_sign_out_everywhere_needs_a_session(self, biller: Biller) -> None:
        browser = biller.browser()
        browser.get(f"{biller.entry}/login")
        csrf = browser.http.cookies.get("bf_portal_csrf")
        response = browser.http.post("/portal/logout-everywhere", data={"csrf_token": csrf},
                                     follow_redirects=False)
        assert response.status_code == 401


# -- CSRF ----------------------------------------------------------------------------------------


class TestCsrf:
    def test_every_form_refuses_a_post_without_the_csrf_token(self, biller: Biller) -> None:
        email, signed_in = registered(biller)
        other = new_address()
        biller.register(email=other)
        _, verify_token = link_in(biller.mail_to(other)[0], "/portal/verify")
        biller.browser().submit(f"{biller.entry}/forgot", "/forgot", email=email)
        _, reset_token = link_in(biller.mail_to(email)[-1], "/portal/reset")

        posts = {
            f"{biller.entry}/login": {"email": email, "password": PASSWORD},
            f"{biller.entry}/register": {"account_number": "ACC-1001",
                                         "registration_value": "75201",
                                         "email": new_address(), "password": PASSWORD},
            f"{biller.entry}/forgot": {"email": email},
            "/portal/verify": {"token": verify_token},
            "/portal/reset": {"token": reset_token, "password": NEW_PASSWORD},
            "/portal/logout": {},
            "/portal/logout-everywhere": {},
        }
        signed_in.get(f"{biller.entry}/login")  # holds a CSRF cookie, sends no token
        for path, values in posts.items():
            for sent in (values, {**values, "csrf_token": "x" * 43}):
                response = signed_in.post_without_csrf(path, **sent)
                assert response.status_code == 403, (path, response.text)
                assert "This form has expired" in response.text
        # Nothing happened: still signed in, the old password works, both links are good.
        assert biller.signed_in(signed_in)
        assert biller.sign_in(biller.browser(), email).status_code == 303
        assert biller.browser().get("/portal/verify", token=verify_token).status_code == 200
        assert biller.browser().get("/portal/reset", token=reset_token).status_code == 200
        assert biller.user(other).email_verified_at is None  # type: ignore[union-attr]
