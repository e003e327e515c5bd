"""/v1/tax_rates and /v1/billing_accounts/{id}/tax_exemptions."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, StrictStr
from pydantic_core import PydanticCustomError

from billfold.catalog import tax_service
from billfold.catalog.tax_models import TaxExemption, TaxRate
from billfold.core.db import transaction
from billfold.web.api.schemas import Input, page_of
from billfold.web.deps import ApiCaller, DbSession, Pagination, paged
from billfold.web.routing import Router

router = Router(prefix="/v1")

Country = Annotated[StrictStr, Field(max_length=2, description="ISO 3166-1 alpha-2, e.g. US")]
Region = Annotated[StrictStr, Field(max_length=100, description=(
    "ISO 3166-2 subdivision code, e.g. US-TX; omit or null for the whole country"))]


def _percent_is_text(value: Any) -> Any:
    if isinstance(value, int | float):
        # A JSON number would reach us as a float: 8.2 is not 8.2 once it is one.
        raise PydanticCustomError("percent_text", "give the percentage as decimal text such "
                                                  "as \"8.25\", not as a number")
    return value


Percent = Annotated[StrictStr, BeforeValidator(_percent_is_text), Field(
    max_length=12, description="Decimal text, 0 to 100, at most 4 decimal places, e.g. 8.25")]
ValidTo = Annotated[date | None, Field(description=(
    "Last day it applies (inclusive); null for until further notice"))]


class TaxRateIn(Input):
    country: Country
    region: Region | None = None
    tax_category: Annotated[StrictStr, Field(max_length=40, description=(
        "Category code matched against products' tax_category, e.g. standard"))]
    percent: Percent
    name: Annotated[StrictStr, Field(max_length=100, description="e.g. Texas sales tax")]
    valid_from: date
    valid_to: ValidTo = None


class TaxRatePatch(Input):
    valid_to: ValidTo = None


class TaxRateOut(BaseModel):
    id: str
    country: str
    region: str | None
    tax_category: str
    percent: str
    name: str
    valid_from: date
    valid_to: date | None
    mode: str
    created_at: datetime


class TaxExemptionIn(Input):
    certificate_number: Annotated[StrictStr, Field(max_length=60)]
    country: Country
    region: Region | None = None
    valid_from: date
    valid_to: ValidTo = None


class TaxExemptionPatch(Input):
    valid_to: ValidTo = None


class TaxExemptionOut(BaseModel):
    id: str
    billing_account_id: str
    certificate_number: str
    country: str
    region: str | None
    valid_from: date
    valid_to: date | None
    mode: str
    created_at: datetime


# -- tax rates -------------------------------------------------------------------------


@router.post("/tax_rates", response_model=TaxRateOut, status_code=201, tags=["tax"])
def create_tax_rate(body: TaxRateIn, db: DbSession, caller: ApiCaller) -> TaxRate:
    with transaction(db):
        return tax_service.create_tax_rate(db, caller.scope, **body.model_dump())


@router.get("/tax_rates", response_model=page_of(TaxRateOut), tags=["tax"])
def list_tax_rates(db: DbSession, caller: ApiCaller, page: Pagination) -> dict[str, object]:
    rows = tax_service.list_tax_rates(db, caller.scope, limit=page.limit + 1,
                                      starting_after=page.starting_after)
    return paged(list(rows), page)


@router.get("/tax_rates/{tax_rate_id}", response_model=TaxRateOut, tags=["tax"])
def get_tax_rate(tax_rate_id: str, db: DbSession, caller: ApiCaller) -> TaxRate:
    return tax_service.get_tax_rate(db, caller.scope, tax_rate_id)


@router.patch("/tax_rates/{tax_rate_id}", response_model=TaxRateOut, tags=["tax"])
def patch_tax_rate(tax_rate_id: str, body: TaxRatePatch, db: DbSession, caller: ApiCaller
                   ) -> TaxRate:
    """Only valid_to can change: end a rate before a new percentage takes over."""
    with transaction(db):
        if "valid_to" not in body.model_fields_set:
            return tax_service.get_tax_rate(db, caller.scope, tax_rate_id)
        return tax_service.end_tax_rate(db, caller.scope, tax_rate_id=tax_rate_id,
                                        valid_to=body.valid_to)


# -- tax exemptions --------------------------------------------------------------------


@router.post("/billing_accounts/{account_id}/tax_exemptions", response_model=TaxExemptionOut,
             status_code=201, tags=["tax"])
def create_tax_exemption(account_id: str, body: TaxExemptionIn, db: DbSession,
                         caller: ApiCaller) -> TaxExemption:
    with transaction(db):
        return tax_service.create_tax_exemption(db, caller.scope, billing_account_id=account_id,
                                                actor=caller.actor, **body.model_dump())


@router.get("/billing_accounts/{account_id}/tax_exemptions",
            response_model=page_of(TaxExemptionOut), tags=["tax"])
def list_tax_exemptions(account_id: str, db: DbSession, caller: ApiCaller, page: Pagination
                        ) -> dict[str, object]:
    rows = tax_service.list_tax_exemptions(db, caller.scope, billing_account_id=account_id,
                                           limit=page.limit + 1,
                                           starting_after=page.starting_after)
    return paged(list(rows), page)


@router.get("/billing_accounts/{account_id}/tax_exemptions/{tax_exemption_id}",
            response_model=TaxExemptionOut, tags=["tax"])
def get_tax_exemption(account_id: str, tax_exemption_id: str, db: DbSession, caller: ApiCaller
                      ) -> TaxExemption:
    return tax_service.get_tax_exemption(db, caller.scope, billing_account_id=account_id,
                                         tax_exemption_id=tax_exemption_id)


@router.patch("/billing_accounts/{account_id}/tax_exemptions/{tax_exemption_id}",
              response_model=TaxExemptionOut, tags=["tax"])
def patch_tax_exemption(account_id: str, tax_exemption_id: str, body: TaxExemptionPatch,
                        db: DbSession, caller: ApiCaller) -> TaxExemption:
    """Only valid_to can change: a certificate expired or was revoked."""
    with transaction(db):
        if "valid_to" not in body.model_fields_set:
            return tax_service.get_tax_exemption(db, caller.scope, billing_account_id=account_id,
                                                 tax_exemption_id=tax_exemption_id)
        return tax_service.end_tax_exemption(db, caller.scope, billing_account_id=account_id,
                                             tax_exemption_id=tax_exemption_id,
                                             valid_to=body.valid_to, actor=caller.actor)
