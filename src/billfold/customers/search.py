"""Case-insensitive prefix search over indexed keys, keyset-paginated by id.

A page is the first ``limit`` matches in id order, and no one plan finds it fast for every
prefix. Walking the tenant's rows in id order finds a page of a common prefix ("acct-")
at once but reads the whole tenant for a rare one; gathering the matches through the key
indexes and sorting them is quick for a rare prefix and slow for one that matches
everything. A search walks the first WINDOW rows, which settles common prefixes, and
gathers only when those held too few matches. Either way the page is the same.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, or_, select, union
from sqlalchemy.orm import Session

from billfold.core.scope import Scope
from billfold.customers.fields import prefix_bounds, search_key
from billfold.customers.models import BillingAccount, Customer

WINDOW = 2_000


def _prefix(column: Any, query: str) -> ColumnElement[bool]:
    low, high = prefix_bounds(query)
    return (column >= low) & (column < high)  # type: ignore[no-any-return]


def _first_page(session: Session, model: Any, filters: list[ColumnElement[bool]],
                prefixes: list[tuple[str, str]], limit: int) -> list[Any]:
    """The first ``limit`` rows by id that pass every filter and, when ``prefixes`` (pairs
    of key column name and prefix) are given, have one of those keys start so."""
    def page(ids: Any) -> list[Any]:
        return list(session.scalars(select(model).where(model.id.in_(ids)).order_by(model.id)))

    if not prefixes:
        return list(session.scalars(select(model).where(*filters).order_by(model.id).limit(limit)))
    window = select(model.id, *(getattr(model, name) for name, _ in prefixes)).where(
        *filters).order_by(model.id).limit(WINDOW).subquery()
    rows = page(select(window.c.id).where(or_(*(_prefix(window.c[n], p) for n, p in prefixes)))
                .order_by(window.c.id).limit(limit))
    if len(rows) == limit:
        return rows  # every row before the last of them was in the window
    matching = union(*(select(model.id).where(*filters, _prefix(getattr(model, n), p))
                       for n, p in prefixes)).subquery()
    return page(select(matching.c.id).order_by(matching.c.id).limit(limit))


def search_customers(
    session: Session, scope: Scope, *, query: str | None, limit: int,
    starting_after: str | None = None,
) -> list[Customer]:
    """Customers whose name, number, external number, email or tax number starts with
    ``query`` (any letter case); all customers when there is no query."""
    filters = [Customer.tenant_id == scope.tenant_id, Customer.mode == scope.mode]
    if starting_after:
        filters.append(Customer.id > starting_after)
    key = search_key(query.strip()) if query else None
    prefixes = []
    if key:
        compact = key.replace(" ", "").replace("-", "")
        prefixes = [("name_key", key), ("number_key", key), ("external_number_key", key),
                    ("email_key", key), ("tax_key", compact or key)]
    return _first_page(session, Customer, filters, prefixes, limit)


def search_billing_accounts(
    session: Session, scope: Scope, *, query: str | None, limit: int,
    starting_after: str | None = None, customer_id: str | None = None,
    status: str | None = None,
) -> list[BillingAccount]:
    """Billing accounts whose number or external number, or whose customer's name or
    number, starts with ``query`` (any letter case)."""
    filters = [BillingAccount.tenant_id == scope.tenant_id, BillingAccount.mode == scope.mode]
    if customer_id is not None:
        filters.append(BillingAccount.customer_id == customer_id)
    if status is not None:
        filters.append(BillingAccount.status == status)
    if starting_after:
        filters.append(BillingAccount.id > starting_after)
    key = search_key(query.strip()) if query else None
    prefixes = []
    if key:
        prefixes = [(name, key) for name in ("number_key", "external_number_key",
                                             "customer_name_key", "customer_number_key")]
    return _first_page(session, BillingAccount, filters, prefixes, limit)
