"""The billfold command, run as a real process against a database of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from billfold.core.db import make_engine, make_sessionmaker
from billfold.customers.models import BillingAccount, Customer
from billfold.invoicing.models import Invoice
from billfold.notifications.models import OutboxMessage

BILLFOLD = str(Path(sys.executable).with_name("billfold"))


@pytest.fixture
def run(fresh_database_url, tmp_path):
    env = {**os.environ, "BILLFOLD_DATABASE_URL": fresh_database_url,
           "BILLFOLD_DATA_DIR": str(tmp_path / "var")}

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([BILLFOLD, *args], env=env, capture_output=True, text=True,
                                timeout=120)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    run.url = fresh_database_url  # type: ignore[attr-defined]
    return run


class TestTenantAndKeys:
    def test_tenant_create_prints_an_id_and_a_working_test_key(self, run, app):
        created = json.loads(run("tenant", "create", "Acme Utilities", "--json").stdout)
        assert created["tenant_id"].startswith("ten_")
        assert created["api_key"].startswith("bf_test_")

    def test_api_key_create_issues_a_live_key(self, run):
        tenant = json.loads(run("tenant", "create", "Acme", "--json").stdout)["tenant_id"]
        key = json.loads(run("api-key", "create", "--tenant", tenant, "--mode", "live",
                             "--json").stdout)
        assert key["api_key"].startswith("bf_live_")

    def test_api_key_create_refuses_an_unknown_tenant(self, run):
        result = run("api-key", "create", "--tenant", "ten_nope", "--mode", "live", check=False)
        assert result.returncode == 1
        assert "ten_nope" in result.stderr

    def test_api_key_create_refuses_an_unknown_mode(self, run):
        tenant = json.loads(run("tenant", "create", "Acme", "--json").stdout)["tenant_id"]
        result = run("api-key", "create", "--tenant", tenant, "--mode", "prod", check=False)
        assert result.returncode == 1
        assert "mode" in result.stderr


class TestLedgerVerify:
    def test_passes_on_a_clean_ledger_and_names_a_broken_entry(self, run):
        run("demo")
        assert "every entry balances" in run("ledger", "verify").stdout
        engine = make_engine(run.url)
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO ledger_entry (id, tenant_id, mode, source_type, source_id, "
                "description, effective_date, posted_at) VALUES ('le_broken', 't', 'test', "
                "'manual', 'x', 'one-legged', '2026-01-01', '2026-01-01 00:00:00')"))
        engine.dispose()
        result = run("ledger", "verify", check=False)
        assert result.returncode == 1
        assert "le_broken" in result.stderr


class TestDemo:
    def test_running_the_demo_twice_duplicates_nothing(self, run):
        first = run("demo").stdout
        engine = make_engine(run.url)
        sessions = make_sessionmaker(engine)

        def counts() -> tuple[int, ...]:
            with sessions() as s:
                return tuple(s.scalar(select(func.count()).select_from(model)) or 0
                             for model in (Customer, BillingAccount, Invoice, OutboxMessage))

        before = counts()
        second = run("demo").stdout
        assert counts() == before
        # Acme, Widgets (5 accounts), Nordvik (head office and depot), Northwind head office
        # and branch; the bill run's invoices and their emails.
        assert before[:2] == (5, 10)
        assert before[2] > before[3] > 0
        key = [line.split(": ", 1)[1] for line in first.splitlines() if "demo API key" in line]
        assert key
        assert key[0] in second  # the same key is printed again
        engine.dispose()

    def test_the_demo_holds_the_seeds_examples(self, run, tmp_path):
        from fastapi.testclient import TestClient

        from billfold.core.config import Settings
        from billfold.web.app import create_app

        out = run("demo").stdout
        key = next(line.split(": ", 1)[1] for line in out.splitlines() if "demo API key" in line)
        engine = make_engine(run.url)
        app = create_app(Settings(database_url=run.url, data_dir=tmp_path), engine)
        with TestClient(app) as client:
            client.headers["Authorization"] = f"Bearer {key}"
            widgets = client.get("/v1/customers", params={"query": "widgets"}).json()["data"]
            assert len(widgets) == 1
            accounts = client.get("/v1/billing_accounts",
                                  params={"customer_id": widgets[0]["id"], "limit": 10}).json()
            by_location = {a["custom_fields"]["location"]: a for a in accounts["data"]}
            assert {k: v["currency"] for k, v in by_location.items()} == {
                "United States": "USD", "Zimbabwe": "USD", "Mexico": "MXN", "Russia": "RUB",
                "Sweden": "SEK"}
            assert by_location["United States"]["is_default"] is True
            assert by_location["Zimbabwe"]["responsible_account_id"] == \
                by_location["United States"]["id"]
            children = [a for a in client.get("/v1/billing_accounts",
                                              params={"limit": 100}).json()["data"]
                        if a["parent_account_id"]]
            assert len(children) == 1
        engine.dispose()


class TestServe:
    def test_serve_answers_health_and_docs(self, run, tmp_path, unused_port):
        env = {**os.environ, "BILLFOLD_DATABASE_URL": run.url,
               "BILLFOLD_DATA_DIR": str(tmp_path / "var")}
        server = subprocess.Popen([BILLFOLD, "serve", "--port", str(unused_port), "--no-worker"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            import time

            for _ in range(100):
                try:
                    health = httpx.get(f"http://127.0.0.1:{unused_port}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert health.json()["status"] == "ok"
            assert httpx.get(f"http://127.0.0.1:{unused_port}/openapi.json").status_code == 200
        finally:
            server.terminate()
            server.wait(timeout=10)


    @pytest.mark.parametrize("flags", [[], ["--access-log"], ["--processes", "2"],
                                       ["--processes", "2", "--access-log"]])
    def test_a_line_per_request_only_when_asked(self, run, tmp_path, unused_port, flags):
        env = {**os.environ, "BILLFOLD_DATABASE_URL": run.url,
               "BILLFOLD_DATA_DIR": str(tmp_path / "var")}
        env.pop("BILLFOLD_ACCESS_LOG", None)
        server = subprocess.Popen(
            [BILLFOLD, "serve", "--port", str(unused_port), "--no-worker", *flags],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            import time

            for _ in range(150):
                try:
                    if httpx.get(f"http://127.0.0.1:{unused_port}/healthz",
                                 timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert httpx.get(f"http://127.0.0.1:{unused_port}/openapi.json").status_code == 200
        finally:
            server.terminate()
            output = server.communicate(timeout=10)[0].decode()
        assert ('"GET /openapi.json HTTP/1.1" 200' in output) == ("--access-log" in flags), output


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
