"""Issuing, checking and revoking API keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, inspect, select
from sqlalchemy.orm import Session

from billfold.access.models import ApiKey
from billfold.core import clock, db, ids
from billfold.core.errors import NotFound, Unauthorized, invalid
from billfold.core.scope import MODES, Mode, Scope
from billfold.tenants import service as tenants
from billfold.tenants.models import TenantSettings


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ApiKey
    secret: str  # the only time the full key exists outside the caller's hands


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(session: Session, *, tenant_id: str, mode: str) -> IssuedKey:
    if mode not in MODES:
        raise invalid("mode", "must be test or live")
    tenants.get_tenant(session, tenant_id)
    secret = f"bf_{mode}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        id=ids.new_id("api_key"), tenant_id=tenant_id, mode=mode, key_hash=_digest(secret),
        hint=f"bf_{mode}_…{secret[-4:]}", created_at=clock.utcnow(), revoked_at=None,
    )
    session.add(key)
    session.flush()
    return IssuedKey(key, secret)


# Built once: every request runs it, and building a statement costs more than running it.
# The key's columns and the tenant's settings row (nearly every request reads the
# settings), as plain columns run on the driver's cursor (db.Direct); the settings become
# an instance here, the way a query would build it.
_SETTINGS_COLUMNS = tuple(cast(Table, TenantSettings.__table__).columns)
_SETTINGS_ATTRIBUTES = tuple(inspect(TenantSettings).get_property_by_column(column).key
                             for column in _SETTINGS_COLUMNS)
_KEY_AND_SETTINGS = db.Direct(
    select(ApiKey.key_hash, ApiKey.revoked_at, ApiKey.tenant_id, ApiKey.mode,
           *(column.label(f"settings_{column.key}") for column in _SETTINGS_COLUMNS))
    .join(TenantSettings, (TenantSettings.tenant_id == ApiKey.tenant_id)
          & (TenantSettings.mode == ApiKey.mode))
    .where(ApiKey.key_hash == bindparam("digest")))
_KEY_COLUMNS = 4


@dataclass(frozen=True, slots=True)
class Grant:
    """What looking a key up found: the scope it grants and its tenant's settings as they
    were read, for ``adopt`` to hand to a later session of the same request."""

    scope: Scope
    row: Any


def authenticate(session: Session, secret: str) -> Scope:
    """The scope a key grants. Unknown, malformed and revoked keys all fail the same way."""
    return adopt(session, look_up(session, secret))


def look_up(session: Session, secret: str) -> Grant:
    """The key's grant (Unauthorized as authenticate), not yet adopted by ``session``."""
    if not secret.startswith(("bf_test_", "bf_live_")) or len(secret) > 100:
        raise Unauthorized()
    digest = _digest(secret)
    rows = _KEY_AND_SETTINGS.run(session, {"digest": digest})
    found = rows[0] if rows else None
    # The lookup is by digest; comparing the digests again in constant time keeps the
    # final decision independent of how much of the value matched.
    if found is None:
        raise Unauthorized()
    key_hash, revoked_at, tenant_id, key_mode = found[:_KEY_COLUMNS]
    if not hmac.compare_digest(key_hash, digest) or revoked_at is not None:
        raise Unauthorized()
    mode: Mode = "live" if key_mode == "live" else "test"
    return Grant(Scope(tenant_id, mode), found)


def adopt(session: Session, grant: Grant) -> Scope:
    """``grant``'s scope, its settings cached in ``session`` for the rest of the
    transaction (tenants.get_settings returns them without a query)."""
    tenants.remember_settings(session, grant.scope, _settings_instance(session, grant.row))
    return grant.scope


def _settings_instance(session: Session, row: Any) -> TenantSettings:
    key = session.identity_key(TenantSettings, (row.settings_tenant_id, row.settings_mode))
    known = session.identity_map.get(key)
    if known is not None:  # loaded earlier in this session: that one is current
        return cast(TenantSettings, known)
    values = dict(zip(_SETTINGS_ATTRIBUTES, row[_KEY_COLUMNS:], strict=True))
    return cast(TenantSettings, db.persisted(session, TenantSettings, values))


def revoke_api_key(session: Session, *, tenant_id: str, key_id: str) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None or key.tenant_id != tenant_id:
        raise NotFound("api_key", key_id)
    if key.revoked_at is None:
        key.revoked_at = clock.utcnow()
    return key


def list_api_keys(session: Session, scope: Scope) -> list[ApiKey]:
    return list(session.scalars(
        select(ApiKey).where(ApiKey.tenant_id == scope.tenant_id, ApiKey.mode == scope.mode)
        .order_by(ApiKey.id)
    ))


def hint_of(secret: str) -> str:
    return f"{secret[:8]}…{secret[-4:]}"
