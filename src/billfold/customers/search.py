"""Case-insensitive prefix search over indexed keys, keyset-paginated by id."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from billfold.core.scope import Scope
from billfold.customers.fields import prefix_bounds, search_key
from billfold.customers.models import BillingAccount, Customer


def _prefix(column: object, query: str) -> object:
    low, high = prefix_bounds(query)
    return (column >= low) & (column < high)  # type: ignore[operator]


def search_customers(
    session: Session, scope: Scope, *, query: str | None, limit: int,
    starting_after: str | None = None,
) -> list[Customer]:
    """Customers whose name, number, external number, email or tax number starts with
    ``query`` (any letter case); all customers when there is no query."""
    stmt = select(Customer).where(Customer.tenant_id == scope.tenant_id,
                                  Customer.mode == scope.mode)
    key = search_key(query.strip()) if query else None
    if key:
        compact = key.replace(" ", "").replace("-", "")
        stmt = stmt.where(or_(
            _prefix(Customer.name_key, key),  # type: ignore[arg-type]
            _prefix(Customer.number_key, key),  # type: ignore[arg-type]
            _prefix(Customer.external_number_key, key),  # type: ignore[arg-type]
            _prefix(Customer.email_key, key),  # type: ignore[arg-type]
            _prefix(Customer.tax_key, compact or key),  # type: ignore[arg-type]
        ))
    if starting_after:
        stmt = stmt.where(Customer.id > starting_after)
    return list(session.scalars(stmt.order_by(Customer.id).limit(limit)))


def search_billing_accounts(
    session: Session, scope: Scope, *, query: str | None, limit: int,
    starting_after: str | None = None, customer_id: str | None = None,
    status: str | None = None,
) -> list[BillingAccount]:
    """Billing accounts whose number or external number, or whose customer's name or
    number, starts with ``query`` (any letter case)."""
    stmt = select(BillingAccount).where(BillingAccount.tenant_id == scope.tenant_id,
                                        BillingAccount.mode == scope.mode)
    key = search_key(query.strip()) if query else None
    if key:
        stmt = stmt.where(or_(
            _prefix(BillingAccount.number_key, key),  # type: ignore[arg-type]
            _prefix(BillingAccount.external_number_key, key),  # type: ignore[arg-type]
            _prefix(BillingAccount.customer_name_key, key),  # type: ignore[arg-type]
            _prefix(BillingAccount.customer_number_key, key),  # type: ignore[arg-type]
        ))
    if customer_id is not None:
        stmt = stmt.where(BillingAccount.customer_id == customer_id)
    if status is not None:
        stmt = stmt.where(BillingAccount.status == status)
    if starting_after:
        stmt = stmt.where(BillingAccount.id > starting_after)
    return list(session.scalars(stmt.order_by(BillingAccount.id).limit(limit)))
