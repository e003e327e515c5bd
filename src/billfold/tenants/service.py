"""Use cases for tenants, their settings and reference data. Services never commit."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from datetime import date, datetime, timedelta
from ipaddress import IPv6Address
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from billfold import money
from billfold.core import clock, ids, txcache
from billfold.core.db import get_scoped
from billfold.core.errors import Conflict, FieldError, NotFound, ValidationFailed, invalid
from billfold.core.scope import MODES, Scope
from billfold.tenants.models import (
    CUSTOM_FIELD_OBJECTS,
    CUSTOM_FIELD_TYPES,
    DISTRIBUTION_OPTIONS,
    FREQUENCIES,
    AccountCategory,
    BillCycle,
    CustomFieldDefinition,
    PaymentTerm,
    Tenant,
    TenantSettings,
)

SETTING_FIELDS = (
    "allow_multi_customer_accounts",
    "enable_responsible_account_management",
    "enable_account_hierarchy_management",
    "require_same_bill_cycle_for_account_hierarchy",
    "invoice_distribution_options",
    "time_zone",
    "allowed_origins",
    "allow_private_postback_targets",
    "pay_session_minutes",
    "ach_return_fee_minor",
    "invoice_history_enabled",
    "sso_enabled",
    "paper_bill",
    "email_notify",
    "email_confirmations",
    "payer_controlled_preferences",
    "sso_key_overlap_minutes",
    "registration_check",
    "autopay_min_offset_days",
    "autopay_max_offset_days",
)
REGISTRATION_CHECKS = ("postal_code", "last_invoice_amount")
MAX_AUTOPAY_OFFSET_DAYS = 60
MAX_ORIGINS = 50


def create_tenant(session: Session, *, name: str) -> Tenant:
    name = name.strip()
    if not name or len(name) > 200:
        raise invalid("name", "must be 1 to 200 characters")
    now = clock.utcnow()
    tenant = Tenant(id=ids.new_id("tenant"), name=name, created_at=now)
    session.add(tenant)
    session.flush()
    for mode in MODES:
        session.add(
            TenantSettings(
                tenant_id=tenant.id, mode=mode, allow_multi_customer_accounts=False,
                enable_responsible_account_management=False,
                enable_account_hierarchy_management=False,
                require_same_bill_cycle_for_account_hierarchy=False,
                invoice_distribution_options=["none", "email"], time_zone="UTC",
                allowed_origins=[], allow_private_postback_targets=False,
                pay_session_minutes=30, ach_return_fee_minor=0, clock_offset_days=0, updated_at=now,
            )
        )
    session.flush()
    return tenant


def get_tenant(session: Session, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant", tenant_id)
    return tenant


def find_tenant_by_name(session: Session, name: str) -> Tenant | None:
    return session.scalars(select(Tenant).where(Tenant.name == name).limit(1)).first()


def get_settings(session: Session, scope: Scope, *, for_update: bool = False) -> TenantSettings:
    if for_update:
        settings = _load_settings(session, scope, for_update=True)
    else:
        settings = txcache.cached(session, ("tenant_settings", scope),
                                  lambda: _load_settings(session, scope, for_update=False))
    if settings is None:
        raise NotFound("tenant", scope.tenant_id)
    return settings


def remember_settings(session: Session, scope: Scope, settings: TenantSettings) -> None:
    """Settings just read for ``scope`` in this transaction, for get_settings to return."""
    txcache.cached(session, ("tenant_settings", scope), lambda: settings)


def _load_settings(session: Session, scope: Scope, *, for_update: bool) -> TenantSettings | None:
    stmt = select(TenantSettings).where(
        TenantSettings.tenant_id == scope.tenant_id, TenantSettings.mode == scope.mode
    )
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def validate_settings_changes(changes: Mapping[str, Any]) -> None:
    errors: list[FieldError] = []
    for key, value in changes.items():
        if key not in SETTING_FIELDS:
            errors.append(FieldError(key, "is not a setting", "unknown_field"))
        elif key == "invoice_distribution_options":
            if not isinstance(value, list) or not value:
                errors.append(FieldError(key, "must be a non-empty list"))
            elif bad := [v for v in value if v not in DISTRIBUTION_OPTIONS]:
                errors.append(
                    FieldError(key, f"{bad[0]!r} is not one of {', '.join(DISTRIBUTION_OPTIONS)}")
                )
            elif len(set(value)) != len(value):
                errors.append(FieldError(key, "lists an option twice"))
        elif key == "time_zone":
            if not isinstance(value, str) or value not in _time_zones():
                errors.append(FieldError(key, f"{value!r} is not an IANA time zone"))
        elif key == "allowed_origins":
            errors.extend(_origin_errors(value))
        elif key == "ach_return_fee_minor":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10**9:
                errors.append(FieldError(key, "must be a whole number of minor units from 0"))
        elif key == "pay_session_minutes":
            if not isinstance(value, int) or isinstance(value, bool) or not 5 <= value <= 1440:
                errors.append(FieldError(key, "must be a whole number of minutes from 5 to 1440"))
        elif key == "sso_key_overlap_minutes":
            if not _whole(value, 0, 10080):
                errors.append(FieldError(key, "must be a whole number of minutes from 0 to 10080"))
        elif key == "registration_check":
            if value not in REGISTRATION_CHECKS:
                errors.append(FieldError(key, f"must be one of {', '.join(REGISTRATION_CHECKS)}"))
        elif key in ("autopay_min_offset_days", "autopay_max_offset_days"):
            if not _whole(value, 0, MAX_AUTOPAY_OFFSET_DAYS):
                errors.append(FieldError(key, f"must be a whole number of days from 0 to "
                                              f"{MAX_AUTOPAY_OFFSET_DAYS}"))
        elif not isinstance(value, bool):
            errors.append(FieldError(key, "must be true or false"))
    if errors:
        raise ValidationFailed(errors)


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def private_targets_allowed(session: Session, scope: Scope) -> bool:
    """Whether ``scope``'s postbacks and webhooks may go to private addresses: in test mode,
    when the tenant's allow_private_postback_targets is on; never in live mode."""
    return scope.mode == "test" and get_settings(session, scope).allow_private_postback_targets


def normalize_origin(value: str) -> str | None:
    """``scheme://host[:port]`` in lower case with the default port left out, or None when
    ``value`` is not an http(s) origin. Origins compare exactly in this form."""
    try:
        parts = urlsplit(value.strip()) if isinstance(value, str) else None
    except ValueError:  # a bracketed host that is not an IPv6 address
        return None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname \
            or parts.username is not None or parts.password is not None:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if ":" in host:  # IPv6, in its shortest form as targets.origin_of writes it
        try:
            host = f"[{IPv6Address(host).compressed}]"
        except ValueError:
            return None
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def _origin_errors(value: Any) -> list[FieldError]:
    if not isinstance(value, list) or len(value) > MAX_ORIGINS:
        return [FieldError("allowed_origins", f"must be a list of at most {MAX_ORIGINS} origins")]
    errors = []
    for index, origin in enumerate(value):
        normal = normalize_origin(origin) if isinstance(origin, str) else None
        parts = urlsplit(origin) if isinstance(origin, str) else None
        if normal is None or parts is None or parts.path not in ("", "/") or parts.query \
                or parts.fragment:
            errors.append(FieldError(f"allowed_origins[{index}]",
                                     "must be an origin such as https://shop.example.com "
                                     "(scheme, host and optional port; no path)"))
    return errors


def _time_zones() -> set[str]:
    return available_timezones() | {"UTC"}


def apply_settings(settings: TenantSettings, changes: Mapping[str, Any]) -> None:
    validate_settings_changes(changes)
    low = changes.get("autopay_min_offset_days", settings.autopay_min_offset_days)
    high = changes.get("autopay_max_offset_days", settings.autopay_max_offset_days)
    if low > high:
        raise invalid("autopay_min_offset_days",
                      f"is more than autopay_max_offset_days ({high})")
    for key, value in changes.items():
        if key == "allowed_origins":
            value = list(dict.fromkeys(normalize_origin(v) for v in value))
        setattr(settings, key, value)
    settings.updated_at = clock.utcnow()


def today(session: Session, scope: Scope) -> date:
    """The tenant's business date in its own time zone (on the test clock in test mode)."""
    settings = get_settings(session, scope)
    return clock.today(settings.time_zone) + timedelta(days=_offset(scope, settings))


def now(session: Session, scope: Scope) -> datetime:
    """The current instant for ``scope``: real time, plus the test clock's lead in test mode."""
    return clock.utcnow() + timedelta(days=_offset(scope, get_settings(session, scope)))


def _offset(scope: Scope, settings: TenantSettings) -> int:
    return settings.clock_offset_days if scope.mode == "test" else 0


def require_test_mode(scope: Scope) -> None:
    if scope.mode != "test":
        raise Conflict("the test clock exists only in test mode; live mode runs on real time",
                       code="live_mode_clock")


def advance_test_clock(session: Session, scope: Scope, *, days: int) -> TenantSettings:
    """Move the tenant's test-mode clock ``days`` forward. What falls due meanwhile is run
    by the caller (it lives in packages above this one)."""
    require_test_mode(scope)
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 366:
        raise invalid("days", "must be a whole number from 1 to 366")
    settings = get_settings(session, scope, for_update=True)
    settings.clock_offset_days += days
    settings.updated_at = clock.utcnow()
    session.flush()
    return settings


# -- reference data --------------------------------------------------------------------


def _check_name(name: str, field_name: str = "name") -> str:
    name = name.strip()
    if not name or len(name) > 100:
        raise invalid(field_name, "must be 1 to 100 characters")
    return name


def _unique_name(session: Session, scope: Scope, model: Any, name: str) -> None:
    exists = session.scalar(
        select(model.id).where(model.tenant_id == scope.tenant_id, model.mode == scope.mode,
                               model.name == name)
    )
    if exists:
        raise invalid("name", f"{name!r} is already taken", "duplicate")


def create_bill_cycle(
    session: Session, scope: Scope, *, name: str, currency: str | None, frequency: str,
    bill_day: int, start_date: date,
) -> BillCycle:
    name = _check_name(name)
    errors: list[FieldError] = []
    if currency is not None and not money.is_active_currency(currency):
        errors.append(FieldError("currency", f"{currency!r} is not an active ISO 4217 code"))
    if frequency not in FREQUENCIES:
        errors.append(FieldError("frequency", f"must be one of {', '.join(FREQUENCIES)}"))
    elif frequency == "weekly" and not 1 <= bill_day <= 7:
        errors.append(FieldError("bill_day", "must be 1 (Monday) to 7 (Sunday) for weekly"))
    elif frequency != "weekly" and not 1 <= bill_day <= 31:
        errors.append(FieldError("bill_day", "must be a day of the month, 1 to 31"))
    if errors:
        raise ValidationFailed(errors)
    _unique_name(session, scope, BillCycle, name)
    cycle = BillCycle(
        id=ids.new_id("bill_cycle"), tenant_id=scope.tenant_id, mode=scope.mode, name=name,
        currency=currency, frequency=frequency, bill_day=bill_day, start_date=start_date,
        created_at=clock.utcnow(),
    )
    session.add(cycle)
    session.flush()
    return cycle


def create_account_category(session: Session, scope: Scope, *, name: str) -> AccountCategory:
    name = _check_name(name)
    _unique_name(session, scope, AccountCategory, name)
    category = AccountCategory(
        id=ids.new_id("account_category"), tenant_id=scope.tenant_id, mode=scope.mode,
        name=name, created_at=clock.utcnow(),
    )
    session.add(category)
    session.flush()
    return category


def create_payment_term(session: Session, scope: Scope, *, name: str, net_days: int) -> PaymentTerm:
    name = _check_name(name)
    if not 0 <= net_days <= 3650:
        raise invalid("net_days", "must be 0 (due on receipt) to 3650")
    _unique_name(session, scope, PaymentTerm, name)
    term = PaymentTerm(
        id=ids.new_id("payment_term"), tenant_id=scope.tenant_id, mode=scope.mode, name=name,
        net_days=net_days, created_at=clock.utcnow(),
    )
    session.add(term)
    session.flush()
    return term


def create_custom_field(
    session: Session, scope: Scope, *, object_type: str, key: str, label: str, field_type: str,
    options: Sequence[str] | None = None, required: bool = False,
) -> CustomFieldDefinition:
    errors: list[FieldError] = []
    if object_type not in CUSTOM_FIELD_OBJECTS:
        errors.append(FieldError("object_type", f"must be one of {', '.join(CUSTOM_FIELD_OBJECTS)}"))
    if not key or len(key) > 64 or not key.replace("_", "").isalnum() or not key.isascii() \
            or key[0].isdigit():
        errors.append(FieldError("key", "must be 1-64 letters, digits or _, not starting with a digit"))
    if not label.strip() or len(label) > 200:
        errors.append(FieldError("label", "must be 1 to 200 characters"))
    if field_type not in CUSTOM_FIELD_TYPES:
        errors.append(FieldError("field_type", f"must be one of {', '.join(CUSTOM_FIELD_TYPES)}"))
    elif field_type == "dropdown":
        if not options:
            errors.append(FieldError("options", "a dropdown needs at least one option"))
        elif any(not o.strip() or len(o) > 200 for o in options):
            errors.append(FieldError("options", "each option must be 1 to 200 characters"))
        elif len(set(options)) != len(options):
            errors.append(FieldError("options", "lists an option twice"))
    elif options:
        errors.append(FieldError("options", "only dropdown fields have options"))
    if errors:
        raise ValidationFailed(errors)
    exists = session.scalar(
        select(CustomFieldDefinition.id).where(
            CustomFieldDefinition.tenant_id == scope.tenant_id,
            CustomFieldDefinition.mode == scope.mode,
            CustomFieldDefinition.object_type == object_type, CustomFieldDefinition.key == key,
        )
    )
    if exists:
        raise invalid("key", f"{key!r} is already defined for {object_type}", "duplicate")
    definition = CustomFieldDefinition(
        id=ids.new_id("custom_field"), tenant_id=scope.tenant_id, mode=scope.mode,
        object_type=object_type, key=key, label=label.strip(), field_type=field_type,
        options=list(options) if field_type == "dropdown" and options else None,
        required=required, created_at=clock.utcnow(),
    )
    session.add(definition)
    session.execute(
        update(TenantSettings)
        .where(TenantSettings.tenant_id == scope.tenant_id, TenantSettings.mode == scope.mode)
        .values(custom_fields_version=TenantSettings.custom_fields_version + 1)
        .execution_options(synchronize_session="fetch"))
    session.flush()
    txcache.forget(session)
    return definition


def custom_field_definitions(session: Session, scope: Scope, object_type: str) -> dict[str, Any]:
    """The definitions for ``object_type`` by key, as read-only copies."""
    version = get_settings(session, scope).custom_fields_version
    key = ("custom_field_definitions", scope.tenant_id, scope.mode, object_type)
    cached = _process_cache.get(key)
    if cached is None or cached[0] != version:
        rows = session.scalars(
            select(CustomFieldDefinition).where(
                CustomFieldDefinition.tenant_id == scope.tenant_id,
                CustomFieldDefinition.mode == scope.mode,
                CustomFieldDefinition.object_type == object_type,
            )
        )
        cached = _remember(key, (version, {d.key: _copy(d) for d in rows}))
    return dict(cached[1])


def validate_custom_fields(
    definitions: Mapping[str, CustomFieldDefinition], values: Mapping[str, Any],
) -> list[FieldError]:
    """Check a complete set of custom field values against their definitions."""
    errors: list[FieldError] = []
    for key, value in values.items():
        name = f"custom_fields.{key}"
        definition = definitions.get(key)
        if definition is None:
            errors.append(FieldError(name, "is not a defined custom field", "unknown_field"))
            continue
        if value is None:
            continue
        kind = definition.field_type
        if kind == "text" and not (isinstance(value, str) and len(value) <= 1000):
            errors.append(FieldError(name, "must be text of at most 1000 characters"))
        elif kind == "number" and (
            isinstance(value, bool) or not isinstance(value, int | float)
            or abs(value) > 1e15 or value != value
        ):
            errors.append(FieldError(name, "must be a number"))
        elif kind == "boolean" and not isinstance(value, bool):
            errors.append(FieldError(name, "must be true or false"))
        elif kind == "date" and not _is_iso_date(value):
            errors.append(FieldError(name, "must be a date as YYYY-MM-DD"))
        elif kind == "dropdown" and value not in (definition.options or []):
            errors.append(
                FieldError(name, f"must be one of: {', '.join(definition.options or [])}")
            )
    for key, definition in definitions.items():
        if definition.required and values.get(key) is None:
            errors.append(FieldError(f"custom_fields.{key}", "is required", "required"))
    return errors


def _is_iso_date(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def get_by_id(session: Session, scope: Scope, model: Any, kind: str, object_id: str) -> Any:
    return get_scoped(session, model, object_id, scope, kind)


# -- reference data shared by every request of this process ------------------------------
#
# Bill cycles, account categories and payment terms are never changed or deleted once
# created, so a copy read once stays true for the life of the process. Custom field
# definitions are only ever added; the set of them is cached under the settings row's
# custom_fields_version, which create_custom_field raises in the same transaction, so a
# transaction that sees the new version never uses the old set. Copies are plain
# namespaces, detached from any session, safe to share between threads.

_CACHE_LIMIT = 20_000
_process_cache: dict[Hashable, Any] = {}


def _remember(key: Hashable, value: Any) -> Any:
    if len(_process_cache) >= _CACHE_LIMIT:
        _process_cache.clear()
    _process_cache[key] = value
    return value


def _copy(row: Any) -> SimpleNamespace:
    return SimpleNamespace(**{c.key: getattr(row, c.key) for c in row.__table__.columns})


IMMUTABLE_REFERENCE = (AccountCategory, BillCycle, PaymentTerm)


def reference_row(session: Session, model: Any, object_id: str) -> Any:
    """A read-only copy of a bill cycle, account category or payment term, or None when
    no such row exists (in any tenant: the caller checks the scope)."""
    if model not in IMMUTABLE_REFERENCE:
        raise TypeError(f"{model.__name__} rows change; read them from the session")
    key = (model.__tablename__, object_id)
    found = _process_cache.get(key)
    if found is None:
        row = session.get(model, object_id)
        if row is None:
            return None
        found = _remember(key, _copy(row))
    return found
