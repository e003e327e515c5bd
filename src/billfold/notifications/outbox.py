"""The transactional outbox (STYLE.md rule 5). A service writes its message here in its own
transaction, with a job that delivers it after commit: a rollback takes the message with
it, and a commit guarantees a delivery attempt."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from billfold.core import clock, jobs
from billfold.core.config import Settings
from billfold.core.db import Direct, among, chunks, persisted
from billfold.core.errors import FieldError, NotFound, ValidationFailed
from billfold.core.filestore import FileStore, UnsafeFileKey, check_key
from billfold.core.ids import new_id
from billfold.core.scope import Scope
from billfold.notifications import mailer
from billfold.notifications.models import OutboxMessage

DELIVER = "notifications.deliver"
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*")
log = logging.getLogger(__name__)

# Told, in the delivering transaction, that a message about an object of its type was sent
# or failed for good: how a package above this one (invoicing) follows its messages
# without this package importing it. Keyed by ``about_type``.
OutcomeListener = Callable[[Session, OutboxMessage], None]


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str  # e.g. "application/pdf"
    file_key: str  # where the bytes are in the FileStore


def enqueue_email(session: Session, scope: Scope, *, to: Sequence[str], subject: str, text: str,
                  html: str | None = None, cc: Sequence[str] = (),
                  attachments: Sequence[Attachment] = (),
                  about: tuple[str, str] | None = None) -> OutboxMessage:
    """Queue an email for delivery after the caller's transaction commits. ``about`` is
    the (type, id) of the object it concerns, for ``deliveries_for``."""
    values = email_values(scope, to=to, subject=subject, text=text, html=html, cc=cc,
                          attachments=attachments, about=about)
    return enqueue_messages(session, scope, [values])[0]


def email_values(scope: Scope, *, to: Sequence[str], subject: str, text: str,
                 html: str | None = None, cc: Sequence[str] = (),
                 attachments: Sequence[Attachment] = (),
                 about: tuple[str, str] | None = None) -> dict[str, Any]:
    """The row of an email to queue (``enqueue_messages``), checked: ValidationFailed names
    each field that is wrong."""
    errors: list[FieldError] = []
    to_list = _addresses("to", to, errors)
    if not to_list and not any(e.field.startswith("to") for e in errors):
        errors.append(FieldError("to", "needs at least one address", "required"))
    cc_list = _addresses("cc", cc, errors)
    if not subject.strip():
        errors.append(FieldError("subject", "is required", "required"))
    elif "\r" in subject or "\n" in subject or len(subject) > 500:
        errors.append(FieldError("subject", "must be one line of at most 500 characters"))
    if not text.strip():
        errors.append(FieldError("text", "is required", "required"))
    for index, attachment in enumerate(attachments):
        _check_attachment(f"attachments[{index}]", attachment, errors)
    if about is not None and not (about[0] and about[1]):
        errors.append(FieldError("about", "needs a type and an id"))
    if errors:
        raise ValidationFailed(errors)
    return {
        "id": new_id("outbox_message"), "tenant_id": scope.tenant_id, "mode": scope.mode,
        "channel": "email", "to": to_list, "cc": cc_list, "subject": subject, "text_body": text,
        "html_body": html or None,
        "attachments": [{"filename": a.filename, "content_type": a.content_type,
                         "file_key": a.file_key} for a in attachments],
        "about_type": about[0] if about else None, "about_id": about[1] if about else None,
        "status": "queued", "attempts": 0, "last_error": None, "sent_at": None,
        "created_at": clock.utcnow(),
    }


def enqueue_messages(session: Session, scope: Scope, rows: Sequence[dict[str, Any]]
                     ) -> list[OutboxMessage]:
    """Queue the messages ``email_values`` made, each with its delivery job: one INSERT of
    the messages and one of the jobs, however many (a batch of rendered invoices queues
    its emails together; a flush of new objects costs more)."""
    if not rows:
        return []
    # One row directly: a payment's receipt email is one, on the payment's path.
    _INSERT_MESSAGE.run_many(session, rows)
    messages: list[OutboxMessage] = [persisted(session, OutboxMessage, dict(row))
                                     for row in rows]
    # The keys are the ids of messages made just now: no job can hold them yet.
    jobs.enqueue_many(session, kind=DELIVER, scope=scope,
                      items=[(row["id"], {"message_id": row["id"]}) for row in rows])
    return messages


_INSERT_MESSAGE = Direct(cast(Table, OutboxMessage.__table__).insert())


def _addresses(name: str, values: Sequence[str], errors: list[FieldError]) -> list[str]:
    if isinstance(values, str):
        values = [values]
    addresses = []
    for index, value in enumerate(values):
        try:
            addresses.append(_normalized(value) if isinstance(value, str) else
                             str(validate_email(value, check_deliverability=False).normalized))
        except EmailNotValidError as exc:
            errors.append(FieldError(f"{name}[{index}]", str(exc)))
    return addresses


# A customer's address is checked for every email it is sent (each payment's receipt):
# ~35 µs of email_validator a time. An address that fails is not kept (it raises).
@lru_cache(maxsize=4096)
def _normalized(address: str) -> str:
    return str(validate_email(address, check_deliverability=False).normalized)


def _check_attachment(name: str, attachment: Attachment, errors: list[FieldError]) -> None:
    if not attachment.filename or any(c in attachment.filename for c in "/\\\r\n\0"):
        errors.append(FieldError(f"{name}.filename", "must be a plain file name"))
    if not _CONTENT_TYPE.fullmatch(attachment.content_type):
        errors.append(FieldError(f"{name}.content_type", "must be a MIME type like "
                                 "application/pdf"))
    try:
        check_key(attachment.file_key)
    except UnsafeFileKey as exc:
        errors.append(FieldError(f"{name}.file_key", exc.detail))


def deliveries_for(session: Session, scope: Scope, about_type: str, about_id: str
                   ) -> list[OutboxMessage]:
    """Every message about one object, oldest first, with its delivery status."""
    return deliveries_about(session, scope, about_type, [about_id]).get(about_id, [])


def deliveries_about(session: Session, scope: Scope, about_type: str,
                     about_ids: Collection[str]) -> dict[str, list[OutboxMessage]]:
    """``deliveries_for`` of many objects at once: their ids to their messages, oldest
    first (an object with none is left out)."""
    found: dict[str, list[OutboxMessage]] = {}
    for chunk in chunks(about_ids):
        for message in session.scalars(select(OutboxMessage).where(
                OutboxMessage.tenant_id == scope.tenant_id, OutboxMessage.mode == scope.mode,
                OutboxMessage.about_type == about_type,
                among(session, OutboxMessage.about_id, chunk),
        ).order_by(OutboxMessage.created_at, OutboxMessage.id)):
            found.setdefault(str(message.about_id), []).append(message)
    return found


class DeliverMessage:
    """Handler of ``notifications.deliver`` jobs. It sends inside the job's transaction,
    so a crash after sending and before commit sends again on retry (at least once)."""

    def __init__(self, settings: Settings,
                 listeners: Mapping[str, OutcomeListener] | None = None) -> None:
        self.settings = settings
        self.files = FileStore(settings.data_dir)
        self.listeners = dict(listeners or {})

    def __call__(self, session: Session, job: jobs.Job) -> None:
        message = _message_of(session, job)
        if message.status != "queued":
            return  # an earlier run sent it, and only its "done" was lost
        refused = mailer.send(message, settings=self.settings, files=self.files)
        message.status = "sent"
        message.sent_at = clock.utcnow()
        message.attempts = job.attempts
        if refused:
            message.last_error = "the SMTP server refused " + ", ".join(refused)
        self._tell(session, message)

    def on_failure(self, session: Session, job: jobs.Job, error: str) -> None:
        message = _message_of(session, job)
        message.attempts = job.attempts
        message.last_error = error
        if job.status == "dead":
            message.status = "failed"
            self._tell(session, message)

    def _tell(self, session: Session, message: OutboxMessage) -> None:
        listener = self.listeners.get(message.about_type or "")
        if listener is None:
            return
        # The message is sent: a listener that fails must not roll that back (and send
        # the message again on retry).
        try:
            with session.begin_nested():
                listener(session, message)
        except Exception:
            log.exception("outcome listener for %s %s failed", message.about_type,
                          message.about_id)


def _message_of(session: Session, job: jobs.Job) -> OutboxMessage:
    message_id = str(job.payload["message_id"])
    message = session.get(OutboxMessage, message_id, with_for_update=True)
    if message is None:
        raise NotFound("outbox_message", message_id)
    return message


def handlers(settings: Settings, *, listeners: Mapping[str, OutcomeListener] | None = None
             ) -> dict[str, jobs.Handler]:
    """The job handlers of this package, for ``jobs.run_pending``; ``listeners`` hear of
    each message that is sent or fails for good, by the type of object it is about."""
    return {DELIVER: DeliverMessage(settings, listeners)}
