"""Webhooks and postbacks: endpoints, events and postbacks are written with the caller's
transaction, and the worker sends them to a real HTTP receiver on 127.0.0.1, signed so the
Standard Webhooks reference library accepts them, retrying on the documented schedule.

The clock stands at the real time (the reference library refuses signatures more than five
minutes off it) and moves only when a test moves it. Every test has a database of its own:
a worker claims every due delivery job, so one test's deliveries would reach another's
receiver."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from billfold.core import clock, jobs
from billfold.core.config import Settings
from billfold.core.db import transaction
from billfold.core.errors import Conflict, NotFound, ValidationFailed
from billfold.core.jobs import Job
from billfold.core.scope import Scope
from billfold.notifications import webhooks
from billfold.notifications.webhook_delivery import RETRY_DELAYS
from billfold.notifications.webhook_models import (
    Event,
    PostbackSecret,
    WebhookDelivery,
    WebhookEndpoint,
)
from tests.services.conftest import fields_of, frozen_at, sessions_on_a_fresh_database

PAYMENT = {"id": "pay_1", "amount_minor": 2500, "currency": "USD"}


sessions = sessions_on_a_fresh_database()


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    with frozen_at(datetime.now(UTC).replace(microsecond=0)) as frozen_clock:
        yield frozen_clock


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var")


# -- a receiver ------------------------------------------------------------------------


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def verified_by(self, secret: str) -> bool:
        """Whether the reference library accepts the request under ``secret``, now."""
        try:
            Webhook(secret).verify(self.body, self.headers, json_parse=False)
        except WebhookVerificationError:
            return False
        return True

    def signed_by(self, secret: str) -> bool:
        """Whether one of the signatures is the reference library's under ``secret``, at
        the request's own timestamp (for requests made at a moved clock)."""
        at = datetime.fromtimestamp(int(self.headers["webhook-timestamp"]), UTC)
        expected = Webhook(secret).sign(self.headers["webhook-id"], at, self.body.decode())
        return expected in self.headers["webhook-signature"].split(" ")


@dataclass
class Receiver:
    port: int
    statuses: list[int] = field(default_factory=list)  # answered in turn, then 200
    location: str = ""
    requests: list[Request] = field(default_factory=list)

    def url(self, path: str = "/hooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        receiver: Receiver = self.server.receiver  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        receiver.requests.append(Request(self.path, {k.lower(): v for k, v in
                                                     self.headers.items()}, body))
        self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
        if receiver.location:
            self.send_header("Location", receiver.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def receiving(*statuses: int) -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    receiver = Receiver(int(server.server_address[1]), list(statuses))
    server.receiver = receiver  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as started:
        yield started


# -- steps -----------------------------------------------------------------------------


def add_endpoint(sessions: sessionmaker[Session], scope: Scope, url: str,
                 events: tuple[str, ...] = ("*",), **extra: Any) -> tuple[WebhookEndpoint, str]:
    with sessions() as session, transaction(session):
        return webhooks.create_endpoint(session, scope, url=url, enabled_events=list(events),
                                        allow_private=extra.pop("allow_private", True), **extra)


def emit(sessions: sessionmaker[Session], scope: Scope, type: str = "payment.succeeded",
         data: dict[str, Any] | None = None, allow_private: bool = True) -> Event:
    with sessions() as session, transaction(session):
        return webhooks.emit(session, scope, type=type, data=data or PAYMENT,
                             about=("payment", "pay_1"), allow_private=allow_private)


def postback(sessions: sessionmaker[Session], scope: Scope, url: str, **body: Any
             ) -> WebhookDelivery:
    with sessions() as session, transaction(session):
        return webhooks.enqueue_postback(session, scope, url=url, about=("payment", "pay_1"),
                                         allow_private=body.pop("allow_private", True), **body)


def deliver(sessions: sessionmaker[Session], settings: Settings) -> int:
    return jobs.run_pending(sessions, webhooks.handlers(settings), worker_id="test-worker",
                            kinds=[webhooks.DELIVER_WEBHOOK])


def fetch(sessions: sessionmaker[Session], model: Any, object_id: str) -> Any:
    with sessions() as session:
        return session.get(model, object_id)


def deliveries(sessions: sessionmaker[Session], scope: Scope, **filters: Any
               ) -> list[WebhookDelivery]:
    with sessions() as session:
        return webhooks.list_deliveries(session, scope, limit=100, **filters)


def count(sessions: sessionmaker[Session], model: Any) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


# -- endpoints -------------------------------------------------------------------------


class TestCreateEndpoint:
    def test_returns_the_secret_to_show_once_and_stores_the_endpoint(self, sessions, scope):
        endpoint, secret = add_endpoint(sessions, scope, "https://hooks.example.com/billfold",
                                        ("payment.succeeded", "invoice.paid"),
                                        description="ERP")

        stored = fetch(sessions, WebhookEndpoint, endpoint.id)
        assert endpoint.id.startswith("whe_")
        assert secret.startswith("whsec_")
        assert (stored.url, stored.status, stored.description, stored.secret) == (
            "https://hooks.example.com/billfold", "enabled", "ERP", secret)
        assert stored.enabled_events == ["payment.succeeded", "invoice.paid"]

    def test_refuses_a_loopback_url_unless_private_targets_are_allowed(self, sessions, scope):
        with pytest.raises(ValidationFailed) as refused:
            add_endpoint(sessions, scope, "http://127.1:8080/hooks", allow_private=False)

        assert [(e.field, e.code) for e in refused.value.errors] == [("url", "unsafe_target")]
        assert add_endpoint(sessions, scope, "http://127.1:8080/hooks")[0].id

    def test_refuses_a_metadata_address_even_where_private_targets_are_allowed(
            self, sessions, scope):
        with pytest.raises(ValidationFailed) as refused:
            add_endpoint(sessions, scope, "http://169.254.169.254/latest/meta-data/")

        assert "metadata" in refused.value.errors[0].message

    def test_names_every_wrong_field(self, sessions, scope):
        with pytest.raises(ValidationFailed) as refused:
            add_endpoint(sessions, scope, "ftp://hooks.example.com/",
                         ("payment.succeeded", "payment.teleported"), description="x" * 501)

        assert fields_of(refused.value) == ["url", "enabled_events[1]", "description"]

    def test_needs_an_event_type(self, sessions, scope):
        with pytest.raises(ValidationFailed) as refused:
            add_endpoint(sessions, scope, "https://hooks.example.com/", ())

        assert fields_of(refused.value) == ["enabled_events"]

    def test_another_tenants_endpoint_is_not_found(self, sessions, make_scope):
        mine, other = make_scope(), make_scope()
        endpoint, _ = add_endpoint(sessions, mine, "https://hooks.example.com/")

        with sessions() as session, pytest.raises(NotFound):
            webhooks.get_endpoint(session, other, endpoint.id)


class TestUpdateEndpoint:
    def test_changes_url_events_and_description(self, sessions, scope):
        endpoint, _ = add_endpoint(sessions, scope, "https://hooks.example.com/", ("*",))

        with sessions() as session, transaction(session):
            webhooks.update_endpoint(session, scope, endpoint_id=endpoint.id, allow_private=True,
                                     changes={"url": "https://erp.example.com/in",
                                              "enabled_events": ["invoice.paid"],
                                              "description": "ERP"})

        stored = fetch(sessions, WebhookEndpoint, endpoint.id)
        assert (stored.url, stored.enabled_events, stored.description) == (
            "https://erp.example.com/in", ["invoice.paid"], "ERP")

    def test_enabling_again_clears_why_it_was_disabled(self, sessions, scope):
        endpoint, _ = add_endpoint(sessions, scope, "https://hooks.example.com/")

        for status in ("disabled", "enabled"):
            with sessions() as session, transaction(session):
                webhooks.update_endpoint(session, scope, endpoint_id=endpoint.id,
                                         changes={"status": status}, allow_private=False)
            stored = fetch(sessions, WebhookEndpoint, endpoint.id)
            assert (stored.status, stored.disabled_reason) == (
                status, "disabled by the biller" if status == "disabled" else None)

    def test_refuses_unknown_fields_statuses_and_unsafe_urls(self, sessions, scope):
        endpoint, _ = add_endpoint(sessions, scope, "https://hooks.example.com/")

        with sessions() as session, pytest.raises(ValidationFailed) as refused:
            webhooks.update_endpoint(session, scope, endpoint_id=endpoint.id,
                                     allow_private=False,
                                     changes={"secret": "x", "status": "paused",
                                              "url": "http://[::1]/"})

        assert fields_of(refused.value) == ["secret", "url", "status"]


class TestListEndpoints:
    def test_pages_through_the_tenants_endpoints_in_id_order(self, sessions, make_scope):
        scope, other = make_scope(), make_scope()
        made = [add_endpoint(sessions, scope, f"https://hooks.example.com/{n}")[0].id
                for n in range(3)]
        add_endpoint(sessions, other, "https://hooks.example.com/other")

        with sessions() as session:
            first = webhooks.list_endpoints(session, scope, limit=2)
            rest = webhooks.list_endpoints(session, scope, limit=2, starting_after=first[-1].id)

        assert [e.id for e in first + rest] == made


# -- events ----------------------------------------------------------------------------


class TestEmit:
    def test_queues_one_delivery_per_subscribed_enabled_endpoint(self, sessions, scope, frozen):
        everything, _ = add_endpoint(sessions, scope, "https://a.example.com/", ("*",))
        payments, _ = add_endpoint(sessions, scope, "https://b.example.com/",
                                   ("payment.succeeded",))
        add_endpoint(sessions, scope, "https://c.example.com/", ("invoice.paid",))
        disabled, _ = add_endpoint(sessions, scope, "https://d.example.com/", ("*",))
        with sessions() as session, transaction(session):
            webhooks.update_endpoint(session, scope, endpoint_id=disabled.id,
                                     changes={"status": "disabled"}, allow_private=True)

        event = emit(sessions, scope, data={"b": 1, "a": [1, "é"]})

        queued = deliveries(sessions, scope)
        assert event.id.startswith("evt_")
        assert [d.endpoint_id for d in queued] == [everything.id, payments.id]
        stamp = frozen.now().isoformat().replace("+00:00", "Z")
        assert {d.body for d in queued} == {
            f'{{"data":{{"a":[1,"\\u00e9"],"b":1}},"timestamp":"{stamp}",'
            '"type":"payment.succeeded"}'}
        assert {(d.kind, d.status, d.msg_id, d.event_id, d.event_type, d.attempts)
                for d in queued} == {("webhook", "queued", event.id, event.id,
                                      "payment.succeeded", 0)}
        with sessions() as session:
            keys = set(session.scalars(select(Job.key).where(
                Job.kind == webhooks.DELIVER_WEBHOOK)))
        assert keys == {d.id for d in queued}

    def test_a_rolled_back_transaction_takes_everything_with_it(self, sessions, scope):
        add_endpoint(sessions, scope, "https://a.example.com/")

        def pay(session: Session) -> None:
            with transaction(session):
                webhooks.emit(session, scope, type="invoice.paid", data={}, about=None,
                              allow_private=False)
                raise RuntimeError("the payment did not commit")

        with sessions() as session, pytest.raises(RuntimeError):
            pay(session)

        assert (count(sessions, Event), count(sessions, WebhookDelivery), count(sessions, Job)) \
            == (0, 0, 0)

    def test_refuses_a_bad_type_and_data_that_is_not_json(self, sessions, scope):
        with sessions() as session, pytest.raises(ValidationFailed) as refused:
            webhooks.emit(session, scope, type="Payment Succeeded",
                          data={"at": datetime.now(UTC)}, about=("payment", ""),
                          allow_private=False)

        assert fields_of(refused.value) == ["type", "about", "data"]

    def test_several_events_go_in_together_each_to_its_subscribers(self, sessions, scope):
        add_endpoint(sessions, scope, "https://a.example.com/", events=("invoice.paid",))
        inserts: list[str] = []
        engine = sessions.kw["bind"]

        def seen(_conn, _cursor, statement, *_args) -> None:
            if statement.startswith("INSERT INTO event"):
                inserts.append(statement)

        sa_event.listen(engine, "before_cursor_execute", seen)
        try:
            with sessions() as session, transaction(session):
                made = webhooks.emit_many(session, scope, [
                    ("payment.succeeded", {"id": "pay_1"}, ("payment", "pay_1")),
                    ("invoice.paid", {"id": "inv_1"}, ("invoice", "inv_1")),
                    ("invoice.paid", {"id": "inv_2"}, ("invoice", "inv_2"))],
                    allow_private=False)
                ids = [e.id for e in made]
        finally:
            sa_event.remove(engine, "before_cursor_execute", seen)

        assert len(inserts) == 1
        with sessions() as session:
            stored = {e.id: (e.type, e.about_id) for e in session.scalars(select(Event))}
        assert [stored[i] for i in ids] == [("payment.succeeded", "pay_1"),
                                            ("invoice.paid", "inv_1"), ("invoice.paid", "inv_2")]
        assert sorted(d.event_id for d in deliveries(sessions, scope)) == sorted(ids[1:])

    def test_a_wrong_event_among_several_is_named_by_its_place(self, sessions, scope):
        with sessions() as session, pytest.raises(ValidationFailed) as refused:
            webhooks.emit_many(session, scope, [
                ("payment.succeeded", {}, ("payment", "pay_1")),
                ("Invoice Paid", {}, ("invoice", "inv_1"))], allow_private=False)

        assert fields_of(refused.value) == ["events[1].type"]


# -- sending ---------------------------------------------------------------------------


class TestDeliverWebhook:
    def test_the_receiver_gets_the_body_signed_for_the_reference_library(
            self, sessions, scope, settings, receiver, frozen):
        _, secret = add_endpoint(sessions, scope, receiver.url())
        event = emit(sessions, scope)

        assert deliver(sessions, settings) == 1

        (request,) = receiver.requests
        (delivery,) = deliveries(sessions, scope)
        assert request.path == "/hooks"
        assert request.body == delivery.body.encode()
        assert json.loads(request.body)["data"] == PAYMENT
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"] == "Billfold-Webhooks/1"
        assert request.headers["webhook-id"] == event.id
        assert request.headers["webhook-timestamp"] == str(int(frozen.now().timestamp()))
        assert request.verified_by(secret)
        assert (delivery.status, delivery.attempts, delivery.last_status_code,
                delivery.delivered_at, delivery.next_attempt_at) == (
            "succeeded", 1, 200, frozen.now(), None)

    def test_a_failure_is_tried_again_after_5_seconds(self, sessions, scope, settings, frozen):
        with receiving(500) as receiver:
            _, secret = add_endpoint(sessions, scope, receiver.url())
            emit(sessions, scope)

            assert deliver(sessions, settings) == 1
            (delivery,) = deliveries(sessions, scope)
            assert (delivery.status, delivery.attempts, delivery.last_status_code,
                    delivery.last_error) == ("queued", 1, 500, "HTTP 500 Internal Server Error")
            assert delivery.next_attempt_at == frozen.now() + timedelta(seconds=5)

            frozen.advance(timedelta(seconds=4))
            assert deliver(sessions, settings) == 0
            frozen.advance(timedelta(seconds=1))
            assert deliver(sessions, settings) == 1

        first, second = receiver.requests
        assert first.body == second.body
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        assert second.verified_by(secret)
        (delivery,) = deliveries(sessions, scope)
        assert (delivery.status, delivery.attempts, delivery.last_status_code,
                delivery.last_error) == ("succeeded", 2, 200, None)

    def test_failures_wait_as_scheduled_and_the_eighth_is_the_last(self, sessions, scope,
                                                                   settings, frozen):
        with receiving(*[503] * 9) as receiver:
            add_endpoint(sessions, scope, receiver.url())
            emit(sessions, scope)
            waits = []
            for _ in range(8):
                started = frozen.now()
                assert deliver(sessions, settings) == 1
                (delivery,) = deliveries(sessions, scope)
                if delivery.next_attempt_at is not None:
                    waits.append(delivery.next_attempt_at - started)
                    frozen.advance(waits[-1])
            frozen.advance(timedelta(days=2))
            assert deliver(sessions, settings) == 0

        assert tuple(waits) == RETRY_DELAYS
        assert len(receiver.requests) == 8
        (delivery,) = deliveries(sessions, scope)
        assert (delivery.status, delivery.attempts, delivery.last_error) == (
            "dead", 8, "HTTP 503 Service Unavailable")

    def test_410_gone_disables_the_endpoint_and_ends_the_delivery(self, sessions, scope,
                                                                  settings, frozen):
        with receiving(410) as receiver:
            endpoint, _ = add_endpoint(sessions, scope, receiver.url())
            emit(sessions, scope)
            deliver(sessions, settings)
            frozen.advance(timedelta(days=2))
            assert deliver(sessions, settings) == 0
            emit(sessions, scope)

        stored = fetch(sessions, WebhookEndpoint, endpoint.id)
        assert (stored.status, stored.disabled_reason) == ("disabled", "410 Gone")
        (delivery,) = deliveries(sessions, scope)
        assert (delivery.status, delivery.last_status_code, delivery.next_attempt_at) == (
            "failed", 410, None)
        assert len(receiver.requests) == 1

    def test_a_redirect_is_not_followed(self, sessions, scope, settings, frozen):
        with receiving() as target, receiving(302) as redirecting:
            redirecting.location = target.url("/elsewhere")
            add_endpoint(sessions, scope, redirecting.url())
            emit(sessions, scope)
            deliver(sessions, settings)

        assert (len(redirecting.requests), target.requests) == (1, [])
        (delivery,) = deliveries(sessions, scope)
        assert (delivery.status, delivery.last_status_code, delivery.last_error) == (
            "queued", 302, "HTTP 302 Found")

    def test_a_private_target_not_allowed_gets_no_connection(self, sessions, scope, settings,
                                                             frozen):
        listening = socket.create_server(("127.0.0.1", 0))
        listening.setblocking(False)
        port = listening.getsockname()[1]
        add_endpoint(sessions, scope, f"http://127.0.0.1:{port}/hooks", allow_private=True)
        emit(sessions, scope, allow_private=False)

        deliver(sessions, settings)

        with pytest.raises(BlockingIOError):
            listening.accept()
        listening.close()
        (delivery,) = deliveries(sessions, scope)
        assert delivery.last_error == ("unsafe target: 127.0.0.1 resolves to 127.0.0.1, "
                                       "a loopback address")
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
            "queued", 1, None)

    def test_a_disabled_endpoint_gets_nothing(self, sessions, scope, settings, receiver):
        endpoint, _ = add_endpoint(sessions, scope, receiver.url())
        emit(sessions, scope)
        with sessions() as session, transaction(session):
            webhooks.update_endpoint(session, scope, endpoint_id=endpoint.id,
                                     changes={"status": "disabled"}, allow_private=True)

        deliver(sessions, settings)

        assert receiver.requests == []
        (delivery,) = deliveries(sessions, scope)
        assert (delivery.status, delivery.attempts, delivery.last_error) == (
            "failed", 0, "the webhook endpoint is disabled")

    def test_a_corrected_url_takes_effect_on_the_next_attempt(self, sessions, scope, settings,
                                                              frozen):
        with receiving(404) as wrong, receiving() as right:
            endpoint, _ = add_endpoint(sessions, scope, wrong.url())
            emit(sessions, scope)
            deliver(sessions, settings)
            with sessions() as session, transaction(session):
                webhooks.update_endpoint(session, scope, endpoint_id=endpoint.id,
                                         changes={"url": right.url()}, allow_private=True)
            frozen.advance(timedelta(seconds=5))
            deliver(sessions, settings)

        assert (len(wrong.requests), len(right.requests)) == (1, 1)
        (delivery,) = deliveries(sessions, scope)
        assert (delivery.status, delivery.url) == ("succeeded", right.url())

    def test_a_delivery_sent_already_is_not_sent_again(self, sessions, scope, settings,
                                                       receiver):
        add_endpoint(sessions, scope, receiver.url())
        emit(sessions, scope)
        deliver(sessions, settings)
        # As if the job ran again after its "done" was lost.
        with sessions() as session, transaction(session):
            session.execute(update(Job).where(Job.kind == webhooks.DELIVER_WEBHOOK)
                            .values(status="queued"))

        assert deliver(sessions, settings) == 1
        assert len(receiver.requests) == 1

    def test_a_rotated_secret_signs_beside_the_new_one_for_24_hours(self, sessions, scope,
                                                                    settings, receiver,
                                                                    frozen):
        endpoint, old = add_endpoint(sessions, scope, receiver.url())
        with sessions() as session, transaction(session):
            _, new = webhooks.rotate_endpoint_secret(session, scope, endpoint_id=endpoint.id)

        emit(sessions, scope)
        deliver(sessions, settings)
        frozen.advance(timedelta(hours=24))
        emit(sessions, scope)
        deliver(sessions, settings)

        during, after = receiver.requests
        assert new != old
        assert during.verified_by(new)
        assert during.verified_by(old)
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        assert after.signed_by(new)
        assert not after.signed_by(old)
        assert len(after.headers["webhook-signature"].split(" ")) == 1


class TestResend:
    def test_sends_the_same_message_again_as_a_new_delivery(self, sessions, scope, settings,
                                                            receiver, frozen):
        _, secret = add_endpoint(sessions, scope, receiver.url())
        emit(sessions, scope)
        deliver(sessions, settings)
        (original,) = deliveries(sessions, scope)

        with sessions() as session, transaction(session):
            again = webhooks.resend(session, scope, original.id)
        deliver(sessions, settings)

        assert again.id != original.id
        assert (again.msg_id, again.body, again.endpoint_id) == (
            original.msg_id, original.body, original.endpoint_id)
        first, second = receiver.requests
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == original.msg_id
        assert second.body == first.body
        assert second.verified_by(secret)
        assert [d.status for d in deliveries(sessions, scope)] == ["succeeded", "succeeded"]

    def test_refuses_to_resend_to_a_disabled_endpoint(self, sessions, scope):
        endpoint, _ = add_endpoint(sessions, scope, "https://hooks.example.com/")
        emit(sessions, scope)
        with sessions() as session, transaction(session):
            webhooks.update_endpoint(session, scope, endpoint_id=endpoint.id,
                                     changes={"status": "disabled"}, allow_private=True)
        (original,) = deliveries(sessions, scope)

        with sessions() as session, pytest.raises(Conflict):
            webhooks.resend(session, scope, original.id)

    def test_another_tenants_delivery_is_not_found(self, sessions, make_scope):
        scope, other = make_scope(), make_scope()
        add_endpoint(sessions, scope, "https://hooks.example.com/")
        emit(sessions, scope)
        (original,) = deliveries(sessions, scope)

        with sessions() as session, pytest.raises(NotFound):
            webhooks.resend(session, other, original.id)


class TestListDeliveries:
    def test_filters_by_endpoint_and_by_subject_and_pages(self, sessions, scope):
        first, _ = add_endpoint(sessions, scope, "https://a.example.com/")
        second, _ = add_endpoint(sessions, scope, "https://b.example.com/")
        emit(sessions, scope)
        with sessions() as session, transaction(session):
            webhooks.emit(session, scope, type="invoice.paid", data={}, about=("invoice", "inv_1"),
                          allow_private=False)

        everything = deliveries(sessions, scope)
        assert len(everything) == 4
        assert {d.endpoint_id for d in deliveries(sessions, scope, endpoint_id=first.id)} == {
            first.id}
        assert [d.event_type for d in deliveries(sessions, scope, about=("invoice", "inv_1"))] \
            == ["invoice.paid", "invoice.paid"]
        with sessions() as session:
            page = webhooks.list_deliveries(session, scope, limit=3,
                                            starting_after=everything[0].id)
        assert [d.id for d in page] == [d.id for d in everything[1:]]
        assert second.id in {d.endpoint_id for d in everything}


# -- postbacks -------------------------------------------------------------------------


def postback_secret(sessions: sessionmaker[Session], scope: Scope) -> PostbackSecret:
    with sessions() as session:
        return session.scalars(select(PostbackSecret).where(
            PostbackSecret.tenant_id == scope.tenant_id,
            PostbackSecret.mode == scope.mode)).one()


class TestPostbacks:
    def test_a_form_postback_is_urlencoded_and_signed_with_the_tenants_secret(
            self, sessions, scope, settings, receiver, frozen):
        form = [("PaymentGUID", "pay_1"), ("Approved", "True"), ("CustomerName", "Zoë & Co")]

        queued = postback(sessions, scope, receiver.url("/postback"), form=form)
        deliver(sessions, settings)

        (request,) = receiver.requests
        assert queued.id.startswith("whd_")
        assert (queued.kind, queued.endpoint_id, queued.msg_id) == ("postback", None, queued.id)
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert parse_qsl(request.body.decode()) == form
        assert request.headers["webhook-id"] == queued.id
        assert request.verified_by(postback_secret(sessions, scope).secret)
        assert fetch(sessions, WebhookDelivery, queued.id).status == "succeeded"

    def test_a_json_postback(self, sessions, scope, settings, receiver, frozen):
        postback(sessions, scope, receiver.url(), json_body={"type": "payment.failed", "data": {}})
        deliver(sessions, settings)

        (request,) = receiver.requests
        assert request.headers["content-type"] == "application/json"
        assert request.body == b'{"data":{},"type":"payment.failed"}'

    def test_needs_exactly_one_of_form_and_json_body(self, sessions, scope):
        for body in ({}, {"form": [("a", "b")], "json_body": {"a": "b"}}):
            with pytest.raises(ValidationFailed) as refused:
                postback(sessions, scope, "https://shop.example.com/postback", **body)
            assert fields_of(refused.value) == ["form"]

    def test_refuses_a_url_that_is_not_http(self, sessions, scope):
        with pytest.raises(ValidationFailed) as refused:
            postback(sessions, scope, "javascript:alert(1)", form=[])

        assert [(e.field, e.code) for e in refused.value.errors] == [("url", "unsafe_target")]

    def test_a_private_target_not_allowed_fails_the_postback_not_the_caller(
            self, sessions, scope, settings, receiver, frozen):
        queued = postback(sessions, scope, receiver.url(), form=[("a", "b")],
                          allow_private=False)
        deliver(sessions, settings)

        assert receiver.requests == []
        assert fetch(sessions, WebhookDelivery, queued.id).last_error.startswith(
            "unsafe target: ")

    def test_410_from_a_postback_url_is_retried_like_any_failure(self, sessions, scope,
                                                                 settings, frozen):
        with receiving(410) as receiver:
            queued = postback(sessions, scope, receiver.url(), form=[("a", "b")])
            deliver(sessions, settings)
            frozen.advance(timedelta(seconds=5))
            deliver(sessions, settings)

        assert len(receiver.requests) == 2
        assert fetch(sessions, WebhookDelivery, queued.id).status == "succeeded"

    def test_rotation_signs_with_both_secrets_for_24_hours_then_only_the_new_one(
            self, sessions, scope, settings, receiver, frozen):
        with sessions() as session, transaction(session):
            old = webhooks.rotate_postback_secret(session, scope)
        with sessions() as session, transaction(session):
            new = webhooks.rotate_postback_secret(session, scope)

        postback(sessions, scope, receiver.url(), form=[("n", "1")])
        deliver(sessions, settings)
        frozen.advance(timedelta(hours=23, minutes=59, seconds=59))
        postback(sessions, scope, receiver.url(), form=[("n", "2")])
        deliver(sessions, settings)
        frozen.advance(timedelta(seconds=1))
        postback(sessions, scope, receiver.url(), form=[("n", "3")])
        deliver(sessions, settings)

        first, last_overlap, after = receiver.requests
        assert old.startswith("whsec_")
        assert new != old
        assert first.verified_by(old)
        assert first.verified_by(new)
        assert last_overlap.signed_by(old)
        assert last_overlap.signed_by(new)
        assert after.signed_by(new)
        assert not after.signed_by(old)
        stored = postback_secret(sessions, scope)
        assert (stored.secret, stored.previous_secret) == (new, old)

    def test_the_first_rotation_makes_the_first_secret(self, sessions, scope):
        with sessions() as session, transaction(session):
            first = webhooks.rotate_postback_secret(session, scope)

        stored = postback_secret(sessions, scope)
        assert (stored.secret, stored.previous_secret, stored.rotated_at) == (first, None, None)
