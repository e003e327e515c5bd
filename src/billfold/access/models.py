from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from billfold.core.db import Base, TenantScoped


class ApiKey(TenantScoped, Base):
    """An API key is shown once; only its SHA-256 digest is kept."""

    __tablename__ = "api_key"
    __table_args__ = (Index(None, "key_hash", unique=True), Index(None, "tenant_id", "mode"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id"))
    key_hash: Mapped[str] = mapped_column(String(64))
    # e.g. "bf_live_…x7Qa": enough for a person to tell keys apart, useless to an attacker.
    hint: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
