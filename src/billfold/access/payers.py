"""Payer users of the portal: accounts by email and password or by SSO, grants on billing
accounts, one-use emailed tokens, and browser sessions.

Nothing here tells a caller whether an email or an account exists: sign-in answers None
for every failure, and registration and password reset always report that an email may
have been sent. Tokens and session cookies are random; only their SHA-256 digests are
stored, so a copy of the database signs no one in.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from billfold.access import mails, passwords
from billfold.access.models import PAYER_ROLES, PayerGrant, PayerSession, PayerToken, PayerUser
from billfold.core import clock, ids
from billfold.core.errors import FieldError, ValidationFailed
from billfold.core.scope import Mode, Scope
from billfold.customers.fields import search_key
from billfold.customers.models import BillingAccount, Customer
from billfold.notifications import outbox

log = logging.getLogger(__name__)

SESSION_IDLE = timedelta(hours=2)
SESSION_LIFETIME = timedelta(hours=12)
TOKEN_LIFETIME = {"registration": timedelta(days=2), "invitation": timedelta(days=7),
                  "reset_password": timedelta(hours=1)}
ROLE_RANK = {"viewer": 0, "payer": 1, "owner": 2}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_email(value: str, *, field: str = "email") -> str:
    """The address in the form it is stored and looked up in (lower case)."""
    try:
        checked = validate_email(value.strip(), check_deliverability=False)
    except (EmailNotValidError, AttributeError) as error:
        raise ValidationFailed([FieldError(field, f"is not an email address: {error}")]) from None
    return str(checked.normalized).lower()


# -- users and grants -------------------------------------------------------------------


def find_by_email(session: Session, scope: Scope, email: str) -> PayerUser | None:
    return session.scalars(select(PayerUser).where(
        PayerUser.tenant_id == scope.tenant_id, PayerUser.mode == scope.mode,
        PayerUser.email == email.lower())).one_or_none()


def get_user(session: Session, scope: Scope, user_id: str) -> PayerUser | None:
    user = session.get(PayerUser, user_id)
    if user is None or user.tenant_id != scope.tenant_id or user.mode != scope.mode:
        return None
    return user


def new_user(session: Session, scope: Scope, *, email: str, name: str,
             password: str | None = None, sso_subject: str | None = None,
             verified: bool = False) -> PayerUser:
    now = clock.utcnow()
    user = PayerUser(id=ids.new_id("payer_user"), tenant_id=scope.tenant_id, mode=scope.mode,
                     email=email.lower(), name=name.strip()[:200] or email,
                     password_hash=passwords.hash_password(password) if password else None,
                     email_verified_at=now if verified else None, sso_subject=sso_subject,
                     session_epoch=0, preferred_language=None, created_at=now, updated_at=now)
    session.add(user)
    session.flush()
    return user


@dataclass(frozen=True, slots=True)
class Granted:
    """A billing account a payer user may see, with what they may do."""

    grant: PayerGrant
    account: BillingAccount
    customer_name: str

    @property
    def can_pay(self) -> bool:
        return self.grant.role in ("owner", "payer") and self.account.status != "deactivated"

    @property
    def is_owner(self) -> bool:
        return self.grant.role == "owner"


def grants_of(session: Session, user: PayerUser) -> list[Granted]:
    rows = session.execute(
        select(PayerGrant, BillingAccount, Customer.customer_name)
        .join(BillingAccount, BillingAccount.id == PayerGrant.billing_account_id)
        .join(Customer, Customer.id == BillingAccount.customer_id)
        .where(PayerGrant.payer_user_id == user.id, PayerGrant.tenant_id == user.tenant_id,
               PayerGrant.mode == user.mode)
        .order_by(BillingAccount.number))
    return [Granted(grant, account, name) for grant, account, name in rows]


def grant(session: Session, user: PayerUser, account: BillingAccount, *, role: str,
          source: str) -> PayerGrant:
    """Give ``user`` ``role`` on ``account``; an existing grant keeps the stronger role.
    A grant that did not come from SSO stays a grant of its own source when SSO raises its
    role, so a later SSO that leaves the account out cannot take it away."""
    if role not in PAYER_ROLES:
        raise ValueError(role)
    existing = session.scalars(select(PayerGrant).where(
        PayerGrant.payer_user_id == user.id,
        PayerGrant.billing_account_id == account.id)).one_or_none()
    if existing is not None:
        if ROLE_RANK[role] > ROLE_RANK[existing.role]:
            existing.role = role
            if existing.source == "sso":
                existing.source = source
        return existing
    row = PayerGrant(id=ids.new_id("payer_grant"), tenant_id=user.tenant_id, mode=user.mode,
                     payer_user_id=user.id, billing_account_id=account.id, role=role,
                     source=source, created_at=clock.utcnow())
    session.add(row)
    session.flush()
    return row


def replace_sso_grants(session: Session, user: PayerUser,
                       accounts: Sequence[BillingAccount]) -> None:
    """The user's SSO grants become exactly ``accounts`` (role payer); grants from
    registration or invitation stay as they are."""
    stale = delete(PayerGrant).where(PayerGrant.payer_user_id == user.id,
                                     PayerGrant.source == "sso")
    if accounts:
        stale = stale.where(PayerGrant.billing_account_id.not_in([a.id for a in accounts]))
    session.execute(stale)
    for account in accounts:
        grant(session, user, account, role="payer", source="sso")


def accounts_by_number(session: Session, scope: Scope,
                       numbers: Sequence[str]) -> list[BillingAccount]:
    keys = [k for k in (search_key(str(n)) for n in numbers) if k]
    if not keys:
        return []
    return list(session.scalars(select(BillingAccount).where(
        BillingAccount.tenant_id == scope.tenant_id, BillingAccount.mode == scope.mode,
        BillingAccount.number_key.in_(keys)).order_by(BillingAccount.number)))


# -- one-use tokens -----------------------------------------------------------------------


def issue_token(session: Session, user: PayerUser, purpose: str,
                data: dict[str, Any] | None = None) -> str:
    raw = secrets.token_urlsafe(32)
    now = clock.utcnow()
    session.add(PayerToken(id=ids.new_id("payer_token"), tenant_id=user.tenant_id,
                           mode=user.mode, payer_user_id=user.id, purpose=purpose,
                           token_hash=digest(raw), data=data or {}, created_at=now,
                           expires_at=now + TOKEN_LIFETIME[purpose], used_at=None))
    session.flush()
    return raw


def token_scope(session: Session, raw: str, purpose: str) -> Scope | None:
    """The tenant and mode of a still-good token (an emailed link names no tenant)."""
    if not raw or len(raw) > 100:
        return None
    row = session.scalars(select(PayerToken).where(
        PayerToken.token_hash == digest(raw))).one_or_none()
    if row is None or row.purpose != purpose or row.used_at is not None \
            or row.expires_at <= clock.utcnow():
        return None
    return Scope(row.tenant_id, cast(Mode, row.mode))


def peek_token(session: Session, scope: Scope, raw: str, purpose: str) -> PayerToken | None:
    """The token if it is still good, without using it (a reset form shown before use)."""
    row = session.scalars(select(PayerToken).where(
        PayerToken.token_hash == digest(raw))).one_or_none()
    if row is None or row.purpose != purpose or row.used_at is not None \
            or row.tenant_id != scope.tenant_id or row.mode != scope.mode \
            or row.expires_at <= clock.utcnow():
        return None
    return row


def use_token(session: Session, scope: Scope, raw: str, purpose: str) -> PayerToken | None:
    """Spend a token once: of two racing uses exactly one gets it."""
    row = peek_token(session, scope, raw, purpose)
    if row is None:
        return None
    spent = session.execute(update(PayerToken).where(
        PayerToken.id == row.id, PayerToken.used_at.is_(None)).values(used_at=clock.utcnow())
        .execution_options(synchronize_session=False))
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.refresh(row)
    return row


# -- sessions -------------------------------------------------------------------------------


def start_session(session: Session, user: PayerUser, *, method: str,
                  jti: str | None = None, session_id: str | None = None) -> tuple[PayerSession, str]:
    raw = secrets.token_urlsafe(32)
    now = clock.utcnow()
    row = PayerSession(id=session_id or ids.new_id("payer_session"), tenant_id=user.tenant_id,
                       mode=user.mode, payer_user_id=user.id, token_hash=digest(raw),
                       epoch=user.session_epoch, method=method, sso_jti=jti, created_at=now,
                       last_seen_at=now, expires_at=now + SESSION_LIFETIME, ended_at=None)
    session.add(row)
    session.flush()
    return row, raw


def session_of(session: Session, raw: str | None) -> tuple[PayerSession, PayerUser] | None:
    """The live session a cookie names, and its user; None when it is unknown, ended,
    expired, idle too long, or from before a sign-out everywhere."""
    if not raw or len(raw) > 100:
        return None
    found = session.execute(
        select(PayerSession, PayerUser).join(PayerUser, PayerUser.id == PayerSession.payer_user_id)
        .where(PayerSession.token_hash == digest(raw))).one_or_none()
    if found is None:
        return None
    row, user = found
    now = clock.utcnow()
    if row.ended_at is not None or row.expires_at <= now or row.epoch != user.session_epoch \
            or row.last_seen_at + SESSION_IDLE <= now:
        return None
    if now - row.last_seen_at > timedelta(minutes=1):  # one write a minute, not per request
        row.last_seen_at = now
    return row, user


def end_session(session: Session, row: PayerSession) -> None:
    row.ended_at = clock.utcnow()


def end_all_sessions(session: Session, user: PayerUser) -> None:
    """Sign out everywhere: every session made before now stops working."""
    user.session_epoch += 1
    user.updated_at = clock.utcnow()
    session.execute(update(PayerSession).where(
        PayerSession.payer_user_id == user.id, PayerSession.ended_at.is_(None))
        .values(ended_at=clock.utcnow()).execution_options(synchronize_session=False))


# -- sign-in, registration, reset --------------------------------------------------------------


def sign_in(session: Session, scope: Scope, *, email: str, password: str) -> PayerUser | None:
    """The user when the email is registered and verified and the password is right;
    None otherwise, after the same argon2 work either way."""
    try:
        address = normalize_email(email)
    except ValidationFailed:
        address = ""
    user = find_by_email(session, scope, address) if address else None
    ok = passwords.verify(user.password_hash if user else None, password[:passwords.MAX_LENGTH])
    if user is None or not ok or user.email_verified_at is None:
        return None
    if user.password_hash and passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    return user


def register(session: Session, scope: Scope, *, account_number: str,
             proof_ok: Callable[[BillingAccount], bool], email: str, name: str,
             password: str | None, signed_in: PayerUser | None, link: Callable[[str], str],
             biller: str) -> None:
    """The registration story: the payer proves knowledge of an account (its number and
    the tenant's registration value, which ``proof_ok`` checks) and gets a verification
    email that finishes it: the new user is verified and made the account's owner, or the
    signed-in user gains the account. Every outcome looks the same to the caller; a wrong
    number or value sends nothing and is logged."""
    problems: list[FieldError] = []
    address = ""
    if signed_in is None:
        try:
            address = normalize_email(email)
        except ValidationFailed as failed:
            problems += failed.errors
        if password is not None:
            problems += passwords.problems(password, email=address)
        else:
            problems.append(FieldError("password", "is required", "required"))
    if not account_number.strip():
        problems.append(FieldError("account_number", "is required", "required"))
    if problems:
        raise ValidationFailed(problems)
    # Hashed whatever happens next, so a new address (whose user is made with this hash)
    # takes no longer to answer than a known one or a wrong account.
    password_hash = passwords.hash_password(password) if signed_in is None and password \
        else None
    accounts = accounts_by_number(session, scope, [account_number])
    if len(accounts) != 1 or accounts[0].status == "deactivated" or not proof_ok(accounts[0]):
        log.info("registration refused for tenant %s: account %r not found or value wrong",
                 scope.tenant_id, account_number[:40])
        return
    account = accounts[0]
    user = signed_in or find_by_email(session, scope, address)
    data: dict[str, Any] = {"billing_account_id": account.id}
    if signed_in is None and user is not None and user.email_verified_at is not None:
        # Someone (perhaps its owner) used an address that already has a login: tell the
        # address, not the browser.
        send(session, scope, user.email, mails.mail(
            "already_registered", mails.language_of(user.preferred_language,
                                                    account.preferred_language),
            biller=biller, account=account.number,
            link=link(f"/portal/b/{scope.tenant_id}/{scope.mode}/login")))
        return
    if user is None:
        user = new_user(session, scope, email=address, name=name or address)
        user.password_hash = password_hash
    elif signed_in is None:
        # Registering again before the first link was followed (lost, or expired): a new
        # link, which sets this registration's password when followed. The user's row
        # keeps the first one, so whoever follows a link gets the password that link's
        # registration chose, and a second registration cannot take over the first.
        data["password_hash"] = password_hash
    raw = issue_token(session, user, "registration", data)
    send(session, scope, user.email, mails.mail(
        "registration", mails.language_of(user.preferred_language, account.preferred_language),
        biller=biller, account=account.number, link=link("/portal/verify?token=" + raw)))


def finish_registration(session: Session, scope: Scope, raw: str) -> PayerUser | None:
    """Spend a registration token: verify the address and grant the account (owner)."""
    token = use_token(session, scope, raw, "registration")
    if token is None:
        return None
    user = session.get(PayerUser, token.payer_user_id)
    account = session.get(BillingAccount, token.data.get("billing_account_id", ""))
    if user is None or account is None:
        return None
    if user.email_verified_at is None:
        if token.data.get("password_hash"):
            user.password_hash = token.data["password_hash"]
        user.email_verified_at = clock.utcnow()
    user.preferred_language = user.preferred_language or account.preferred_language
    grant(session, user, account, role="owner", source="registration")
    return user


def request_reset(session: Session, scope: Scope, *, email: str, link: Callable[[str], str],
                  biller: str) -> None:
    try:
        address = normalize_email(email)
    except ValidationFailed:
        return
    user = find_by_email(session, scope, address)
    if user is None or user.email_verified_at is None:
        log.info("password reset for an unknown address in tenant %s", scope.tenant_id)
        return
    raw = issue_token(session, user, "reset_password")
    send(session, scope, user.email, mails.mail(
        "reset", mails.language_of(user.preferred_language), biller=biller,
        link=link("/portal/reset?token=" + raw)))


def reset_password(session: Session, scope: Scope, *, token: str,
                   password: str) -> PayerUser | None:
    """Set a new password with a reset token; every existing session ends."""
    row = peek_token(session, scope, token, "reset_password")
    if row is None:
        return None
    user = session.get(PayerUser, row.payer_user_id)
    if user is None:
        return None
    problems = passwords.problems(password, email=user.email)
    if problems:
        raise ValidationFailed(problems)
    if use_token(session, scope, token, "reset_password") is None:
        return None
    user.password_hash = passwords.hash_password(password)
    end_all_sessions(session, user)
    return user


def send(session: Session, scope: Scope, to: str, mail: mails.Mail) -> None:
    """Queue ``mail`` to a payer's address."""
    outbox.enqueue_email(session, scope, to=[to], subject=mail.subject, text=mail.text,
                         about=("payer_user", to))


def purge_expired(session: Session, *, before: datetime) -> int:
    """Delete sessions and one-use tokens that stopped working before ``before``: they
    can never sign anyone in again, and their rows only grow the tables."""
    gone = session.execute(delete(PayerSession).where(or_(
        PayerSession.expires_at < before, PayerSession.ended_at < before,
        PayerSession.last_seen_at < before - SESSION_IDLE)))
    spent = session.execute(delete(PayerToken).where(or_(
        PayerToken.expires_at < before, PayerToken.used_at < before)))
    return int(gone.rowcount or 0) + int(spent.rowcount or 0)  # type: ignore[attr-defined]
