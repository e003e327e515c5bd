"""Creating many customers at once, for imports and migrations from another system.

Every item passes the same checks as ``create_customer`` and ``add_billing_account``; what
changes is the database work: numbers are reserved for the whole batch at once, uniqueness
is checked with one query per key instead of one per row, and the rows are inserted by the
driver's fastest path (``COPY`` on PostgreSQL). One wrong item refuses the whole batch and
names it (``items[3].billing_accounts[1].currency``), so a batch takes effect whole or not
at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from billfold.core import clock, ids, sequences
from billfold.core.bulk import insert_rows
from billfold.core.db import among, plan_with_values
from billfold.core.errors import Conflict, FieldError, ValidationFailed
from billfold.core.scope import Scope
from billfold.customers import accounts
from billfold.customers.history import created_row
from billfold.customers.models import BillingAccount, ChangeRecord, Customer
from billfold.customers.service import (
    ACCOUNT_DEFAULTS,
    CUSTOMER_FIELDS,
    _apply_customer_fields,
    _copy_customer_keys,
    new_row,
)
from billfold.tenants import service as tenants

MAX_BATCH = 1_000


@dataclass(frozen=True, slots=True)
class Created:
    customer_id: str
    customer_number: str
    billing_account_ids: list[str]
    billing_account_numbers: list[str]


def create_customers(
    session: Session, scope: Scope, *, items: Sequence[Mapping[str, Any]], actor: str,
) -> list[Created]:
    """Create each item's customer with its ``billing_accounts`` (the first is the default).

    More than one account per customer needs allow_multi_customer_accounts, as adding one
    by hand does.
    """
    if not 1 <= len(items) <= MAX_BATCH:
        raise ValidationFailed([FieldError("items", f"give 1 to {MAX_BATCH} customers")])
    plan_with_values(session)  # its lookups by arrays of keys run on tables it is filling
    settings = tenants.get_settings(session, scope)
    now = clock.utcnow()
    problems: list[FieldError] = []
    created: list[tuple[Any, list[Any]]] = []
    for i, item in enumerate(items):
        where = f"items[{i}]."
        account_items = item.get("billing_accounts")
        customer = new_row(
            Customer, id=ids.new_id("customer"), tenant_id=scope.tenant_id, mode=scope.mode,
            tax_id_validated=False, phones=[], secondary_emails=[], custom_fields={},
            created_at=now, updated_at=now,
        )
        try:
            _apply_customer_fields(session, scope, customer,
                                   {k: v for k, v in item.items() if k != "billing_accounts"},
                                   creating=True)
        except ValidationFailed as exc:
            problems.extend(FieldError(where + e.field, e.message, e.code) for e in exc.errors)
        if not isinstance(account_items, Sequence) or not account_items:
            problems.append(FieldError(where + "billing_accounts",
                                       "give at least one billing account", "required"))
            continue
        if len(account_items) > 1 and not settings.allow_multi_customer_accounts:
            problems.append(FieldError(
                where + "billing_accounts", "allow_multi_customer_accounts is off, so a "
                "customer has exactly one billing account", "multi_customer_accounts_disabled"))
            continue
        new_accounts = []
        for j, data in enumerate(account_items):
            account = new_row(
                BillingAccount, id=ids.new_id("billing_account"), tenant_id=scope.tenant_id, mode=scope.mode,
                customer_id=customer.id, created_at=now, updated_at=now,
            )
            values = {**ACCOUNT_DEFAULTS, "currency": None, "bill_cycle_id": None,
                      "start_date": None, "account_category_id": None, "invoice_type": None,
                      "number": None, **data, "customer_id": customer.id}
            try:
                accounts.apply_account_fields(session, scope, account, values, creating=True,
                                              settings=settings,
                                              prefix=f"{where}billing_accounts[{j}].")
            except ValidationFailed as exc:
                problems.extend(exc.errors)
            new_accounts.append(account)
        created.append((customer, new_accounts))
    if problems:
        raise ValidationFailed(problems)

    customers = [c for c, _ in created]
    all_accounts = [a for _, group in created for a in group]
    # Every check before numbering, so a refused batch uses up no number.
    for model, rows in ((Customer, customers), (BillingAccount, all_accounts)):
        for field in ("number", "external_number"):
            _check_unique(session, scope, model, rows, field)
    _number(session, scope, Customer, customers, "customer", "CUST")
    _number(session, scope, BillingAccount, all_accounts, "billing_account", "ACCT")
    for customer, group in created:
        customer.default_billing_account_id = group[0].id
        for account in group:
            _copy_customer_keys(customer, account)
    changes = [created_row(scope, object_type, row, names, actor, now)
               for object_type, rows, names in (
                   ("customer", customers, CUSTOMER_FIELDS),
                   ("billing_account", all_accounts, accounts.ACCOUNT_FIELDS))
               for row in rows]
    # Customers first: their default-account key is deferred, the accounts' customer key is not.
    insert_rows(session, _table(Customer), [vars(c) for c in customers])
    insert_rows(session, _table(BillingAccount), [vars(a) for a in all_accounts])
    insert_rows(session, _table(ChangeRecord), changes)
    return [Created(c.id, c.number, [a.id for a in group], [a.number for a in group])
            for c, group in created]


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


def _number(session: Session, scope: Scope, model: Any, rows: list[Any], series: str,
            prefix: str) -> None:
    """Give every row without a number the next free ones of the series."""
    waiting = [row for row in rows if row.number is None]
    given = {row.number_key for row in rows if row.number is not None}
    while waiting:
        values = sequences.next_values(session, scope, series, len(waiting), gap_free=False)
        candidates = [f"{prefix}-{value:06d}" for value in values]
        taken = set(session.scalars(select(model.number_key).where(
            model.tenant_id == scope.tenant_id, model.mode == scope.mode,
            among(session, model.number_key, [c.casefold() for c in candidates])))) | given
        free = [c for c in candidates if c.casefold() not in taken]
        for row, number in zip(waiting, free, strict=False):
            row.number, row.number_key = number, number.casefold()
        waiting = waiting[len(free):]


def _check_unique(session: Session, scope: Scope, model: Any, rows: list[Any], field: str) -> None:
    kind = "customer" if model is Customer else "billing account"
    keys: dict[str, Any] = {}
    for row in rows:
        key = getattr(row, f"{field}_key")
        if key is None or getattr(row, field) is None:  # numbers not given are generated
            continue
        if key in keys:
            raise Conflict(f"two {kind}s in the batch have {field} {getattr(row, field)!r}",
                           code="duplicate_number", field_name=field)
        keys[key] = row
    if not keys:
        return
    column = getattr(model, f"{field}_key")
    with session.no_autoflush:
        clash = session.scalars(select(column).where(
            model.tenant_id == scope.tenant_id, model.mode == scope.mode,
            among(session, column, list(keys)))).first()
    if clash is not None:
        raise Conflict(f"another {kind} already has {field} {getattr(keys[clash], field)!r}",
                       code="duplicate_number", field_name=field)


__all__ = ["MAX_BATCH", "Created", "create_customers"]
