"""Use cases for orders, services and pending charges. Services never commit; the edge
owns the transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from billfold.catalog.models import Price, Product
from billfold.catalog.service import MAX_AMOUNT_MINOR
from billfold.core import clock, ids
from billfold.core.db import get_scoped
from billfold.core.errors import Conflict, NotFound, ValidationFailed, invalid
from billfold.core.scope import Scope
from billfold.customers import history
from billfold.customers import service as customers
from billfold.customers.fields import Problems
from billfold.customers.models import BillingAccount
from billfold.orders.models import (
    Order,
    OrderLine,
    PendingCharge,
    Service,
    ServiceQuantity,
)
from billfold.orders.proration import QuantitySegment
from billfold.tenants import service as tenants

LINE_FIELDS = ("price_id", "quantity", "start_date")
MAX_LINES = 100
MAX_QUANTITY = 10**9


@dataclass(frozen=True, slots=True)
class PendingTotals:
    count: int
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class _Line:
    price: Price
    product: Product
    unit_amount_minor: int
    quantity: int
    start_date: date


# -- reading ---------------------------------------------------------------------------


def get_order(session: Session, scope: Scope, order_id: str) -> Order:
    order: Order = get_scoped(session, Order, order_id, scope, "order")
    return order


def order_lines(session: Session, order_ids: Sequence[str]) -> dict[str, list[OrderLine]]:
    """The lines of each order, in line-number order."""
    lines: dict[str, list[OrderLine]] = {order_id: [] for order_id in order_ids}
    if order_ids:
        for line in session.scalars(select(OrderLine).where(OrderLine.order_id.in_(order_ids))
                                    .order_by(OrderLine.order_id, OrderLine.line_number)):
            lines[line.order_id].append(line)
    return lines


def list_orders(session: Session, scope: Scope, *, limit: int, starting_after: str | None = None,
                billing_account_id: str | None = None) -> list[Order]:
    stmt = select(Order).where(Order.tenant_id == scope.tenant_id, Order.mode == scope.mode)
    if billing_account_id is not None:
        stmt = stmt.where(Order.billing_account_id == billing_account_id)
    if starting_after:
        stmt = stmt.where(Order.id > starting_after)
    return list(session.scalars(stmt.order_by(Order.id).limit(limit)))


def get_service(session: Session, scope: Scope, service_id: str, *, for_update: bool = False
                ) -> Service:
    service: Service = get_scoped(session, Service, service_id, scope, "service",
                                  for_update=for_update)
    return service


def list_services(session: Session, scope: Scope, *, limit: int,
                  starting_after: str | None = None, billing_account_id: str | None = None,
                  status: str | None = None) -> list[Service]:
    stmt = select(Service).where(Service.tenant_id == scope.tenant_id, Service.mode == scope.mode)
    if billing_account_id is not None:
        stmt = stmt.where(Service.billing_account_id == billing_account_id)
    if status is not None:
        stmt = stmt.where(Service.status == status)
    if starting_after:
        stmt = stmt.where(Service.id > starting_after)
    return list(session.scalars(stmt.order_by(Service.id).limit(limit)))


def services_for_account(session: Session, scope: Scope, account_id: str, *,
                         period_start: date | None = None, period_end: date | None = None
                         ) -> list[Service]:
    """The account's services in id order; with a period, only those active on at least
    one of its days (whatever their status)."""
    customers.get_billing_account(session, scope, account_id)
    stmt = select(Service).where(Service.tenant_id == scope.tenant_id,
                                 Service.mode == scope.mode,
                                 Service.billing_account_id == account_id)
    if period_end is not None:
        stmt = stmt.where(Service.start_date <= period_end)
    if period_start is not None:
        stmt = stmt.where((Service.end_date.is_(None)) | (Service.end_date >= period_start))
    return list(session.scalars(stmt.order_by(Service.id)))


def quantity_segments(session: Session, service_ids: Sequence[str]
                      ) -> dict[str, list[QuantitySegment]]:
    """Each service's quantity schedule in date order, ready for proration.service_charges."""
    segments: dict[str, list[QuantitySegment]] = {service_id: [] for service_id in service_ids}
    if service_ids:
        for row in session.scalars(
                select(ServiceQuantity).where(ServiceQuantity.service_id.in_(service_ids))
                .order_by(ServiceQuantity.service_id, ServiceQuantity.effective_date)):
            segments[row.service_id].append(QuantitySegment(row.effective_date, row.quantity))
    return segments


def quantity_on(segments: Sequence[QuantitySegment], day: date) -> int:
    """The quantity in force on ``day``; before the first segment, the first quantity."""
    in_force = segments[0].quantity
    for segment in segments:
        if segment.effective_date <= day:
            in_force = segment.quantity
    return in_force


def uninvoiced_charges(session: Session, scope: Scope, account_id: str, *,
                       through: date | None = None, limit: int | None = None,
                       starting_after: str | None = None) -> list[PendingCharge]:
    """The account's pending charges no invoice has taken yet, in id order; with
    ``through``, only those dated on or before it."""
    customers.get_billing_account(session, scope, account_id)
    stmt = select(PendingCharge).where(
        PendingCharge.tenant_id == scope.tenant_id, PendingCharge.mode == scope.mode,
        PendingCharge.billing_account_id == account_id, PendingCharge.invoice_id.is_(None))
    if through is not None:
        stmt = stmt.where(PendingCharge.charge_date <= through)
    if starting_after:
        stmt = stmt.where(PendingCharge.id > starting_after)
    stmt = stmt.order_by(PendingCharge.id)
    return list(session.scalars(stmt if limit is None else stmt.limit(limit)))


def pending_totals(session: Session, scope: Scope, account_id: str) -> PendingTotals:
    """How many uninvoiced pending charges the account has and their sum in its currency."""
    account = customers.get_billing_account(session, scope, account_id)
    count, total = session.execute(select(
        func.count(), func.coalesce(func.sum(PendingCharge.amount_minor), 0),
    ).where(
        PendingCharge.tenant_id == scope.tenant_id, PendingCharge.mode == scope.mode,
        PendingCharge.billing_account_id == account.id, PendingCharge.invoice_id.is_(None),
        PendingCharge.currency == account.currency,
    )).one()
    return PendingTotals(int(count), int(total), account.currency)


def pending_total(session: Session, scope: Scope, account_id: str) -> int:
    """The sum of the account's uninvoiced pending charges in its currency, minor units."""
    return pending_totals(session, scope, account_id).amount_minor


# -- placing an order ------------------------------------------------------------------


def create_order(session: Session, scope: Scope, *, billing_account_id: str,
                 lines: Sequence[Mapping[str, Any]], actor: str,
                 assignment_key: str | None = None) -> Order:
    """Place an order: each one-time line becomes a pending charge, each recurring line a
    service with its first quantity. All lines are checked first; one wrong line refuses
    the whole order. Records "ordered" in the account's history."""
    p = Problems()
    account = _account_to_order_on(session, scope, billing_account_id, p)
    if isinstance(lines, str | bytes | Mapping) or not isinstance(lines, Sequence) or not lines:
        p.add("lines", "needs at least one line", "required")
        lines = []
    elif len(lines) > MAX_LINES:
        p.add("lines", f"may hold at most {MAX_LINES} lines")
        lines = []
    today = tenants.today(session, scope)
    checked = [_check_line(session, scope, account, line, f"lines[{i}]", today, p)
               for i, line in enumerate(lines)]
    if p or account is None:
        raise ValidationFailed(list(p))
    order = _place(session, scope, account, [line for line in checked if line is not None],
                   actor, assignment_key)
    session.flush()
    return order


def _place(session: Session, scope: Scope, account: BillingAccount, checked: list[_Line],
           actor: str, assignment_key: str | None = None) -> Order:
    now = clock.utcnow()
    order = Order(id=ids.new_id("order"), tenant_id=scope.tenant_id, mode=scope.mode,
                  billing_account_id=account.id, currency=account.currency,
                  placed_by=actor[:100], assignment_key=assignment_key, created_at=now)
    lines_made = [(line, _fulfil(scope, account, order, line, now)) for line in checked]
    # No relationships order these inserts, so each level of foreign keys is flushed
    # before the rows that point at it.
    session.add(order)
    session.flush()
    session.add_all(made for _, (made, _) in lines_made)
    session.flush()
    summary = []
    for number, (line, (made, first_quantity)) in enumerate(lines_made, start=1):
        if first_quantity is not None:
            session.add(first_quantity)
        session.add(OrderLine(
            id=ids.new_id("order_line"), tenant_id=scope.tenant_id, mode=scope.mode,
            order_id=order.id, line_number=number, kind=line.price.kind,
            product_id=line.product.id, price_id=line.price.id, quantity=line.quantity,
            start_date=line.start_date, unit_amount_minor=line.unit_amount_minor,
            currency=account.currency,
            service_id=made.id if isinstance(made, Service) else None,
            pending_charge_id=made.id if isinstance(made, PendingCharge) else None,
        ))
        summary.append({"sku": line.product.sku, "price_id": line.price.id,
                        "quantity": line.quantity, "start_date": line.start_date.isoformat(),
                        "became": made.id})
    history.record(session, scope, object_type="billing_account", object_id=account.id,
                   action="ordered", actor=actor, before={},
                   after={"order_id": order.id, "order_lines": summary})
    return order


def _account_to_order_on(session: Session, scope: Scope, account_id: Any, p: Problems
                         ) -> BillingAccount | None:
    if not isinstance(account_id, str):
        p.add("billing_account_id", "is required", "required")
        return None
    try:
        # Locked, so a concurrent deactivation waits for the order or sees it.
        account = customers.get_billing_account(session, scope, account_id, for_update=True)
    except NotFound:
        p.add("billing_account_id", f"no billing account with id {account_id!r}", "not_found")
        return None
    if account.status == "deactivated":
        p.add("billing_account_id", "the billing account is deactivated; reactivate it before "
                                    "ordering", "account_deactivated")
    return account


def _check_line(session: Session, scope: Scope, account: BillingAccount | None, line: Any,
                where: str, today: date, p: Problems) -> _Line | None:
    if not isinstance(line, Mapping):
        p.add(where, "must be an object with price_id, quantity and start_date")
        return None
    errors_before = len(p)
    for key in sorted(set(line) - set(LINE_FIELDS), key=str):
        p.add(f"{where}.{key}", "is not an order line field", "unknown_field")
    price, product, unit = _orderable_price(session, scope, account, line.get("price_id"),
                                            f"{where}.price_id", p)
    quantity = line.get("quantity", 1)
    _check_quantity(quantity, unit, f"{where}.quantity", p)
    start = line.get("start_date")
    start = today if start is None else start
    if not isinstance(start, date) or isinstance(start, datetime):
        p.add(f"{where}.start_date", "must be a date")
    elif account is not None and start < account.start_date:
        p.add(f"{where}.start_date", "cannot be before the billing account's start date "
                                     f"{account.start_date.isoformat()}")
    if len(p) > errors_before or price is None or product is None or unit is None:
        return None
    return _Line(price, product, unit, quantity, start)


def _orderable_price(session: Session, scope: Scope, account: BillingAccount | None,
                     price_id: Any, field: str, p: Problems
                     ) -> tuple[Price | None, Product | None, int | None]:
    if price_id is None:
        p.add(field, "is required", "required")
        return None, None, None
    price = session.get(Price, price_id) if isinstance(price_id, str) else None
    if price is None or price.tenant_id != scope.tenant_id or price.mode != scope.mode:
        p.add(field, f"no price with id {price_id!r}", "not_found")
        return None, None, None
    product = session.get(Product, price.product_id)
    assert product is not None  # a foreign key guarantees it
    if not price.active:
        p.add(field, "the price is inactive", "inactive")
    elif not product.active:
        p.add(field, f"the price's product {product.sku!r} is inactive", "inactive")
    elif account is not None:
        unit = price.amount_in(account.currency)
        if unit is None:
            p.add(field, f"the price has no amount in the account's currency {account.currency} "
                         f"(it has {', '.join(price.amounts_minor)})", "currency_mismatch")
        return price, product, unit
    return price, product, None


def _check_quantity(quantity: Any, unit: int | None, field: str, p: Problems) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) \
            or not 1 <= quantity <= MAX_QUANTITY:
        p.add(field, f"must be a whole number from 1 to {MAX_QUANTITY}")
    elif unit is not None and unit * quantity > MAX_AMOUNT_MINOR:
        p.add(field, f"makes the amount ({unit} * {quantity} minor units) larger than "
                     f"{MAX_AMOUNT_MINOR}")


def _fulfil(scope: Scope, account: BillingAccount, order: Order, line: _Line, now: datetime
            ) -> tuple[Service | PendingCharge, ServiceQuantity | None]:
    """The pending charge or the service (with its first quantity) a line becomes."""
    common: dict[str, Any] = {
        "tenant_id": scope.tenant_id, "mode": scope.mode, "billing_account_id": account.id,
        "order_id": order.id, "product_id": line.product.id, "price_id": line.price.id,
        "description": line.product.name, "currency": account.currency,
        "unit_amount_minor": line.unit_amount_minor, "tax_category": line.product.tax_category,
        "tax_inclusive": line.price.tax_inclusive, "created_at": now,
    }
    if line.price.kind == "one_time":
        return PendingCharge(id=ids.new_id("pending_charge"), quantity=line.quantity,
                             amount_minor=line.unit_amount_minor * line.quantity,
                             charge_date=line.start_date, invoice_id=None, **common), None
    service = Service(id=ids.new_id("service"), billing_timing=line.price.billing_timing,
                      start_date=line.start_date, end_date=None, status="active",
                      updated_at=now, **common)
    return service, ServiceQuantity(
        id=ids.new_id("service_quantity"), tenant_id=scope.tenant_id, mode=scope.mode,
        service_id=service.id, effective_date=line.start_date, quantity=line.quantity,
        created_at=now)


# -- changing a service ----------------------------------------------------------------


def _changeable_service(session: Session, scope: Scope, service_id: str) -> Service:
    service = get_service(session, scope, service_id, for_update=True)
    if service.status == "ended":
        raise Conflict(f"the service ended on {service.end_date}; it can no longer change",
                       code="service_ended")
    return service


def _quantity_rows(session: Session, service_id: str) -> list[ServiceQuantity]:
    return list(session.scalars(select(ServiceQuantity)
                                .where(ServiceQuantity.service_id == service_id)
                                .order_by(ServiceQuantity.effective_date)))


def _check_effective_date(service: Service, latest: ServiceQuantity, effective_date: Any,
                          p: Problems) -> None:
    if not isinstance(effective_date, date) or isinstance(effective_date, datetime):
        p.add("effective_date", "must be a date")
    elif effective_date < service.start_date:
        p.add("effective_date", "cannot be before the service's start date "
                                f"{service.start_date.isoformat()}")
    elif service.end_date is not None and effective_date > service.end_date:
        p.add("effective_date", "is after the service's end date "
                                f"{service.end_date.isoformat()}")
    elif effective_date < latest.effective_date:
        p.add("effective_date", "cannot be before the latest quantity change, effective "
                                f"{latest.effective_date.isoformat()}")


def change_quantity(session: Session, scope: Scope, *, service_id: str, quantity: int,
                    effective_date: date, actor: str) -> Service:
    """Set the service's quantity from ``effective_date`` on, so the days before and after
    are billed (and prorated) at their own quantities. A change may not be dated before the
    latest one; a second change on the same date replaces it."""
    service = _changeable_service(session, scope, service_id)
    rows = _quantity_rows(session, service.id)
    latest = rows[-1]
    p = Problems()
    _check_quantity(quantity, service.unit_amount_minor, "quantity", p)
    _check_effective_date(service, latest, effective_date, p)
    if p:
        raise ValidationFailed(list(p))
    if quantity == latest.quantity:
        raise invalid("quantity", f"is already {quantity} from "
                                  f"{latest.effective_date.isoformat()}", "unchanged")
    before = latest.quantity
    if effective_date == latest.effective_date:
        if len(rows) > 1 and rows[-2].quantity == quantity:
            session.delete(latest)  # back to the quantity before that change
        else:
            latest.quantity = quantity
    else:
        session.add(ServiceQuantity(id=ids.new_id("service_quantity"), tenant_id=scope.tenant_id,
                                    mode=scope.mode, service_id=service.id,
                                    effective_date=effective_date, quantity=quantity,
                                    created_at=clock.utcnow()))
    service.updated_at = clock.utcnow()
    prefix = f"services.{service.id}"
    history.record(session, scope, object_type="billing_account",
                   object_id=service.billing_account_id, action="updated", actor=actor,
                   before={f"{prefix}.quantity": before},
                   after={f"{prefix}.quantity": quantity,
                          f"{prefix}.quantity_effective_date": effective_date.isoformat()})
    session.flush()
    return service


def cancel_service(session: Session, scope: Scope, *, service_id: str, end_date: date,
                   actor: str) -> Service:
    """End the service after ``end_date``, the last day it is billed for. Until
    end_services closes it, the end date may be moved by cancelling again."""
    service = _changeable_service(session, scope, service_id)
    latest = _quantity_rows(session, service.id)[-1].effective_date
    if not isinstance(end_date, date) or isinstance(end_date, datetime):
        raise invalid("end_date", "must be a date")
    if end_date < service.start_date:
        raise invalid("end_date", "cannot be before the service's start date "
                                  f"{service.start_date.isoformat()}")
    if end_date < latest:
        raise invalid("end_date", "cannot be before the quantity change effective "
                                  f"{latest.isoformat()}")
    before = {"end_date": service.end_date, "status": service.status}
    service.end_date, service.status = end_date, "cancelled"
    service.updated_at = clock.utcnow()
    prefix = f"services.{service.id}"
    history.record(session, scope, object_type="billing_account",
                   object_id=service.billing_account_id, action="updated", actor=actor,
                   before={f"{prefix}.{k}": v.isoformat() if isinstance(v, date) else v
                           for k, v in before.items()},
                   after={f"{prefix}.end_date": end_date.isoformat(), f"{prefix}.status":
                          "cancelled"})
    session.flush()
    return service


def end_services(session: Session, scope: Scope, *, as_of: date) -> int:
    """Close every cancelled service whose end date is before ``as_of`` and that has been
    billed through its end date; returns how many. The bill run calls it when a run ends."""
    result = session.execute(
        update(Service).where(
            Service.tenant_id == scope.tenant_id, Service.mode == scope.mode,
            Service.status == "cancelled", Service.end_date < as_of,
            Service.billed_through.is_not(None), Service.billed_through >= Service.end_date,
        ).values(status="ended", updated_at=clock.utcnow())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]

