"""Single sign-on from the biller's site: every refusal the issue lists, each with its
logged reason and nothing written, and what an accepted token does — the payer user, the
grants on exactly the listed accounts, the preferences, key rotation, and one session out
of twenty racing submissions of one token.

Tokens are built here with joserfc as a biller's site builds them, not with the code under
test, so a change to what Billfold accepts shows up as a failing test."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwe, jws
from joserfc.jwk import OctKey
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from billfold.access import payers, sso
from billfold.access.models import PayerGrant, PayerSession, PayerUser, SsoTokenUse
from billfold.core import clock
from billfold.core.db import transaction
from billfold.core.scope import Scope
from billfold.customers import settings as settings_service
from billfold.customers.models import BillingAccount
from tests.services.conftest import Desk, frozen_at

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BASE_URL = "https://billing.example.com"
ALL_OPTIONS = ["none", "email", "paper", "paper_and_email"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_key(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encrypt(claims: dict[str, Any], key: bytes, *, alg: str = "dir",
            enc: str = "A256GCM") -> str:
    return jwe.encrypt_compact({"alg": alg, "enc": enc}, json.dumps(claims).encode(),
                               OctKey.import_key(key), algorithms=[alg, enc])


class Shop:
    """A biller's web shop: SSO on in both modes with credentials in each, and three
    billing accounts in test mode (one of them on paper)."""

    def __init__(self, desk: Desk, sessions: sessionmaker[Session]) -> None:
        self.desk, self.sessions = desk, sessions
        self.scope = desk.scope
        self.live = Scope(self.scope.tenant_id, "live")
        desk.configure(sso_enabled=True, invoice_distribution_options=ALL_OPTIONS)
        with sessions() as s, transaction(s):
            settings_service.update_settings(s, self.live, {"sso_enabled": True})
            self.creds = sso.rotate(s, self.scope, base_url=BASE_URL)
            self.live_creds = sso.rotate(s, self.live, base_url=BASE_URL)
        self.paper = desk.new_account("Paper Mill", invoice_type="paper")
        self.email = desk.new_account("Email Works", invoice_type="email")
        self.third = desk.new_account("Third Street")

    def claims(self, **changes: Any) -> dict[str, Any]:
        """Good claims for the test-mode credentials; ``None`` removes a claim."""
        now = int(clock.utcnow().timestamp())
        claims: dict[str, Any] = {
            "iss": self.creds.client_guid, "aud": self.creds.sso_url, "sub": "shop-user-17",
            "email": "Ada@Customer.Example", "name": "Ada Lovelace",
            "accounts": [self.paper.number, self.email.number], "iat": now, "exp": now + 120,
            "jti": secrets.token_urlsafe(16)}
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, **changes: Any) -> str:
        return encrypt(self.claims(**changes), raw_key(self.creds.encryption_key))

    def enter(self, token: str, *, mode: str = "test", guid: str | None = None
              ) -> tuple[PayerUser, str]:
        """What the SSO route does with a token: read it and sign in, in one transaction."""
        with self.sessions() as s, transaction(s):
            claims = sso.read(s, mode=mode, client_guid=guid or self.creds.client_guid,
                              token=token, base_url=BASE_URL)
            return sso.sign_in(s, claims)

    def refused(self, token: str, *, mode: str = "test", guid: str | None = None) -> str:
        """The reason a token is refused; asserts it wrote nothing."""
        before = self.written()
        with pytest.raises(sso.Refused) as refusal:
            self.enter(token, mode=mode, guid=guid)
        assert self.written() == before, "a refused token wrote rows"
        return refusal.value.reason

    def count(self, model: Any, scope: Scope | None = None) -> int:
        scope = scope or self.scope
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(model).where(
                model.tenant_id == scope.tenant_id, model.mode == scope.mode)) or 0

    def written(self) -> tuple[int, ...]:
        return tuple(self.count(model, scope) for scope in (self.scope, self.live)
                     for model in (PayerUser, PayerGrant, PayerSession, SsoTokenUse))

    def grants(self, user: PayerUser) -> dict[str, tuple[str, str]]:
        """Account number -> (role, source) of every grant the user holds."""
        with self.sessions() as s:
            fresh = s.get(PayerUser, user.id)
            assert fresh is not None
            return {g.account.number: (g.grant.role, g.grant.source)
                    for g in payers.grants_of(s, fresh)}

    def account(self, account: BillingAccount) -> BillingAccount:
        with self.sessions() as s:
            found = s.get(BillingAccount, account.id)
            assert found is not None
            return found


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    with frozen_at(NOON) as frozen_clock:
        yield frozen_clock


@pytest.fixture
def shop(desk: Desk, sessions: sessionmaker[Session], frozen: clock.FrozenClock) -> Shop:
    return Shop(desk, sessions)


def now_s() -> int:
    return int(clock.utcnow().timestamp())


# -- refusals ------------------------------------------------------------------------------


class TestRefusals:
    def test_a_reused_jti_is_refused_and_makes_no_second_session(self, shop: Shop) -> None:
        token = shop.token(jti="once-only")
        shop.enter(token)
        assert shop.count(PayerSession) == 1
        assert "jti was used before" in shop.refused(token)
        # A new token carrying the spent jti is the same replay.
        assert "jti was used before" in shop.refused(shop.token(jti="once-only"))
        assert shop.count(PayerSession) == 1

    def test_an_expired_token_is_refused(self, shop: Shop) -> None:
        now = now_s()
        token = shop.token(iat=now - 200, exp=now - 61)
        assert "expired" in shop.refused(token)

    def test_a_token_expired_within_the_skew_is_still_accepted(self, shop: Shop) -> None:
        now = now_s()
        shop.enter(shop.token(iat=now - 200, exp=now - 50))
        assert shop.count(PayerSession) == 1

    def test_a_token_dated_beyond_the_skew_in_the_future_is_refused(self, shop: Shop) -> None:
        now = now_s()
        token = shop.token(iat=now + 61, exp=now + 181)
        assert "future" in shop.refused(token)

    def test_a_token_dated_within_the_skew_in_the_future_is_accepted(self, shop: Shop) -> None:
        now = now_s()
        shop.enter(shop.token(iat=now + 50, exp=now + 170))
        assert shop.count(PayerSession) == 1

    def test_a_lifetime_over_five_minutes_is_refused(self, shop: Shop) -> None:
        now = now_s()
        assert "at most 5 minutes" in shop.refused(shop.token(iat=now, exp=now + 301))

    def test_exp_before_iat_is_refused(self, shop: Shop) -> None:
        now = now_s()
        assert "at most 5 minutes" in shop.refused(shop.token(iat=now, exp=now - 1))

    def test_a_token_under_another_key_is_refused(self, shop: Shop) -> None:
        token = encrypt(shop.claims(), secrets.token_bytes(32))
        assert "does not decrypt" in shop.refused(token)

    def test_a_test_token_at_the_live_url_is_refused(self, shop: Shop) -> None:
        token = shop.token()
        reason = shop.refused(token, mode="live", guid=shop.live_creds.client_guid)
        assert "does not decrypt" in reason
        reason = shop.refused(token, mode="live", guid=shop.creds.client_guid)
        assert "belongs to test mode" in reason

    def test_a_live_token_at_the_test_url_is_refused(self, shop: Shop) -> None:
        token = encrypt(shop.claims(iss=shop.live_creds.client_guid, aud=shop.live_creds.sso_url),
                        raw_key(shop.live_creds.encryption_key))
        reason = shop.refused(token, mode="test", guid=shop.creds.client_guid)
        assert "does not decrypt" in reason
        reason = shop.refused(token, mode="test", guid=shop.live_creds.client_guid)
        assert "belongs to live mode" in reason

    @pytest.mark.parametrize(("part", "name"), [(0, "header"), (1, "encrypted key"), (2, "iv"),
                                                (3, "ciphertext"), (4, "tag")])
    def test_an_altered_byte_is_refused(self, shop: Shop, part: int, name: str) -> None:
        token = shop.token()
        parts = token.split(".")
        if parts[part]:
            middle = len(parts[part]) // 2
            decoded = bytearray(raw_key(parts[part]))
            decoded[len(decoded) // 2] ^= 0x01
            parts[part] = b64(bytes(decoded)) if part else \
                parts[part][:middle] + ("B" if parts[part][middle] != "B" else "C") + \
                parts[part][middle + 1:]
        else:  # dir has no encrypted key: a byte where there must be none
            assert part == 1
            parts[part] = b64(b"\x00")
        altered = ".".join(parts)
        assert altered != token
        assert "does not decrypt" in shop.refused(altered), name
        shop.enter(token)  # the untouched token was good all along

    def test_a_signed_but_unencrypted_jwt_is_refused(self, shop: Shop) -> None:
        signed = jws.serialize_compact({"alg": "HS256"}, json.dumps(shop.claims()).encode(),
                                       OctKey.import_key(raw_key(shop.creds.encryption_key)))
        assert signed.count(".") == 2
        assert "unencrypted tokens are refused" in shop.refused(signed)

    def test_an_alg_none_jwt_is_refused(self, shop: Shop) -> None:
        token = (b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "."
                 + b64(json.dumps(shop.claims()).encode()) + ".")
        assert "unencrypted tokens are refused" in shop.refused(token)

    def test_a_five_part_token_with_alg_none_is_refused(self, shop: Shop) -> None:
        header = b64(json.dumps({"alg": "none", "enc": "none"}).encode())
        token = f"{header}..{b64(b'0' * 12)}.{b64(json.dumps(shop.claims()).encode())}."
        assert "does not decrypt" in shop.refused(token)

    def test_enc_a128gcm_with_a_128_bit_key_is_refused(self, shop: Shop) -> None:
        short = raw_key(shop.creds.encryption_key)[:16]
        token = encrypt(shop.claims(), short, enc="A128GCM")
        assert "does not decrypt" in shop.refused(token)

    @pytest.mark.parametrize("alg", ["A256KW", "A256GCMKW"])
    def test_a_wrapped_key_instead_of_dir_is_refused(self, shop: Shop, alg: str) -> None:
        token = encrypt(shop.claims(), raw_key(shop.creds.encryption_key), alg=alg)
        assert "does not decrypt" in shop.refused(token)

    def test_a_wrong_iss_is_refused(self, shop: Shop) -> None:
        assert "iss" in shop.refused(shop.token(iss=shop.live_creds.client_guid))

    @pytest.mark.parametrize("aud", ["live", "https://elsewhere.example/sso/test/x", ["a", "b"]])
    def test_a_wrong_aud_is_refused(self, shop: Shop, aud: Any) -> None:
        audience = shop.live_creds.sso_url if aud == "live" else aud
        assert "aud" in shop.refused(shop.token(aud=audience))

    def test_an_account_list_naming_no_account_of_the_tenant_is_refused(
            self, shop: Shop, make_desk: Any) -> None:
        elsewhere = make_desk().new_account("Other Biller's Customer", number="ELSEWHERE-9")
        token = shop.token(accounts=["NO-SUCH-1", "NO-SUCH-2"])
        assert "none of the listed accounts" in shop.refused(token)
        # Another biller's account is as unknown here as a made-up number.
        assert "none of the listed accounts" in shop.refused(shop.token(accounts=[elsewhere.number]))

    def test_an_empty_account_list_is_refused(self, shop: Shop) -> None:
        assert "accounts" in shop.refused(shop.token(accounts=[]))

    def test_sso_disabled_is_refused(self, shop: Shop) -> None:
        shop.desk.configure(sso_enabled=False)
        assert "SSO is disabled" in shop.refused(shop.token())

    @pytest.mark.parametrize("claim", ["iss", "aud", "sub", "email", "jti", "iat", "exp",
                                       "accounts"])
    def test_a_missing_claim_is_refused(self, shop: Shop, claim: str) -> None:
        assert claim in shop.refused(shop.token(**{claim: None}))

    @pytest.mark.parametrize(("claim", "value"), [("iat", "1700000000"), ("exp", 1.5e9),
                                                  ("email", "not-an-email"),
                                                  ("paper_bill", "no"), ("accounts", "A-1")])
    def test_a_claim_of_the_wrong_type_is_refused(self, shop: Shop, claim: str,
                                                  value: Any) -> None:
        assert shop.refused(shop.token(**{claim: value}))

    def test_an_unknown_client_guid_is_refused(self, shop: Shop) -> None:
        assert "unknown client GUID" in shop.refused(shop.token(), guid=str(uuid.uuid4()))


# -- accepted tokens -----------------------------------------------------------------------


class TestProvisioning:
    def test_provisions_a_verified_user_with_payer_grants_on_exactly_the_listed_accounts(
            self, shop: Shop) -> None:
        user, cookie = shop.enter(shop.token(accounts=[shop.paper.number, shop.email.number,
                                                       "NO-SUCH-ACCOUNT"]))
        assert user.email == "ada@customer.example"
        assert user.sso_subject == "shop-user-17"
        assert user.email_verified_at is not None
        assert shop.grants(user) == {shop.paper.number: ("payer", "sso"),
                                     shop.email.number: ("payer", "sso")}
        with shop.sessions() as s:
            found = payers.session_of(s, cookie)
            assert found is not None
            row, who = found
            assert (who.id, row.method) == (user.id, "sso")
        assert shop.count(PayerUser) == 1

    def test_a_second_sso_as_the_same_subject_updates_the_same_user(self, shop: Shop) -> None:
        first, _ = shop.enter(shop.token())
        second, _ = shop.enter(shop.token(email="ada.new@customer.example", name="Ada King"))
        assert second.id == first.id
        assert (second.email, second.name) == ("ada.new@customer.example", "Ada King")
        assert shop.count(PayerUser) == 1
        assert shop.count(PayerSession) == 2

    def test_a_verified_login_with_the_same_email_is_linked_and_keeps_its_password(
            self, shop: Shop) -> None:
        with shop.sessions() as s, transaction(s):
            own = payers.new_user(s, shop.scope, email="ada@customer.example", name="Ada",
                                  password="her own password", verified=True)
        user, _ = shop.enter(shop.token())
        assert user.id == own.id
        assert user.sso_subject == "shop-user-17"
        with shop.sessions() as s:
            assert payers.sign_in(s, shop.scope, email="ada@customer.example",
                                  password="her own password") is not None

    def test_an_unverified_registration_of_the_address_gains_nothing_from_sso(
            self, shop: Shop) -> None:
        """Someone registered the payer's address with a password of their own and never
        verified it. The biller vouching for the address must not make that password
        sign in to the payer's accounts."""
        with shop.sessions() as s, transaction(s):
            payers.new_user(s, shop.scope, email="ada@customer.example", name="Mallory",
                            password="mallory's password")
        user, _ = shop.enter(shop.token())
        assert user.email_verified_at is not None
        assert shop.grants(user)
        with shop.sessions() as s:
            assert payers.sign_in(s, shop.scope, email="ada@customer.example",
                                  password="mallory's password") is None

    def test_a_shorter_list_removes_sso_grants_but_keeps_a_registration_grant(
            self, shop: Shop) -> None:
        user, _ = shop.enter(shop.token(accounts=[shop.paper.number, shop.email.number]))
        with shop.sessions() as s, transaction(s):
            fresh = s.get(PayerUser, user.id)
            third = s.get(BillingAccount, shop.third.id)
            assert fresh is not None
            assert third is not None
            payers.grant(s, fresh, third, role="owner", source="registration")
        shop.enter(shop.token(accounts=[shop.email.number]))
        assert shop.grants(user) == {shop.email.number: ("payer", "sso"),
                                     shop.third.number: ("owner", "registration")}

    def test_listing_an_account_the_user_owns_keeps_the_owner_grant(self, shop: Shop) -> None:
        user, _ = shop.enter(shop.token(accounts=[shop.email.number]))
        with shop.sessions() as s, transaction(s):
            fresh, paper = s.get(PayerUser, user.id), s.get(BillingAccount, shop.paper.id)
            assert fresh is not None
            assert paper is not None
            payers.grant(s, fresh, paper, role="owner", source="registration")
        shop.enter(shop.token(accounts=[shop.paper.number]))
        shop.enter(shop.token(accounts=[shop.email.number]))
        assert shop.grants(user) == {shop.email.number: ("payer", "sso"),
                                     shop.paper.number: ("owner", "registration")}


    def test_a_grant_sso_raised_stays_when_a_later_sso_leaves_its_account_out(
            self, shop: Shop) -> None:
        user, _ = shop.enter(shop.token(accounts=[shop.email.number]))
        with shop.sessions() as s, transaction(s):
            fresh, third = s.get(PayerUser, user.id), s.get(BillingAccount, shop.third.id)
            assert fresh is not None
            assert third is not None
            payers.grant(s, fresh, third, role="viewer", source="invitation")
        shop.enter(shop.token(accounts=[shop.email.number, shop.third.number]))
        assert shop.grants(user)[shop.third.number] == ("payer", "invitation")
        shop.enter(shop.token(accounts=[shop.email.number]))
        assert shop.grants(user) == {shop.email.number: ("payer", "sso"),
                                     shop.third.number: ("payer", "invitation")}


class TestPreferences:
    def test_the_tenants_settings_apply_when_the_token_says_nothing(self, shop: Shop) -> None:
        shop.desk.configure(paper_bill=False, email_notify=True, email_confirmations=False)
        shop.enter(shop.token(accounts=[shop.paper.number]))
        paper = shop.account(shop.paper)
        assert (paper.invoice_type, paper.email_notify, paper.email_confirmations) == (
            "email", True, False)

    def test_the_tokens_claims_win_over_the_tenants_settings(self, shop: Shop) -> None:
        shop.desk.configure(paper_bill=True, email_notify=True, email_confirmations=True)
        shop.enter(shop.token(accounts=[shop.paper.number], paper_bill=False,
                              email_notify=False, email_confirmations=False))
        paper = shop.account(shop.paper)
        assert (paper.invoice_type, paper.email_notify, paper.email_confirmations) == (
            "email", False, False)

    def test_paper_bill_true_keeps_a_paper_account_on_paper(self, shop: Shop) -> None:
        shop.enter(shop.token(accounts=[shop.paper.number], paper_bill=True))
        assert shop.account(shop.paper).invoice_type == "paper"

    def test_paper_bill_true_does_not_put_a_paperless_account_back_on_paper(
            self, shop: Shop) -> None:
        shop.enter(shop.token(accounts=[shop.email.number], paper_bill=True))
        assert shop.account(shop.email).invoice_type == "email"

    def test_paper_stays_when_email_is_not_a_distribution_option(self, shop: Shop) -> None:
        with shop.sessions() as s, transaction(s):
            for other in (shop.email, shop.third):  # no account may keep "email"
                s.get(BillingAccount, other.id).invoice_type = "paper"  # type: ignore[union-attr]
        shop.desk.configure(invoice_distribution_options=["none", "paper", "paper_and_email"])
        shop.enter(shop.token(accounts=[shop.paper.number], paper_bill=False))
        assert shop.account(shop.paper).invoice_type == "paper"

    def test_nothing_is_applied_when_payers_control_their_preferences(self, shop: Shop) -> None:
        shop.desk.configure(payer_controlled_preferences=True, email_confirmations=False)
        before = shop.account(shop.paper)
        shop.enter(shop.token(accounts=[shop.paper.number], paper_bill=False,
                              email_notify=not before.email_notify))
        after = shop.account(shop.paper)
        assert (after.invoice_type, after.email_notify, after.email_confirmations) == (
            "paper", before.email_notify, before.email_confirmations)


class TestKeyRotation:
    def test_the_previous_key_works_during_the_overlap_and_not_after(
            self, shop: Shop, frozen: clock.FrozenClock) -> None:
        shop.desk.configure(sso_key_overlap_minutes=30)
        old = shop.creds
        with shop.sessions() as s, transaction(s):
            new = sso.rotate(s, shop.scope, base_url=BASE_URL)
        assert (new.client_guid, new.sso_url) == (old.client_guid, old.sso_url)
        assert new.encryption_key != old.encryption_key

        def token_under(creds: sso.Credentials) -> str:
            return encrypt(shop.claims(), raw_key(creds.encryption_key))

        frozen.advance(timedelta(minutes=29))
        shop.enter(token_under(old))
        shop.enter(token_under(new))
        frozen.advance(timedelta(minutes=2))
        assert "does not decrypt" in shop.refused(token_under(old))
        shop.enter(token_under(new))

    def test_rotating_twice_does_not_extend_the_first_keys_overlap(
            self, shop: Shop, frozen: clock.FrozenClock) -> None:
        shop.desk.configure(sso_key_overlap_minutes=30)
        first = shop.creds
        with shop.sessions() as s, transaction(s):
            sso.rotate(s, shop.scope, base_url=BASE_URL)
        frozen.advance(timedelta(minutes=20))
        with shop.sessions() as s, transaction(s):
            sso.rotate(s, shop.scope, base_url=BASE_URL)
        frozen.advance(timedelta(minutes=11))
        token = encrypt(shop.claims(), raw_key(first.encryption_key))
        assert "does not decrypt" in shop.refused(token)


class TestRacingSubmissions:
    def test_twenty_parallel_submissions_of_one_token_make_one_session(self, shop: Shop) -> None:
        token = shop.token()
        barrier = threading.Barrier(20)
        outcomes: list[str] = []
        lock = threading.Lock()

        def submit() -> None:
            barrier.wait()
            try:
                shop.enter(token)
                outcome = "signed in"
            except sso.Refused as refused:
                outcome = refused.reason
            except OperationalError:  # the route answers this with the refusal page
                outcome = "busy"
            with lock:
                outcomes.append(outcome)

        threads = [threading.Thread(target=submit) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(outcomes) == 20
        assert outcomes.count("signed in") == 1, outcomes
        assert set(outcomes) <= {"signed in", "the token's jti was used before", "busy"}
        assert shop.count(PayerSession) == 1
        assert shop.count(PayerUser) == 1
        assert shop.count(SsoTokenUse) == 1
