"""SSO credentials for the payer portal: ``POST /v1/sso/credentials`` creates or rotates
the mode's client GUID and encryption key (shown once), ``GET`` says what is configured
without the key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from billfold.access import sso
from billfold.access.models import SsoCredential
from billfold.core import clock
from billfold.core.db import transaction
from billfold.core.scope import Scope
from billfold.web.deps import ApiCaller, DbSession
from billfold.web.routing import Router

router = Router(prefix="/v1")


class CredentialsOut(BaseModel):
    client_guid: str = Field(description="The token's iss")
    encryption_key: str = Field(description="256-bit key, base64url without padding: the JWE "
                                "key for alg dir, enc A256GCM. Shown only in this response.")
    sso_url: str = Field(description="Where the payer is sent with ?token=…; also the token's aud")
    mode: str
    previous_key_retires_at: datetime | None = Field(
        description="Until when the key this one replaces is still accepted")


class CredentialsInfo(BaseModel):
    configured: bool
    client_guid: str | None
    sso_url: str | None
    mode: str
    created_at: datetime | None
    previous_key_retires_at: datetime | None


@router.post("/sso/credentials", response_model=CredentialsOut, tags=["sso"])
def rotate_credentials(request: Request, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    """Create the mode's SSO credentials, or rotate the key (the client GUID and sso_url
    stay; the previous key keeps working for the tenant's ``sso_key_overlap_minutes``)."""
    with transaction(db):
        made = sso.rotate(db, caller.scope, base_url=str(request.app.state.settings.base_url))
        return {"client_guid": made.client_guid, "encryption_key": made.encryption_key,
                "sso_url": made.sso_url, "mode": caller.scope.mode,
                "previous_key_retires_at": _retiring(db, caller.scope)}


@router.get("/sso/credentials", response_model=CredentialsInfo, tags=["sso"])
def get_credentials(request: Request, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    current = sso.current(db, caller.scope, base_url=str(request.app.state.settings.base_url))
    created = db.scalar(select(SsoCredential.created_at).where(
        SsoCredential.tenant_id == caller.scope.tenant_id, SsoCredential.mode == caller.scope.mode,
        SsoCredential.retires_at.is_(None)).order_by(SsoCredential.created_at.desc()).limit(1))
    return {"configured": current is not None,
            "client_guid": current.client_guid if current else None,
            "sso_url": current.sso_url if current else None, "mode": caller.scope.mode,
            "created_at": created, "previous_key_retires_at": _retiring(db, caller.scope)}


def _retiring(db: Session, scope: Scope) -> datetime | None:
    return db.scalar(select(SsoCredential.retires_at).where(
        SsoCredential.tenant_id == scope.tenant_id, SsoCredential.mode == scope.mode,
        SsoCredential.retires_at > clock.utcnow())
        .order_by(SsoCredential.retires_at.desc()).limit(1))
