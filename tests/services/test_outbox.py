"""The notification outbox: a message and its delivery job are written with the caller's
transaction, and the worker delivers them to a real SMTP server (aiosmtpd), or to .eml
files when none is configured, retrying while the server is down.

Every test has a database of its own: a worker claims every due delivery job, so messages
left by one test would arrive in another's mailbox."""

from __future__ import annotations

import inspect
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from billfold.core import clock, jobs
from billfold.core.config import Settings
from billfold.core.db import transaction
from billfold.core.errors import ValidationFailed
from billfold.core.filestore import FileStore
from billfold.core.jobs import Job
from billfold.core.scope import Scope
from billfold.notifications import outbox
from billfold.notifications.models import OutboxMessage
from tests.services.conftest import fields_of, frozen_at, sessions_on_a_fresh_database

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"
SENDER = "billing@biller.example"


sessions = sessions_on_a_fresh_database()


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    with frozen_at(NOON) as frozen_clock:
        yield frozen_clock


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


def settings_for(data_dir: Path, smtp_url: str | None = None) -> Settings:
    return Settings(data_dir=data_dir, smtp_url=smtp_url, mail_from=f"Biller <{SENDER}>")


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Mailbox:
    """An aiosmtpd handler keeping what the server accepted."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def emails(self) -> list[EmailMessage]:
        return [cast(EmailMessage, message_from_bytes(e.original_content, policy=policy.default))
                for e in self.envelopes]


@contextmanager
def smtp_server(port: int, **options: Any) -> Iterator[Mailbox]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


def queue(sessions: sessionmaker[Session], scope: Scope, **fields: Any) -> OutboxMessage:
    fields = {"to": ["payer@customer.example"], "subject": "Your invoice INV-1",
              "text": "Please find your invoice attached.", **fields}
    with sessions() as session, transaction(session):
        return outbox.enqueue_email(session, scope, **fields)


def deliver(sessions: sessionmaker[Session], settings: Settings) -> int:
    return jobs.run_pending(sessions, outbox.handlers(settings), worker_id="test-worker")


def fetch(sessions: sessionmaker[Session], model: Any, object_id: str) -> Any:
    with sessions() as session:
        return session.get(model, object_id)


def job_of(sessions: sessionmaker[Session], message: OutboxMessage) -> Job:
    with sessions() as session:
        return session.scalars(select(Job).where(Job.kind == outbox.DELIVER,
                                                 Job.key == message.id)).one()


def invoice_pdf(data_dir: Path, scope: Scope) -> outbox.Attachment:
    key = f"tenants/{scope.tenant_id}/{scope.mode}/invoices/inv_1.pdf"
    FileStore(data_dir).put(key, PDF)
    return outbox.Attachment("INV-1.pdf", "application/pdf", key)


def attachment_bytes(email: EmailMessage) -> dict[str, bytes]:
    return {str(part.get_filename()): cast(bytes, part.get_content())
            for part in email.iter_attachments()}


class TestEnqueueEmail:
    def test_writes_the_message_and_its_delivery_job(self, sessions, scope, frozen):
        message = queue(sessions, scope, about=("invoice", "inv_1"))

        stored = fetch(sessions, OutboxMessage, message.id)
        job = job_of(sessions, message)
        assert message.id.startswith("msg_")
        assert (stored.status, stored.attempts, stored.channel) == ("queued", 0, "email")
        assert stored.to == ["payer@customer.example"]
        assert (job.status, job.scope, job.payload) == ("queued", scope,
                                                        {"message_id": message.id})

    def test_a_rolled_back_transaction_takes_the_message_and_job_with_it(self, sessions,
                                                                          scope):
        def finalize_invoice(session: Session) -> None:
            with transaction(session):
                outbox.enqueue_email(session, scope, to=["a@b.example"], subject="Hi",
                                     text="Hello")
                raise RuntimeError("the invoice did not finalize")

        with sessions() as session:
            with pytest.raises(RuntimeError):
                finalize_invoice(session)
            assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
            assert session.scalar(select(func.count()).select_from(Job)) == 0

    def test_names_every_wrong_field(self, sessions, scope):
        with pytest.raises(ValidationFailed) as refused:
            queue(sessions, scope, to=["payer@customer.example", "not an address"],
                  cc=["@nope"], subject="", text=" ")

        assert fields_of(refused.value) == ["to[1]", "cc[0]", "subject", "text"]

    def test_an_address_is_judged_the_same_every_time(self, sessions, scope):
        # Addresses are remembered once checked: a good one normalized as at first, a bad
        # one refused again (nothing remembered of it).
        for _ in range(2):
            with pytest.raises(ValidationFailed) as refused:
                queue(sessions, scope, to=["Payer@Customer.EXAMPLE", "not an address"])
            assert fields_of(refused.value) == ["to[1]"]
            message = queue(sessions, scope, to=["Payer@Customer.EXAMPLE"])
            assert message.to == ["Payer@customer.example"]

    def test_needs_a_recipient(self, sessions, scope):
        with pytest.raises(ValidationFailed) as refused:
            queue(sessions, scope, to=[])

        assert fields_of(refused.value) == ["to"]

    def test_refuses_a_subject_that_would_add_a_header(self, sessions, scope):
        with pytest.raises(ValidationFailed) as refused:
            queue(sessions, scope, subject="Invoice\r\nBcc: everyone@example.com")

        assert fields_of(refused.value) == ["subject"]

    def test_refuses_an_attachment_outside_the_file_store(self, sessions, scope):
        with pytest.raises(ValidationFailed) as refused:
            queue(sessions, scope, attachments=[
                outbox.Attachment("passwd", "text/plain", "../../etc/passwd"),
                outbox.Attachment("a/b.pdf", "pdf", "tenants/x.pdf")])

        assert fields_of(refused.value) == ["attachments[0].file_key", "attachments[1].filename",
                                            "attachments[1].content_type"]


class TestDeliveriesFor:
    def test_lists_the_messages_about_one_object_in_one_scope(self, sessions, make_scope):
        scope, other = make_scope(), make_scope()
        first = queue(sessions, scope, about=("invoice", "inv_1"))
        queue(sessions, scope, about=("invoice", "inv_2"))
        second = queue(sessions, scope, about=("invoice", "inv_1"), subject="Reminder")
        queue(sessions, other, about=("invoice", "inv_1"))

        with sessions() as session:
            found = outbox.deliveries_for(session, scope, "invoice", "inv_1")

        assert [m.id for m in found] == [first.id, second.id]


class TestDeliveryToEmlFiles:
    def test_without_an_smtp_server_mail_is_written_as_an_eml_file(self, sessions, scope,
                                                                    data_dir, frozen):
        message = queue(sessions, scope, cc=["ap@customer.example"],
                        html="<p>Please find your invoice attached.</p>",
                        attachments=[invoice_pdf(data_dir, scope)])

        assert deliver(sessions, settings_for(data_dir)) == 1

        eml = data_dir / "mail" / f"{message.id}.eml"
        email = cast(EmailMessage, message_from_bytes(eml.read_bytes(), policy=policy.default))
        assert email["From"] == f"Biller <{SENDER}>"
        assert (email["To"], email["Cc"]) == ("payer@customer.example", "ap@customer.example")
        assert email["Subject"] == "Your invoice INV-1"
        assert email["Message-ID"] == f"<{message.id}@biller.example>"
        assert cast(Any, email.get_body(("plain",))).get_content().strip() == (
            "Please find your invoice attached.")
        assert "<p>" in cast(Any, email.get_body(("html",))).get_content()
        assert attachment_bytes(email) == {"INV-1.pdf": PDF}
        stored = fetch(sessions, OutboxMessage, message.id)
        assert (stored.status, stored.sent_at, stored.attempts) == ("sent", NOON, 1)
        assert [p.name for p in eml.parent.iterdir()] == [eml.name]

    def test_a_missing_attachment_is_retried_until_the_file_exists(self, sessions, scope,
                                                                    data_dir, frozen):
        attachment = outbox.Attachment("INV-1.pdf", "application/pdf", "later/inv_1.pdf")
        message = queue(sessions, scope, attachments=[attachment])

        deliver(sessions, settings_for(data_dir))
        assert "later/inv_1.pdf" in fetch(sessions, OutboxMessage, message.id).last_error

        FileStore(data_dir).put("later/inv_1.pdf", PDF)
        frozen.advance(timedelta(seconds=30))
        deliver(sessions, settings_for(data_dir))
        assert fetch(sessions, OutboxMessage, message.id).status == "sent"


class TestDeliveryOverSmtp:
    def test_the_server_receives_recipients_subject_and_attachment(self, sessions, scope,
                                                                    data_dir):
        port = unused_port()
        message = queue(sessions, scope, to=["payer@customer.example", "boss@customer.example"],
                        cc=["ap@customer.example"], attachments=[invoice_pdf(data_dir, scope)],
                        about=("invoice", "inv_1"))

        with smtp_server(port) as mailbox:
            assert deliver(sessions, settings_for(data_dir, f"smtp://127.0.0.1:{port}")) == 1

        (envelope,) = mailbox.envelopes
        (email,) = mailbox.emails()
        assert envelope.mail_from == SENDER
        assert sorted(envelope.rcpt_tos) == ["ap@customer.example", "boss@customer.example",
                                             "payer@customer.example"]
        assert email["Subject"] == "Your invoice INV-1"
        assert attachment_bytes(email) == {"INV-1.pdf": PDF}
        with sessions() as session:
            (delivered,) = outbox.deliveries_for(session, scope, "invoice", "inv_1")
        assert (delivered.id, delivered.status) == (message.id, "sent")
        assert not (data_dir / "mail").exists()

    def test_a_server_that_is_down_is_retried_with_backoff_until_it_is_up(
            self, sessions, scope, data_dir, frozen):
        port = unused_port()
        settings = settings_for(data_dir, f"smtp://127.0.0.1:{port}")
        message = queue(sessions, scope)

        assert deliver(sessions, settings) == 1
        stored = fetch(sessions, OutboxMessage, message.id)
        assert (stored.status, stored.attempts) == ("queued", 1)
        assert "Connection refused" in stored.last_error
        assert job_of(sessions, message).run_after == NOON + timedelta(seconds=30)

        frozen.advance(timedelta(seconds=29))
        assert deliver(sessions, settings) == 0
        frozen.advance(timedelta(seconds=1))
        assert deliver(sessions, settings) == 1
        assert job_of(sessions, message).run_after == NOON + timedelta(seconds=30 + 60)

        frozen.advance(timedelta(seconds=60))
        with smtp_server(port) as mailbox:
            assert deliver(sessions, settings) == 1

        assert len(mailbox.envelopes) == 1
        stored = fetch(sessions, OutboxMessage, message.id)
        assert (stored.status, stored.attempts, stored.sent_at) == (
            "sent", 3, NOON + timedelta(seconds=90))
        assert job_of(sessions, message).status == "done"

    def test_a_message_fails_when_its_job_runs_out_of_attempts(self, sessions, scope, data_dir,
                                                               frozen):
        settings = settings_for(data_dir, f"smtp://127.0.0.1:{unused_port()}")
        message = queue(sessions, scope)

        for _ in range(8):
            assert deliver(sessions, settings) == 1
            frozen.advance(timedelta(hours=1))
        assert deliver(sessions, settings) == 0

        stored = fetch(sessions, OutboxMessage, message.id)
        assert (stored.status, stored.attempts) == ("failed", 8)
        assert "Connection refused" in stored.last_error
        assert job_of(sessions, message).status == "dead"

    def test_a_message_already_sent_is_not_sent_again(self, sessions, scope, data_dir):
        port = unused_port()
        settings = settings_for(data_dir, f"smtp://127.0.0.1:{port}")
        message = queue(sessions, scope)
        with smtp_server(port) as mailbox:
            deliver(sessions, settings)
            # As if the worker died after sending, before its "done" was committed.
            with sessions() as session, transaction(session):
                session.execute(update(Job).where(Job.key == message.id)
                                .values(status="queued"))
            assert deliver(sessions, settings) == 1

        assert len(mailbox.envelopes) == 1

    def test_starttls_and_login_are_used_when_the_url_asks(self, sessions, scope, data_dir,
                                                           tls, monkeypatch):
        port = unused_port()
        logins: list[tuple[bytes, bytes]] = []

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                         auth_data: Any) -> AuthResult:
            assert isinstance(auth_data, LoginPassword)
            logins.append((auth_data.login, auth_data.password))
            return AuthResult(success=auth_data.password == b"s3cret:@x")

        monkeypatch.setenv("SSL_CERT_FILE", str(tls.cert))
        queue(sessions, scope)
        with smtp_server(port, tls_context=tls.server_context(), require_starttls=True,
                         authenticator=authenticate, auth_required=True) as mailbox:
            url = f"smtp://clerk%40biller:s3cret%3A%40x@127.0.0.1:{port}?starttls=1"
            assert deliver(sessions, settings_for(data_dir, url)) == 1

        assert logins == [(b"clerk@biller", b"s3cret:@x")]
        assert len(mailbox.envelopes) == 1

    def test_smtps_speaks_tls_from_the_start(self, sessions, scope, data_dir, tls,
                                             monkeypatch):
        port = unused_port()
        monkeypatch.setenv("SSL_CERT_FILE", str(tls.cert))
        queue(sessions, scope)

        with smtp_server(port, ssl_context=tls.server_context()) as mailbox:
            assert deliver(sessions, settings_for(data_dir, f"smtps://127.0.0.1:{port}")) == 1

        assert len(mailbox.envelopes) == 1

    def test_an_untrusted_certificate_is_refused(self, sessions, scope, data_dir, tls):
        port = unused_port()
        message = queue(sessions, scope)

        with smtp_server(port, ssl_context=tls.server_context()) as mailbox:
            deliver(sessions, settings_for(data_dir, f"smtps://127.0.0.1:{port}"))

        assert mailbox.envelopes == []
        assert "CERTIFICATE_VERIFY_FAILED" in fetch(sessions, OutboxMessage, message.id).last_error


class SelfSigned:
    def __init__(self, directory: Path) -> None:
        self.cert, self.key = directory / "cert.pem", directory / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(self.key), "-out", str(self.cert)],
            check=True, capture_output=True)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture
def tls(tmp_path: Path) -> SelfSigned:
    return SelfSigned(tmp_path)


BILLFOLD = str(Path(sys.executable).with_name("billfold"))


class TestWorkerCommand:
    @pytest.fixture
    def environment(self, fresh_database_url: str, data_dir: Path) -> dict[str, str]:
        environment = {key: value for key, value in os.environ.items()
                       if not key.startswith("BILLFOLD_")}
        environment.update(BILLFOLD_DATABASE_URL=fresh_database_url,
                           BILLFOLD_DATA_DIR=str(data_dir), BILLFOLD_MAIL_FROM=SENDER)
        return environment

    @pytest.fixture
    def worker(self, environment: dict[str, str]) -> Any:
        def worker(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([BILLFOLD, *args], env={**environment, **env},
                                  capture_output=True, text=True, timeout=120)

        return worker

    def test_worker_once_delivers_what_is_queued_over_smtp_and_exits(self, sessions, scope,
                                                                      worker):
        port = unused_port()
        message = queue(sessions, scope)

        with smtp_server(port) as mailbox:
            result = worker("worker", "--once", BILLFOLD_SMTP_URL=f"smtp://127.0.0.1:{port}")

        assert result.returncode == 0, result.stderr
        assert [e.mail_from for e in mailbox.envelopes] == [SENDER]
        assert fetch(sessions, OutboxMessage, message.id).status == "sent"

    def test_worker_once_goes_on_until_no_job_is_due(self, sessions, scope, worker, data_dir):
        one_pass = inspect.signature(jobs.run_pending).parameters["limit"].default
        with sessions() as session, transaction(session):
            for n in range(one_pass + 1):
                outbox.enqueue_email(session, scope, to=["payer@customer.example"],
                                     subject=f"Invoice {n}", text="Attached.")

        result = worker("worker", "--once")

        assert result.returncode == 0, result.stderr
        assert len(list((data_dir / "mail").glob("*.eml"))) == one_pass + 1

    def test_serve_delivers_through_its_in_process_worker(self, sessions, scope, environment,
                                                          data_dir):
        message = queue(sessions, scope)
        server = subprocess.Popen([BILLFOLD, "serve", "--port", str(unused_port())],
                                  env=environment, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while fetch(sessions, OutboxMessage, message.id).status != "sent":
                assert time.monotonic() < deadline, "serve's worker delivered nothing"
                time.sleep(0.1)
        finally:
            server.terminate()
            server.wait(timeout=10)

        assert (data_dir / "mail" / f"{message.id}.eml").exists()
