"""/v1/customers and /v1/billing_accounts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from sqlalchemy import bindparam, select

from billfold.core.db import transaction
from billfold.core.errors import invalid
from billfold.customers import accounts, history, records, search
from billfold.customers import service as customers
from billfold.customers.models import BillingAccount, Customer
from billfold.customers.service import CUSTOMER_FIELDS
from billfold.customers.summary import account_summary
from billfold.orders import service as orders
from billfold.web.api import schemas as s
from billfold.web.deps import ApiCaller, DbSession, Pagination, paged
from billfold.web.routing import Router

router = Router(prefix="/v1")

SearchQuery = Annotated[str | None, Query(max_length=200, description=(
    "Case-insensitive prefix of a name, number, external number or email"))]


def _check_query(query: str | None) -> None:
    if query is not None and "\x00" in query:
        raise invalid("query", "may not contain NUL characters")


def customer_out(customer: Customer) -> dict[str, Any]:
    out = {f: getattr(customer, f) for f in CUSTOMER_FIELDS}
    out.update(id=customer.id, default_billing_account_id=customer.default_billing_account_id,
               mode=customer.mode, created_at=customer.created_at, updated_at=customer.updated_at)
    return out


def account_out(account: BillingAccount, default_id: str | None) -> dict[str, Any]:
    out = {f: getattr(account, f) for f in accounts.ACCOUNT_FIELDS}
    out.update(id=account.id, is_default=account.id == default_id, mode=account.mode,
               created_at=account.created_at, updated_at=account.updated_at)
    return out


# Built once: building a statement costs more than running it.
_DEFAULTS = select(Customer.id, Customer.default_billing_account_id).where(
    Customer.id.in_(bindparam("ids", expanding=True)))


def _accounts_out(db: DbSession, rows: list[BillingAccount]) -> list[dict[str, Any]]:
    owners = {r.customer_id for r in rows}
    defaults = dict(db.execute(_DEFAULTS, {"ids": list(owners)}).all()) \
        if owners else {}
    return [account_out(r, defaults.get(r.customer_id)) for r in rows]


def _default_of(db: DbSession, account: BillingAccount) -> str | None:
    return db.scalar(select(Customer.default_billing_account_id)
                     .where(Customer.id == account.customer_id))


# -- customers -------------------------------------------------------------------------


@router.post("/customers", response_model=s.CustomerCreated, status_code=201, tags=["customers"])
def create_customer(body: s.CustomerCreate, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    with transaction(db):
        customer, account = customers.create_customer(
            db, caller.scope, data=body.model_dump(exclude_unset=True) | {
                "billing_account": body.billing_account.model_dump(exclude_unset=True)},
            actor=caller.actor)
        return customer_out(customer) | {"billing_account": account_out(account, account.id)}


@router.get("/customers", response_model=s.page_of(s.CustomerOut), tags=["customers"])
def list_customers(db: DbSession, caller: ApiCaller, page: Pagination,
                   query: SearchQuery = None) -> dict[str, object]:
    _check_query(query)
    rows = search.search_customers(db, caller.scope, query=query, limit=page.limit + 1,
                                   starting_after=page.starting_after)
    return paged([customer_out(c) for c in rows], page)


@router.get("/customers/{customer_id}", response_model=s.CustomerOut, tags=["customers"])
def get_customer(customer_id: str, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    return customer_out(customers.get_customer(db, caller.scope, customer_id))


@router.patch("/customers/{customer_id}", response_model=s.CustomerOut, tags=["customers"])
def patch_customer(customer_id: str, body: s.CustomerPatch, db: DbSession, caller: ApiCaller
                   ) -> dict[str, Any]:
    with transaction(db):
        customer = customers.update_customer(db, caller.scope, customer_id=customer_id,
                                             changes=body.model_dump(exclude_unset=True),
                                             actor=caller.actor)
        return customer_out(customer)


@router.post("/customers/{customer_id}/billing_accounts", response_model=s.BillingAccountOut,
             status_code=201, tags=["customers"])
def add_billing_account(customer_id: str, body: s.BillingAccountAdd, db: DbSession,
                        caller: ApiCaller) -> dict[str, Any]:
    with transaction(db):
        account = customers.add_billing_account(db, caller.scope, customer_id=customer_id,
                                                data=body.model_dump(exclude_unset=True),
                                                actor=caller.actor)
        return account_out(account, _default_of(db, account))


@router.get("/customers/{customer_id}/billing_accounts",
            response_model=s.page_of(s.BillingAccountOut), tags=["customers"])
def list_customer_accounts(customer_id: str, db: DbSession, caller: ApiCaller,
                           page: Pagination) -> dict[str, object]:
    customers.get_customer(db, caller.scope, customer_id)
    rows = search.search_billing_accounts(db, caller.scope, query=None, customer_id=customer_id,
                                          limit=page.limit + 1, starting_after=page.starting_after)
    return paged(_accounts_out(db, rows), page)  # type: ignore[arg-type]


@router.get("/customers/{customer_id}/history", response_model=s.page_of(s.HistoryOut),
            tags=["customers"])
def customer_history(customer_id: str, db: DbSession, caller: ApiCaller, page: Pagination
                     ) -> dict[str, object]:
    customers.get_customer(db, caller.scope, customer_id)
    return paged(history.list_history(db, caller.scope, object_type="customer",  # type: ignore[arg-type]
                                      object_id=customer_id, limit=page.limit + 1,
                                      starting_after=page.starting_after), page)


# -- billing accounts ------------------------------------------------------------------


@router.get("/billing_accounts", response_model=s.page_of(s.BillingAccountOut),
            tags=["billing accounts"])
def list_billing_accounts(
    db: DbSession, caller: ApiCaller, page: Pagination, query: SearchQuery = None,
    customer_id: Annotated[str | None, Query(max_length=40)] = None,
    status: s.Status | None = None,
) -> dict[str, object]:
    _check_query(query)
    _check_query(customer_id)
    rows = search.search_billing_accounts(
        db, caller.scope, query=query, customer_id=customer_id, status=status,
        limit=page.limit + 1, starting_after=page.starting_after)
    return paged(_accounts_out(db, rows), page)  # type: ignore[arg-type]


@router.get("/billing_accounts/{account_id}", response_model=s.BillingAccountOut,
            tags=["billing accounts"])
def get_billing_account(account_id: str, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    account = customers.get_billing_account(db, caller.scope, account_id)
    return account_out(account, _default_of(db, account))


@router.patch("/billing_accounts/{account_id}", response_model=s.BillingAccountOut,
              tags=["billing accounts"])
def patch_billing_account(account_id: str, body: s.BillingAccountPatch, db: DbSession,
                          caller: ApiCaller) -> dict[str, Any]:
    with transaction(db):
        account = customers.update_billing_account(
            db, caller.scope, account_id=account_id, changes=body.model_dump(exclude_unset=True),
            actor=caller.actor)
        return account_out(account, _default_of(db, account))


@router.get("/billing_accounts/{account_id}/summary", response_model=s.SummaryOut,
            tags=["billing accounts"])
def get_summary(account_id: str, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    summary = account_summary(db, caller.scope, account_id)
    account, customer = summary.account, summary.customer
    # Customers sit below orders, so the summary leaves pending charges to this edge.
    pending = orders.pending_totals(db, caller.scope, account.id)
    def money(minor: int) -> dict[str, Any]:
        return {"amount_minor": minor, "currency": account.currency}

    return {
        "billing_account_id": account.id, "account_number": account.number,
        "external_number": account.external_number, "customer_id": customer.id,
        "customer_number": customer.number, "customer_name": customer.customer_name,
        "primary_email": customer.primary_email, "status": account.status,
        "start_date": account.start_date, "currency": account.currency,
        "balance": money(summary.balance_minor),
        "unapplied_payments": money(summary.unapplied_payments_minor),
        "pending_charges": money(pending.amount_minor),
        "pending_charges_count": pending.count,
        "next_invoice_date": summary.next_invoice_date, "bill_cycle": summary.bill_cycle,
        "payment_term": summary.payment_term,
        "authorize_auto_payment": account.authorize_auto_payment,
        "auto_pay_offset_days": account.auto_pay_offset_days,
        "email_confirmations": account.email_confirmations,
        "email_notify": account.email_notify,
        "is_default": customer.default_billing_account_id == account.id,
        "managed_accounts_count": accounts.managed_count(db, account.id),
        "responsible_account_id": account.responsible_account_id,
        "parent_account_id": account.parent_account_id,
    }


@router.get("/billing_accounts/{account_id}/history", response_model=s.page_of(s.HistoryOut),
            tags=["billing accounts"])
def account_history(account_id: str, db: DbSession, caller: ApiCaller, page: Pagination
                    ) -> dict[str, object]:
    customers.get_billing_account(db, caller.scope, account_id)
    return paged(history.list_history(db, caller.scope, object_type="billing_account",  # type: ignore[arg-type]
                                      object_id=account_id, limit=page.limit + 1,
                                      starting_after=page.starting_after), page)


@router.post("/billing_accounts/{account_id}/notes", response_model=s.NoteOut, status_code=201,
             tags=["billing accounts"])
def add_note(account_id: str, body: s.NoteIn, db: DbSession, caller: ApiCaller) -> Any:
    with transaction(db):
        return records.add_note(db, caller.scope, account_id=account_id, body=body.body,
                                author=caller.actor)


@router.get("/billing_accounts/{account_id}/notes", response_model=s.page_of(s.NoteOut),
            tags=["billing accounts"])
def list_notes(account_id: str, db: DbSession, caller: ApiCaller, page: Pagination
               ) -> dict[str, object]:
    return paged(records.list_notes(db, caller.scope, account_id=account_id,  # type: ignore[arg-type]
                                    limit=page.limit + 1, starting_after=page.starting_after), page)


@router.post("/billing_accounts/{account_id}/contacts", response_model=s.ContactOut,
             status_code=201, tags=["billing accounts"])
def add_contact(account_id: str, body: s.ContactIn, db: DbSession, caller: ApiCaller) -> Any:
    with transaction(db):
        return records.add_contact(db, caller.scope, account_id=account_id, **body.model_dump())


@router.get("/billing_accounts/{account_id}/contacts", response_model=s.page_of(s.ContactOut),
            tags=["billing accounts"])
def list_contacts(account_id: str, db: DbSession, caller: ApiCaller, page: Pagination
                  ) -> dict[str, object]:
    return paged(records.list_contacts(db, caller.scope, account_id=account_id,  # type: ignore[arg-type]
                                       limit=page.limit + 1, starting_after=page.starting_after),
                 page)
