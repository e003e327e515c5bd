"""The Cloud Payments V2 ``curl`` that ``billfold demo`` prints works against the demo:
its body and Authorization header, sent to /cloudpayments/v2 of Billfold on a database the
demo's own ``load`` set up, make a session whose CloudPaymentURL is a payment page for the
request's invoice; and the command itself, run by curl against Billfold served over HTTP,
does the same."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from billfold import demo
from billfold.core.config import Settings
from billfold.core.db import make_engine, make_sessionmaker
from billfold.web.app import create_app

BASE_URL = "http://127.0.0.1:8765"  # not the default, so the demo must follow it


@pytest.fixture
def engine(fresh_database_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


def parse_curl(command: str) -> tuple[str, str, dict[str, str], str]:
    """(method, URL, headers, body) of a ``curl -X … URL -H … -d …`` command, read the
    way a POSIX shell splits it."""
    words = shlex.split(command)
    assert words[0] == "curl"
    method, url, headers, body = "GET", "", {}, ""
    rest = iter(words[1:])
    for word in rest:
        if word == "-X":
            method = next(rest)
        elif word == "-H":
            name, _, value = next(rest).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            body = next(rest)
        elif not word.startswith("-"):
            url = word
    return method, url, headers, body


def load_demo(sessions: sessionmaker[Session], data_dir: Path, base_url: str) -> demo.DemoResult:
    with sessions() as session:
        return demo.load(session, data_dir, base_url)


class TestTheDemosCloudPaymentsCurl:
    def test_its_request_makes_a_payment_page_for_its_invoice(
            self, sessions: sessionmaker[Session], engine: Engine, tmp_path: Path) -> None:
        data_dir = tmp_path / "var"
        result = load_demo(sessions, data_dir, BASE_URL)
        method, url, headers, body = parse_curl(demo.cloud_payments_curl(result.api_key,
                                                                          BASE_URL))
        request = json.loads(body)
        [customer] = request["Customers"]
        [invoice] = customer["Invoices"]
        assert (method, url) == ("POST", f"{BASE_URL}/cloudpayments/v2")
        assert headers["Authorization"].startswith("Basic ")
        app = create_app(Settings(database_url=str(engine.url), data_dir=data_dir,
                                  base_url=BASE_URL), engine)

        with TestClient(app, base_url=BASE_URL) as client:
            created = client.post(urlsplit(url).path, content=body.encode(), headers=headers)
            assert created.status_code == 200, created.text
            data = created.json()["Data"]
            assert data["SessionId"].startswith("ps_")
            assert data["CloudPaymentURL"].startswith(f"{BASE_URL}/pay/")
            page = client.get(urlsplit(data["CloudPaymentURL"]).path)

        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert demo.DEMO_TENANT in page.text
        assert customer["AccountNumber"] in page.text
        assert invoice["InvoiceNumber"] in page.text
        assert "$10.00" in page.text

    @pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")
    def test_the_printed_command_run_by_curl_against_a_served_demo(
            self, fresh_database_url: str, engine: Engine, sessions: sessionmaker[Session],
            tmp_path: Path) -> None:
        from tests.web.browser import served

        data_dir = tmp_path / "var"
        with served(fresh_database_url, engine, data_dir) as server:
            result = load_demo(sessions, data_dir, server.origin)
            command = demo.cloud_payments_curl(result.api_key, server.origin)
            no_proxy = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
            ran = subprocess.run(shlex.split(command), capture_output=True, text=True,
                                 timeout=60, check=False, env=no_proxy)
            assert ran.returncode == 0, ran.stderr
            answer: dict[str, Any] = json.loads(ran.stdout)
            page = httpx.get(answer["Data"]["CloudPaymentURL"], timeout=30, trust_env=False)

        assert page.status_code == 200, page.text
        assert "CP-INV-001" in page.text
        assert "$10.00" in page.text
