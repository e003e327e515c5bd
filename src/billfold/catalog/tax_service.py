"""Use cases for tax rates and tax exemptions, and the loaders a bill run calls once per run
or chunk. Services never commit; the edge owns the transaction."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Any

import pycountry
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from billfold import money
from billfold.catalog import tax
from billfold.catalog.tax_models import TaxExemption, TaxRate
from billfold.core import clock, ids
from billfold.core.db import among, get_scoped
from billfold.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from billfold.core.scope import Scope
from billfold.customers import history
from billfold.customers import service as customers
from billfold.tenants import service as tenants

# exemptions_for reads accounts in batches of this many ids, well inside every backend's
# limit on bound parameters.
_BATCH = 500


# -- field checks ----------------------------------------------------------------------


def _country(value: Any, errors: list[FieldError]) -> str | None:
    if not isinstance(value, str) or len(value) != 2 or not value.isascii() \
            or not value.isalpha() or pycountry.countries.get(alpha_2=value.upper()) is None:
        errors.append(FieldError("country", f"{value!r} is not an ISO 3166-1 alpha-2 country "
                                            "code (such as 'US')"))
        return None
    return value.upper()


def _region(country: str | None, value: Any, errors: list[FieldError]) -> str | None:
    """An ISO 3166-2 code of a subdivision of ``country``, upper-cased; None for none."""
    if value is None:
        return None
    if country is None:
        return None  # the country is already refused; a region of it cannot be checked
    found = tax.subdivision_code(country, value) if isinstance(value, str) else None
    if found is not None:
        return found
    hint = tax.region_code(country, value) if isinstance(value, str) else None
    errors.append(FieldError("region", f"{value!r} is not an ISO 3166-2 subdivision code of "
                                       f"{country}" + (f"; did you mean {hint!r}?" if hint else
                                                       f" (such as '{country}-…')")))
    return None


def _text(value: Any, field: str, max_length: int, errors: list[FieldError]) -> str | None:
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > max_length or not text.isprintable():
        errors.append(FieldError(field, f"must be 1 to {max_length} printable characters"))
        return None
    return text


def _period(valid_from: Any, valid_to: Any, errors: list[FieldError]) -> None:
    if not isinstance(valid_from, date):
        errors.append(FieldError("valid_from", "must be a date", "required"))
    if valid_to is not None and not isinstance(valid_to, date):
        errors.append(FieldError("valid_to", "must be a date or null"))
    elif isinstance(valid_from, date) and valid_to is not None and valid_to < valid_from:
        errors.append(FieldError("valid_to", f"{valid_to} is before valid_from {valid_from}; "
                                             "valid_to is the last day of the period"))


def _overlapping(model: Any, valid_from: date, valid_to: date | None) -> list[Any]:
    """Conditions for rows of ``model`` whose inclusive period meets [valid_from, valid_to]."""
    conditions = [or_(model.valid_to.is_(None), model.valid_to >= valid_from)]
    if valid_to is not None:
        conditions.append(model.valid_from <= valid_to)
    return conditions


def _same_region(model: Any, region: str | None) -> Any:
    return model.region.is_(None) if region is None else model.region == region


def _period_text(valid_from: date, valid_to: date | None) -> str:
    return f"{valid_from} to {valid_to}" if valid_to else f"{valid_from} onwards"


# -- tax rates -------------------------------------------------------------------------


def get_tax_rate(session: Session, scope: Scope, tax_rate_id: str, *,
                 for_update: bool = False) -> TaxRate:
    rate: TaxRate = get_scoped(session, TaxRate, tax_rate_id, scope, "tax_rate",
                               for_update=for_update)
    return rate


def list_tax_rates(session: Session, scope: Scope, *, limit: int,
                   starting_after: str | None = None) -> list[TaxRate]:
    stmt = select(TaxRate).where(TaxRate.tenant_id == scope.tenant_id, TaxRate.mode == scope.mode)
    if starting_after:
        stmt = stmt.where(TaxRate.id > starting_after)
    return list(session.scalars(stmt.order_by(TaxRate.id).limit(limit)))


def _refuse_overlapping_rate(session: Session, scope: Scope, *, country: str,
                             region: str | None, tax_category: str, valid_from: date,
                             valid_to: date | None, field: str, except_id: str | None = None
                             ) -> None:
    stmt = select(TaxRate).where(
        TaxRate.tenant_id == scope.tenant_id, TaxRate.mode == scope.mode,
        TaxRate.country == country, _same_region(TaxRate, region),
        TaxRate.tax_category == tax_category, *_overlapping(TaxRate, valid_from, valid_to))
    if except_id is not None:
        stmt = stmt.where(TaxRate.id != except_id)
    clash = session.scalars(stmt.order_by(TaxRate.valid_from).limit(1)).first()
    if clash is not None:
        where = region or f"{country} (country-wide)"
        raise Conflict(
            f"tax rate {clash.id} ({clash.name!r}, {clash.percent}%) already covers {where} "
            f"category {tax_category!r} from {_period_text(clash.valid_from, clash.valid_to)}, "
            f"which overlaps {_period_text(valid_from, valid_to)}; end that rate first (set its "
            "valid_to) or choose dates outside its period",
            code="tax_rate_overlap", field_name=field)


def create_tax_rate(
    session: Session, scope: Scope, *, country: str, region: str | None, tax_category: str,
    percent: str, name: str, valid_from: date, valid_to: date | None = None,
) -> TaxRate:
    """Record a rate. Refused when a rate of the same country, region and category is
    valid on any day of the new period."""
    errors: list[FieldError] = []
    country_code = _country(country, errors)
    region_code = _region(country_code, region, errors)
    if not tax.is_tax_category(tax_category):
        errors.append(FieldError("tax_category", f"{tax_category!r} is not a tax category "
                                                 "code: a lowercase letter, then up to 39 "
                                                 "lowercase letters, digits or '_', such as "
                                                 "'standard'"))
    canonical = None
    try:
        canonical = money.parse_percent(percent)
    except money.MoneyError as exc:
        errors.append(FieldError("percent", str(exc)))
    label = _text(name, "name", 100, errors)
    _period(valid_from, valid_to, errors)
    if errors:
        raise ValidationFailed(errors)
    assert country_code is not None
    assert canonical is not None
    assert label is not None
    # One writer of a tenant's rates at a time, so two overlapping rates created at once
    # cannot both pass the check below (SQLite already runs one writer at a time).
    tenants.get_settings(session, scope, for_update=True)
    _refuse_overlapping_rate(session, scope, country=country_code, region=region_code,
                             tax_category=tax_category, valid_from=valid_from,
                             valid_to=valid_to, field="valid_from")
    rate = TaxRate(
        id=ids.new_id("tax_rate"), tenant_id=scope.tenant_id, mode=scope.mode,
        country=country_code, region=region_code, tax_category=tax_category, percent=canonical,
        name=label, valid_from=valid_from, valid_to=valid_to, created_at=clock.utcnow(),
    )
    session.add(rate)
    session.flush()
    return rate


def end_tax_rate(session: Session, scope: Scope, *, tax_rate_id: str,
                 valid_to: date | None) -> TaxRate:
    """Set the last day a rate applies (None: until further notice), e.g. before a new
    percentage takes over. The percentage itself never changes: bills already made with it
    must stay explainable."""
    tenants.get_settings(session, scope, for_update=True)
    rate = get_tax_rate(session, scope, tax_rate_id, for_update=True)
    errors: list[FieldError] = []
    _period(rate.valid_from, valid_to, errors)
    if errors:
        raise ValidationFailed(errors)
    _refuse_overlapping_rate(session, scope, country=rate.country, region=rate.region,
                             tax_category=rate.tax_category, valid_from=rate.valid_from,
                             valid_to=valid_to, field="valid_to", except_id=rate.id)
    rate.valid_to = valid_to
    session.flush()
    return rate


# -- tax exemptions --------------------------------------------------------------------


EXEMPTION_FIELDS = ("id", "certificate_number", "country", "region", "valid_from", "valid_to")


def get_tax_exemption(session: Session, scope: Scope, *, billing_account_id: str,
                      tax_exemption_id: str, for_update: bool = False) -> TaxExemption:
    """An exemption of this billing account; NotFound for a missing or another tenant's
    account, and for an exemption of another account."""
    customers.get_billing_account(session, scope, billing_account_id)
    exemption: TaxExemption = get_scoped(session, TaxExemption, tax_exemption_id, scope,
                                         "tax_exemption", for_update=for_update)
    if exemption.billing_account_id != billing_account_id:
        raise NotFound("tax_exemption", tax_exemption_id)
    return exemption


def list_tax_exemptions(session: Session, scope: Scope, *, billing_account_id: str, limit: int,
                        starting_after: str | None = None) -> list[TaxExemption]:
    customers.get_billing_account(session, scope, billing_account_id)
    stmt = select(TaxExemption).where(
        TaxExemption.tenant_id == scope.tenant_id, TaxExemption.mode == scope.mode,
        TaxExemption.billing_account_id == billing_account_id)
    if starting_after:
        stmt = stmt.where(TaxExemption.id > starting_after)
    return list(session.scalars(stmt.order_by(TaxExemption.id).limit(limit)))


def _refuse_same_certificate(session: Session, scope: Scope, *, billing_account_id: str,
                             certificate_number: str, country: str, region: str | None,
                             valid_from: date, valid_to: date | None, field: str,
                             except_id: str | None = None) -> None:
    """The same certificate for the same place twice on any one day is a duplicate."""
    stmt = select(TaxExemption).where(
        TaxExemption.tenant_id == scope.tenant_id, TaxExemption.mode == scope.mode,
        TaxExemption.billing_account_id == billing_account_id,
        TaxExemption.certificate_number == certificate_number,
        TaxExemption.country == country, _same_region(TaxExemption, region),
        *_overlapping(TaxExemption, valid_from, valid_to))
    if except_id is not None:
        stmt = stmt.where(TaxExemption.id != except_id)
    clash = session.scalars(stmt.limit(1)).first()
    if clash is not None:
        raise Conflict(
            f"certificate {clash.certificate_number!r} is already recorded for this account "
            f"as exemption {clash.id}, valid {_period_text(clash.valid_from, clash.valid_to)}, "
            f"which overlaps {_period_text(valid_from, valid_to)}",
            code="duplicate_tax_exemption", field_name=field)


def create_tax_exemption(
    session: Session, scope: Scope, *, billing_account_id: str, certificate_number: str,
    country: str, region: str | None = None, valid_from: date, valid_to: date | None = None,
    actor: str,
) -> TaxExemption:
    """Record an exemption certificate of a billing account, and the change in the
    account's history."""
    # The account first: another tenant's account is a 404 whatever the body says. Locked,
    # so the duplicate check below cannot race another request for the same account.
    account = customers.get_billing_account(session, scope, billing_account_id, for_update=True)
    errors: list[FieldError] = []
    number = _text(certificate_number, "certificate_number", 60, errors)
    country_code = _country(country, errors)
    region_code = _region(country_code, region, errors)
    _period(valid_from, valid_to, errors)
    if errors:
        raise ValidationFailed(errors)
    assert number is not None
    assert country_code is not None
    _refuse_same_certificate(session, scope, billing_account_id=account.id,
                             certificate_number=number, country=country_code,
                             region=region_code, valid_from=valid_from, valid_to=valid_to,
                             field="certificate_number")
    exemption = TaxExemption(
        id=ids.new_id("tax_exemption"), tenant_id=scope.tenant_id, mode=scope.mode,
        billing_account_id=account.id, certificate_number=number, country=country_code,
        region=region_code, valid_from=valid_from, valid_to=valid_to, created_at=clock.utcnow(),
    )
    session.add(exemption)
    history.record(session, scope, object_type="billing_account", object_id=account.id,
                   action="updated", actor=actor, before={},
                   after={"tax_exemption": history.snapshot(exemption, EXEMPTION_FIELDS)})
    session.flush()
    return exemption


def end_tax_exemption(session: Session, scope: Scope, *, billing_account_id: str,
                      tax_exemption_id: str, valid_to: date | None, actor: str) -> TaxExemption:
    """Set the last day an exemption applies (a certificate expired or was revoked), and
    record the change in the account's history."""
    customers.get_billing_account(session, scope, billing_account_id, for_update=True)
    exemption = get_tax_exemption(session, scope, billing_account_id=billing_account_id,
                                  tax_exemption_id=tax_exemption_id, for_update=True)
    errors: list[FieldError] = []
    _period(exemption.valid_from, valid_to, errors)
    if errors:
        raise ValidationFailed(errors)
    _refuse_same_certificate(session, scope, billing_account_id=billing_account_id,
                             certificate_number=exemption.certificate_number,
                             country=exemption.country, region=exemption.region,
                             valid_from=exemption.valid_from, valid_to=valid_to,
                             field="valid_to", except_id=exemption.id)
    before = history.snapshot(exemption, EXEMPTION_FIELDS)
    exemption.valid_to = valid_to
    history.record(session, scope, object_type="billing_account", object_id=billing_account_id,
                   action="updated", actor=actor, before={"tax_exemption": before},
                   after={"tax_exemption": history.snapshot(exemption, EXEMPTION_FIELDS)})
    session.flush()
    return exemption


# -- loaders for the bill run ----------------------------------------------------------


def load_tax_rules(session: Session, scope: Scope) -> tax.TaxRules:
    """Every tax rate of the tenant (in this mode), ready for ``tax.resolve``."""
    rows = session.scalars(select(TaxRate).where(
        TaxRate.tenant_id == scope.tenant_id, TaxRate.mode == scope.mode))
    return tax.TaxRules(row.to_rule() for row in rows)


def exemptions_for(session: Session, scope: Scope, account_ids: Collection[str]
                   ) -> dict[str, list[tax.ExemptionRule]]:
    """The exemptions of each of these billing accounts (every one of them a key, with []
    for none), of any date: ``tax.resolve`` picks the one valid on the billing date.
    Accounts of another tenant or mode simply have none."""
    found: dict[str, list[tax.ExemptionRule]] = {account_id: [] for account_id in account_ids}
    wanted = sorted(found)
    for start in range(0, len(wanted), _BATCH):
        rows = session.scalars(select(TaxExemption).where(
            TaxExemption.tenant_id == scope.tenant_id, TaxExemption.mode == scope.mode,
            among(session, TaxExemption.billing_account_id, wanted[start:start + _BATCH]),
        ).order_by(TaxExemption.id))
        for row in rows:
            found[row.billing_account_id].append(row.to_rule())
    return found
