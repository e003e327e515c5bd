from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from billfold.core.db import Base, TenantScoped, UTCDateTime


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


PAYER_ROLES = ("owner", "payer", "viewer")
GRANT_SOURCES = ("sso", "registration", "invitation", "staff")
TOKEN_PURPOSES = ("reset_password", "registration", "invitation")


class PayerUser(TenantScoped, Base):
    """A person who signs in to the payer portal of one biller (in one mode). One payer
    user may hold grants on any number of that biller's billing accounts."""

    __tablename__ = "payer_user"
    __table_args__ = (
        Index(None, "tenant_id", "mode", "email", unique=True),
        Index(None, "tenant_id", "mode", "sso_subject", unique=True),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(254))  # lower case: the login name
    name: Mapped[str] = mapped_column(String(200))
    # argon2id; empty for a user who only ever arrived by SSO.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The biller's own user name (the SSO token's sub); empty for a self-registered user.
    sso_subject: Mapped[str | None] = mapped_column(String(200))
    # Raised by "sign out everywhere" and by a password change: sessions carry the value
    # they were made with and die when it moves on.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    preferred_language: Mapped[str | None] = mapped_column(String(35))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PayerGrant(TenantScoped, Base):
    """What a payer user may do with one billing account."""

    __tablename__ = "payer_grant"
    __table_args__ = (
        Index(None, "payer_user_id", "billing_account_id", unique=True),
        Index(None, "tenant_id", "mode", "billing_account_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payer_user_id: Mapped[str] = mapped_column(ForeignKey("payer_user.id"))
    billing_account_id: Mapped[str] = mapped_column(ForeignKey("billing_account.id"))
    role: Mapped[str] = mapped_column(String(10))  # PAYER_ROLES
    source: Mapped[str] = mapped_column(String(12))  # GRANT_SOURCES
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PayerSession(TenantScoped, Base):
    """A signed-in browser. The cookie holds a random token; only its digest is kept."""

    __tablename__ = "payer_session"
    __table_args__ = (Index(None, "token_hash", unique=True), Index(None, "payer_user_id"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payer_user_id: Mapped[str] = mapped_column(ForeignKey("payer_user.id"))
    token_hash: Mapped[str] = mapped_column(String(64))
    epoch: Mapped[int] = mapped_column(Integer)
    # How the session began: "password" or "sso" (then the token's jti).
    method: Mapped[str] = mapped_column(String(10))
    sso_jti: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PayerToken(TenantScoped, Base):
    """A one-use link sent by email: verify an address, reset a password, or finish a
    registration (``data`` then holds the account to grant). Only the digest is kept."""

    __tablename__ = "payer_token"
    __table_args__ = (Index(None, "token_hash", unique=True),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payer_user_id: Mapped[str] = mapped_column(ForeignKey("payer_user.id"))
    purpose: Mapped[str] = mapped_column(String(20))  # TOKEN_PURPOSES
    token_hash: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SsoCredential(TenantScoped, Base):
    """A mode's SSO key. Rotation makes a new row and retires the old one at
    ``retires_at`` (the overlap), during which tokens under either key are accepted."""

    __tablename__ = "sso_credential"
    __table_args__ = (Index(None, "tenant_id", "mode", "created_at"), Index(None, "client_guid"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    client_guid: Mapped[str] = mapped_column(String(36))  # the same across rotations
    key: Mapped[str] = mapped_column(String(64))  # base64url of 32 random bytes
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SsoTokenUse(Base):
    """Every accepted token's ``jti``, kept past its expiry: the primary key refuses a
    second use, however many submissions race."""

    __tablename__ = "sso_token_use"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    mode: Mapped[str] = mapped_column(String(4), primary_key=True)
    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    payer_session_id: Mapped[str | None] = mapped_column(String(40))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
