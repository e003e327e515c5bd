"""Sending an outbox email: over SMTP when ``BILLFOLD_SMTP_URL`` is set, otherwise as an
``.eml`` file under ``<data_dir>/mail/`` that a person (or a test) can open."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from billfold.core import clock
from billfold.core.config import Settings
from billfold.core.errors import invalid
from billfold.core.filestore import FileStore
from billfold.notifications.models import OutboxMessage

# Bounds how long a delivery waits on an SMTP server that does not answer. On SQLite the
# delivering transaction holds the database's write turn meanwhile, so keep it short.
SMTP_TIMEOUT_SECONDS = 20
_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int
    implicit_tls: bool  # smtps://: TLS from the first byte
    starttls: bool  # smtp:// upgraded with STARTTLS before anything is sent
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_smtp_url(url: str) -> SmtpServer:
    """``smtp://[user:password@]host[:port][?starttls=1]`` or ``smtps://…``. Errors never
    repeat the URL, which may hold a password."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise invalid("smtp_url", "must start with smtp:// or smtps://")
    if not parts.hostname:
        raise invalid("smtp_url", "names no host")
    try:
        port = parts.port
    except ValueError:
        raise invalid("smtp_url", "has a port that is not a number from 0 to 65535") from None
    if parts.path not in ("", "/") or parts.fragment:
        raise invalid("smtp_url", "may not have a path or fragment")
    query = parse_qs(parts.query, keep_blank_values=True)
    if set(query) - {"starttls"}:
        raise invalid("smtp_url", "knows only the starttls option")
    starttls_value = query.get("starttls", ["0"])[-1].lower()
    if starttls_value not in _TRUE + _FALSE:
        raise invalid("smtp_url", "starttls must be 1 or 0")
    implicit_tls, starttls = parts.scheme == "smtps", starttls_value in _TRUE
    if implicit_tls and starttls:
        raise invalid("smtp_url", "smtps:// is encrypted already; starttls is for smtp://")
    if parts.username is not None and parts.password is None:
        raise invalid("smtp_url", "gives a user without a password")
    return SmtpServer(
        host=parts.hostname, port=port or (465 if implicit_tls else 25),
        implicit_tls=implicit_tls, starttls=starttls,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def build_email(message: OutboxMessage, *, mail_from: str, files: FileStore) -> EmailMessage:
    """The MIME message: text, an HTML alternative if there is one, and the attachments
    read from ``files``. Its Message-ID derives from the outbox id, so a resend after a
    lost acknowledgement carries the same id and receivers can drop the duplicate."""
    email = EmailMessage()
    email["From"] = mail_from
    email["To"] = ", ".join(message.to)
    if message.cc:
        email["Cc"] = ", ".join(message.cc)
    email["Subject"] = message.subject
    email["Date"] = format_datetime(clock.utcnow())
    _, at, domain = parseaddr(mail_from)[1].rpartition("@")
    email["Message-ID"] = f"<{message.id}@{domain if at and domain else 'localhost'}>"
    email.set_content(message.text_body)
    if message.html_body:
        email.add_alternative(message.html_body, subtype="html")
    for attachment in message.attachments:
        maintype, _, subtype = attachment["content_type"].partition("/")
        email.add_attachment(files.get(attachment["file_key"]), maintype=maintype,
                             subtype=subtype, filename=attachment["filename"])
    return email


def eml_key(message_id: str) -> str:
    return f"mail/{message_id}.eml"


def send(message: OutboxMessage, *, settings: Settings, files: FileStore) -> list[str]:
    """Hand ``message`` to the SMTP server, or write it as an .eml file when there is none.
    Returns the recipients the server refused while accepting others; raises if it
    accepted none or could not be reached."""
    email = build_email(message, mail_from=settings.mail_from, files=files)
    if not settings.smtp_url:
        files.put(eml_key(message.id), email.as_bytes())
        return []
    return _send_smtp(parse_smtp_url(settings.smtp_url), email)


def _send_smtp(server: SmtpServer, email: EmailMessage) -> list[str]:
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if server.implicit_tls:
        client = smtplib.SMTP_SSL(server.host, server.port, timeout=SMTP_TIMEOUT_SECONDS,
                                  context=context)
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=SMTP_TIMEOUT_SECONDS)
    with client:
        if server.starttls:
            client.starttls(context=context)
        if server.username is not None and server.password is not None:
            client.login(server.username, server.password)
        refused = client.send_message(email)
    return sorted(refused)
