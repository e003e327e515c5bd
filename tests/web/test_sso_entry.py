"""The SSO entry over HTTP: credentials from ``/v1/sso/credentials``, a token built with
joserfc from what that answered, sent to the ``sso_url`` by GET and by POST as a biller's
site sends it; the session cookie's flags; and one page for every refusal, its reason
only in the log."""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from joserfc import jwe, jws
from joserfc.jwk import OctKey
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from billfold.access import payers
from billfold.access.models import PayerSession, PayerUser
from billfold.core.config import Settings
from billfold.web.pages import limits
from tests.conftest import customer_body, seed_reference
from tests.web.helpers import assert_problem

CSRF_VALUE = re.compile(r'value="[A-Za-z0-9_-]{43}"')
SSO_LOGGER = "billfold.web.pages.sso"


def raw_key(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class BillerSite:
    """A biller with SSO on, two billing accounts and credentials from the API; builds
    tokens the way its web shop would."""

    def __init__(self, client: TestClient, sessions: sessionmaker[Session]) -> None:
        self.client, self.sessions = client, sessions
        self.scope = client.scope  # type: ignore[attr-defined]
        assert client.patch("/v1/settings", json={"sso_enabled": True}).status_code == 200
        ids = seed_reference(client)
        self.numbers = []
        for i, name in enumerate(("Acme Brick", "Acme Tile"), start=1):
            number = f"SHOP-{i}"
            made = client.post("/v1/customers", json=customer_body(
                ids, name, billing_account={**_account(ids), "number": number}))
            assert made.status_code == 201, made.text
            self.numbers.append(number)
        response = client.post("/v1/sso/credentials")
        assert response.status_code in (200, 201), response.text
        self.creds: dict[str, Any] = response.json()
        # The payer's browser: no API key, its own cookies.
        self.browser = TestClient(client.app, raise_server_exceptions=False)

    @property
    def path(self) -> str:
        return urlsplit(self.creds["sso_url"]).path

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.creds["client_guid"], "aud": self.creds["sso_url"],
                  "sub": "web-user-1", "email": "payer@customer.example", "name": "Pat Payer",
                  "accounts": self.numbers, "iat": now, "exp": now + 120,
                  "jti": secrets.token_urlsafe(16), **changes}
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, key: str | None = None, **changes: Any) -> str:
        return jwe.encrypt_compact({"alg": "dir", "enc": "A256GCM"},
                                   json.dumps(self.claims(**changes)).encode(),
                                   OctKey.import_key(raw_key(key or self.creds["encryption_key"])))

    def get(self, token: str, path: str | None = None) -> Any:
        return self.browser.get(path or self.path, params={"token": token},
                                follow_redirects=False)

    def post(self, token: str, path: str | None = None) -> Any:
        return self.browser.post(path or self.path, data={"token": token},
                                 follow_redirects=False)

    def sessions_count(self) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(PayerSession).where(
                PayerSession.tenant_id == self.scope.tenant_id)) or 0


def _account(ids: dict[str, str]) -> dict[str, Any]:
    return {"currency": "USD", "bill_cycle_id": ids["bill_cycle_id"], "start_date": "2026-02-01",
            "account_category_id": ids["account_category_id"], "invoice_type": "email"}


@pytest.fixture
def site(make_client: Any, sessions: sessionmaker[Session]) -> Iterator[BillerSite]:
    biller = BillerSite(make_client(), sessions)
    yield biller
    biller.browser.close()


def session_cookie(response: Any) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith("bf_portal=")]
    assert len(headers) == 1, response.headers
    return headers[0]


def user_of(sessions: sessionmaker[Session], cookie_header: str) -> Any:
    value = cookie_header.split(";", 1)[0].split("=", 1)[1]
    with sessions() as s:
        found = payers.session_of(s, value)
        assert found is not None
        return found[1], [g.account.number for g in payers.grants_of(s, found[1])]


class TestEntry:
    @pytest.mark.parametrize("method", ["get", "post"])
    def test_a_good_token_signs_in_and_redirects_to_invoice_history(
            self, site: BillerSite, method: str) -> None:
        response = getattr(site, method)(site.token())
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/portal/invoices"
        assert response.headers["referrer-policy"] == "no-referrer"
        cookie = session_cookie(response)
        flags = [part.strip().lower() for part in cookie.split(";")]
        assert "httponly" in flags
        assert "samesite=lax" in flags
        assert "secure" not in flags  # served over http here
        assert "path=/" in flags
        user, numbers = user_of(site.sessions, cookie)
        assert user.email == "payer@customer.example"
        assert numbers == ["SHOP-1", "SHOP-2"]

    def test_the_same_token_a_second_time_is_refused(self, site: BillerSite) -> None:
        token = site.token()
        assert site.get(token).status_code == 303
        second = site.post(token)
        assert second.status_code == 403
        assert "bf_portal=" not in second.headers.get("set-cookie", "")
        assert site.sessions_count() == 1

    def test_the_cookie_is_secure_when_billfold_is_served_over_https(
            self, engine: Engine, sessions: sessionmaker[Session], make_client: Any,
            tmp_path: Path) -> None:
        from billfold.web.app import create_app

        secure_app = create_app(Settings(database_url=str(engine.url), data_dir=tmp_path,
                                         base_url="https://billing.example.com"), engine)
        with TestClient(secure_app, base_url="https://testserver") as api:
            biller = BillerSite(_api_client(api, make_client), sessions)
            assert biller.creds["sso_url"].startswith("https://billing.example.com/sso/test/")
            response = biller.get(biller.token())
            biller.browser.close()
        assert response.status_code == 303, response.text
        flags = [p.strip().lower() for p in session_cookie(response).split(";")]
        assert {"secure", "httponly", "samesite=lax"} <= set(flags)


def _api_client(api: TestClient, make_client: Any) -> TestClient:
    """``api`` authenticated as a fresh tenant (the key comes from ``make_client``)."""
    other = make_client()
    api.headers["Authorization"] = other.headers["Authorization"]
    api.scope = other.scope  # type: ignore[attr-defined]
    return api


class TestRacesAndLimits:
    def test_twenty_parallel_submissions_of_one_token_make_one_session(
            self, site: BillerSite) -> None:
        token = site.token()
        barrier = threading.Barrier(20)
        statuses: list[int] = []

        def submit(i: int) -> None:
            with TestClient(site.client.app, raise_server_exceptions=False) as browser:
                barrier.wait()
                send = browser.get if i % 2 else browser.post
                kwargs = {"params": {"token": token}} if i % 2 else {"data": {"token": token}}
                statuses.append(send(site.path, follow_redirects=False, **kwargs).status_code)

        threads = [threading.Thread(target=submit, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert sorted(statuses) == [303] + [403] * 19
        assert site.sessions_count() == 1

    def test_parallel_first_sign_ins_of_one_payer_with_different_tokens_all_succeed(
            self, site: BillerSite) -> None:
        """Two tabs opened from the biller's site at once: each has its own token, and
        both race to provision the same new payer user and grants."""
        tokens = [site.token(sub="two-tabs") for _ in range(8)]
        barrier = threading.Barrier(len(tokens))
        statuses: list[int] = []

        def submit(token: str) -> None:
            with TestClient(site.client.app, raise_server_exceptions=False) as browser:
                barrier.wait()
                statuses.append(browser.get(site.path, params={"token": token},
                                            follow_redirects=False).status_code)

        threads = [threading.Thread(target=submit, args=(t,)) for t in tokens]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert statuses == [303] * len(tokens)
        assert site.sessions_count() == len(tokens)
        with site.sessions() as s:
            users = s.scalars(select(PayerUser).where(
                PayerUser.tenant_id == site.scope.tenant_id)).all()
            assert [u.sso_subject for u in users] == ["two-tabs"]
            assert [g.account.number for g in payers.grants_of(s, users[0])] == site.numbers

    def test_the_sso_entry_is_rate_limited_per_client(self, site: BillerSite) -> None:
        for _ in range(limits.SSO.count):
            assert site.get("").status_code == 403
        answer = site.get(site.token())
        assert answer.status_code == 429
        assert answer.headers["retry-after"]
        assert site.sessions_count() == 0


class TestRefusals:
    def refusal_kinds(self, site: BillerSite) -> dict[str, tuple[str, str]]:
        """Refused (method, token, path) by kind; each kind's token is fresh."""
        now = int(time.time())
        good = site.token()
        parts = good.split(".")
        tag = bytearray(raw_key(parts[4]))
        tag[0] ^= 1
        altered = ".".join([*parts[:4], b64(bytes(tag))])
        unsigned = (b64(b'{"alg":"none"}') + "." + b64(json.dumps(site.claims()).encode()) + ".")
        signed = jws.serialize_compact({"alg": "HS256"}, json.dumps(site.claims()).encode(),
                                       OctKey.import_key(raw_key(site.creds["encryption_key"])))
        live_path = site.path.replace("/sso/test/", "/sso/live/")
        return {
            "expired": (site.token(iat=now - 300, exp=now - 120), site.path),
            "future": (site.token(iat=now + 120, exp=now + 240), site.path),
            "too long-lived": (site.token(iat=now, exp=now + 600), site.path),
            "wrong key": (site.token(key=b64(secrets.token_bytes(32))), site.path),
            "altered byte": (altered, site.path),
            "unencrypted": (unsigned, site.path),
            "signed only": (signed, site.path),
            "wrong aud": (site.token(aud="https://elsewhere.example/"), site.path),
            "unknown accounts": (site.token(accounts=["NOPE"]), site.path),
            "missing sub": (site.token(sub=None), site.path),
            "test token at live url": (site.token(), live_path),
            "unknown guid": (site.token(), "/sso/test/00000000-0000-0000-0000-000000000000"),
            "unknown mode": (site.token(), site.path.replace("/sso/test/", "/sso/prod/")),
            "no token": ("", site.path),
        }

    def test_every_refusal_is_the_same_page_and_logs_its_reason(
            self, site: BillerSite, caplog: pytest.LogCaptureFixture) -> None:
        bodies: dict[str, str] = {}
        for kind, (token, path) in self.refusal_kinds(site).items():
            for method in ("get", "post"):
                caplog.clear()
                with caplog.at_level(logging.WARNING, logger=SSO_LOGGER):
                    response = getattr(site, method)(token, path)
                assert response.status_code == 403, (kind, method, response.text)
                assert "bf_portal=" not in response.headers.get("set-cookie", ""), kind
                assert "We could not sign you in" in response.text
                reasons = [r.getMessage() for r in caplog.records if r.name == SSO_LOGGER]
                assert [r[:12] for r in reasons] == ["SSO refused "], (kind, reasons)
                bodies[f"{kind} ({method})"] = CSRF_VALUE.sub('value=""', response.text)
        assert len(set(bodies.values())) == 1, sorted(bodies)
        assert site.sessions_count() == 0

    def test_the_logged_reasons_say_which_check_failed(
            self, site: BillerSite, caplog: pytest.LogCaptureFixture) -> None:
        kinds = self.refusal_kinds(site)
        expected = {"expired": "expired", "future": "future", "wrong key": "does not decrypt",
                    "altered byte": "does not decrypt", "unencrypted": "unencrypted",
                    "unknown accounts": "none of the listed accounts",
                    "test token at live url": "belongs to test mode"}
        for kind, words in expected.items():
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger=SSO_LOGGER):
                site.get(*kinds[kind])
            assert any(words in r.getMessage() for r in caplog.records), (kind, caplog.text)

    def test_sso_disabled_answers_the_same_page(self, site: BillerSite) -> None:
        token = site.token()
        reference = site.get(site.token(sub=None))
        assert site.client.patch("/v1/settings", json={"sso_enabled": False}).status_code == 200
        response = site.get(token)
        assert response.status_code == 403
        assert CSRF_VALUE.sub("", response.text) == CSRF_VALUE.sub("", reference.text)

    def test_the_token_never_appears_in_the_refusal_page(self, site: BillerSite) -> None:
        token = site.token(accounts=["NOPE"])
        assert token not in site.get(token).text


class TestCredentialsApi:
    def test_creating_returns_a_guid_a_256_bit_key_and_the_test_url(self, client: Any) -> None:
        response = client.post("/v1/sso/credentials")
        assert response.status_code in (200, 201), response.text
        body = response.json()
        assert re.fullmatch(r"[0-9a-f-]{36}", body["client_guid"])
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", body["encryption_key"])
        assert len(raw_key(body["encryption_key"])) == 32
        assert body["sso_url"].endswith(f"/sso/test/{body['client_guid']}")

    def test_rotation_keeps_the_guid_and_url_and_changes_the_key(self, client: Any) -> None:
        first = client.post("/v1/sso/credentials").json()
        second = client.post("/v1/sso/credentials").json()
        assert (second["client_guid"], second["sso_url"]) == (first["client_guid"],
                                                              first["sso_url"])
        assert second["encryption_key"] != first["encryption_key"]
        assert second["previous_key_retires_at"] is not None

    def test_get_shows_what_is_configured_but_never_the_key(self, client: Any) -> None:
        assert client.get("/v1/sso/credentials").json()["configured"] is False
        made = client.post("/v1/sso/credentials").json()
        shown = client.get("/v1/sso/credentials")
        assert shown.status_code == 200
        body = shown.json()
        assert body["configured"] is True
        assert (body["client_guid"], body["sso_url"]) == (made["client_guid"], made["sso_url"])
        assert "encryption_key" not in body
        assert made["encryption_key"] not in shown.text

    def test_a_live_key_gets_the_live_url(self, make_client: Any) -> None:
        live = make_client(mode="live")
        body = live.post("/v1/sso/credentials").json()
        assert body["sso_url"].endswith(f"/sso/live/{body['client_guid']}")

    def test_the_modes_have_different_guids_and_keys(self, make_client: Any) -> None:
        test = make_client()
        live = make_client(scope=type(test.scope)(test.scope.tenant_id, "live"))
        a, b = test.post("/v1/sso/credentials").json(), live.post("/v1/sso/credentials").json()
        assert a["client_guid"] != b["client_guid"]
        assert a["encryption_key"] != b["encryption_key"]

    def test_needs_an_api_key(self, app: Any) -> None:
        with TestClient(app, raise_server_exceptions=False) as anonymous:
            assert_problem(anonymous.post("/v1/sso/credentials"), 401)
