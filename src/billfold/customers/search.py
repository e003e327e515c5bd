"""Case-insensitive prefix search over indexed keys, keyset-paginated by id."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, or_, select, union
from sqlalchemy.orm import Session

from billfold.core.scope import Scope
from billfold.customers.fields import prefix_bounds, search_key
from billfold.customers.models import BillingAccount, Customer

WINDOW = 2_000


def _in_prefix(column: Any, n: int) -> ColumnElement[bool]:
    return (column >= bindparam(f"low_{n}")) & (column < bindparam(f"high_{n}"))  # type: ignore[no-any-return]


@lru_cache(maxsize=128)
def _statements(model: Any, filters: tuple[str, ...], keys: tuple[str, ...]
                ) -> tuple[Select[Any], Select[Any] | None]:
    """The window and the gather statement of one shape of search, built once: building a
    statement this size costs more than PostgreSQL takes to run it. ``filters`` name the
    columns compared for equality (``after`` is the keyset bound), ``keys`` the key
    columns a prefix is looked for in; values come as parameters."""
    where = [model.id > bindparam("after") if name == "after"
             else getattr(model, name) == bindparam(name) for name in filters]

    def page(ids: Any) -> Select[Any]:
        return select(model).where(model.id.in_(ids)).order_by(model.id)

    if not keys:
        return select(model).where(*where).order_by(model.id).limit(bindparam("limit")), None
    window = select(model.id, *(getattr(model, k) for k in keys)).where(
        *where).order_by(model.id).limit(WINDOW).subquery()
    in_window = page(select(window.c.id).where(
        or_(*(_in_prefix(window.c[k], n) for n, k in enumerate(keys))))
        .order_by(window.c.id).limit(bindparam("limit")))
    matching = union(*(select(model.id).where(*where, _in_prefix(getattr(model, k), n))
                       for n, k in enumerate(keys))).subquery()
    gathered = page(select(matching.c.id).order_by(matching.c.id).limit(bindparam("limit")))
    return in_window, gathered


def _first_page(session: Session, model: Any, filters: dict[str, Any],
                prefixes: list[tuple[str, str]], limit: int) -> list[Any]:
    """The first ``limit`` rows by id that pass every filter (column name to value;
    ``after`` for the keyset bound) and, when ``prefixes`` (pairs of key column name and
    prefix) are given, have one of those keys start so.

    A page is the first ``limit`` matches in id order, and no one plan finds it fast for
    every prefix. Walking the tenant's rows in id order finds a page of a common prefix
    ("acct-") at once but reads the whole tenant for a rare one; gathering the matches
    through the key indexes and sorting them is quick for a rare prefix and slow for one
    that matches everything. A search walks the first WINDOW rows, which settles common
    prefixes, and gathers only when those held too few matches. Either way the page is
    the same."""
    window, gather = _statements(model, tuple(filters), tuple(k for k, _ in prefixes))
    params = dict(filters, limit=limit)
    for n, (_, prefix) in enumerate(prefixes):
        params[f"low_{n}"], params[f"high_{n}"] = prefix_bounds(prefix)
    rows = list(session.scalars(window, params))
    if gather is None or len(rows) == limit:
        return rows  # every row before the last of them was in the window
    return list(session.scalars(gather, params))


def search_customers(
    session: Session, scope: Scope, *, query: str | None, limit: int,
    starting_after: str | None = None,
) -> list[Customer]:
    """Customers whose name, number, external number, email or tax number starts with
    ``query`` (any letter case); all customers when there is no query."""
    filters: dict[str, Any] = {"tenant_id": scope.tenant_id, "mode": scope.mode}
    if starting_after:
        filters["after"] = starting_after
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
    filters: dict[str, Any] = {"tenant_id": scope.tenant_id, "mode": scope.mode}
    if customer_id is not None:
        filters["customer_id"] = customer_id
    if status is not None:
        filters["status"] = status
    if starting_after:
        filters["after"] = starting_after
    key = search_key(query.strip()) if query else None
    prefixes = []
    if key:
        prefixes = [(name, key) for name in ("number_key", "external_number_key",
                                             "customer_name_key", "customer_number_key")]
    return _first_page(session, BillingAccount, filters, prefixes, limit)
