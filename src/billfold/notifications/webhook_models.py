"""Webhook endpoints, the events sent to them, and every delivery of a webhook or postback."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billfold.core.db import Base, TenantScoped
from billfold.notifications import signing

ENDPOINT_STATUSES = ("enabled", "disabled")
DELIVERY_KINDS = ("webhook", "postback")
# queued: waiting for its first or next attempt; succeeded: a 2xx came back; failed: will
# not be tried again (410 Gone, endpoint disabled); dead: every scheduled attempt failed.
DELIVERY_STATUSES = ("queued", "succeeded", "failed", "dead")
CONTENT_TYPES = ("application/json", "application/x-www-form-urlencoded")
# How long a replaced secret keeps signing beside the new one, so receivers can switch
# over without dropping a message.
ROTATION_OVERLAP = timedelta(hours=24)


class RotatingSecret:
    """A signing secret and the one it replaced, which stays valid for a while.

    The secret is stored as it is, not hashed like an API key: signing needs the secret
    itself, while an API key only has to be compared."""

    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_until: Mapped[datetime | None]

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets to sign with at ``now``: the current one, then the previous one
        while its overlap lasts."""
        secrets = [self.secret]
        if (self.previous_secret and self.previous_secret_until is not None
                and now < self.previous_secret_until):
            secrets.append(self.previous_secret)
        return secrets

    def rotate(self, now: datetime) -> str:
        """Replace the secret; the old one keeps signing for ``ROTATION_OVERLAP``. A secret
        replaced earlier is dropped even if its overlap had not run out."""
        self.previous_secret, self.previous_secret_until = self.secret, now + ROTATION_OVERLAP
        self.secret = signing.new_secret()
        return self.secret


def subscribed(enabled_events: Sequence[str], event_type: str) -> bool:
    """Whether an endpoint with these ``enabled_events`` is sent events of this type."""
    return "*" in enabled_events or event_type in enabled_events


class WebhookEndpoint(RotatingSecret, TenantScoped, Base):
    __tablename__ = "webhook_endpoint"
    __table_args__ = (Index(None, "tenant_id", "mode", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(500))
    # Event types, or ["*"] for every type.
    enabled_events: Mapped[list[Any]]
    status: Mapped[str] = mapped_column(String(8))
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    def subscribes_to(self, event_type: str) -> bool:
        return self.status == "enabled" and subscribed(self.enabled_events, event_type)

    def disable(self, reason: str, now: datetime) -> None:
        self.status, self.disabled_reason, self.updated_at = "disabled", reason, now


class Event(TenantScoped, Base):
    """Something that happened, as sent to webhook endpoints; kept so deliveries can be
    listed and resent by event."""

    __tablename__ = "event"
    __table_args__ = (
        Index(None, "tenant_id", "mode", "id"),
        Index(None, "tenant_id", "mode", "about_type", "about_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type: Mapped[str] = mapped_column(String(80))
    data: Mapped[dict[str, Any]]
    # The object the event is about ("payment", "pay_…").
    about_type: Mapped[str | None] = mapped_column(String(40))
    about_id: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime]


class WebhookDelivery(TenantScoped, Base):
    """One message to one URL: a webhook event for an endpoint, or a postback. A resend
    is a new delivery with the same body and ``msg_id``."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        Index(None, "tenant_id", "mode", "id"),
        Index(None, "tenant_id", "mode", "endpoint_id", "id"),
        Index(None, "tenant_id", "mode", "about_type", "about_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    endpoint_id: Mapped[str | None] = mapped_column(ForeignKey("webhook_endpoint.id"))
    event_id: Mapped[str | None] = mapped_column(ForeignKey("event.id"))
    event_type: Mapped[str | None] = mapped_column(String(80))
    url: Mapped[str] = mapped_column(String(2000))
    content_type: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)  # exactly the bytes sent, as UTF-8
    # The webhook-id header, which receivers deduplicate by: the event id for webhooks,
    # the first delivery's id for postbacks, and unchanged by retries and resends.
    msg_id: Mapped[str] = mapped_column(String(40))
    # Whether the target may be a private or loopback address; the caller's decision.
    allow_private: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    about_type: Mapped[str | None] = mapped_column(String(40))
    about_id: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class PostbackSecret(RotatingSecret, TenantScoped, Base):
    """The secret that signs a tenant's postbacks in one mode."""

    __tablename__ = "postback_secret"
    __table_args__ = (UniqueConstraint("tenant_id", "mode"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime]
    rotated_at: Mapped[datetime | None]
