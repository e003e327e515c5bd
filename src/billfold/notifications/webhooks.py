"""Webhooks and postbacks: endpoints a tenant registers, events emitted to them, postbacks
to a URL given per payment, and their deliveries.

Everything is written in the caller's transaction with the job that sends it after commit
(STYLE.md rule 5); ``webhook_delivery`` sends, signed the Standard Webhooks way. Whether a
tenant may send to private addresses is the caller's decision, passed as ``allow_private``."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlencode

from sqlalchemy import Table, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billfold.core import clock, txcache
from billfold.core.db import Direct, get_scoped, persisted
from billfold.core.errors import Conflict, FieldError, ValidationFailed
from billfold.core.ids import new_id
from billfold.core.scope import Scope
from billfold.notifications import signing, targets
from billfold.notifications.webhook_delivery import DELIVER_WEBHOOK, enqueue_attempt, handlers
from billfold.notifications.webhook_models import (
    ENDPOINT_STATUSES,
    Event,
    PostbackSecret,
    WebhookDelivery,
    WebhookEndpoint,
    subscribed,
)

__all__ = [
    "DELIVER_WEBHOOK", "EVENT_TYPES", "create_endpoint", "emit", "enqueue_postback",
    "get_delivery", "get_endpoint", "handlers", "list_deliveries", "list_endpoints", "resend",
    "rotate_endpoint_secret", "rotate_postback_secret", "update_endpoint",
]

EVENT_TYPES = (
    "payment.succeeded", "payment.failed", "payment.refunded", "payment.returned",
    "payment.disputed", "invoice.paid", "entry.balanced", "entry.assigned",
)
ENDPOINT_FIELDS = ("url", "enabled_events", "description", "status")
_EVENT_TYPE = re.compile(r"[a-z][a-z_]*(\.[a-z][a-z_]*)+")
MAX_DESCRIPTION_LENGTH = 500

About = tuple[str, str] | None


# -- endpoints -------------------------------------------------------------------------


def create_endpoint(session: Session, scope: Scope, *, url: str, enabled_events: Sequence[str],
                    description: str | None = None, allow_private: bool,
                    known_events: Sequence[str] = EVENT_TYPES) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint for the event types in ``enabled_events`` (each one of
    ``known_events``, or "*" for all). Returns it with its signing secret, to show once."""
    errors: list[FieldError] = []
    _check_target("url", url, allow_private, errors)
    events = _check_events(enabled_events, known_events, errors)
    _check_description(description, errors)
    if errors:
        raise ValidationFailed(errors)
    now = clock.utcnow()
    endpoint = WebhookEndpoint(
        id=new_id("webhook_endpoint"), tenant_id=scope.tenant_id, mode=scope.mode, url=url,
        description=description or None, enabled_events=events, secret=signing.new_secret(),
        status="enabled", created_at=now, updated_at=now)
    session.add(endpoint)
    txcache.forget(session)  # emit() keeps the endpoints of the transaction
    return endpoint, endpoint.secret


def get_endpoint(session: Session, scope: Scope, endpoint_id: str) -> WebhookEndpoint:
    endpoint: WebhookEndpoint = get_scoped(session, WebhookEndpoint, endpoint_id, scope,
                                           "webhook_endpoint")
    return endpoint


def list_endpoints(session: Session, scope: Scope, *, limit: int,
                   starting_after: str | None = None) -> list[WebhookEndpoint]:
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == scope.tenant_id,
                                         WebhookEndpoint.mode == scope.mode)
    if starting_after:
        stmt = stmt.where(WebhookEndpoint.id > starting_after)
    return list(session.scalars(stmt.order_by(WebhookEndpoint.id).limit(limit)))


def update_endpoint(session: Session, scope: Scope, *, endpoint_id: str,
                    changes: Mapping[str, Any], allow_private: bool,
                    known_events: Sequence[str] = EVENT_TYPES) -> WebhookEndpoint:
    """Change an endpoint's url, enabled_events, description or status ("enabled" or
    "disabled"). Enabling it again clears why it was disabled."""
    endpoint: WebhookEndpoint = get_scoped(session, WebhookEndpoint, endpoint_id, scope,
                                           "webhook_endpoint", for_update=True)
    errors = [FieldError(name, "is not a webhook endpoint field", "unknown_field")
              for name in sorted(set(changes) - set(ENDPOINT_FIELDS))]
    if "url" in changes:
        _check_target("url", changes["url"], allow_private, errors)
    events = (_check_events(changes["enabled_events"], known_events, errors)
              if "enabled_events" in changes else endpoint.enabled_events)
    _check_description(changes.get("description"), errors)
    status = changes.get("status", endpoint.status)
    if status not in ENDPOINT_STATUSES:
        errors.append(FieldError("status", "must be enabled or disabled"))
    if errors:
        raise ValidationFailed(errors)
    endpoint.url = changes.get("url", endpoint.url)
    endpoint.enabled_events = events
    if "description" in changes:
        endpoint.description = changes["description"] or None
    if status != endpoint.status:
        endpoint.status = status
        endpoint.disabled_reason = "disabled by the biller" if status == "disabled" else None
    endpoint.updated_at = clock.utcnow()
    txcache.forget(session)
    return endpoint


def rotate_endpoint_secret(session: Session, scope: Scope, *, endpoint_id: str
                           ) -> tuple[WebhookEndpoint, str]:
    """Give the endpoint a new secret, to show once; messages carry a signature by the old
    one too for the next 24 hours, while the receiver switches over."""
    endpoint: WebhookEndpoint = get_scoped(session, WebhookEndpoint, endpoint_id, scope,
                                           "webhook_endpoint", for_update=True)
    now = clock.utcnow()
    secret = endpoint.rotate(now)
    endpoint.updated_at = now
    return endpoint, secret


def _check_target(name: str, url: Any, allow_private: bool, errors: list[FieldError]) -> None:
    if not isinstance(url, str):
        errors.append(FieldError(name, "must be a URL"))
        return
    try:
        targets.check_target(url, allow_private=allow_private)
    except (targets.UnsafeTarget, targets.UnresolvableTarget) as exc:
        errors.append(FieldError(name, exc.detail, exc.code))


def _check_events(values: Any, known: Sequence[str], errors: list[FieldError]) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        errors.append(FieldError("enabled_events", "must list at least one event type or *"))
        return []
    wrong = [FieldError(f"enabled_events[{index}]",
                        f"is not an event type: {', '.join(known)} or *")
             for index, value in enumerate(values)
             if not isinstance(value, str) or (value != "*" and value not in known)]
    errors.extend(wrong)
    return [] if wrong else list(dict.fromkeys(values))


def _check_description(description: Any, errors: list[FieldError]) -> None:
    if description is not None and (not isinstance(description, str)
                                    or len(description) > MAX_DESCRIPTION_LENGTH):
        errors.append(FieldError("description", f"must be text of at most "
                                 f"{MAX_DESCRIPTION_LENGTH} characters"))


# -- events ----------------------------------------------------------------------------


def emit(session: Session, scope: Scope, *, type: str, data: dict[str, Any], about: About,
         allow_private: bool) -> Event:
    """Record an event and queue one delivery of it to every enabled endpoint subscribed
    to its type. The body is ``{"type", "timestamp", "data"}``; receivers deduplicate by
    the event id, sent as ``webhook-id``."""
    return emit_many(session, scope, [(type, data, about)], allow_private=allow_private)[0]


def emit_many(session: Session, scope: Scope,
              events: Sequence[tuple[str, dict[str, Any], About]], *,
              allow_private: bool) -> list[Event]:
    """``emit`` for several (type, data, about) at once, in that order: one INSERT for
    the lot (a payment that pays an invoice emits two events)."""
    now = clock.utcnow()
    rows: list[tuple[dict[str, Any], str, About]] = []
    for index, (type, data, about) in enumerate(events):
        errors: list[FieldError] = []
        if not _EVENT_TYPE.fullmatch(type):
            errors.append(FieldError("type", "must look like payment.succeeded"))
        _check_about(about, errors)
        body = _json_or_error("data", {"type": type, "timestamp": _iso(now), "data": data},
                              errors)
        if errors:
            raise ValidationFailed(errors if len(events) == 1 else [
                FieldError(f"events[{index}].{e.field}", e.message, e.code) for e in errors])
        rows.append(({"id": new_id("event"), "tenant_id": scope.tenant_id, "mode": scope.mode,
                      "type": type, "data": data, "about_type": about[0] if about else None,
                      "about_id": about[1] if about else None, "created_at": now}, body, about))
    if not rows:
        return []
    # Written at once with a prebuilt INSERT (several rows: one executemany).
    values = [row for row, _, _ in rows]
    _INSERT_EVENT.run_many(session, values)
    # A payment emits several events in one transaction; the endpoints are read once.
    endpoints = txcache.cached(session, _endpoints_key(scope),
                               lambda: _ENABLED_ENDPOINTS.run(session, endpoints_read(scope)[1]))
    made = []
    for row, body, about in rows:
        event: Event = persisted(session, Event, row)
        made.append(event)
        for endpoint in endpoints:
            if subscribed(endpoint.enabled_events, event.type):
                _queue(session, scope, kind="webhook", url=endpoint.url, body=body,
                       content_type="application/json", allow_private=allow_private,
                       about=about, endpoint_id=endpoint.id, event=event)
    return made


def endpoints_read(scope: Scope) -> tuple[Direct, dict[str, Any]]:
    """The read of the scope's enabled endpoints that events emitted in a transaction
    look up, for a caller that reads it together with its own (``db.read_together``)
    and gives the rows to ``endpoints_known``."""
    return _ENABLED_ENDPOINTS, {"tenant": scope.tenant_id, "mode": scope.mode}


def endpoints_known(session: Session, scope: Scope, rows: list[Any]) -> None:
    """The rows of ``endpoints_read``, read in this transaction: events emitted in it
    go to these endpoints without reading them again."""
    txcache.cached(session, _endpoints_key(scope), lambda: rows)


def _endpoints_key(scope: Scope) -> tuple[str, Scope]:
    return ("webhook_endpoints", scope)


_INSERT_EVENT = Direct(cast(Table, Event.__table__).insert())
# Built once: every payment asks (building the statement cost more than running it).
# What sending an event needs of each endpoint (the secret is read when it is sent).
_ENABLED_ENDPOINTS = Direct(
    select(WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.enabled_events).where(
        WebhookEndpoint.tenant_id == bindparam("tenant"), WebhookEndpoint.mode == bindparam("mode"),
        WebhookEndpoint.status == "enabled").order_by(WebhookEndpoint.id))


# -- postbacks -------------------------------------------------------------------------


def enqueue_postback(session: Session, scope: Scope, *, url: str,
                     form: Sequence[tuple[str, str]] | None = None,
                     json_body: dict[str, Any] | None = None, about: About,
                     allow_private: bool, event_type: str | None = None) -> WebhookDelivery:
    """Queue a postback of ``form`` (urlencoded) or ``json_body`` to ``url``, signed with
    the tenant's postback secret for the mode. Only the URL's form is checked now: its
    addresses are judged when it is sent, so a bad target fails the postback, never the
    payment that queued it."""
    errors: list[FieldError] = []
    try:
        targets.check_url(url)
    except targets.UnsafeTarget as exc:
        errors.append(FieldError("url", exc.detail, exc.code))
    _check_about(about, errors)
    content_type, body = _postback_body(form, json_body, errors)
    if errors:
        raise ValidationFailed(errors)
    _postback_secret(session, scope)
    return _queue(session, scope, kind="postback", url=url, body=body, content_type=content_type,
                  allow_private=allow_private, about=about, event_type=event_type)


def rotate_postback_secret(session: Session, scope: Scope) -> str:
    """A new postback secret for the tenant's mode, to show once. The one it replaces
    keeps signing beside it for 24 hours."""
    secret, created = _postback_secret(session, scope, for_update=True)
    if created:
        return secret.secret
    now = clock.utcnow()
    secret.rotated_at = now
    return secret.rotate(now)


def _postback_secret(session: Session, scope: Scope, *, for_update: bool = False
                     ) -> tuple[PostbackSecret, bool]:
    """The tenant's postback secret in this mode, made on first use; and whether it was
    made just now."""
    query = select(PostbackSecret).where(PostbackSecret.tenant_id == scope.tenant_id,
                                         PostbackSecret.mode == scope.mode)
    if for_update:
        query = query.with_for_update()
    found = session.scalars(query).one_or_none()
    if found is not None:
        return found, False
    secret = PostbackSecret(id=new_id("postback_secret"), tenant_id=scope.tenant_id,
                            mode=scope.mode, secret=signing.new_secret(),
                            created_at=clock.utcnow())
    try:
        with session.begin_nested():
            session.add(secret)
    except IntegrityError:
        # A concurrent transaction made the first secret and committed first.
        return session.scalars(query).one(), False
    return secret, True


def _postback_body(form: Sequence[tuple[str, str]] | None, json_body: dict[str, Any] | None,
                   errors: list[FieldError]) -> tuple[str, str]:
    if (form is None) == (json_body is None):
        errors.append(FieldError("form", "give either form or json_body"))
        return "", ""
    if json_body is not None:
        return "application/json", _json_or_error("json_body", json_body, errors)
    pairs = list(form or ())
    if not all(isinstance(p, tuple) and len(p) == 2 and all(isinstance(v, str) for v in p)
               for p in pairs):
        errors.append(FieldError("form", "must be pairs of strings"))
        return "", ""
    return "application/x-www-form-urlencoded", urlencode(pairs)


# -- deliveries ------------------------------------------------------------------------


def get_delivery(session: Session, scope: Scope, delivery_id: str) -> WebhookDelivery:
    delivery: WebhookDelivery = get_scoped(session, WebhookDelivery, delivery_id, scope,
                                           "webhook_delivery")
    return delivery


def list_deliveries(session: Session, scope: Scope, *, endpoint_id: str | None = None,
                    about: About = None, limit: int, starting_after: str | None = None
                    ) -> list[WebhookDelivery]:
    """Deliveries oldest first, of one endpoint or about one object if asked."""
    stmt = select(WebhookDelivery).where(WebhookDelivery.tenant_id == scope.tenant_id,
                                         WebhookDelivery.mode == scope.mode)
    if endpoint_id is not None:
        stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
    if about is not None:
        stmt = stmt.where(WebhookDelivery.about_type == about[0],
                          WebhookDelivery.about_id == about[1])
    if starting_after:
        stmt = stmt.where(WebhookDelivery.id > starting_after)
    return list(session.scalars(stmt.order_by(WebhookDelivery.id).limit(limit)))


def resend(session: Session, scope: Scope, delivery_id: str) -> WebhookDelivery:
    """Queue the same message again as a new delivery, due now. It keeps the body and
    ``msg_id``, so a receiver that did get the first copy can tell it is one."""
    original = get_delivery(session, scope, delivery_id)
    url = original.url
    if original.endpoint_id is not None:
        endpoint = get_endpoint(session, scope, original.endpoint_id)
        if endpoint.status != "enabled":
            raise Conflict("the webhook endpoint is disabled; enable it to resend",
                           code="endpoint_disabled")
        url = endpoint.url
    return _queue(session, scope, kind=original.kind, url=url, body=original.body,
                  content_type=original.content_type, allow_private=original.allow_private,
                  about=(original.about_type, original.about_id)
                  if original.about_type and original.about_id else None,
                  endpoint_id=original.endpoint_id, event_id=original.event_id,
                  event_type=original.event_type, msg_id=original.msg_id)


def _queue(session: Session, scope: Scope, *, kind: str, url: str, body: str,
           content_type: str, allow_private: bool, about: About,
           endpoint_id: str | None = None, event: Event | None = None,
           event_id: str | None = None, event_type: str | None = None,
           msg_id: str | None = None) -> WebhookDelivery:
    """A new queued delivery and the job of its first attempt."""
    delivery_id = new_id("webhook_delivery")
    delivery = WebhookDelivery(
        id=delivery_id, tenant_id=scope.tenant_id, mode=scope.mode, kind=kind,
        endpoint_id=endpoint_id, event_id=event.id if event else event_id,
        event_type=event.type if event else event_type, url=url, content_type=content_type,
        body=body, msg_id=msg_id or (event.id if event else delivery_id),
        allow_private=allow_private, status="queued", attempts=0,
        about_type=about[0] if about else None, about_id=about[1] if about else None,
        created_at=clock.utcnow())
    session.add(delivery)
    enqueue_attempt(session, delivery)
    return delivery


def _check_about(about: About, errors: list[FieldError]) -> None:
    if about is not None and not (about[0] and about[1] and len(about[0]) <= 40
                                  and len(about[1]) <= 80):
        errors.append(FieldError("about", "needs a type and an id"))


def _json_or_error(name: str, value: Any, errors: list[FieldError]) -> str:
    """Compact JSON with sorted keys: the exact text that is sent and signed."""
    try:
        return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        errors.append(FieldError(name, f"cannot be sent as JSON: {exc}"))
        return ""


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")
