"""Single sign-on from the biller's site into the payer portal (billtrust-invoice-sso.txt,
without its one-username-one-account limit).

The biller holds a client GUID and a 256-bit key per mode. It sends the payer to the
mode's ``sso_url`` with a compact JWE (``alg`` ``dir``, ``enc`` ``A256GCM``) whose claims
name the payer and the billing accounts they may see. An unencrypted token is never
accepted. Every refusal raises ``Refused`` with a reason for the log; the payer sees one
uniform page whatever the reason.

Each accepted ``jti`` is inserted into ``sso_token_use`` in the transaction that starts
the portal session: of any number of racing submissions of one token, one commits and the
rest fail on its primary key.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billfold.access import payers, preferences
from billfold.access.models import PayerUser, SsoCredential, SsoTokenUse
from billfold.core import clock, ids
from billfold.core.errors import ValidationFailed
from billfold.core.scope import MODES, Scope
from billfold.tenants import service as tenants

log = logging.getLogger(__name__)

ALGORITHMS = ("dir", "A256GCM")
MAX_LIFETIME = timedelta(minutes=5)  # exp - iat
SKEW = timedelta(seconds=60)
MAX_TOKEN_CHARS = 16_384
MAX_ACCOUNTS = 200
PREFERENCE_CLAIMS = ("paper_bill", "email_notify", "email_confirmations")


class Refused(Exception):
    """An SSO token was not accepted; ``reason`` is for the log, never for the payer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Credentials:
    client_guid: str
    encryption_key: str
    sso_url: str


def sso_url(base_url: str, mode: str, client_guid: str) -> str:
    return f"{base_url.rstrip('/')}/sso/{mode}/{client_guid}"


def rotate(session: Session, scope: Scope, *, base_url: str) -> Credentials:
    """Create the mode's credentials, or rotate its key: the client GUID stays, a new key
    is made, and the previous key keeps working for the tenant's overlap."""
    settings = tenants.get_settings(session, scope, for_update=True)  # one rotation at a time
    now = clock.utcnow()
    current = _live(session, scope, now)
    guid = current[0].client_guid if current else str(uuid.uuid4())
    for row in current:
        overlap = now + timedelta(minutes=settings.sso_key_overlap_minutes)
        row.retires_at = min(row.retires_at or overlap, overlap)
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    session.add(SsoCredential(id=ids.new_id("sso_credential"), tenant_id=scope.tenant_id,
                              mode=scope.mode, client_guid=guid, key=key, created_at=now,
                              retires_at=None))
    session.flush()
    return Credentials(guid, key, sso_url(base_url, scope.mode, guid))


def _live(session: Session, scope: Scope, now: datetime) -> list[SsoCredential]:
    return list(session.scalars(select(SsoCredential).where(
        SsoCredential.tenant_id == scope.tenant_id, SsoCredential.mode == scope.mode,
        or_(SsoCredential.retires_at.is_(None), SsoCredential.retires_at > now))
        .order_by(SsoCredential.created_at.desc())))


def current(session: Session, scope: Scope, *, base_url: str) -> Credentials | None:
    rows = [r for r in _live(session, scope, clock.utcnow()) if r.retires_at is None]
    if not rows:
        return None
    return Credentials(rows[0].client_guid, rows[0].key,
                       sso_url(base_url, scope.mode, rows[0].client_guid))


def make_token(credentials: Credentials, *, user: str, email: str, name: str,
               accounts: Sequence[str], lifetime: timedelta = MAX_LIFETIME,
               extra: Mapping[str, Any] | None = None) -> str:
    """A token as the biller builds it (for ``billfold sso-link``, the demo and tests)."""
    now = int(clock.utcnow().timestamp())
    claims = {"iss": credentials.client_guid, "aud": credentials.sso_url, "sub": user,
              "email": email, "name": name, "accounts": list(accounts), "iat": now,
              "exp": now + int(lifetime.total_seconds()), "jti": secrets.token_urlsafe(16),
              **(extra or {})}
    return jwe.encrypt_compact({"alg": "dir", "enc": "A256GCM"},
                               json.dumps(claims).encode(), _key(credentials.encryption_key))


def _key(text: str) -> OctKey:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return OctKey.import_key(raw)


@dataclass(frozen=True, slots=True)
class Claims:
    scope: Scope
    subject: str
    email: str
    name: str
    accounts: tuple[str, ...]
    jti: str
    expires_at: datetime
    preferences: dict[str, bool]


def read(session: Session, *, mode: str, client_guid: str, token: str,
         base_url: str) -> Claims:
    """The token's claims once it has decrypted under one of the mode's live keys and
    every claim holds; ``Refused`` otherwise."""
    if mode not in MODES:
        raise Refused("unknown mode in the URL")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise Refused("no token, or one too long")
    parts = token.split(".")
    if len(parts) != 5:
        raise Refused(f"not a compact JWE ({len(parts)} parts): unencrypted tokens are refused")
    now = clock.utcnow()
    rows = list(session.scalars(select(SsoCredential).where(
        SsoCredential.client_guid == client_guid,
        or_(SsoCredential.retires_at.is_(None), SsoCredential.retires_at > now))
        .order_by(SsoCredential.created_at.desc())))
    if not rows:
        raise Refused("unknown client GUID, or its keys are retired")
    if any(row.mode != mode for row in rows):
        raise Refused(f"the client GUID belongs to {rows[0].mode} mode, not {mode}")
    scope = Scope(rows[0].tenant_id, mode)
    if not tenants.get_settings(session, scope).sso_enabled:
        raise Refused("SSO is disabled for this tenant and mode")
    plaintext = None
    for row in rows:
        try:
            plaintext = jwe.decrypt_compact(token, _key(row.key), algorithms=ALGORITHMS).plaintext
            break
        except (JoseError, ValueError, TypeError):
            continue
    if plaintext is None:
        raise Refused("the token does not decrypt under the mode's keys (wrong key, "
                      "algorithm or an altered byte)")
    try:
        claims = json.loads(plaintext)
    except (ValueError, UnicodeDecodeError):
        raise Refused("the token's payload is not JSON") from None
    if not isinstance(claims, dict):
        raise Refused("the token's payload is not a JSON object")
    return _check(claims, scope, client_guid=client_guid,
                  url=sso_url(base_url, mode, client_guid), now=now)


def _check(claims: dict[str, Any], scope: Scope, *, client_guid: str, url: str,
           now: datetime) -> Claims:
    if claims.get("iss") != client_guid:
        raise Refused("iss is not the client GUID")
    aud = claims.get("aud")
    if not (aud == url or (isinstance(aud, list) and url in aud)):
        raise Refused(f"aud is not this mode's sso_url ({url})")
    for name in ("sub", "email", "jti"):
        if not isinstance(claims.get(name), str) or not claims[name].strip() \
                or len(claims[name]) > 200:
            raise Refused(f"{name} is missing or not a string of 1 to 200 characters")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not (_whole(iat) and _whole(exp)):
        raise Refused("iat and exp must be whole seconds since the epoch")
    assert isinstance(iat, int)
    assert isinstance(exp, int)
    stamp = now.timestamp()
    if exp <= iat or exp - iat > MAX_LIFETIME.total_seconds():
        raise Refused("exp must be after iat and at most 5 minutes after it")
    if iat > stamp + SKEW.total_seconds():
        raise Refused("the token is dated in the future (iat beyond 60 s of skew)")
    if exp < stamp - SKEW.total_seconds():
        raise Refused("the token has expired")
    accounts = claims.get("accounts")
    if not isinstance(accounts, list) or not accounts or len(accounts) > MAX_ACCOUNTS \
            or not all(isinstance(a, str) and a.strip() for a in accounts):
        raise Refused(f"accounts must be a list of 1 to {MAX_ACCOUNTS} account numbers")
    prefs = {}
    for name in PREFERENCE_CLAIMS:
        if name in claims:
            if not isinstance(claims[name], bool):
                raise Refused(f"{name} must be true or false")
            prefs[name] = claims[name]
    try:
        email = payers.normalize_email(claims["email"])
    except ValidationFailed:
        raise Refused("email is not an email address") from None
    given = claims.get("name")
    return Claims(scope=scope, subject=claims["sub"].strip(), email=email,
                  name=given.strip()[:200] if isinstance(given, str) and given.strip() else email,
                  accounts=tuple(dict.fromkeys(a.strip() for a in accounts)),
                  jti=claims["jti"], expires_at=datetime.fromtimestamp(exp, now.tzinfo),
                  preferences=prefs)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def sign_in(session: Session, claims: Claims) -> tuple[PayerUser, str]:
    """Spend the token's jti, provision or update the payer user, grant exactly the listed
    accounts that exist, apply the preferences and start a portal session: returns the
    user and the session cookie's value. Flushes the jti first, so a second use of the
    token fails here (on SQLite at once, on PostgreSQL when the first use commits)."""
    scope = claims.scope
    accounts = payers.accounts_by_number(session, scope, claims.accounts)
    if not accounts:
        raise Refused("none of the listed accounts exists in this tenant and mode")
    session_id: str = ids.new_id("payer_session")
    session.add(SsoTokenUse(tenant_id=scope.tenant_id, mode=scope.mode, jti=claims.jti,
                            payer_session_id=session_id, used_at=clock.utcnow(),
                            expires_at=claims.expires_at + SKEW))
    try:
        session.flush()
    except IntegrityError:
        raise Refused("the token's jti was used before") from None
    user = _provision(session, scope, claims)
    # The portal speaks the account's language until the payer chooses one.
    user.preferred_language = user.preferred_language or accounts[0].preferred_language
    payers.replace_sso_grants(session, user, accounts)
    settings = tenants.get_settings(session, scope)
    if not settings.payer_controlled_preferences:
        wanted = {"paper_bill": settings.paper_bill, "email_notify": settings.email_notify,
                  "email_confirmations": settings.email_confirmations, **claims.preferences}
        for account in accounts:
            preferences.apply(session, scope, account, actor=f"sso:{claims.subject}"[:100],
                              # paper_bill keeps paper going; it does not start it for an
                              # account that is paperless already.
                              paperless=None if wanted["paper_bill"] else True,
                              keep_paper=wanted["paper_bill"],
                              email_notify=wanted["email_notify"],
                              email_confirmations=wanted["email_confirmations"])
    _, cookie = payers.start_session(session, user, method="sso", jti=claims.jti,
                                     session_id=session_id)
    return user, cookie


def _provision(session: Session, scope: Scope, claims: Claims) -> PayerUser:
    user = session.scalars(select(PayerUser).where(
        PayerUser.tenant_id == scope.tenant_id, PayerUser.mode == scope.mode,
        PayerUser.sso_subject == claims.subject)).one_or_none()
    by_email = payers.find_by_email(session, scope, claims.email)
    if user is None and by_email is not None and by_email.sso_subject in (None, claims.subject):
        user = by_email  # the biller vouches for the address: link the existing login
        user.sso_subject = claims.subject
    if user is None:
        # A different biller user already holds the email: keep this one apart by subject.
        email = claims.email if by_email is None else f"{claims.subject}@sso.invalid"
        return payers.new_user(session, scope, email=email, name=claims.name,
                               sso_subject=claims.subject, verified=True)
    if user.email != claims.email and by_email is None:
        user.email = claims.email
    user.name = claims.name
    if user.email_verified_at is None:
        # Whoever registered this address chose the password without ever proving the
        # address theirs: verifying it now must not let that password in.
        user.password_hash = None
        user.email_verified_at = clock.utcnow()
    user.updated_at = clock.utcnow()
    return user


def forget_spent(session: Session, *, before: datetime) -> int:
    """Drop used jtis whose tokens expired before ``before`` (they can no longer be
    replayed: exp is checked first)."""
    result = session.execute(delete(SsoTokenUse).where(SsoTokenUse.expires_at < before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
