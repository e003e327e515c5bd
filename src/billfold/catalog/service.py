"""Use cases for products and prices. Services never commit; the edge owns the transaction."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billfold import money
from billfold.catalog.models import BILLING_TIMINGS, PRICE_KINDS, Price, Product
from billfold.core import clock, ids
from billfold.core.db import get_scoped
from billfold.core.errors import Conflict, FieldError, ValidationFailed, invalid
from billfold.core.scope import Scope
from billfold.customers import fields
from billfold.customers.fields import Problems

MAX_AMOUNT_MINOR = 10**15
MAX_CURRENCIES = 200
PRODUCT_FIELDS = ("name", "sku", "tax_category", "description", "active")
_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
_TAX_CATEGORY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


# -- reading ---------------------------------------------------------------------------


def get_product(session: Session, scope: Scope, product_id: str) -> Product:
    product: Product = get_scoped(session, Product, product_id, scope, "product")
    return product


def get_price(session: Session, scope: Scope, price_id: str) -> Price:
    price: Price = get_scoped(session, Price, price_id, scope, "price")
    return price


def list_products(session: Session, scope: Scope, *, limit: int,
                  starting_after: str | None = None, active: bool | None = None
                  ) -> list[Product]:
    stmt = select(Product).where(Product.tenant_id == scope.tenant_id, Product.mode == scope.mode)
    if active is not None:
        stmt = stmt.where(Product.active == active)
    if starting_after:
        stmt = stmt.where(Product.id > starting_after)
    return list(session.scalars(stmt.order_by(Product.id).limit(limit)))


def list_prices(session: Session, scope: Scope, *, limit: int, starting_after: str | None = None,
                product_id: str | None = None, active: bool | None = None) -> list[Price]:
    stmt = select(Price).where(Price.tenant_id == scope.tenant_id, Price.mode == scope.mode)
    if product_id is not None:
        stmt = stmt.where(Price.product_id == product_id)
    if active is not None:
        stmt = stmt.where(Price.active == active)
    if starting_after:
        stmt = stmt.where(Price.id > starting_after)
    return list(session.scalars(stmt.order_by(Price.id).limit(limit)))


# -- products --------------------------------------------------------------------------


def create_product(
    session: Session, scope: Scope, *, name: str, sku: str, tax_category: str,
    description: str | None = None, active: bool = True,
) -> Product:
    now = clock.utcnow()
    product = Product(id=ids.new_id("product"), tenant_id=scope.tenant_id, mode=scope.mode,
                      created_at=now, updated_at=now)
    _apply_product_fields(product, {"name": name, "sku": sku, "tax_category": tax_category,
                                    "description": description, "active": active})
    _ensure_unique_sku(session, scope, product)
    session.add(product)
    session.flush()
    return product


def update_product(session: Session, scope: Scope, *, product_id: str,
                   changes: Mapping[str, Any]) -> Product:
    """Change a product's name, SKU, tax category, description or active flag. Orders
    already placed keep the name and tax category they copied."""
    product: Product = get_scoped(session, Product, product_id, scope, "product", for_update=True)
    new = {f: getattr(product, f) for f in PRODUCT_FIELDS}
    unknown = sorted(set(changes) - set(PRODUCT_FIELDS))
    if unknown:
        raise ValidationFailed([FieldError(k, "is not a product field", "unknown_field")
                                for k in unknown])
    new.update(changes)
    _apply_product_fields(product, new)
    _ensure_unique_sku(session, scope, product)
    product.updated_at = clock.utcnow()
    session.flush()
    return product


def _apply_product_fields(product: Product, values: Mapping[str, Any]) -> None:
    """Validate every field, then set them all; the product is untouched when one is wrong."""
    p = Problems()
    name = fields.text(values["name"], "name", p, max_length=200)
    if name is None and not p:
        p.add("name", "is required", "required")
    sku = fields.text(values["sku"], "sku", p, max_length=64)
    if sku is None and not any(e.field == "sku" for e in p):
        p.add("sku", "is required", "required")
    elif sku is not None and not _SKU.match(sku):
        p.add("sku", "must be 1-64 letters, digits, '.', '_', '/' or '-', starting with a "
                     "letter or digit")
    tax_category = values["tax_category"]
    if tax_category is None:
        p.add("tax_category", "is required, e.g. 'standard'", "required")
    elif not isinstance(tax_category, str) or not _TAX_CATEGORY.match(tax_category):
        p.add("tax_category", "must be a code of 1-40 lowercase letters, digits and '_' "
                              "starting with a letter, e.g. 'standard' or 'exempt_goods'")
    description = fields.text(values["description"], "description", p, max_length=10_000)
    if not isinstance(values["active"], bool):
        p.add("active", "must be true or false")
    if p:
        raise ValidationFailed(list(p))
    product.name, product.sku, product.sku_key = name or "", sku or "", (sku or "").casefold()
    product.tax_category, product.description = tax_category, description
    product.active = values["active"]


def _ensure_unique_sku(session: Session, scope: Scope, product: Product) -> None:
    # No autoflush: flushing the changed row first would hit the unique index and raise
    # IntegrityError instead of this Conflict.
    with session.no_autoflush:
        clash = session.scalar(select(Product.id).where(
            Product.tenant_id == scope.tenant_id, Product.mode == scope.mode,
            Product.sku_key == product.sku_key, Product.id != product.id))
    if clash:
        raise Conflict(f"another product already has sku {product.sku!r}", code="duplicate_sku",
                       field_name="sku")


# -- prices ----------------------------------------------------------------------------


def create_price(
    session: Session, scope: Scope, *, product_id: str, kind: str, amounts_minor: Any,
    billing_timing: str | None = None, tax_inclusive: bool = False,
    nickname: str | None = None, description: str | None = None, active: bool = True,
) -> Price:
    """A new price of an active product with one amount per currency."""
    p = Problems()
    product = session.get(Product, product_id) if isinstance(product_id, str) else None
    if product is None or product.tenant_id != scope.tenant_id or product.mode != scope.mode:
        p.add("product_id", f"no product with id {product_id!r}", "not_found")
    elif not product.active:
        p.add("product_id", "the product is inactive; activate it before adding prices")
    if kind not in PRICE_KINDS:
        p.add("kind", f"must be one of {', '.join(PRICE_KINDS)}")
    elif kind == "recurring" and billing_timing is None:
        p.add("billing_timing", f"a recurring price needs one of {', '.join(BILLING_TIMINGS)}",
              "required")
    elif kind == "one_time" and billing_timing is not None:
        p.add("billing_timing", "only recurring prices have a billing timing")
    if billing_timing is not None and billing_timing not in BILLING_TIMINGS:
        p.add("billing_timing", f"must be one of {', '.join(BILLING_TIMINGS)}")
    amounts = _amounts(amounts_minor, p)
    for flag, value in (("tax_inclusive", tax_inclusive), ("active", active)):
        if not isinstance(value, bool):
            p.add(flag, "must be true or false")
    nickname = fields.text(nickname, "nickname", p, max_length=100)
    description = fields.text(description, "description", p, max_length=10_000)
    if p:
        raise ValidationFailed(list(p))
    now = clock.utcnow()
    price = Price(
        id=ids.new_id("price"), tenant_id=scope.tenant_id, mode=scope.mode,
        product_id=product_id, kind=kind, amounts_minor=amounts, billing_timing=billing_timing,
        tax_inclusive=tax_inclusive, nickname=nickname, description=description, active=active,
        created_at=now, updated_at=now,
    )
    session.add(price)
    session.flush()
    return price


def _amounts(value: Any, p: Problems) -> dict[str, int]:
    if not isinstance(value, Mapping) or not value:
        p.add("amounts_minor", 'needs an amount for at least one currency, e.g. {"USD": 2500}',
              "required")
        return {}
    if len(value) > MAX_CURRENCIES:
        p.add("amounts_minor", f"may hold at most {MAX_CURRENCIES} currencies")
        return {}
    amounts: dict[str, int] = {}
    for code, amount in value.items():
        field = f"amounts_minor.{code}"
        if not isinstance(code, str) or not money.is_active_currency(code):
            p.add(field, f"{code!r} is not an active ISO 4217 currency code")
        elif isinstance(amount, bool) or not isinstance(amount, int) \
                or not 0 <= amount <= MAX_AMOUNT_MINOR:
            p.add(field, f"must be a whole number of {code} minor units from 0 to "
                         f"{MAX_AMOUNT_MINOR}")
        else:
            amounts[code] = amount
    return dict(sorted(amounts.items()))


def set_price_active(session: Session, scope: Scope, *, price_id: str, active: bool) -> Price:
    """Deactivate (or reactivate) a price. An inactive price cannot be ordered; what was
    ordered at it goes on as it was."""
    price: Price = get_scoped(session, Price, price_id, scope, "price", for_update=True)
    if not isinstance(active, bool):
        raise invalid("active", "must be true or false")
    if active and not price.active:
        product = session.get(Product, price.product_id)
        if product is not None and not product.active:
            raise invalid("active", "the price's product is inactive; activate it first")
    if price.active != active:
        price.active = active
        price.updated_at = clock.utcnow()
    session.flush()
    return price
