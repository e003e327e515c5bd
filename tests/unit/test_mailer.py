from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from billfold.core.errors import ValidationFailed
from billfold.core.filestore import FileStore
from billfold.notifications.mailer import SmtpServer, build_email, parse_smtp_url
from billfold.notifications.models import OutboxMessage


class TestParseSmtpUrl:
    def test_a_plain_server(self):
        assert parse_smtp_url("smtp://127.0.0.1:1025") == SmtpServer(
            host="127.0.0.1", port=1025, implicit_tls=False, starttls=False)

    def test_default_ports(self):
        assert parse_smtp_url("smtp://mail.biller.example").port == 25
        assert parse_smtp_url("smtps://mail.biller.example").port == 465

    def test_smtps_is_tls_from_the_start(self):
        server = parse_smtp_url("smtps://mail.biller.example:2465")
        assert (server.implicit_tls, server.starttls, server.port) == (True, False, 2465)

    def test_starttls_and_a_percent_encoded_login(self):
        server = parse_smtp_url("smtp://clerk%40biller:p%3Ass%40w@mail.biller.example:587"
                                "?starttls=1")

        assert (server.starttls, server.implicit_tls) == (True, False)
        assert (server.username, server.password) == ("clerk@biller", "p:ss@w")
        assert "p:ss@w" not in repr(server)

    def test_starttls_0_means_off(self):
        assert parse_smtp_url("smtp://h?starttls=0").starttls is False

    @pytest.mark.parametrize(("url", "complaint"), [
        ("http://mail.biller.example", "smtp://"),
        ("mail.biller.example:25", "smtp://"),
        ("smtp://", "no host"),
        ("smtp://:25", "no host"),
        ("smtp://h:99999", "port"),
        ("smtp://h:25/inbox", "path"),
        ("smtp://h?tls=1", "starttls"),
        ("smtp://h?starttls=maybe", "starttls must be"),
        ("smtps://h?starttls=1", "encrypted already"),
        ("smtp://clerk@h", "without a password"),
    ])
    def test_refuses_what_it_cannot_use(self, url, complaint):
        with pytest.raises(ValidationFailed, match=complaint) as refused:
            parse_smtp_url(url)

        assert [e.field for e in refused.value.errors] == ["smtp_url"]

    def test_never_repeats_the_password_in_an_error(self):
        with pytest.raises(ValidationFailed) as refused:
            parse_smtp_url("smtp://clerk:hunter2@h:99999")

        assert "hunter2" not in str(refused.value)


def message(**fields):
    values = {"id": "msg_0193", "tenant_id": "ten_1", "mode": "test", "channel": "email",
              "to": ["payer@customer.example"], "cc": [], "subject": "Your invoice",
              "text_body": "Amount due: $12.00", "html_body": None, "attachments": [],
              "status": "queued", "attempts": 0,
              "created_at": datetime(2026, 6, 1, tzinfo=UTC)}
    return OutboxMessage(**{**values, **fields})


class TestBuildEmail:
    def test_a_text_only_message(self, tmp_path: Path):
        email = build_email(message(), mail_from="Biller <billing@biller.example>",
                            files=FileStore(tmp_path))

        assert email.get_content_type() == "text/plain"
        assert email["From"] == "Biller <billing@biller.example>"
        assert email["To"] == "payer@customer.example"
        assert email["Cc"] is None
        assert email["Message-ID"] == "<msg_0193@biller.example>"
        assert email["Date"] is not None
        assert email.get_content().strip() == "Amount due: $12.00"

    def test_html_is_an_alternative_and_attachments_come_from_the_store(self, tmp_path: Path):
        files = FileStore(tmp_path)
        files.put("invoices/inv_1.pdf", b"%PDF-1.7 \x00\xff")
        email = build_email(
            message(cc=["ap@customer.example"], html_body="<b>Amount due</b>",
                    attachments=[{"filename": "INV-1.pdf", "content_type": "application/pdf",
                                  "file_key": "invoices/inv_1.pdf"}]),
            mail_from="billing@biller.example", files=files)

        parsed = message_from_bytes(email.as_bytes(), policy=policy.default)
        assert parsed.get_content_type() == "multipart/mixed"
        assert parsed["Cc"] == "ap@customer.example"
        assert parsed.get_body(("html",)).get_content().strip() == "<b>Amount due</b>"
        assert parsed.get_body(("plain",)).get_content().strip() == "Amount due: $12.00"
        (attachment,) = parsed.iter_attachments()
        assert attachment.get_filename() == "INV-1.pdf"
        assert attachment.get_content_type() == "application/pdf"
        assert attachment.get_content() == b"%PDF-1.7 \x00\xff"

    def test_a_sender_without_a_domain_gets_a_local_message_id(self, tmp_path: Path):
        email = build_email(message(), mail_from="billing", files=FileStore(tmp_path))

        assert email["Message-ID"] == "<msg_0193@localhost>"
