"""Billing-account rules: currency and bill cycle, status transitions, and the billing
(responsible/managed) and reporting (parent/child) hierarchies."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billfold import money
from billfold.core.errors import FieldError, ValidationFailed
from billfold.core.scope import Scope
from billfold.customers import fields
from billfold.customers.fields import Problems
from billfold.customers.models import (
    COLLECTIONS_TRANSITIONS,
    MANUAL_TRANSITIONS,
    PARENT_STATUSES,
    RENDERING_TYPES,
    STATUSES,
    BillingAccount,
)
from billfold.tenants import service as tenants
from billfold.tenants.models import AccountCategory, BillCycle, PaymentTerm, TenantSettings

ACCOUNT_FIELDS = (
    "number", "external_number", "customer_id", "currency", "invoice_currency", "bill_cycle_id",
    "start_date", "status", "taxable", "responsible_account_id", "parent_account_id",
    "invoice_rendering_type", "account_category_id", "minimum_invoice_amount_minor",
    "preferred_language", "invoice_type", "payment_term_id", "authorize_auto_payment",
    "auto_pay_offset_days", "email_confirmations", "email_notify", "custom_fields",
)
# Fixed once the account exists, as on GTV's Edit Billing Account window.
IMMUTABLE_FIELDS = ("number", "customer_id", "currency", "start_date")
MAX_MINOR = 10**15


def _in_scope(row: Any, scope: Scope) -> bool:
    return row is not None and row.tenant_id == scope.tenant_id and row.mode == scope.mode


def _reference(
    session: Session, scope: Scope, model: Any, object_id: Any, field: str, problems: Problems,
) -> Any:
    if object_id is None:
        return None
    if not isinstance(object_id, str):
        row = None
    elif model in tenants.IMMUTABLE_REFERENCE:
        row = tenants.reference_row(session, model, object_id)
    else:
        row = session.get(model, object_id)
    if not _in_scope(row, scope):
        problems.add(field, f"no {model.__tablename__.replace('_', ' ')} with id {object_id!r}",
                     "not_found")
        return None
    return row


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def managed_count(session: Session, account_id: str) -> int:
    return session.scalar(
        select(func.count()).where(BillingAccount.responsible_account_id == account_id)
    ) or 0


def apply_account_fields(
    session: Session, scope: Scope, account: BillingAccount, changes: Mapping[str, Any], *,
    creating: bool, settings: TenantSettings, prefix: str = "",
) -> None:
    """Validate ``changes`` against the account as it would be afterwards, then apply them.
    Raises ValidationFailed naming every wrong field; the account is untouched then."""
    p = Problems()
    def name(field: str) -> str:
        return f"{prefix}{field}"

    unknown = set(changes) - set(ACCOUNT_FIELDS) - {"is_default"}
    for key in sorted(unknown):
        p.add(name(key), "is not a billing account field", "unknown_field")
    if not creating:
        for key in IMMUTABLE_FIELDS:
            if key in changes and changes[key] != getattr(account, key):
                p.add(name(key), "cannot be changed once the account exists", "immutable")
    new: dict[str, Any] = {f: getattr(account, f, None) for f in ACCOUNT_FIELDS}
    new.update({k: v for k, v in changes.items() if k in ACCOUNT_FIELDS})

    if "number" in changes:
        new["number"] = fields.number(new["number"], name("number"), p)
    if "external_number" in changes:
        new["external_number"] = fields.number(new["external_number"], name("external_number"), p)

    currency = new["currency"]
    if not isinstance(currency, str) or not money.is_active_currency(currency):
        p.add(name("currency"), f"{currency!r} is not an active ISO 4217 currency code", "required"
              if currency is None else "invalid")
        currency = None
    if new["invoice_currency"] is None:
        new["invoice_currency"] = currency
    elif new["invoice_currency"] != currency and currency is not None:
        p.add(name("invoice_currency"),
              f"must equal the account currency {currency}: invoicing in another currency "
              "needs currency conversion, which Billfold does not do yet")

    cycle: BillCycle | None = None
    if new["bill_cycle_id"] is None:
        p.add(name("bill_cycle_id"), "is required", "required")
    else:
        cycle = _reference(session, scope, BillCycle, new["bill_cycle_id"], name("bill_cycle_id"), p)
    if cycle is not None and currency is not None and cycle.currency not in (None, currency):
        p.add(name("bill_cycle_id"),
              f"bill cycle {cycle.name!r} bills in {cycle.currency}, not {currency}")
    start: date | None = new["start_date"]
    if start is None:
        p.add(name("start_date"), "is required", "required")
    elif cycle is not None and start < cycle.start_date and creating:
        p.add(name("start_date"),
              f"cannot be before the bill cycle's start date {cycle.start_date.isoformat()}")

    if new["account_category_id"] is None:
        p.add(name("account_category_id"), "is required", "required")
    else:
        _reference(session, scope, AccountCategory, new["account_category_id"],
                   name("account_category_id"), p)
    _reference(session, scope, PaymentTerm, new["payment_term_id"], name("payment_term_id"), p)

    if new["invoice_type"] is None:
        p.add(name("invoice_type"), "is required", "required")
    elif new["invoice_type"] not in settings.invoice_distribution_options:
        p.add(name("invoice_type"),
              f"must be one of the tenant's invoice_distribution_options: "
              f"{', '.join(settings.invoice_distribution_options)}")
    if not _is_int(new["auto_pay_offset_days"]) or not -30 <= new["auto_pay_offset_days"] <= 30:
        p.add(name("auto_pay_offset_days"), "must be between -30 and 30 days")
    if not _is_int(new["minimum_invoice_amount_minor"]) \
            or not 0 <= new["minimum_invoice_amount_minor"] <= MAX_MINOR:
        p.add(name("minimum_invoice_amount_minor"), "must be zero or more")
    for flag in ("taxable", "authorize_auto_payment", "email_confirmations", "email_notify"):
        if not isinstance(new[flag], bool):  # an explicit null would reach a NOT NULL column
            p.add(name(flag), "must be true or false")
    if "preferred_language" in changes:
        new["preferred_language"] = fields.language(new["preferred_language"],
                                                    name("preferred_language"), p) or "en"

    _check_status(account, new, creating=creating, problems=p, name=name, session=session)
    _check_billing_hierarchy(session, scope, account, new, creating, settings, p, name)
    _check_reporting_hierarchy(session, scope, account, new, settings, p, name)

    definitions = tenants.custom_field_definitions(session, scope, "billing_account")
    if not isinstance(new["custom_fields"], dict):
        p.add(name("custom_fields"), "must be an object")
    else:
        for error in tenants.validate_custom_fields(definitions, new["custom_fields"]):
            p.add(name(error.field), error.message, error.code)
    if p:
        raise ValidationFailed(list(p))
    for key in ACCOUNT_FIELDS:
        if getattr(account, key, None) != new[key] or creating:
            setattr(account, key, new[key])
    account.number_key = fields.search_key(account.number) or ""
    account.external_number_key = fields.search_key(account.external_number)


def _check_status(
    account: BillingAccount, new: dict[str, Any], *, creating: bool, problems: Problems,
    name: Callable[[str], str], session: Session,
) -> None:
    status = new["status"]
    if status not in STATUSES:
        problems.add(name("status"), f"must be one of {', '.join(STATUSES)}")
        return
    if creating:
        if status != "active":
            problems.add(name("status"), "a new billing account starts active")
        return
    if status == account.status:
        return
    if status not in MANUAL_TRANSITIONS[account.status]:
        why = ("is set by collections, not by hand" if status == "pending_collection"
               else f"cannot change from {account.status} to {status}")
        problems.add(name("status"), why, "invalid_transition")
    elif status == "deactivated" and managed_count(session, account.id):
        problems.add(name("status"),
                     "cannot deactivate an account that is responsible for managed accounts; "
                     "move them to another responsible account first")


def _check_billing_hierarchy(
    session: Session, scope: Scope, account: BillingAccount, new: dict[str, Any], creating: bool,
    settings: TenantSettings, p: Problems, name: Callable[[str], str],
) -> None:
    managed = 0 if creating else managed_count(session, account.id)
    responsible_id = new["responsible_account_id"]
    if responsible_id is not None and responsible_id != account.responsible_account_id:
        field = name("responsible_account_id")
        if not settings.enable_responsible_account_management:
            p.add(field, "needs the enable_responsible_account_management setting")
        else:
            responsible = _reference(session, scope, BillingAccount, responsible_id, field, p)
            if responsible is not None:
                if responsible.id == account.id:
                    p.add(field, "an account cannot be responsible for itself")
                elif responsible.status != "active":
                    p.add(field, f"the responsible account is {responsible.status}, not active")
                elif responsible.responsible_account_id is not None:
                    p.add(field, "the responsible account is itself a managed account")
                elif responsible.bill_cycle_id != new["bill_cycle_id"]:
                    p.add(field, "the responsible account has a different bill cycle")
                elif responsible.currency != new["currency"]:
                    p.add(field, "the responsible account bills in another currency")
                if managed:
                    p.add(field, "this account has managed accounts and cannot become managed")
    if not creating and new["bill_cycle_id"] != account.bill_cycle_id:
        if managed:
            p.add(name("bill_cycle_id"),
                  "must stay the same as its managed accounts' bill cycle")
        if responsible_id is not None and responsible_id == account.responsible_account_id:
            p.add(name("bill_cycle_id"), "must stay the same as its responsible account's")
    rendering = new["invoice_rendering_type"]
    if rendering is not None and rendering != account.invoice_rendering_type:
        if rendering not in RENDERING_TYPES:
            p.add(name("invoice_rendering_type"), f"must be one of {', '.join(RENDERING_TYPES)}")
        elif not managed:
            p.add(name("invoice_rendering_type"),
                  "can be set only on an account with at least one managed account")


def _check_reporting_hierarchy(
    session: Session, scope: Scope, account: BillingAccount, new: dict[str, Any],
    settings: TenantSettings, p: Problems, name: Callable[[str], str],
) -> None:
    parent_id = new["parent_account_id"]
    field = name("parent_account_id")
    same_cycle = settings.require_same_bill_cycle_for_account_hierarchy
    if parent_id is not None and parent_id != account.parent_account_id:
        if not settings.enable_account_hierarchy_management:
            p.add(field, "needs the enable_account_hierarchy_management setting")
            return
        parent = _reference(session, scope, BillingAccount, parent_id, field, p)
        if parent is None:
            return
        if parent.id == account.id:
            p.add(field, "an account cannot be its own parent")
        elif parent.status not in PARENT_STATUSES:
            p.add(field, f"the parent account is {parent.status}; it must be "
                         f"{', '.join(PARENT_STATUSES)}")
        elif same_cycle and parent.bill_cycle_id != new["bill_cycle_id"]:
            p.add(field, "require_same_bill_cycle_for_account_hierarchy is on and the parent "
                         "has a different bill cycle")
        elif _is_ancestor(session, account.id, parent):
            p.add(field, "would make a cycle: the parent is a descendant of this account")
    if same_cycle and account.id and new["bill_cycle_id"] != account.bill_cycle_id \
            and account.bill_cycle_id is not None:
        has_children = session.scalar(
            select(func.count()).where(BillingAccount.parent_account_id == account.id)
        )
        if has_children or (parent_id is not None and parent_id == account.parent_account_id):
            p.add(name("bill_cycle_id"), "require_same_bill_cycle_for_account_hierarchy is on; "
                                         "the hierarchy must keep one bill cycle")


def _is_ancestor(session: Session, account_id: str, start: BillingAccount) -> bool:
    """Whether ``account_id`` is ``start`` or one of its ancestors."""
    seen: set[str] = set()
    current: BillingAccount | None = start
    while current is not None and current.id not in seen:
        if current.id == account_id:
            return True
        seen.add(current.id)
        current = session.get(BillingAccount, current.parent_account_id) \
            if current.parent_account_id else None
    return False


def set_status(
    session: Session, account: BillingAccount, status: str, *, by_collections: bool = False
) -> None:
    """Status change for callers other than the edit window (collections)."""
    allowed = (COLLECTIONS_TRANSITIONS if by_collections else MANUAL_TRANSITIONS)
    if status not in allowed.get(account.status, frozenset()):
        raise ValidationFailed([FieldError(
            "status", f"cannot change from {account.status} to {status}", "invalid_transition")])
    if status == "deactivated" and managed_count(session, account.id):
        raise ValidationFailed([FieldError(
            "status", "cannot deactivate an account that is responsible for managed accounts; "
                      "move them to another responsible account first")])
    account.status = status
