"""/v1/products and /v1/prices."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Query
from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr

from billfold.catalog import service as catalog
from billfold.catalog.models import Price, Product
from billfold.core.db import transaction
from billfold.web.api.schemas import Currency, Id, Input, ShortText, Text, page_of
from billfold.web.deps import ApiCaller, DbSession, Pagination, paged
from billfold.web.routing import Router

router = Router(prefix="/v1")

Sku = Annotated[StrictStr, Field(max_length=64, description="Unique per tenant, any case")]
TaxCategory = Annotated[StrictStr, Field(max_length=40, description=(
    "Code matched against tax rates, e.g. standard or exempt_goods"))]
Description = Annotated[StrictStr, Field(max_length=10_000)]
AmountMinor = Annotated[StrictInt, Field(ge=0, le=catalog.MAX_AMOUNT_MINOR)]
IdFilter = Annotated[str | None, Query(max_length=40)]


class ProductIn(Input):
    name: Text
    sku: Sku
    tax_category: TaxCategory
    description: Description | None = None
    active: StrictBool = True


class ProductPatch(Input):
    name: Text | None = None
    sku: Sku | None = None
    tax_category: TaxCategory | None = None
    description: Description | None = None
    active: StrictBool | None = None


class ProductOut(BaseModel):
    id: str
    name: str
    sku: str
    tax_category: str
    description: str | None
    active: bool
    mode: str
    created_at: datetime
    updated_at: datetime


class PriceIn(Input):
    product_id: Id
    kind: Literal["one_time", "recurring"]
    amounts_minor: Annotated[dict[Currency, AmountMinor], Field(
        min_length=1, max_length=catalog.MAX_CURRENCIES,
        description='Minor units per ISO 4217 currency, e.g. {"USD": 2500, "MXN": 45000}')]
    billing_timing: Literal["in_advance", "in_arrears"] | None = Field(
        None, description="Required for recurring prices, refused for one-time prices")
    tax_inclusive: StrictBool = False
    nickname: ShortText | None = None
    description: Description | None = None
    active: StrictBool = True


class PricePatch(Input):
    """Prices are immutable; only whether they can still be ordered changes."""

    active: StrictBool | None = None


class PriceOut(BaseModel):
    id: str
    product_id: str
    kind: str
    amounts_minor: dict[str, int]
    billing_timing: str | None
    tax_inclusive: bool
    nickname: str | None
    description: str | None
    active: bool
    mode: str
    created_at: datetime
    updated_at: datetime


# -- products --------------------------------------------------------------------------


@router.post("/products", response_model=ProductOut, status_code=201, tags=["catalog"])
def create_product(body: ProductIn, db: DbSession, caller: ApiCaller) -> Product:
    with transaction(db):
        return catalog.create_product(db, caller.scope, **body.model_dump())


@router.get("/products", response_model=page_of(ProductOut), tags=["catalog"])
def list_products(db: DbSession, caller: ApiCaller, page: Pagination,
                  active: bool | None = None) -> dict[str, object]:
    return paged(catalog.list_products(db, caller.scope, limit=page.limit + 1,  # type: ignore[arg-type]
                                       starting_after=page.starting_after, active=active), page)


@router.get("/products/{product_id}", response_model=ProductOut, tags=["catalog"])
def get_product(product_id: str, db: DbSession, caller: ApiCaller) -> Product:
    return catalog.get_product(db, caller.scope, product_id)


@router.patch("/products/{product_id}", response_model=ProductOut, tags=["catalog"])
def patch_product(product_id: str, body: ProductPatch, db: DbSession, caller: ApiCaller
                  ) -> Product:
    with transaction(db):
        return catalog.update_product(db, caller.scope, product_id=product_id,
                                      changes=body.model_dump(exclude_unset=True))


# -- prices ----------------------------------------------------------------------------


@router.post("/prices", response_model=PriceOut, status_code=201, tags=["catalog"])
def create_price(body: PriceIn, db: DbSession, caller: ApiCaller) -> Price:
    with transaction(db):
        return catalog.create_price(db, caller.scope, **body.model_dump())


@router.get("/prices", response_model=page_of(PriceOut), tags=["catalog"])
def list_prices(db: DbSession, caller: ApiCaller, page: Pagination,
                product_id: IdFilter = None, active: bool | None = None) -> dict[str, object]:
    return paged(catalog.list_prices(db, caller.scope, limit=page.limit + 1,  # type: ignore[arg-type]
                                     starting_after=page.starting_after, product_id=product_id,
                                     active=active), page)


@router.get("/prices/{price_id}", response_model=PriceOut, tags=["catalog"])
def get_price(price_id: str, db: DbSession, caller: ApiCaller) -> Price:
    return catalog.get_price(db, caller.scope, price_id)


@router.patch("/prices/{price_id}", response_model=PriceOut, tags=["catalog"])
def patch_price(price_id: str, body: PricePatch, db: DbSession, caller: ApiCaller) -> Price:
    with transaction(db):
        if body.active is None:
            return catalog.get_price(db, caller.scope, price_id)
        return catalog.set_price_active(db, caller.scope, price_id=price_id, active=body.active)
