"""``billfold sso-link``, run as a real process: the link it prints signs a payer in through
the app on the same database, with grants on every account given; it refuses clearly what
would print a link that does not work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from billfold.access import payers
from billfold.core.config import Settings
from billfold.core.db import make_engine, make_sessionmaker

BILLFOLD = str(Path(sys.executable).with_name("billfold"))
BASE_URL = "http://billfold.example.test:8000"


class Operator:
    """The billfold command and the app, on one database of the test's own."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.env = {**os.environ, "BILLFOLD_DATABASE_URL": url,
                    "BILLFOLD_DATA_DIR": str(tmp_path / "var"), "BILLFOLD_BASE_URL": BASE_URL}
        self.engine = make_engine(url)
        self.sessions = make_sessionmaker(self.engine)
        from billfold.web.app import create_app

        self.app = create_app(Settings(database_url=url, data_dir=tmp_path / "var",
                                       base_url=BASE_URL), self.engine)
        created = json.loads(self.run("tenant", "create", "Acme Utilities", "--json").stdout)
        self.tenant = created["tenant_id"]
        self.api = TestClient(self.app, raise_server_exceptions=False)
        self.api.headers["Authorization"] = f"Bearer {created['api_key']}"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([BILLFOLD, *args], env=self.env, capture_output=True, text=True,
                                timeout=120)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def customer(self, name: str, number: str, **extra: Any) -> None:
        if not hasattr(self, "ids"):
            cycle = self.api.post("/v1/bill_cycles", json={
                "name": "Monthly", "currency": None, "frequency": "monthly", "bill_day": 1,
                "start_date": "2026-01-01"}).json()
            category = self.api.post("/v1/account_categories", json={"name": "Standard"}).json()
            self.ids = {"bill_cycle_id": cycle["id"], "account_category_id": category["id"]}
        made = self.api.post("/v1/customers", json={
            "company_name": name, "primary_email": "billing@acme.example", **extra,
            "billing_account": {
                "number": number, "currency": "USD", "start_date": "2026-02-01",
                "invoice_type": "email", **self.ids}})
        assert made.status_code == 201, made.text

    def sso_link(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("sso-link", "--tenant", self.tenant, *args, check=check)

    def follow(self, link: str) -> Any:
        """Open the link in a fresh browser; returns the response and the browser."""
        parts = urlsplit(link)
        assert f"{parts.scheme}://{parts.netloc}" == BASE_URL
        browser = TestClient(self.app, raise_server_exceptions=False)
        return browser.get(f"{parts.path}?{parts.query}", follow_redirects=False), browser

    def close(self) -> None:
        self.api.close()
        self.engine.dispose()


@pytest.fixture
def operator(fresh_database_url: str, tmp_path: Path) -> Iterator[Operator]:
    made = Operator(fresh_database_url, tmp_path)
    yield made
    made.close()


class TestSsoLink:
    def test_prints_a_link_that_signs_in_with_grants_on_every_account_given(
            self, operator: Operator) -> None:
        operator.customer("Acme Brick", "N1", primary_email="ap@acme.example")
        operator.customer("Acme Tile", "N2")
        operator.customer("Not Given", "N3")
        assert operator.api.patch("/v1/settings", json={"sso_enabled": True}).status_code == 200
        result = operator.sso_link("--user", "shop-user-9", "--account", "N1", "--account", "N2")
        link = result.stdout.strip()
        assert link.startswith(f"{BASE_URL}/sso/test/")
        assert "?token=" in link
        assert link.split("?token=")[1].count(".") == 4  # a compact JWE

        response, browser = operator.follow(link)
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/portal/invoices"
        with operator.sessions() as s:
            found = payers.session_of(s, browser.cookies.get("bf_portal"))
            assert found is not None
            _, user = found
            assert (user.email, user.sso_subject) == ("ap@acme.example", "shop-user-9")
            grants = {g.account.number: g.grant.role for g in payers.grants_of(s, user)}
        assert grants == {"N1": "payer", "N2": "payer"}
        # Once only.
        assert operator.follow(link)[0].status_code == 403
        browser.close()

    def test_uses_the_credentials_the_biller_already_has(self, operator: Operator) -> None:
        operator.customer("Acme Brick", "N1", primary_email="ap@acme.example")
        operator.api.patch("/v1/settings", json={"sso_enabled": True})
        made = operator.api.post("/v1/sso/credentials").json()
        link = operator.sso_link("--user", "u", "--account", "N1").stdout.strip()
        assert link.startswith(made["sso_url"] + "?token=")
        shown = operator.api.get("/v1/sso/credentials").json()
        assert shown["previous_key_retires_at"] is None  # no rotation happened
        assert operator.follow(link)[0].status_code == 303

    def test_an_explicit_email_and_name_are_used(self, operator: Operator) -> None:
        operator.customer("Acme Brick", "N1")
        operator.api.patch("/v1/settings", json={"sso_enabled": True})
        link = operator.sso_link("--user", "u", "--account", "N1", "--email",
                                 "Pat@Shop.Example", "--name", "Pat Shopper").stdout.strip()
        _, browser = operator.follow(link)
        with operator.sessions() as s:
            found = payers.session_of(s, browser.cookies.get("bf_portal"))
            assert found is not None
            assert (found[1].email, found[1].name) == ("pat@shop.example", "Pat Shopper")
        browser.close()

    def test_refuses_clearly_when_sso_is_off(self, operator: Operator) -> None:
        operator.customer("Acme Brick", "N1", primary_email="ap@acme.example")
        result = operator.sso_link("--user", "u", "--account", "N1", check=False)
        assert result.returncode == 1
        assert result.stdout == ""
        assert "SSO is off" in result.stderr
        assert "sso_enabled" in result.stderr
        # and made no credentials on the way
        assert operator.api.get("/v1/sso/credentials").json()["configured"] is False

    def test_refuses_when_no_account_given_exists(self, operator: Operator) -> None:
        operator.api.patch("/v1/settings", json={"sso_enabled": True})
        result = operator.sso_link("--user", "u", "--account", "NOPE", check=False)
        assert result.returncode == 1
        assert "none of the accounts" in result.stderr

    def test_refuses_an_unknown_tenant_and_mode(self, operator: Operator) -> None:
        result = operator.run("sso-link", "--tenant", "ten_nope", "--user", "u", "--account",
                              "N1", check=False)
        assert result.returncode == 1
        assert "ten_nope" in result.stderr
        result = operator.sso_link("--user", "u", "--account", "N1", "--mode", "prod",
                                   check=False)
        assert result.returncode == 1
        assert "--mode" in result.stderr

    def test_refuses_an_email_that_is_no_address(self, operator: Operator) -> None:
        operator.customer("Acme Brick", "N1", primary_email="ap@acme.example")
        operator.api.patch("/v1/settings", json={"sso_enabled": True})
        result = operator.sso_link("--user", "u", "--account", "N1", "--email", "nobody",
                                   check=False)
        assert result.returncode == 1, result.stdout
        assert "email" in result.stderr
