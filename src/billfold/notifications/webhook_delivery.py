"""Sending one webhook or postback delivery: the ``notifications.webhook`` job handler and
its retry schedule.

``jobs.fail`` backs off exponentially from 30 s to an hour, which cannot be made to follow
the schedule below. So a failed attempt is recorded on the delivery, its job completes,
and the next attempt is a new job (key ``<delivery id>.<attempt>``) due at the scheduled
time. The job's own retries are left for a handler that crashes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import cast

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from billfold.core import clock, jobs
from billfold.core.config import Settings
from billfold.core.errors import NotFound
from billfold.core.scope import Mode, Scope
from billfold.notifications import pinned_http, signing, targets
from billfold.notifications.webhook_models import PostbackSecret, WebhookDelivery, WebhookEndpoint

DELIVER_WEBHOOK = "notifications.webhook"
USER_AGENT = "Billfold-Webhooks/1"
# The waits before the 2nd to 8th attempts, after the one before failed: the schedule of
# Standard Webhooks senders (Svix), about 28 hours in all, so a receiver that is down for
# a day still gets the message. After the 8th failure the delivery is dead.
RETRY_DELAYS = (
    timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
    timedelta(hours=5), timedelta(hours=10), timedelta(hours=10),
)
MAX_ATTEMPTS = 1 + len(RETRY_DELAYS)
MAX_ERROR_LENGTH = 1000
GONE_REASON = "410 Gone"


def enqueue_attempt(session: Session, delivery: WebhookDelivery, *, attempt: int = 1,
                    run_after: datetime | None = None) -> jobs.Job:
    """The job that makes attempt number ``attempt`` of ``delivery``, due at ``run_after``
    (now if not given)."""
    key = delivery.id if attempt == 1 else f"{delivery.id}.{attempt}"
    return jobs.enqueue(session, kind=DELIVER_WEBHOOK, key=key,
                        scope=Scope(delivery.tenant_id, cast(Mode, delivery.mode)),
                        payload={"delivery_id": delivery.id, "attempt": attempt},
                        run_after=run_after)


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None  # None when no response came back
    error: str | None  # None when the receiver answered 2xx


# Whether a scope may send to private addresses now (tenants.private_targets_allowed: test
# mode with the tenant's allow_private_postback_targets on).
PrivateAllowed = Callable[[Session, Scope], bool]


class DeliverWebhook:
    """Handler of ``notifications.webhook`` jobs. It sends inside the job's transaction,
    so a crash after sending and before commit sends again: delivery is at least once,
    and receivers drop duplicates by their ``webhook-id``.

    With ``private_allowed``, a delivery queued while its scope could send to private
    addresses goes there only if the scope still can when the attempt is made: a tenant
    that turns the setting off stops its retries and resends too."""

    def __init__(self, private_allowed: PrivateAllowed | None = None) -> None:
        self._private_allowed = private_allowed

    def __call__(self, session: Session, job: jobs.Job) -> None:
        delivery = _delivery_of(session, job)
        if delivery.status != "queued" or delivery.attempts != _attempt_of(job) - 1:
            return  # a stale job: this attempt was made and recorded already
        now = clock.utcnow()
        secrets = _signing_secrets(session, delivery, now)
        if secrets is None:
            _give_up(delivery, "failed", "the webhook endpoint is disabled")
            return
        delivery.attempts += 1
        allow_private = delivery.allow_private and (
            self._private_allowed is None or self._private_allowed(
                session, Scope(delivery.tenant_id, cast(Mode, delivery.mode))))
        outcome = _send(delivery, secrets, now, allow_private=allow_private)
        delivery.last_status_code = outcome.status_code
        if outcome.error is None:
            delivery.status, delivery.delivered_at = "succeeded", now
            delivery.next_attempt_at = delivery.last_error = None
        elif outcome.status_code == HTTPStatus.GONE and delivery.kind == "webhook":
            _endpoint_of(session, delivery).disable(GONE_REASON, now)
            _give_up(delivery, "failed", f"{outcome.error}: the endpoint was disabled")
        else:
            _retry_later(session, delivery, outcome.error, now)

    def on_failure(self, session: Session, job: jobs.Job, error: str) -> None:
        delivery = _delivery_of(session, job)
        if job.status == "dead":
            _give_up(delivery, "dead", error)
        else:
            delivery.last_error = error[:MAX_ERROR_LENGTH]


def _send(delivery: WebhookDelivery, secrets: list[str], now: datetime, *,
          allow_private: bool) -> Outcome:
    """POST the delivery's body, signed with ``secrets``; never raises for a failure the
    receiver or the network caused."""
    body = delivery.body.encode()
    headers = {"content-type": delivery.content_type, "user-agent": USER_AGENT,
               **signing.headers(secrets, delivery.msg_id, int(now.timestamp()), body)}
    try:
        status_code = pinned_http.post(delivery.url, body=body, headers=headers,
                                       allow_private=allow_private)
    except targets.UnsafeTarget as exc:
        return Outcome(None, f"unsafe target: {exc.detail}")
    except targets.UnresolvableTarget as exc:
        return Outcome(None, exc.detail)
    except httpx.TimeoutException:
        return Outcome(None, f"no response within {pinned_http.TIMEOUT_SECONDS:g} s")
    except httpx.HTTPError as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}")
    if 200 <= status_code < 300:
        return Outcome(status_code, None)
    return Outcome(status_code, f"HTTP {status_code} {_phrase(status_code)}".rstrip())


def _retry_later(session: Session, delivery: WebhookDelivery, error: str, now: datetime
                 ) -> None:
    if delivery.attempts >= MAX_ATTEMPTS:
        _give_up(delivery, "dead", error)
        return
    delivery.last_error = error[:MAX_ERROR_LENGTH]
    delivery.next_attempt_at = now + RETRY_DELAYS[delivery.attempts - 1]
    enqueue_attempt(session, delivery, attempt=delivery.attempts + 1,
                    run_after=delivery.next_attempt_at)


def _give_up(delivery: WebhookDelivery, status: str, error: str) -> None:
    delivery.status, delivery.next_attempt_at = status, None
    delivery.last_error = error[:MAX_ERROR_LENGTH]


def _signing_secrets(session: Session, delivery: WebhookDelivery, now: datetime
                     ) -> list[str] | None:
    """The secrets to sign with, or None if the delivery's endpoint is disabled. A webhook
    goes to its endpoint's current URL, so a corrected URL takes effect on retries."""
    if delivery.kind == "webhook":
        endpoint = _endpoint_of(session, delivery)
        if endpoint.status != "enabled":
            return None
        delivery.url = endpoint.url
        return endpoint.signing_secrets(now)
    secret = session.scalars(select(PostbackSecret).where(
        PostbackSecret.tenant_id == delivery.tenant_id,
        PostbackSecret.mode == delivery.mode)).one_or_none()
    if secret is None:
        raise NotFound("postback_secret", f"{delivery.tenant_id}/{delivery.mode}")
    return secret.signing_secrets(now)


def _delivery_of(session: Session, job: jobs.Job) -> WebhookDelivery:
    delivery_id = str(job.payload["delivery_id"])
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None:
        raise NotFound("webhook_delivery", delivery_id)
    return delivery


def _endpoint_of(session: Session, delivery: WebhookDelivery) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id or "")
    if endpoint is None:
        raise NotFound("webhook_endpoint", str(delivery.endpoint_id))
    return endpoint


def _attempt_of(job: jobs.Job) -> int:
    return int(job.payload.get("attempt", 1))


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return ""


def handlers(settings: Settings, *, private_allowed: PrivateAllowed | None = None
             ) -> dict[str, jobs.Handler]:
    """The webhook job handler, for ``jobs.run_pending``. ``settings`` is taken like every
    package's ``handlers``; nothing in it concerns webhooks yet. ``private_allowed``: see
    DeliverWebhook (the worker passes tenants.private_targets_allowed)."""
    return {DELIVER_WEBHOOK: DeliverWebhook(private_allowed)}
