"""Invitations: an account's owner lets someone else see or pay it. The invitee follows
a one-use emailed link (seven days) and gets the role the owner chose; one without a
verified login yet chooses a password there. Owners also take access away again.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from billfold.access import mails, passwords, payers
from billfold.access.models import PAYER_ROLES, PayerGrant, PayerToken, PayerUser
from billfold.core import clock
from billfold.core.errors import FieldError, ValidationFailed
from billfold.core.scope import Scope
from billfold.customers.models import BillingAccount


def people_of(session: Session, account: BillingAccount) -> list[tuple[PayerGrant, PayerUser]]:
    """Who may see ``account`` in the portal, owners first."""
    rows = session.execute(
        select(PayerGrant, PayerUser).join(PayerUser, PayerUser.id == PayerGrant.payer_user_id)
        .where(PayerGrant.billing_account_id == account.id)
        .order_by(PayerUser.email))
    return sorted(((g, u) for g, u in rows), key=lambda pair: -payers.ROLE_RANK[pair[0].role])


def invite(session: Session, scope: Scope, *, inviter: PayerUser, account: BillingAccount,
           email: str, role: str, link: Callable[[str], str], biller: str) -> None:
    """Email ``email`` a one-use link (a week) that grants ``role`` on ``account`` to
    whoever follows it: the address's existing login, or a new one made then. The caller
    has checked that ``inviter`` owns the account. Nothing is granted until the link is
    followed, and the inviter learns nothing about whether the address has a login."""
    problems: list[FieldError] = []
    try:
        address = payers.normalize_email(email)
    except ValidationFailed as failed:
        problems += failed.errors
        address = ""
    if role not in PAYER_ROLES:
        problems.append(FieldError("role", f"must be one of {', '.join(PAYER_ROLES)}"))
    if address and address == inviter.email:
        problems.append(FieldError("email", "is your own address"))
    if problems:
        raise ValidationFailed(problems)
    user = payers.find_by_email(session, scope, address) or payers.new_user(session, scope, email=address,
                                                              name=address)
    raw = payers.issue_token(session, user, "invitation", {
        "billing_account_id": account.id, "role": role, "invited_by": inviter.email})
    payers.send(session, scope, address, mails.mail(
        "invitation", mails.language_of(user.preferred_language, account.preferred_language),
        biller=biller, inviter=inviter.name, inviter_email=inviter.email, role=role,
        account=account.number, link=link("/portal/invitation?token=" + raw)))


def invitation_of(session: Session, scope: Scope, raw: str
                  ) -> tuple[PayerToken, PayerUser, BillingAccount] | None:
    """A still-good invitation, its invitee and the account, without using it."""
    token = payers.peek_token(session, scope, raw, "invitation")
    if token is None:
        return None
    user = session.get(PayerUser, token.payer_user_id)
    account = session.get(BillingAccount, str(token.data.get("billing_account_id", "")))
    if user is None or account is None:
        return None
    return token, user, account


def needs_password(user: PayerUser) -> bool:
    """Whether accepting an invitation must set a password: the invitee has no verified
    login (a password chosen in an unverified registration proves nothing)."""
    return user.email_verified_at is None or not user.password_hash


def accept_invitation(session: Session, scope: Scope, raw: str, *, name: str = "",
                      password: str | None = None) -> PayerUser | None:
    """Spend an invitation: verify the invitee's address (the link reached it), set their
    name and password when they have no verified login yet, and grant the role."""
    found = invitation_of(session, scope, raw)
    if found is None:
        return None
    _, user, account = found
    if needs_password(user):
        problems = passwords.problems(password or "", email=user.email)
        if problems:
            raise ValidationFailed(problems)
    token = payers.use_token(session, scope, raw, "invitation")
    if token is None:
        return None
    if needs_password(user):
        user.password_hash = passwords.hash_password(str(password))
        user.name = name.strip()[:200] or user.name
        user.email_verified_at = user.email_verified_at or clock.utcnow()
        payers.end_all_sessions(session, user)  # whatever an unverified registration started
    payers.grant(session, user, account, role=str(token.data.get("role", "viewer")),
          source="invitation")
    user.preferred_language = user.preferred_language or account.preferred_language
    user.updated_at = clock.utcnow()
    return user


def revoke(session: Session, *, owner: PayerUser, account: BillingAccount,
           grant_id: str) -> bool:
    """An owner takes another person's access to ``account`` away (not their own)."""
    row = session.get(PayerGrant, grant_id)
    if row is None or row.billing_account_id != account.id or row.payer_user_id == owner.id:
        return False
    session.delete(row)
    session.flush()
    return True
