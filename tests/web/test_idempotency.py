"""Idempotency-Key through HTTP (DESIGN.md decision 7): a replay returns the stored status
and body marked Idempotent-Replayed; the same key with another request is a 422; a key
still in flight is a 409; keys belong to one tenant and mode."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import event

from billfold.access import api_keys
from billfold.access import idempotency as idem
from billfold.core import clock
from billfold.core.scope import Scope
from billfold.customers import service as customers_service
from tests.conftest import account_body, customer_body, seed_reference
from tests.web.helpers import assert_problem, list_ids

REPLAYED = "idempotent-replayed"


def send(client: Any, method: str, path: str, body: Any, key: str | None) -> Any:
    """Send ``body`` as exactly json.dumps(body), with the key when one is given."""
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.request(method, path, content=json.dumps(body).encode(), headers=headers)


@pytest.fixture
def ids(client: Any) -> dict[str, str]:
    return seed_reference(client)


class TestReplayingAPost:
    def test_a_replay_returns_the_stored_status_and_body_marked_replayed(self, client, ids):
        first = send(client, "POST", "/v1/customers", customer_body(ids), "create-acme")
        assert first.status_code == 201, first.text
        assert REPLAYED not in first.headers
        again = send(client, "POST", "/v1/customers", customer_body(ids), "create-acme")
        assert again.status_code == 201
        assert again.headers[REPLAYED] == "true"
        assert again.headers["content-type"] == first.headers["content-type"]
        assert again.content == first.content

    @pytest.mark.postgres_only
    def test_the_claim_and_its_completion_send_no_begin_or_commit(self, client, ids, engine):
        """The key's claim (with the key lookup) and its completion run in autocommit on
        PostgreSQL, each in one trip to a thread; the route between them in its own
        transaction. Seen as the driver's autocommit flag when the pool resets each
        connection, in the order they go back."""
        seen: list[bool] = []

        def before_the_pools_own(dbapi_connection: Any, *_: Any) -> None:
            seen.append(dbapi_connection.autocommit)

        event.listen(engine, "reset", before_the_pools_own, insert=True)
        try:
            response = send(client, "POST", "/v1/customers", customer_body(ids), "no-begin")
            assert response.status_code == 201, response.text
            assert seen == [True, False, True]  # the claim, the route, the completion
            seen.clear()
            again = send(client, "POST", "/v1/customers", customer_body(ids), "no-begin")
            assert again.headers[REPLAYED] == "true"
            assert seen == [True]  # the claim found the completed key: nothing else ran
        finally:
            event.remove(engine, "reset", before_the_pools_own)

    def test_the_key_is_looked_up_once(self, client, ids, engine, monkeypatch):
        """The claim looks the API key up (with its tenant's settings); the route adopts
        what it found rather than reading the key, or the settings, again."""
        lookups: list[str] = []
        statements: list[str] = []
        look_up = api_keys.look_up

        def counted(session: Any, secret: str) -> api_keys.Grant:
            lookups.append(secret)
            return look_up(session, secret)

        def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(" ".join(statement.split()).lower())

        monkeypatch.setattr(api_keys, "look_up", counted)
        event.listen(engine, "before_cursor_execute", record)
        try:
            response = send(client, "POST", "/v1/customers", customer_body(ids), "one-lookup")
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert response.status_code == 201, response.text
        assert len(lookups) == 1
        assert not [s for s in statements if "from tenant_settings" in s], statements
        created = response.json()["id"]
        assert client.get(f"/v1/customers/{created}").json()["mode"] == "test"

    def test_a_replay_creates_nothing_new(self, client, ids):
        for _ in range(3):
            send(client, "POST", "/v1/customers", customer_body(ids), "create-once")
        assert len(list_ids(client, "/v1/customers")) == 1
        assert len(list_ids(client, "/v1/billing_accounts")) == 1

    def test_a_replay_returns_the_stored_body_even_after_the_customer_changed(self, client, ids):
        first = send(client, "POST", "/v1/customers", customer_body(ids), "create-then-edit")
        customer_id = first.json()["id"]
        client.patch(f"/v1/customers/{customer_id}", json={"company_name": "Renamed Brick"})
        again = send(client, "POST", "/v1/customers", customer_body(ids), "create-then-edit")
        assert again.json()["company_name"] == "Acme Brick"
        assert client.get(f"/v1/customers/{customer_id}").json()["company_name"] == "Renamed Brick"

    def test_a_refused_request_is_replayed_as_refused(self, client, ids):
        body = customer_body(ids, billing_account=account_body(ids, currency="XXX"))
        first = send(client, "POST", "/v1/customers", body, "refused")
        assert_problem(first, 422, field="billing_account.currency")
        again = send(client, "POST", "/v1/customers", body, "refused")
        assert again.status_code == 422
        assert again.headers[REPLAYED] == "true"
        assert again.content == first.content
        assert list_ids(client, "/v1/customers") == []

    def test_requests_without_a_key_are_not_deduplicated(self, client, ids):
        for _ in range(2):
            assert send(client, "POST", "/v1/customers", customer_body(ids), None).status_code == 201
        assert len(list_ids(client, "/v1/customers")) == 2

    def test_a_request_that_failed_on_our_side_may_be_retried_with_its_key(
            self, client, ids, monkeypatch):
        def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("database fell over")

        with monkeypatch.context() as patched:
            patched.setattr(customers_service, "create_customer", broken)
            failed = send(client, "POST", "/v1/customers", customer_body(ids), "retry-me")
        assert_problem(failed, 500, "internal_error")
        retried = send(client, "POST", "/v1/customers", customer_body(ids), "retry-me")
        assert retried.status_code == 201, retried.text
        assert REPLAYED not in retried.headers
        assert len(list_ids(client, "/v1/customers")) == 1


class TestReusingAKeyForAnotherRequest:
    def test_the_same_key_with_another_body_is_a_422_and_writes_nothing(self, client, ids):
        assert send(client, "POST", "/v1/customers", customer_body(ids), "reused").status_code == 201
        response = send(client, "POST", "/v1/customers", customer_body(ids, name="Other Co"),
                        "reused")
        assert_problem(response, 422, "idempotency_key_reused")
        assert len(list_ids(client, "/v1/customers")) == 1

    def test_the_same_key_on_another_path_is_a_422(self, client, ids):
        assert send(client, "POST", "/v1/account_categories", {"name": "Gold"},
                    "path-bound").status_code == 201
        response = send(client, "POST", "/v1/payment_terms", {"name": "Gold"}, "path-bound")
        assert_problem(response, 422, "idempotency_key_reused")
        assert len(list_ids(client, "/v1/payment_terms")) == 1  # only seed_reference's

    def test_a_key_longer_than_255_characters_is_a_422(self, client, ids):
        response = send(client, "POST", "/v1/customers", customer_body(ids), "k" * 256)
        assert_problem(response, 422, "validation_failed")
        assert list_ids(client, "/v1/customers") == []


class TestKeysBelongToOneTenantAndMode:
    def test_another_tenant_may_use_the_same_key(self, client, make_client, ids):
        other = make_client()
        other_ids = seed_reference(other)
        mine = send(client, "POST", "/v1/customers", customer_body(ids), "shared-key")
        theirs = send(other, "POST", "/v1/customers", customer_body(other_ids), "shared-key")
        assert (mine.status_code, theirs.status_code) == (201, 201)
        assert REPLAYED not in theirs.headers
        assert mine.json()["id"] != theirs.json()["id"]
        assert list_ids(other, "/v1/customers") == [theirs.json()["id"]]

    def test_another_tenant_sending_the_very_same_bytes_gets_its_own_object(
            self, client, make_client):
        other = make_client()
        body = {"name": "Monthly", "frequency": "monthly", "bill_day": 1,
                "start_date": "2026-01-01"}
        mine = send(client, "POST", "/v1/bill_cycles", body, "same-bytes")
        theirs = send(other, "POST", "/v1/bill_cycles", body, "same-bytes")
        assert REPLAYED not in theirs.headers
        assert mine.json()["id"] != theirs.json()["id"]

    def test_the_live_mode_of_the_same_tenant_has_its_own_keys(self, client, make_client, ids):
        live = make_client(scope=Scope(client.scope.tenant_id, "live"))
        live_ids = seed_reference(live)
        send(client, "POST", "/v1/customers", customer_body(ids), "mode-key")
        response = send(live, "POST", "/v1/customers", customer_body(live_ids), "mode-key")
        assert response.status_code == 201, response.text
        assert REPLAYED not in response.headers
        assert response.json()["mode"] == "live"


class TestReplayingAPatch:
    @pytest.fixture
    def customer(self, client: Any, ids: dict[str, str]) -> dict[str, Any]:
        return dict(client.post("/v1/customers", json=customer_body(ids)).json())

    def test_a_replayed_patch_returns_the_stored_body_and_changes_nothing_more(
            self, client, customer):
        path = f"/v1/customers/{customer['id']}"
        first = send(client, "PATCH", path, {"external_number": "EXT-7"}, "patch-once")
        assert first.status_code == 200, first.text
        client.patch(path, json={"external_number": "EXT-8"})
        again = send(client, "PATCH", path, {"external_number": "EXT-7"}, "patch-once")
        assert again.status_code == 200
        assert again.headers[REPLAYED] == "true"
        assert again.content == first.content
        assert client.get(path).json()["external_number"] == "EXT-8"
        changes = [c["new_value"] for h in client.get(f"{path}/history").json()["data"]
                   for c in h["changes"] if c["field"] == "external_number"]
        assert changes == ["EXT-7", "EXT-8"]

    def test_the_same_key_with_another_patch_is_a_422(self, client, customer):
        account_path = f"/v1/billing_accounts/{customer['billing_account']['id']}"
        assert send(client, "PATCH", account_path, {"taxable": False}, "patch-key").status_code == 200
        response = send(client, "PATCH", account_path, {"taxable": True}, "patch-key")
        assert_problem(response, 422, "idempotency_key_reused")
        assert client.get(account_path).json()["taxable"] is False

    def test_patching_settings_is_replayed_too(self, client):
        first = send(client, "PATCH", "/v1/settings", {"time_zone": "Asia/Tokyo"}, "tz")
        client.patch("/v1/settings", json={"time_zone": "UTC"})
        again = send(client, "PATCH", "/v1/settings", {"time_zone": "Asia/Tokyo"}, "tz")
        assert again.headers[REPLAYED] == "true"
        assert again.content == first.content
        assert client.get("/v1/settings").json()["time_zone"] == "UTC"


class TestAKeyStillInFlight:
    """A key claimed by a request that has not finished yet, held here by claiming it
    directly, as the first of two concurrent requests would."""

    @staticmethod
    def _hold(sessions: Any, scope: Scope, key: str, body: Any) -> Any:
        fingerprint = idem.request_hash("POST", "/v1/customers", "", json.dumps(body).encode())
        with sessions() as s:
            return idem.claim(s, scope, key, fingerprint, lock_seconds=300, retention_hours=48)

    def test_a_request_whose_key_is_held_is_a_409_and_writes_nothing(self, client, ids,
                                                                      sessions):
        body = customer_body(ids)
        assert self._hold(sessions, client.scope, "held", body).outcome == "claimed"
        response = send(client, "POST", "/v1/customers", body, "held")
        assert_problem(response, 409, "idempotency_key_in_flight")
        assert list_ids(client, "/v1/customers") == []

    def test_once_the_holder_finishes_its_response_is_replayed(self, client, ids, sessions):
        body = customer_body(ids)
        self._hold(sessions, client.scope, "finished", body)
        stored = b'{"stored": true}'
        with sessions() as s:
            idem.complete(s, client.scope, "finished", status_code=201,
                          content_type="application/json", body=stored)
        response = send(client, "POST", "/v1/customers", body, "finished")
        assert (response.status_code, response.content) == (201, stored)
        assert response.headers[REPLAYED] == "true"

    def test_a_claim_abandoned_past_the_lock_time_is_taken_over(self, client, ids, sessions):
        body = customer_body(ids)
        real = clock.get_clock()
        clock.set_clock(clock.FrozenClock(real.now() - timedelta(hours=1)))
        try:
            self._hold(sessions, client.scope, "abandoned", body)
        finally:
            clock.set_clock(real)
        response = send(client, "POST", "/v1/customers", body, "abandoned")
        assert response.status_code == 201, response.text
        assert len(list_ids(client, "/v1/customers")) == 1


# -- real concurrency on PostgreSQL -----------------------------------------------------


@pytest.fixture(scope="module")
def server_url(app: Any) -> Iterator[str]:
    """The app served by a real uvicorn on a free port, in a background thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def fire_together(requests: list[tuple[str, str, Any, dict[str, str]]]) -> list[httpx.Response]:
    """Send every (method, url, json, headers) at the same moment from its own thread."""
    barrier = threading.Barrier(len(requests))

    def one(request: tuple[str, str, Any, dict[str, str]]) -> httpx.Response:
        method, url, body, headers = request
        with httpx.Client(timeout=30) as http:
            barrier.wait()
            return http.request(method, url, json=body, headers=headers)

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(one, requests))


@pytest.mark.postgres_only
class TestConcurrentRequestsWithOneKey:
    def test_exactly_one_creates_and_the_rest_are_in_flight_or_replays(self, client, ids,
                                                                       server_url):
        auth = {"Authorization": f"Bearer {client.secret}", "Idempotency-Key": "stampede"}
        body = customer_body(ids, name="Stampede Ltd")
        responses = fire_together([("POST", f"{server_url}/v1/customers", body, auth)] * 10)
        statuses = sorted(r.status_code for r in responses)
        assert all(s in (201, 409) for s in statuses), [r.text for r in responses]
        created = [r for r in responses if r.status_code == 201 and REPLAYED not in r.headers]
        assert len(created) == 1, statuses
        for response in responses:
            if response.status_code == 409:
                assert response.json()["code"] == "idempotency_key_in_flight"
            elif response is not created[0]:
                assert response.headers[REPLAYED] == "true"
                assert response.content == created[0].content
        assert list_ids(client, "/v1/customers") == [created[0].json()["id"]]


@pytest.mark.postgres_only
class TestConcurrentDefaultAccountChanges:
    def test_exactly_one_default_billing_account_exists_afterwards(self, make_client,
                                                                   server_url):
        client = make_client(allow_multi_customer_accounts=True)
        ids = seed_reference(client)
        customer = client.post("/v1/customers", json=customer_body(ids)).json()
        account_ids = [customer["billing_account"]["id"]] + [
            client.post(f"/v1/customers/{customer['id']}/billing_accounts",
                        json=account_body(ids)).json()["id"] for _ in range(3)]
        auth = {"Authorization": f"Bearer {client.secret}"}
        requests: list[tuple[str, str, Any, dict[str, str]]] = []
        for round_ in range(4):
            for i, account_id in enumerate(account_ids):
                if (round_ + i) % 2:
                    requests.append(("PATCH", f"{server_url}/v1/billing_accounts/{account_id}",
                                     {"is_default": True}, auth))
                else:
                    requests.append(("PATCH", f"{server_url}/v1/customers/{customer['id']}",
                                     {"default_billing_account_id": account_id}, auth))
        responses = fire_together(requests)
        assert [r.status_code for r in responses] == [200] * len(requests), \
            [r.text for r in responses if r.status_code != 200]
        listed = client.get("/v1/billing_accounts", params={"customer_id": customer["id"]})
        defaults = [a["id"] for a in listed.json()["data"] if a["is_default"]]
        assert len(defaults) == 1
        assert client.get(f"/v1/customers/{customer['id']}").json()[
            "default_billing_account_id"] == defaults[0]
