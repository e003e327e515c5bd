"""Messages waiting in, or delivered from, the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from billfold.core.db import Base, TenantScoped

CHANNELS = ("email",)
STATUSES = ("queued", "sent", "failed")


class OutboxMessage(TenantScoped, Base):
    __tablename__ = "outbox_message"
    __table_args__ = (Index(None, "tenant_id", "mode", "about_type", "about_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    to: Mapped[list[Any]]  # addresses
    cc: Mapped[list[Any]]
    subject: Mapped[str] = mapped_column(String(500))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    # [{"filename", "content_type", "file_key"}], file_key naming a FileStore file.
    attachments: Mapped[list[Any]]
    # The object the message is about ("invoice", "inv_…"), to show its deliveries.
    about_type: Mapped[str | None] = mapped_column(String(40))
    about_id: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(8))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
