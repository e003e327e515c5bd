"""GTV's "Distribute Invoice" notification: who receives an account's invoices by email.

"To send invoices via email, you must enable the Distribute Invoice notification for a
single account, a contact category, or all accounts." A rule for all accounts or for one
account sends the invoice to the customer's primary email; a rule for a contact category
(on every account, or on one) adds the emails of the account's contacts in that category.
Without a rule that covers it, an account's invoice is not emailed, whatever its invoice
type, and its delivery fails saying so.

Tenants created with ``billfold tenant create`` or the demo start with the all-accounts
rule (``enable_for_all_accounts``): a biller who sets an account's invoice type to Email
expects email. Deleting that rule narrows distribution to the rules that remain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billfold.core import clock, ids
from billfold.core.db import among, by_ids, chunks, get_scoped
from billfold.core.errors import Conflict, FieldError, ValidationFailed
from billfold.core.scope import MODES, Scope
from billfold.customers.models import BillingAccount, Contact, Customer
from billfold.customers.records import CONTACT_CATEGORIES
from billfold.invoicing.models import InvoiceDistributionRule


def applies_to(billing_account_id: str | None, contact_category: str | None) -> str:
    """The rule's unique key within its tenant and mode."""
    parts = ([f"account:{billing_account_id}"] if billing_account_id else []) + \
        ([f"category:{contact_category}"] if contact_category else [])
    return "/".join(parts) or "all"


def create_rule(session: Session, scope: Scope, *, billing_account_id: str | None = None,
                contact_category: str | None = None, actor: str) -> InvoiceDistributionRule:
    """Enable Distribute Invoice for all accounts (neither given), one account, a contact
    category, or a category on one account. The same rule twice is a Conflict."""
    problems: list[FieldError] = []
    if billing_account_id is not None:
        account = session.get(BillingAccount, billing_account_id) \
            if isinstance(billing_account_id, str) else None
        if account is None or account.tenant_id != scope.tenant_id or account.mode != scope.mode:
            problems.append(FieldError("billing_account_id",
                                       f"no billing account with id {billing_account_id!r}",
                                       "not_found"))
    if contact_category is not None and contact_category not in CONTACT_CATEGORIES:
        problems.append(FieldError("contact_category",
                                   f"must be one of {', '.join(CONTACT_CATEGORIES)}"))
    if problems:
        raise ValidationFailed(problems)
    key = applies_to(billing_account_id, contact_category)
    existing = _by_key(session, scope, key)
    if existing is not None:
        raise _exists(existing)
    rule = InvoiceDistributionRule(
        id=ids.new_id("invoice_distribution_rule"), tenant_id=scope.tenant_id, mode=scope.mode,
        billing_account_id=billing_account_id, contact_category=contact_category,
        applies_to=key, created_by=actor[:100], created_at=clock.utcnow())
    try:
        with session.begin_nested():
            session.add(rule)
    except IntegrityError:  # a concurrent request created it first
        existing = _by_key(session, scope, key)
        if existing is None:
            raise
        raise _exists(existing) from None
    return rule


def _by_key(session: Session, scope: Scope, key: str) -> InvoiceDistributionRule | None:
    return session.scalars(select(InvoiceDistributionRule).where(
        InvoiceDistributionRule.tenant_id == scope.tenant_id,
        InvoiceDistributionRule.mode == scope.mode,
        InvoiceDistributionRule.applies_to == key)).one_or_none()


def _exists(rule: InvoiceDistributionRule) -> Conflict:
    return Conflict(f"Distribute Invoice is enabled for {rule.applies_to} already, by rule "
                    f"{rule.id}", code="distribution_rule_exists")


def enable_for_all_accounts(session: Session, *, tenant_id: str, actor: str) -> None:
    """The all-accounts rule in both modes of a new tenant; harmless when there already."""
    for mode in MODES:
        scope = Scope(tenant_id, mode)
        if _by_key(session, scope, "all") is None:
            create_rule(session, scope, actor=actor)


def get_rule(session: Session, scope: Scope, rule_id: str) -> InvoiceDistributionRule:
    rule: InvoiceDistributionRule = get_scoped(session, InvoiceDistributionRule, rule_id, scope,
                                               "invoice_distribution_rule")
    return rule


def delete_rule(session: Session, scope: Scope, rule_id: str) -> None:
    session.delete(get_rule(session, scope, rule_id))
    session.flush()


def list_rules(session: Session, scope: Scope, *, limit: int, starting_after: str | None = None,
               billing_account_id: str | None = None) -> list[InvoiceDistributionRule]:
    stmt = select(InvoiceDistributionRule).where(
        InvoiceDistributionRule.tenant_id == scope.tenant_id,
        InvoiceDistributionRule.mode == scope.mode)
    if billing_account_id is not None:
        stmt = stmt.where(InvoiceDistributionRule.billing_account_id == billing_account_id)
    if starting_after is not None:
        stmt = stmt.where(InvoiceDistributionRule.id > starting_after)
    return list(session.scalars(stmt.order_by(InvoiceDistributionRule.id).limit(limit)))


# -- recipients ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recipients:
    emails: tuple[str, ...]
    reason: str | None  # why there is nobody, when ``emails`` is empty


def recipients(session: Session, scope: Scope, account: BillingAccount) -> Recipients:
    """Who receives the account's invoices by email: the customer's primary email when a
    rule covers all accounts or this one; the account's contacts with an email in every
    category a rule names (for all accounts or this one). Each address once."""
    return recipients_for(session, scope, [account])[account.id]


def recipients_for(session: Session, scope: Scope, accounts: Sequence[BillingAccount]
                   ) -> dict[str, Recipients]:
    """``recipients`` of many accounts, by account id, read with a few statements
    whatever their number (a batch of rendered invoices)."""
    if not accounts:
        return {}
    rules: dict[str | None, list[InvoiceDistributionRule]] = {}
    for chunk in chunks(a.id for a in accounts):
        for rule in session.scalars(select(InvoiceDistributionRule).where(
                InvoiceDistributionRule.tenant_id == scope.tenant_id,
                InvoiceDistributionRule.mode == scope.mode,
                or_(InvoiceDistributionRule.billing_account_id.is_(None),
                    among(session, InvoiceDistributionRule.billing_account_id, chunk)))):
            rules.setdefault(rule.billing_account_id, []).append(rule)
    everyone = rules.get(None, [])
    covering = {a.id: everyone + rules.get(a.id, []) for a in accounts}
    # The customer's primary email for an account a rule without a category covers.
    to_customer = {a.id for a in accounts
                   if any(rule.contact_category is None for rule in covering[a.id])}
    primary = {c.id: c.primary_email for c in by_ids(
        session, Customer, {a.customer_id for a in accounts if a.id in to_customer})}
    categories = {a.id: sorted({r.contact_category for r in covering[a.id]
                                if r.contact_category is not None}) for a in accounts}
    contacts: dict[str, list[tuple[str, str]]] = {}
    for chunk in chunks(a for a, wanted in categories.items() if wanted):
        for contact in session.execute(select(
                Contact.billing_account_id, Contact.category, Contact.email).where(
                among(session, Contact.billing_account_id, chunk),
                Contact.email.is_not(None)).order_by(Contact.created_at, Contact.id)):
            contacts.setdefault(contact.billing_account_id, []).append(
                (contact.category, contact.email))
    found = {}
    for account in accounts:
        if not covering[account.id]:
            found[account.id] = Recipients((), (
                f"Distribute Invoice is not enabled for account {account.number}: enable it "
                "for all accounts, for this account or for a contact category "
                "(POST /v1/invoice_distribution_rules)"))
            continue
        emails = [primary.get(account.customer_id)] if account.id in to_customer else []
        wanted = categories[account.id]
        emails += [email for category, email in contacts.get(account.id, [])
                   if category in wanted]
        unique: list[str] = []
        for email in emails:
            if email and email.lower() not in {u.lower() for u in unique}:
                unique.append(email)
        found[account.id] = Recipients(tuple(unique), None) if unique else Recipients((), (
            f"Distribute Invoice is enabled for account {account.number} only for contacts "
            f"in {', '.join(wanted)}, and it has no such contact with an email"))
    return found
