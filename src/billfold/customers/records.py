"""Notes and contacts kept on a billing account."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from billfold.core import clock, ids
from billfold.core.errors import ValidationFailed
from billfold.core.scope import Scope
from billfold.customers import fields
from billfold.customers.fields import Problems
from billfold.customers.models import Contact, Note
from billfold.customers.service import get_billing_account

CONTACT_CATEGORIES = ("billing", "technical", "sales", "support", "legal", "other")


def add_note(session: Session, scope: Scope, *, account_id: str, body: str, author: str) -> Note:
    account = get_billing_account(session, scope, account_id)
    p = Problems()
    text = fields.text(body, "body", p, max_length=10_000)
    if text is None and not p:
        p.add("body", "is required", "required")
    if p:
        raise ValidationFailed(list(p))
    note = Note(id=ids.new_id("note"), tenant_id=scope.tenant_id, mode=scope.mode,
                billing_account_id=account.id, body=text or "", author=author[:100],
                created_at=clock.utcnow())
    session.add(note)
    session.flush()
    return note


def add_contact(
    session: Session, scope: Scope, *, account_id: str, name: str, email: str | None,
    phone: str | None, category: str | None,
) -> Contact:
    account = get_billing_account(session, scope, account_id)
    p = Problems()
    clean_name = fields.text(name, "name", p, max_length=200)
    if clean_name is None and not p:
        p.add("name", "is required", "required")
    clean_email = fields.email(email, "email", p)
    clean_phone = None
    if phone is not None:
        clean_phone = fields.e164_phone(phone, None)
        if clean_phone is None:
            p.add("phone", f"{phone!r} is not a valid phone number with its +country code")
    if category is not None and category not in CONTACT_CATEGORIES:
        p.add("category", f"must be one of {', '.join(CONTACT_CATEGORIES)}")
    if clean_email is None and clean_phone is None and not p:
        p.add("email", "a contact needs an email or a phone", "required")
    if p:
        raise ValidationFailed(list(p))
    contact = Contact(id=ids.new_id("contact"), tenant_id=scope.tenant_id, mode=scope.mode,
                      billing_account_id=account.id, name=clean_name or "", email=clean_email,
                      phone=clean_phone, category=category, created_at=clock.utcnow())
    session.add(contact)
    session.flush()
    return contact


def list_notes(session: Session, scope: Scope, *, account_id: str, limit: int,
               starting_after: str | None = None) -> list[Note]:
    get_billing_account(session, scope, account_id)
    stmt = select(Note).where(Note.billing_account_id == account_id)
    if starting_after:
        stmt = stmt.where(Note.id > starting_after)
    return list(session.scalars(stmt.order_by(Note.id).limit(limit)))


def list_contacts(session: Session, scope: Scope, *, account_id: str, limit: int,
                  starting_after: str | None = None) -> list[Contact]:
    get_billing_account(session, scope, account_id)
    stmt = select(Contact).where(Contact.billing_account_id == account_id)
    if starting_after:
        stmt = stmt.where(Contact.id > starting_after)
    return list(session.scalars(stmt.order_by(Contact.id).limit(limit)))
