"""Changing system settings, refused when existing customers and accounts would break
the rule being switched on or off."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from billfold.core.errors import FieldError, ValidationFailed
from billfold.core.scope import Scope
from billfold.customers.models import BillingAccount
from billfold.tenants import service as tenants
from billfold.tenants.models import TenantSettings


def update_settings(session: Session, scope: Scope, changes: Mapping[str, Any]) -> TenantSettings:
    settings = tenants.get_settings(session, scope, for_update=True)
    tenants.validate_settings_changes(changes)
    in_scope = (BillingAccount.tenant_id == scope.tenant_id) & (BillingAccount.mode == scope.mode)
    errors: list[FieldError] = []
    if changes.get("allow_multi_customer_accounts") is False:
        many = session.scalar(
            select(func.count()).select_from(
                select(BillingAccount.customer_id).where(in_scope)
                .group_by(BillingAccount.customer_id).having(func.count() > 1).subquery()
            )
        )
        if many:
            errors.append(FieldError("allow_multi_customer_accounts",
                                     f"{many} customer(s) already have more than one billing account"))
    if changes.get("enable_responsible_account_management") is False and session.scalar(
        select(func.count()).where(in_scope, BillingAccount.responsible_account_id.is_not(None))
    ):
        errors.append(FieldError("enable_responsible_account_management",
                                 "managed accounts exist; remove their responsible accounts first"))
    if changes.get("enable_account_hierarchy_management") is False and session.scalar(
        select(func.count()).where(in_scope, BillingAccount.parent_account_id.is_not(None))
    ):
        errors.append(FieldError("enable_account_hierarchy_management",
                                 "child accounts exist; remove their parent accounts first"))
    parent = aliased(BillingAccount)
    if changes.get("require_same_bill_cycle_for_account_hierarchy") is True and session.scalar(
        select(func.count()).select_from(BillingAccount)
        .join(parent, parent.id == BillingAccount.parent_account_id)
        .where(in_scope, parent.bill_cycle_id != BillingAccount.bill_cycle_id)
    ):
        errors.append(FieldError("require_same_bill_cycle_for_account_hierarchy",
                                 "child accounts have another bill cycle than their parent; "
                                 "move them to the parent's bill cycle first"))
    options = changes.get("invoice_distribution_options")
    if options is not None:
        used = session.scalars(
            select(BillingAccount.invoice_type).where(
                in_scope, BillingAccount.invoice_type.not_in(options)).distinct()
        ).all()
        if used:
            errors.append(FieldError("invoice_distribution_options",
                                     f"billing accounts still use {', '.join(sorted(used))}"))
    if errors:
        raise ValidationFailed(errors)
    tenants.apply_settings(settings, changes)
    session.flush()
    return settings
