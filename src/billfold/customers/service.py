"""Use cases for customers and billing accounts. Services never commit; the edge owns the
transaction."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.orm import Session

from billfold.core import clock, ids, sequences
from billfold.core.db import get_scoped, persisted
from billfold.core.errors import Conflict, FieldError, ValidationFailed, invalid
from billfold.core.scope import Scope
from billfold.customers import accounts, fields, history
from billfold.customers.fields import Problems
from billfold.customers.models import BillingAccount, ChangeRecord, Customer, person_name
from billfold.tenants import service as tenants
from billfold.tenants.models import TenantSettings

CUSTOMER_FIELDS = (
    "number", "external_number", "first_name", "last_name", "company_name", "customer_name",
    "date_of_birth", "tax_number", "tax_id_validated", "phones", "primary_email",
    "secondary_emails", "billing_address", "service_address", "shipping_address",
    "custom_fields",
)
ACCOUNT_DEFAULTS: dict[str, Any] = {
    "status": "active", "taxable": True, "minimum_invoice_amount_minor": 0,
    "preferred_language": "en", "authorize_auto_payment": False, "auto_pay_offset_days": 0,
    "email_confirmations": True, "email_notify": True,
    "custom_fields": {}, "responsible_account_id": None, "parent_account_id": None,
    "invoice_rendering_type": None, "payment_term_id": None, "external_number": None,
    "invoice_currency": None,
}


# -- reading ---------------------------------------------------------------------------


def get_customer(session: Session, scope: Scope, customer_id: str, *, for_update: bool = False
                 ) -> Customer:
    customer: Customer = get_scoped(session, Customer, customer_id, scope, "customer",
                                    for_update=for_update)
    return customer


def get_billing_account(session: Session, scope: Scope, account_id: str, *,
                        for_update: bool = False) -> BillingAccount:
    account: BillingAccount = get_scoped(session, BillingAccount, account_id, scope,
                                         "billing_account", for_update=for_update)
    return account


def customer_accounts(session: Session, scope: Scope, customer_id: str) -> list[BillingAccount]:
    return list(session.scalars(
        select(BillingAccount).where(
            BillingAccount.tenant_id == scope.tenant_id, BillingAccount.mode == scope.mode,
            BillingAccount.customer_id == customer_id,
        ).order_by(BillingAccount.id)
    ))


# -- customers -------------------------------------------------------------------------


def create_customer(
    session: Session, scope: Scope, *, data: Mapping[str, Any], actor: str
) -> tuple[Customer, BillingAccount]:
    """Create a customer and its first billing account, which becomes the default."""
    settings = tenants.get_settings(session, scope)
    account_data = data.get("billing_account")
    customer_data = {k: v for k, v in data.items() if k != "billing_account"}
    now = clock.utcnow()
    customer = new_row(
        Customer, id=ids.new_id("customer"), tenant_id=scope.tenant_id, mode=scope.mode,
        tax_id_validated=False, phones=[], secondary_emails=[], custom_fields={},
        created_at=now, updated_at=now,
    )
    problems: list[FieldError] = []
    try:
        _apply_customer_fields(session, scope, customer, customer_data, creating=True)
    except ValidationFailed as exc:
        problems.extend(exc.errors)
    if not isinstance(account_data, Mapping):
        problems.append(FieldError("billing_account", "is required: every customer starts with "
                                                      "its default billing account", "required"))
        raise ValidationFailed(problems)
    try:
        account = _new_account(session, scope, customer, account_data, settings,
                               prefix="billing_account.")
    except ValidationFailed as exc:
        problems.extend(exc.errors)
    if problems:
        raise ValidationFailed(problems)
    _ensure_unique(session, scope, Customer, customer, "",
                   checked=("external_number",) if customer.number is None else
                   ("number", "external_number"))
    _assign_number(session, scope, Customer, customer)
    _assign_number(session, scope, BillingAccount, account)
    customer.default_billing_account_id = account.id
    _copy_customer_keys(customer, account)
    # Customer first: its default-account key is deferred, the account's customer key is not.
    session.execute(INSERT[Customer], [vars(customer)])
    session.execute(INSERT[BillingAccount], [vars(account)])
    session.execute(INSERT[ChangeRecord], [
        history.created_row(scope, "customer", customer, CUSTOMER_FIELDS, actor, now),
        history.created_row(scope, "billing_account", account, accounts.ACCOUNT_FIELDS, actor,
                            now)])
    return persisted(session, Customer, customer), persisted(session, BillingAccount, account)


def new_row(model: Any, **values: Any) -> Any:
    """A plain stand-in for a new row: the field checks read and set attributes on it
    exactly as on a model instance, without the ORM's bookkeeping for every attribute.
    It is written with one INSERT and handed back through ``persisted``."""
    blank = {column.key: None for column in model.__table__.columns}
    return SimpleNamespace(**(blank | values))


# Core statements, built once: rows from ``new_row`` carry every column, so one statement
# shape serves every insert, and the ORM's bulk machinery has nothing to add.
INSERT = {model: cast(Table, model.__table__).insert()
          for model in (Customer, BillingAccount, ChangeRecord)}


def update_customer(
    session: Session, scope: Scope, *, customer_id: str, changes: Mapping[str, Any], actor: str
) -> Customer:
    customer = get_customer(session, scope, customer_id, for_update=True)
    before = history.snapshot(customer, CUSTOMER_FIELDS)
    before["default_billing_account_id"] = customer.default_billing_account_id
    default_id = changes.get("default_billing_account_id")
    customer_changes = {k: v for k, v in changes.items() if k != "default_billing_account_id"}
    if "number" in customer_changes and customer_changes["number"] != customer.number:
        raise invalid("number", "cannot be changed once the customer exists", "immutable")
    _apply_customer_fields(session, scope, customer, customer_changes, creating=False)
    if "default_billing_account_id" in changes:
        _make_default(session, scope, customer, default_id, "default_billing_account_id")
    _ensure_unique(session, scope, Customer, customer, "")
    customer.updated_at = clock.utcnow()
    after = history.snapshot(customer, CUSTOMER_FIELDS)
    after["default_billing_account_id"] = customer.default_billing_account_id
    if history.record(session, scope, object_type="customer", object_id=customer.id,
                      action="updated", actor=actor, before=before, after=after):
        for account in customer_accounts(session, scope, customer.id):
            _copy_customer_keys(customer, account)
    session.flush()
    return customer


def _apply_customer_fields(
    session: Session, scope: Scope, customer: Customer, changes: Mapping[str, Any], *,
    creating: bool,
) -> None:
    p = Problems()
    for key in sorted(set(changes) - set(CUSTOMER_FIELDS)):
        p.add(key, "is not a customer field", "unknown_field")
    new = {f: getattr(customer, f, None) for f in CUSTOMER_FIELDS}
    new.update({k: v for k, v in changes.items() if k in CUSTOMER_FIELDS})

    first = fields.text(new["first_name"], "first_name", p, max_length=100)
    last = fields.text(new["last_name"], "last_name", p, max_length=100)
    company = fields.text(new["company_name"], "company_name", p, max_length=200)
    person = person_name(first, last) if first and last else None
    if (first is None) != (last is None):
        p.add("last_name" if first else "first_name",
              "a personal customer needs both first_name and last_name")
    if company is None and person is None:
        p.add("company_name", "give company_name for a company or first_name and last_name "
                              "for a person", "required")
    choices = [c for c in (company, person) if c]
    given = fields.text(new["customer_name"], "customer_name", p, max_length=200)
    if given is not None and "customer_name" not in changes and given not in choices:
        given = None  # the names it was chosen from changed; choose again
    if given is None:
        given = choices[0] if choices else None
    elif given not in choices:
        p.add("customer_name", "must be the company name or the person's first and last name: "
                               + " or ".join(repr(c) for c in choices))
    dob = fields.birth_date(new["date_of_birth"], "date_of_birth", p,
                            today=tenants.today(session, scope))
    if dob is not None and (person is None or given != person):
        p.add("date_of_birth", "is only for personal customers (customer_name is the "
                               "person's first and last name)")

    billing = fields.address(new["billing_address"], "billing_address", p, may_be_same=False)
    service = fields.address(new["service_address"], "service_address", p, may_be_same=True)
    shipping = fields.address(new["shipping_address"], "shipping_address", p, may_be_same=True)
    for name, value in (("service_address", service), ("shipping_address", shipping)):
        if value == {"same_as_billing": True} and billing is None:
            p.add(name, "same_as_billing needs a billing_address")
    country = billing["country"] if billing else None
    phones = fields.phones(new["phones"], "phones", p, region=country)
    primary = fields.email(new["primary_email"], "primary_email", p)
    if primary is None and not any(e.field == "primary_email" for e in p):
        p.add("primary_email", "is required", "required")
    secondary: list[str] = []
    if new["secondary_emails"] is not None:
        if not isinstance(new["secondary_emails"], list) or len(new["secondary_emails"]) > 10:
            p.add("secondary_emails", "must be a list of at most 10 addresses")
        else:
            for i, value in enumerate(new["secondary_emails"]):
                address = fields.email(value, f"secondary_emails[{i}]", p)
                if address is not None:
                    if address.casefold() in {e.casefold() for e in [primary or "", *secondary]}:
                        p.add(f"secondary_emails[{i}]", "repeats another email address")
                    else:
                        secondary.append(address)
    tax = fields.tax_number(new["tax_number"], "tax_number", p, country_code=country)
    external = fields.number(new["external_number"], "external_number", p)
    number = fields.number(new["number"], "number", p) if creating else customer.number
    custom = new["custom_fields"] if new["custom_fields"] is not None else {}
    if not isinstance(custom, dict):
        p.add("custom_fields", "must be an object")
    else:
        definitions = tenants.custom_field_definitions(session, scope, "customer")
        p.extend(tenants.validate_custom_fields(definitions, custom))
    if not isinstance(new["tax_id_validated"], bool):
        p.add("tax_id_validated", "must be true or false")
    if p:
        raise ValidationFailed(list(p))
    customer.first_name, customer.last_name, customer.company_name = first, last, company
    customer.customer_name = given or ""
    customer.date_of_birth = dob
    customer.tax_number, customer.tax_id_validated = tax, bool(new["tax_id_validated"])
    customer.phones, customer.primary_email, customer.secondary_emails = phones, primary or "", secondary
    customer.billing_address, customer.service_address = billing, service
    customer.shipping_address = shipping
    customer.custom_fields = custom
    customer.external_number = external
    if creating:
        customer.number = number  # type: ignore[assignment]  # generated later when None
    customer.number_key = fields.search_key(customer.number) or ""
    customer.external_number_key = fields.search_key(external)
    customer.name_key = fields.search_key(customer.customer_name) or ""
    customer.email_key = fields.search_key(customer.primary_email) or ""
    customer.tax_key = fields.search_key(tax.replace(" ", "").replace("-", "") if tax else None)


def _copy_customer_keys(customer: Customer, account: BillingAccount) -> None:
    account.customer_name_key = customer.name_key
    account.customer_number_key = customer.number_key


# Built once: on SQLite, building and caching a new statement costs more than running it.
# Whether another row than ``id`` holds a number or external number.
_KEY_TAKEN = {
    (model, field): select(model.id).where(
        model.tenant_id == bindparam("tenant_id"), model.mode == bindparam("mode"),
        getattr(model, f"{field}_key") == bindparam("key"), model.id != bindparam("id"))
    for model in (Customer, BillingAccount) for field in ("number", "external_number")
}


def _generate_number(session: Session, scope: Scope, model: Any, row_id: str, series: str,
                     prefix: str) -> str:
    """The next free number in the series; numbers given by hand are skipped over."""
    while True:
        (value,) = sequences.next_values(session, scope, series, gap_free=False)
        candidate = f"{prefix}-{value:06d}"
        taken = session.scalar(_KEY_TAKEN[model, "number"], {
            "tenant_id": scope.tenant_id, "mode": scope.mode, "key": candidate.casefold(),
            "id": row_id})
        if not taken:
            return candidate


def _ensure_unique(session: Session, scope: Scope, model: Any, obj: Any, prefix: str, *,
                   checked: tuple[str, ...] = ("number", "external_number")) -> None:
    """Raise Conflict when another row has the same number or external number. A number
    _generate_number just returned was found free then, so callers leave it out of
    ``checked``."""
    for field in checked:
        key = getattr(obj, f"{field}_key")
        if key is None:
            continue
        # No autoflush: flushing the changed row first would hit the unique index and
        # raise IntegrityError instead of this Conflict.
        with session.no_autoflush:
            clash = session.scalar(_KEY_TAKEN[model, field], {
                "tenant_id": scope.tenant_id, "mode": scope.mode, "key": key, "id": obj.id})
        if clash:
            kind = "customer" if model is Customer else "billing account"
            raise Conflict(f"another {kind} already has {field} {getattr(obj, field)!r}",
                           code="duplicate_number", field_name=f"{prefix}{field}")


# -- billing accounts ------------------------------------------------------------------


def _new_account(
    session: Session, scope: Scope, customer: Any, data: Mapping[str, Any],
    settings: TenantSettings, *, prefix: str = "",
) -> Any:
    """A checked new account as a ``new_row``, not yet numbered or written."""
    now = clock.utcnow()
    account = new_row(
        BillingAccount, id=ids.new_id("billing_account"), tenant_id=scope.tenant_id,
        mode=scope.mode, customer_id=customer.id, created_at=now, updated_at=now,
    )
    values = {**ACCOUNT_DEFAULTS, **{k: v for k, v in data.items() if k != "set_as_default"}}
    values["customer_id"] = customer.id
    for key in ("currency", "bill_cycle_id", "start_date", "account_category_id",
                "invoice_type", "number"):
        values.setdefault(key, None)
    accounts.apply_account_fields(session, scope, account, values, creating=True,
                                  settings=settings, prefix=prefix)
    _ensure_unique(session, scope, BillingAccount, account, prefix,
                   checked=("external_number",) if account.number is None else
                   ("number", "external_number"))
    _copy_customer_keys(customer, account)
    return account


def _assign_number(session: Session, scope: Scope, model: Any, row: Any) -> None:
    """Number a row that was given none. Called once every check has passed, so a refused
    request uses up no number."""
    if row.number is None:
        series, prefix = ("customer", "CUST") if model is Customer \
            else ("billing_account", "ACCT")
        row.number = _generate_number(session, scope, model, row.id, series, prefix)
        row.number_key = fields.search_key(row.number) or ""


def add_billing_account(
    session: Session, scope: Scope, *, customer_id: str, data: Mapping[str, Any], actor: str,
) -> BillingAccount:
    """Add another billing account to a customer; needs allow_multi_customer_accounts."""
    settings = tenants.get_settings(session, scope)
    customer = get_customer(session, scope, customer_id, for_update=True)
    if not settings.allow_multi_customer_accounts:
        raise Conflict(
            "allow_multi_customer_accounts is off, so a customer has exactly one billing "
            "account; turn the setting on to add more", code="multi_customer_accounts_disabled",
        )
    if data.get("is_default") is not None:
        raise invalid("is_default", "use set_as_default when adding an account", "unknown_field")
    row = _new_account(session, scope, customer, data, settings)
    _assign_number(session, scope, BillingAccount, row)
    session.execute(INSERT[BillingAccount], [vars(row)])
    session.execute(INSERT[ChangeRecord], [history.created_row(
        scope, "billing_account", row, accounts.ACCOUNT_FIELDS, actor, row.created_at)])
    account: BillingAccount = persisted(session, BillingAccount, row)
    if data.get("set_as_default"):
        _make_default(session, scope, customer, account.id, "set_as_default", actor=actor)
    return account


def update_billing_account(
    session: Session, scope: Scope, *, account_id: str, changes: Mapping[str, Any], actor: str,
) -> BillingAccount:
    settings = tenants.get_settings(session, scope)
    if "is_default" in changes:
        # Lock the customer before the account, the order update_customer takes them in
        # (its new default's foreign key locks the account), so the two cannot deadlock.
        owner_id = get_billing_account(session, scope, account_id).customer_id
        get_customer(session, scope, owner_id, for_update=True)
    account = get_billing_account(session, scope, account_id, for_update=True)
    before = history.snapshot(account, accounts.ACCOUNT_FIELDS)
    make_default = changes.get("is_default")
    accounts.apply_account_fields(
        session, scope, account, {k: v for k, v in changes.items() if k != "is_default"},
        creating=False, settings=settings,
    )
    _ensure_unique(session, scope, BillingAccount, account, "")
    account.updated_at = clock.utcnow()
    history.record(session, scope, object_type="billing_account", object_id=account.id,
                   action="updated", actor=actor, before=before,
                   after=history.snapshot(account, accounts.ACCOUNT_FIELDS))
    if "is_default" in changes:
        customer = get_customer(session, scope, account.customer_id, for_update=True)
        if make_default is True:
            _make_default(session, scope, customer, account.id, "is_default", actor=actor)
        elif customer.default_billing_account_id == account.id:
            raise invalid("is_default", "a customer always has one default account; make "
                                        "another account the default instead")
    session.flush()
    return account


def _make_default(
    session: Session, scope: Scope, customer: Customer, account_id: Any, field: str,
    actor: str | None = None,
) -> None:
    if not isinstance(account_id, str):
        raise invalid(field, "must be the id of one of the customer's billing accounts")
    account = session.get(BillingAccount, account_id)
    if account is None or account.customer_id != customer.id or account.mode != scope.mode:
        raise invalid(field, f"{account_id!r} is not one of this customer's billing accounts")
    if account.status == "deactivated":
        raise invalid(field, "a deactivated account cannot be the default")
    previous = customer.default_billing_account_id
    if previous == account_id:
        return
    customer.default_billing_account_id = account_id
    if actor is not None:
        history.record(session, scope, object_type="customer", object_id=customer.id,
                       action="updated", actor=actor,
                       before={"default_billing_account_id": previous},
                       after={"default_billing_account_id": account_id})


def count_accounts(session: Session, scope: Scope, customer_id: str) -> int:
    return session.scalar(select(func.count()).where(
        BillingAccount.tenant_id == scope.tenant_id, BillingAccount.mode == scope.mode,
        BillingAccount.customer_id == customer_id)) or 0
