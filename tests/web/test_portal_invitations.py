"""An account's owner invites others in the portal: by email, with a role; the invitee
follows the emailed link (setting a password when they have no verified login) and gets
exactly that role; owners take access away again. Only owners see or manage who has
access."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from billfold.access import payers
from billfold.access.models import PayerGrant, PayerUser
from billfold.core.db import transaction
from billfold.customers.models import BillingAccount
from billfold.notifications.models import OutboxMessage
from billfold.web.pages import limits, portal_base
from tests.web.test_pay_page import form_to
from tests.web.test_portal_pages import Portal, post

LINK = re.compile(r"http://\S+(/portal/invitation\?token=[A-Za-z0-9_-]+)")


@pytest.fixture
def portal(make_client: Any, sessions: sessionmaker[Session]) -> Portal:
    return Portal(make_client, sessions)


def invite(portal: Portal, account_id: str, email: str, role: str) -> Any:
    page = portal.page(f"/portal/accounts/{account_id}/people")
    form = form_to(page.text, f"/portal/accounts/{account_id}/people")
    return post(portal.browser, form.action, form.filled(email=email, role=role))


def emailed_link(portal: Portal, to: str) -> str:
    with portal.sessions() as s:
        bodies = [m.text_body for m in s.scalars(select(OutboxMessage).where(
            OutboxMessage.tenant_id == portal.scope.tenant_id)) if to in m.to]
    assert bodies, f"no email to {to}"
    found = LINK.search(bodies[-1])
    assert found is not None
    return found.group(1)


def accept(client: Any, link: str, **values: str) -> Any:
    page = client.get(link)
    assert page.status_code == 200, page.text
    form = form_to(page.text, "/portal/invitation")
    return post(client, form.action, form.filled(**values))


def grants_of(portal: Portal, email: str) -> dict[str, tuple[str, str]]:
    with portal.sessions() as s:
        user = payers.find_by_email(s, portal.scope, email)
        if user is None:
            return {}
        return {g.billing_account_id: (g.role, g.source) for g in s.scalars(
            select(PayerGrant).where(PayerGrant.payer_user_id == user.id))}


def new_browser(portal: Portal, make_client: Any) -> Any:
    client = make_client(portal.scope)
    del client.headers["Authorization"]
    return client


class TestInviting:
    def test_a_new_address_sets_a_password_and_gets_exactly_the_role(
            self, portal: Portal, make_client: Any) -> None:
        invoice = portal.invoice(portal.a, 5000)
        sent = invite(portal, portal.a, "Vic@Viewer.Example", "viewer")
        assert sent.status_code == 200
        assert "We have emailed an invitation to Vic@Viewer.Example" in sent.text
        assert grants_of(portal, "vic@viewer.example") == {}  # nothing until accepted

        invitee = new_browser(portal, make_client)
        page = invitee.get(emailed_link(portal, "vic@viewer.example"))
        assert "ada@example.com invited vic@viewer.example to account" in page.text
        assert 'name="password"' in page.text
        done = accept(invitee, emailed_link(portal, "vic@viewer.example"), name="Vic Viewer",
                      password="a long enough secret")
        assert done.status_code == 303
        assert done.headers["location"] == "/portal/accounts"
        assert grants_of(portal, "vic@viewer.example") == {portal.a: ("viewer", "invitation")}

        history = invitee.get("/portal/invoices")
        assert history.status_code == 200
        assert f"/portal/invoices/{invoice}" in history.text
        assert f'id="pay-{invoice}"' not in history.text  # a viewer cannot pay
        with portal.sessions() as s:
            user = payers.find_by_email(s, portal.scope, "vic@viewer.example")
            assert user is not None
            assert user.name == "Vic Viewer"
            assert user.email_verified_at is not None
            assert payers.sign_in(s, portal.scope, email="vic@viewer.example",
                                  password="a long enough secret") is not None

    def test_an_existing_login_accepts_with_one_button(self, portal: Portal,
                                                       make_client: Any) -> None:
        with portal.sessions() as s, transaction(s):
            payers.new_user(s, portal.scope, email="pat@payer.example", name="Pat",
                            password="pats own password", verified=True)
        invite(portal, portal.a, "pat@payer.example", "payer")
        invitee = new_browser(portal, make_client)
        link = emailed_link(portal, "pat@payer.example")
        page = invitee.get(link)
        assert 'name="password"' not in page.text
        assert "Accept and sign in" in page.text
        assert accept(invitee, link).status_code == 303
        assert grants_of(portal, "pat@payer.example") == {portal.a: ("payer", "invitation")}
        with portal.sessions() as s:
            assert payers.sign_in(s, portal.scope, email="pat@payer.example",
                                  password="pats own password") is not None

    def test_an_unverified_registrations_password_is_replaced(self, portal: Portal,
                                                              make_client: Any) -> None:
        with portal.sessions() as s, transaction(s):
            payers.new_user(s, portal.scope, email="eve@example.net", name="Eve",
                            password="someone elses pass")  # registered, never verified
        invite(portal, portal.a, "eve@example.net", "payer")
        invitee = new_browser(portal, make_client)
        link = emailed_link(portal, "eve@example.net")
        assert 'name="password"' in invitee.get(link).text
        refused = accept(invitee, link, password="short")
        assert refused.status_code == 422
        assert grants_of(portal, "eve@example.net") == {}
        assert accept(invitee, link, password="the real owner's pass").status_code == 303
        with portal.sessions() as s:
            assert payers.sign_in(s, portal.scope, email="eve@example.net",
                                  password="someone elses pass") is None
            assert payers.sign_in(s, portal.scope, email="eve@example.net",
                                  password="the real owner's pass") is not None

    def test_a_link_works_once(self, portal: Portal, make_client: Any) -> None:
        invite(portal, portal.a, "once@example.net", "viewer")
        link = emailed_link(portal, "once@example.net")
        first, second = new_browser(portal, make_client), new_browser(portal, make_client)
        page = second.get(link)  # opened in two tabs
        assert accept(first, link, password="first and only pass").status_code == 303
        form = form_to(page.text, "/portal/invitation")
        late = post(second, form.action, form.filled(password="second tab's pass"))
        assert late.status_code == 410
        assert second.get(link).status_code == 410

    def test_bad_input_is_named_and_nothing_is_sent(self, portal: Portal) -> None:
        with portal.sessions() as s:
            before = len(list(s.scalars(select(OutboxMessage.id))))
        bad = invite(portal, portal.a, "not an address", "emperor")
        assert bad.status_code == 422
        assert "is not an email address" in bad.text
        assert "must be one of owner, payer, viewer" in bad.text
        own = invite(portal, portal.a, "ada@example.com", "owner")
        assert own.status_code == 422
        assert "is your own address" in own.text
        with portal.sessions() as s:
            assert len(list(s.scalars(select(OutboxMessage.id)))) == before


class TestWhoMay:
    def test_only_an_owner_sees_and_manages_the_people(self, portal: Portal) -> None:
        for account in (portal.b, portal.v, portal.c):
            assert portal.browser.get(f"/portal/accounts/{account}/people").status_code == 404
            page = portal.page(f"/portal/accounts/{portal.a}/people")
            form = form_to(page.text, f"/portal/accounts/{portal.a}/people")
            sneaky = post(portal.browser, f"/portal/accounts/{account}/people",
                          form.filled(email="x@example.net", role="owner"))
            assert sneaky.status_code == 404
        assert "People with access to this account" in portal.page(
            f"/portal/accounts/{portal.a}").text
        assert "People with access to this account" not in portal.page(
            f"/portal/accounts/{portal.b}").text

    def test_an_owner_removes_someone_elses_access_but_not_their_own(
            self, portal: Portal, make_client: Any) -> None:
        invite(portal, portal.a, "gone@example.net", "payer")
        accept(new_browser(portal, make_client), emailed_link(portal, "gone@example.net"),
               password="soon to be gone pw")
        page = portal.page(f"/portal/accounts/{portal.a}/people")
        assert "gone@example.net" in page.text
        remove = next(f for f in re.findall(r'action="([^"]+/remove)"', page.text))
        form = form_to(page.text, remove)
        assert post(portal.browser, remove, form.filled()).status_code == 303
        assert grants_of(portal, "gone@example.net") == {}
        with portal.sessions() as s:
            own = s.scalars(select(PayerGrant).where(
                PayerGrant.payer_user_id == portal.user_id,
                PayerGrant.billing_account_id == portal.a)).one()
        refused = post(portal.browser, f"/portal/accounts/{portal.a}/people/{own.id}/remove",
                       form.filled())
        assert refused.status_code == 404
        assert grants_of(portal, "ada@example.com")[portal.a] == ("owner", "staff")

    def test_forms_without_the_csrf_token_are_refused(self, portal: Portal,
                                                      make_client: Any) -> None:
        refused = post(portal.browser, f"/portal/accounts/{portal.a}/people",
                       [("email", "c@example.net"), ("role", "viewer")])
        assert refused.status_code == 403
        invite(portal, portal.a, "csrf@example.net", "viewer")
        invitee = new_browser(portal, make_client)
        token = emailed_link(portal, "csrf@example.net").split("token=")[1]
        assert post(invitee, "/portal/invitation", [("token", token),
                                                    ("password", "a fine password")]
                    ).status_code == 403
        assert grants_of(portal, "csrf@example.net") == {}
        assert portal_base.SESSION_COOKIE not in invitee.cookies

    def test_a_signed_out_browser_is_asked_to_sign_in(self, portal: Portal,
                                                      make_client: Any) -> None:
        stranger = new_browser(portal, make_client)
        assert stranger.get(f"/portal/accounts/{portal.a}/people").status_code == 401

    def test_the_invitee_row_is_the_same_user_when_invited_twice(self, portal: Portal) -> None:
        invite(portal, portal.a, "twice@example.net", "viewer")
        invite(portal, portal.a, "twice@example.net", "payer")
        with portal.sessions() as s:
            assert len(list(s.scalars(select(PayerUser).where(
                PayerUser.email == "twice@example.net",
                PayerUser.tenant_id == portal.scope.tenant_id)))) == 1


def test_the_invitation_is_written_in_the_accounts_language(portal: Portal) -> None:
    with portal.sessions() as s, transaction(s):
        s.get_one(BillingAccount, portal.a).preferred_language = "es_MX"
    invite(portal, portal.a, "lucia@example.net", "viewer")
    with portal.sessions() as s:
        number = s.get_one(BillingAccount, portal.a).number
        [subject] = [m.subject for m in s.scalars(select(OutboxMessage).where(
            OutboxMessage.tenant_id == portal.scope.tenant_id)) if "lucia@example.net" in m.to]
    assert subject == f"HTTP Biller: Ada Payer le invitó a la cuenta {number}"


def test_invitations_are_rate_limited_per_payer(portal: Portal) -> None:
    for n in range(limits.INVITE.count):
        assert invite(portal, portal.a, f"many{n}@example.net", "viewer").status_code == 200
    assert invite(portal, portal.a, "one.too.many@example.net", "viewer").status_code == 429
    with portal.sessions() as s:
        assert payers.find_by_email(s, portal.scope, "one.too.many@example.net") is None
