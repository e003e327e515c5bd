"""``allow_private_postback_targets`` through HTTP: in test mode it lets webhooks and
postbacks reach this machine; in live mode it is ignored, so a webhook endpoint on
loopback is refused when registered and a postback to loopback never gets a connection;
and a cloud metadata address is refused in either mode.

The module has a database of its own (its worker claims every due delivery in the
database), and an app whose live mode pays through the test gateway, so a live-mode page
can be paid here."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import seed_reference
from tests.services.test_webhooks import Receiver
from tests.unit.test_targets import Listener
from tests.web.helpers import assert_problem, database_of_its_own
from tests.web.test_payments_api import open_invoice
from tests.web.test_postback_forms import VISA, deliver, pay_by_card

METADATA_URLS = ["http://169.254.169.254/latest/meta-data/",
                 "http://[::ffff:169.254.169.254]/latest/meta-data/"]
PUBLIC_URL = "https://8.8.8.8/hooks"  # a literal address: judged without DNS


engine, sessions, app = database_of_its_own(live_gateway="test")


@pytest.fixture
def listener() -> Iterator[Listener]:
    opened = Listener()
    yield opened
    opened.close()


def refused_on(response: Any, field: str) -> str:
    """The response is a 422 naming ``field`` as an unsafe target; its message."""
    body = assert_problem(response, 422, field=field)
    [error] = [e for e in body["errors"] if e["field"] == field]
    assert error["code"] == "unsafe_target", body
    return str(error["message"])


class TestWebhookEndpoints:
    def test_live_mode_refuses_loopback_though_the_setting_is_on(self, make_client: Any,
                                                                  listener: Listener) -> None:
        live = make_client(mode="live", allow_private_postback_targets=True)
        assert live.get("/v1/settings").json()["allow_private_postback_targets"] is True
        url = f"http://127.0.0.1:{listener.port}/hooks"

        message = refused_on(live.post("/v1/webhook_endpoints", json={"url": url}), "url")

        assert "loopback" in message
        endpoint = live.post("/v1/webhook_endpoints", json={"url": PUBLIC_URL})
        assert endpoint.status_code == 201, endpoint.text
        refused_on(live.patch(f"/v1/webhook_endpoints/{endpoint.json()['id']}",
                              json={"url": url}), "url")
        assert [e["url"] for e in live.get("/v1/webhook_endpoints").json()["data"]] == [
            PUBLIC_URL]
        assert listener.accepted() == 0

    def test_test_mode_with_the_setting_on_accepts_loopback(self, make_client: Any,
                                                            listener: Listener) -> None:
        client = make_client(allow_private_postback_targets=True)
        url = f"http://127.0.0.1:{listener.port}/hooks"

        created = client.post("/v1/webhook_endpoints", json={"url": url})

        assert created.status_code == 201, created.text
        assert created.json()["url"] == url

    def test_test_mode_with_the_setting_off_refuses_loopback(self, make_client: Any,
                                                             listener: Listener) -> None:
        client = make_client(allow_private_postback_targets=False)

        refused_on(client.post("/v1/webhook_endpoints", json={
            "url": f"http://127.0.0.1:{listener.port}/hooks"}), "url")

    @pytest.mark.parametrize("mode", ["test", "live"])
    @pytest.mark.parametrize("url", METADATA_URLS)
    def test_a_metadata_address_is_refused_in_either_mode(self, make_client: Any, mode: str,
                                                          url: str) -> None:
        client = make_client(mode=mode, allow_private_postback_targets=True)

        message = refused_on(client.post("/v1/webhook_endpoints", json={"url": url}), "url")

        assert "metadata" in message
        assert client.get("/v1/webhook_endpoints").json()["data"] == []


def paid_session(biller: Any, app: Any, postback_url: str) -> dict[str, Any]:
    """A pay session posting back to ``postback_url``, paid by card on its page."""
    invoice = open_invoice(biller, 1500)
    created = biller.post("/v1/pay_sessions", json={
        "invoices": [{"invoice_id": invoice["id"]}], "postback_url": postback_url})
    assert created.status_code == 201, created.text
    with TestClient(app) as payer:
        paid = pay_by_card(payer, urlsplit(created.json()["url"]).path, VISA)
    assert "RCT-" in paid.text, paid.text
    return dict(created.json())


def postback_log(biller: Any) -> list[dict[str, Any]]:
    return [d for d in biller.get("/v1/webhook_deliveries").json()["data"]
            if d["kind"] == "postback"]


class TestPostbacks:
    def test_live_mode_refuses_a_loopback_postback_url_though_the_setting_is_on(
            self, make_client: Any, listener: Listener) -> None:
        origin = f"http://127.0.0.1:{listener.port}"
        live = make_client(mode="live", allow_private_postback_targets=True,
                           allowed_origins=[origin])
        live.ids = seed_reference(live)
        invoice = open_invoice(live, 1500)
        for spelled in (origin, f"http://127.1:{listener.port}",
                        f"http://localhost:{listener.port}"):
            live.patch("/v1/settings", json={"allowed_origins": [spelled]})
            message = refused_on(live.post("/v1/pay_sessions", json={
                "invoices": [{"invoice_id": invoice["id"]}],
                "postback_url": f"{spelled}/postback"}), "postback_url")
            assert "loopback" in message
        assert live.get("/v1/pay_sessions").json()["data"] == []
        assert listener.accepted() == 0

    def test_live_mode_never_connects_to_a_name_resolving_to_loopback(
            self, make_client: Any, app: Any, sessions: sessionmaker[Session],
            listener: Listener, monkeypatch: pytest.MonkeyPatch) -> None:
        """A name is judged when the postback is sent, on the address it resolves to."""
        name = "postbacks.biller.example"
        real = socket.getaddrinfo

        def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
            return real("127.0.0.1" if host == name else host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)
        origin = f"http://{name}:{listener.port}"
        live = make_client(mode="live", allow_private_postback_targets=True,
                           allowed_origins=[origin])
        live.ids = seed_reference(live)
        paid_session(live, app, f"{origin}/postback")

        deliver(app, sessions)

        assert listener.accepted() == 0
        [delivery] = postback_log(live)
        assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == (
            "queued", 1, None)
        assert delivery["last_error"] == (f"unsafe target: {name} resolves to 127.0.0.1, "
                                          "a loopback address")

    def test_test_mode_with_the_setting_on_posts_back_to_loopback(
            self, make_client: Any, app: Any, sessions: sessionmaker[Session],
            receiver: Receiver) -> None:
        biller = make_client(allow_private_postback_targets=True,
                             allowed_origins=[receiver.url("")])
        biller.ids = seed_reference(biller)
        session = paid_session(biller, app, receiver.url("/postback"))

        deliver(app, sessions)

        [request] = receiver.requests
        assert request.path == "/postback"
        assert b'"type":"payment.succeeded"' in request.body
        assert session["id"].encode() in request.body
        [delivery] = postback_log(biller)
        assert delivery["status"] == "succeeded"

    @pytest.mark.parametrize("url", METADATA_URLS)
    def test_a_metadata_address_is_never_a_postback_url_even_with_the_setting_on(
            self, make_client: Any, url: str) -> None:
        parts = urlsplit(url)
        biller = make_client(allow_private_postback_targets=True,
                             allowed_origins=[f"{parts.scheme}://{parts.netloc}"])
        biller.ids = seed_reference(biller)
        invoice = open_invoice(biller, 1500)

        message = refused_on(biller.post("/v1/pay_sessions", json={
            "invoices": [{"invoice_id": invoice["id"]}], "postback_url": url}), "postback_url")

        assert "metadata" in message
        assert biller.get("/v1/pay_sessions").json()["data"] == []
