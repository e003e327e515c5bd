"""/v1/orders, /v1/services and an account's pending charges."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, Field, StrictInt

from billfold.core.db import transaction
from billfold.core.scope import Scope
from billfold.orders import service as orders
from billfold.orders.models import Order, PendingCharge, Service
from billfold.tenants import service as tenants
from billfold.web.api.schemas import Id, Input, page_of
from billfold.web.deps import ApiCaller, DbSession, Pagination, paged
from billfold.web.routing import Router

router = Router(prefix="/v1")

Quantity = Annotated[StrictInt, Field(ge=1, le=orders.MAX_QUANTITY)]
IdFilter = Annotated[str | None, Query(max_length=40)]
ServiceStatus = Literal["active", "cancelled", "ended"]


class OrderLineIn(Input):
    price_id: Id
    quantity: Quantity = 1
    start_date: date | None = Field(None, description="Defaults to the tenant's today")


class OrderIn(Input):
    billing_account_id: Id
    lines: Annotated[list[OrderLineIn], Field(min_length=1, max_length=orders.MAX_LINES)]


class OrderLineOut(BaseModel):
    id: str
    line_number: int
    kind: str
    product_id: str
    price_id: str
    quantity: int
    start_date: date
    unit_amount_minor: int
    currency: str
    service_id: str | None
    pending_charge_id: str | None


class OrderOut(BaseModel):
    id: str
    billing_account_id: str
    currency: str
    placed_by: str
    lines: list[OrderLineOut]
    mode: str
    created_at: datetime


class QuantityIn(Input):
    quantity: Quantity
    effective_date: date


class CancelIn(Input):
    end_date: date = Field(description="The last day the service is billed for")


class QuantityOut(BaseModel):
    effective_date: date
    quantity: int


class ServiceOut(BaseModel):
    id: str
    billing_account_id: str
    order_id: str
    product_id: str
    price_id: str
    description: str
    currency: str
    unit_amount_minor: int = Field(description="One unit for one whole bill period")
    quantity: int = Field(description="The quantity in force today")
    quantities: list[QuantityOut]
    billing_timing: str
    tax_category: str
    tax_inclusive: bool
    start_date: date
    end_date: date | None
    status: str
    mode: str
    created_at: datetime
    updated_at: datetime


class PendingChargeOut(BaseModel):
    id: str
    billing_account_id: str
    order_id: str
    product_id: str
    price_id: str
    description: str
    quantity: int
    unit_amount_minor: int
    amount_minor: int
    currency: str
    tax_category: str
    tax_inclusive: bool
    charge_date: date
    invoice_id: str | None
    mode: str
    created_at: datetime


def _orders_out(db: DbSession, rows: list[Order]) -> list[dict[str, Any]]:
    lines = orders.order_lines(db, [o.id for o in rows])
    return [{"id": o.id, "billing_account_id": o.billing_account_id, "currency": o.currency,
             "placed_by": o.placed_by, "mode": o.mode, "created_at": o.created_at,
             "lines": lines[o.id]} for o in rows]


SERVICE_FIELDS = (
    "id", "billing_account_id", "order_id", "product_id", "price_id", "description", "currency",
    "unit_amount_minor", "billing_timing", "tax_category", "tax_inclusive", "start_date",
    "end_date", "status", "mode", "created_at", "updated_at",
)


def _services_out(db: DbSession, scope: Scope, rows: list[Service]) -> list[dict[str, Any]]:
    segments = orders.quantity_segments(db, [s.id for s in rows])
    today = tenants.today(db, scope) if rows else None
    out = []
    for service in rows:
        schedule = segments[service.id]
        out.append({f: getattr(service, f) for f in SERVICE_FIELDS} | {
            "quantity": orders.quantity_on(schedule, today) if today else 0,
            "quantities": [{"effective_date": s.effective_date, "quantity": s.quantity}
                           for s in schedule],
        })
    return out


# -- orders ----------------------------------------------------------------------------


@router.post("/orders", response_model=OrderOut, status_code=201, tags=["orders"])
def create_order(body: OrderIn, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    with transaction(db):
        order = orders.create_order(
            db, caller.scope, billing_account_id=body.billing_account_id,
            lines=[line.model_dump(exclude_none=True) for line in body.lines],
            actor=caller.actor)
        return _orders_out(db, [order])[0]


@router.get("/orders", response_model=page_of(OrderOut), tags=["orders"])
def list_orders(db: DbSession, caller: ApiCaller, page: Pagination,
                billing_account_id: IdFilter = None) -> dict[str, object]:
    rows = orders.list_orders(db, caller.scope, limit=page.limit + 1,
                              starting_after=page.starting_after,
                              billing_account_id=billing_account_id)
    return paged(_orders_out(db, rows), page)  # type: ignore[arg-type]


@router.get("/orders/{order_id}", response_model=OrderOut, tags=["orders"])
def get_order(order_id: str, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    return _orders_out(db, [orders.get_order(db, caller.scope, order_id)])[0]


# -- services --------------------------------------------------------------------------


@router.get("/services", response_model=page_of(ServiceOut), tags=["orders"])
def list_services(db: DbSession, caller: ApiCaller, page: Pagination,
                  billing_account_id: IdFilter = None, status: ServiceStatus | None = None
                  ) -> dict[str, object]:
    rows = orders.list_services(db, caller.scope, limit=page.limit + 1,
                                starting_after=page.starting_after,
                                billing_account_id=billing_account_id, status=status)
    return paged(_services_out(db, caller.scope, rows), page)  # type: ignore[arg-type]


@router.get("/services/{service_id}", response_model=ServiceOut, tags=["orders"])
def get_service(service_id: str, db: DbSession, caller: ApiCaller) -> dict[str, Any]:
    service = orders.get_service(db, caller.scope, service_id)
    return _services_out(db, caller.scope, [service])[0]


@router.post("/services/{service_id}/quantity", response_model=ServiceOut, tags=["orders"])
def change_quantity(service_id: str, body: QuantityIn, db: DbSession, caller: ApiCaller
                    ) -> dict[str, Any]:
    with transaction(db):
        service = orders.change_quantity(db, caller.scope, service_id=service_id,
                                         quantity=body.quantity,
                                         effective_date=body.effective_date, actor=caller.actor)
        return _services_out(db, caller.scope, [service])[0]


@router.post("/services/{service_id}/cancel", response_model=ServiceOut, tags=["orders"])
def cancel_service(service_id: str, body: CancelIn, db: DbSession, caller: ApiCaller
                   ) -> dict[str, Any]:
    with transaction(db):
        service = orders.cancel_service(db, caller.scope, service_id=service_id,
                                        end_date=body.end_date, actor=caller.actor)
        return _services_out(db, caller.scope, [service])[0]


# -- pending charges -------------------------------------------------------------------


@router.get("/billing_accounts/{account_id}/pending_charges",
            response_model=page_of(PendingChargeOut), tags=["billing accounts"])
def list_pending_charges(account_id: str, db: DbSession, caller: ApiCaller, page: Pagination
                         ) -> dict[str, object]:
    """The account's one-time charges that no invoice has taken yet."""
    rows: list[PendingCharge] = orders.uninvoiced_charges(
        db, caller.scope, account_id, limit=page.limit + 1, starting_after=page.starting_after)
    return paged(rows, page)  # type: ignore[arg-type]
