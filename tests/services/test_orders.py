"""Orders on billing accounts: one-time lines become pending charges, recurring lines become
services with a quantity history; a wrong line refuses the whole order; services change
quantity from a date and end on a date."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from billfold.catalog import service as catalog
from billfold.catalog.models import Price, Product
from billfold.core.db import transaction
from billfold.core.errors import Conflict, NotFound, ValidationFailed
from billfold.customers import history
from billfold.customers.models import BillingAccount, ChangeRecord
from billfold.orders import service as orders
from billfold.orders.models import Order, OrderLine, PendingCharge, Service, ServiceQuantity
from billfold.orders.proration import QuantitySegment
from tests.services.conftest import ACTOR, Desk, fields_of, frozen_at

ORDER_TABLES = (Order, OrderLine, PendingCharge, Service, ServiceQuantity, ChangeRecord)


class Shop:
    """A clerk with a catalog: a one-time setup fee and a recurring seat licence, both
    priced in USD and MXN, and a desk to open accounts with."""

    def __init__(self, desk: Desk) -> None:
        self.desk, self.session, self.scope = desk, desk.session, desk.scope
        with transaction(self.session):
            self.setup = catalog.create_product(self.session, self.scope, name="Setup fee",
                                                sku="SETUP", tax_category="standard")
            self.seats = catalog.create_product(self.session, self.scope, name="Seat licence",
                                                sku="SEAT", tax_category="digital_services")
            self.setup_fee = catalog.create_price(
                self.session, self.scope, product_id=self.setup.id, kind="one_time",
                amounts_minor={"USD": 5000, "MXN": 90000}, tax_inclusive=True)
            self.seat_monthly = catalog.create_price(
                self.session, self.scope, product_id=self.seats.id, kind="recurring",
                amounts_minor={"USD": 3100, "MXN": 55000}, billing_timing="in_advance")

    def account(self, name: str = "Acme Brick", **extra: Any) -> BillingAccount:
        return self.desk.new_account(name, **extra)

    def price(self, product: Product, **values: Any) -> Price:
        with transaction(self.session):
            return catalog.create_price(self.session, self.scope, product_id=product.id,
                                        **values)

    def order(self, account: BillingAccount | str, *lines: dict[str, Any]) -> Order:
        account_id = account if isinstance(account, str) else account.id
        with transaction(self.session):
            return orders.create_order(self.session, self.scope, billing_account_id=account_id,
                                       lines=list(lines), actor=ACTOR)

    def seats_line(self, quantity: int = 3, start: date = date(2026, 3, 11)) -> dict[str, Any]:
        return {"price_id": self.seat_monthly.id, "quantity": quantity, "start_date": start}

    def setup_line(self, quantity: int = 1, start: date = date(2026, 3, 11)) -> dict[str, Any]:
        return {"price_id": self.setup_fee.id, "quantity": quantity, "start_date": start}

    def service(self, account: BillingAccount | None = None, **line: Any) -> Service:
        order = self.order(account or self.account(), self.seats_line(**line))
        [made] = orders.order_lines(self.session, [order.id])[order.id]
        assert made.service_id is not None
        return self.session.get(Service, made.service_id)

    def change(self, service: Service, quantity: int, effective: date) -> Service:
        with transaction(self.session):
            return orders.change_quantity(self.session, self.scope, service_id=service.id,
                                          quantity=quantity, effective_date=effective,
                                          actor=ACTOR)

    def cancel(self, service: Service, end: date) -> Service:
        with transaction(self.session):
            return orders.cancel_service(self.session, self.scope, service_id=service.id,
                                         end_date=end, actor=ACTOR)

    def schedule(self, service: Service) -> list[tuple[date, int]]:
        self.session.expire_all()
        return [(s.effective_date, s.quantity)
                for s in orders.quantity_segments(self.session, [service.id])[service.id]]

    def counts(self) -> dict[str, int]:
        self.session.expire_all()
        return {model.__tablename__: self.session.scalar(
            select(func.count()).select_from(model).where(
                model.tenant_id == self.scope.tenant_id, model.mode == self.scope.mode)) or 0
            for model in ORDER_TABLES}


@pytest.fixture
def shop(desk: Desk) -> Shop:
    return Shop(desk)


@pytest.fixture
def account(shop: Shop) -> BillingAccount:
    return shop.account()


def refusal(shop: Shop, *args: Any) -> ValidationFailed:
    """The ValidationFailed that placing this order raises; asserts nothing was written."""
    before = shop.counts()
    with pytest.raises(ValidationFailed) as refused:
        shop.order(*args)
    assert shop.counts() == before
    return refused.value


class TestCreateOrder:
    def test_a_one_time_line_becomes_a_pending_charge_priced_in_the_accounts_currency(
            self, shop, account):
        order = shop.order(account, shop.setup_line(quantity=2))
        [line] = orders.order_lines(shop.session, [order.id])[order.id]
        charge = shop.session.get(PendingCharge, line.pending_charge_id)
        assert line.service_id is None
        assert (charge.billing_account_id, charge.order_id, charge.product_id, charge.price_id) \
            == (account.id, order.id, shop.setup.id, shop.setup_fee.id)
        assert (charge.description, charge.quantity, charge.unit_amount_minor,
                charge.amount_minor, charge.currency) == ("Setup fee", 2, 5000, 10000, "USD")
        assert (charge.tax_category, charge.tax_inclusive) == ("standard", True)
        assert charge.charge_date == date(2026, 3, 11)
        assert charge.invoice_id is None
        assert (order.currency, order.placed_by) == ("USD", ACTOR)

    def test_a_recurring_line_becomes_a_service_with_its_first_quantity(self, shop, account):
        order = shop.order(account, shop.seats_line(quantity=3))
        [line] = orders.order_lines(shop.session, [order.id])[order.id]
        service = shop.session.get(Service, line.service_id)
        assert line.pending_charge_id is None
        assert (service.billing_account_id, service.order_id, service.product_id,
                service.price_id) == (account.id, order.id, shop.seats.id, shop.seat_monthly.id)
        assert (service.description, service.currency, service.unit_amount_minor,
                service.billing_timing) == ("Seat licence", "USD", 3100, "in_advance")
        assert (service.tax_category, service.tax_inclusive) == ("digital_services", False)
        assert (service.start_date, service.end_date, service.status) == (
            date(2026, 3, 11), None, "active")
        assert shop.schedule(service) == [(date(2026, 3, 11), 3)]

    def test_order_lines_record_what_was_ordered_in_order(self, shop, account):
        order = shop.order(account, shop.seats_line(quantity=3), shop.setup_line(quantity=2))
        lines = orders.order_lines(shop.session, [order.id])[order.id]
        assert [(ln.line_number, ln.kind, ln.price_id, ln.quantity, ln.unit_amount_minor)
                for ln in lines] == [
            (1, "recurring", shop.seat_monthly.id, 3, 3100),
            (2, "one_time", shop.setup_fee.id, 2, 5000)]
        assert lines[0].service_id
        assert lines[1].pending_charge_id

    def test_an_mxn_account_is_charged_the_mxn_amount(self, shop):
        account = shop.account(currency="MXN")
        order = shop.order(account, shop.setup_line(), shop.seats_line())
        charges = orders.uninvoiced_charges(shop.session, shop.scope, account.id)
        services = orders.services_for_account(shop.session, shop.scope, account.id)
        assert order.currency == "MXN"
        assert [(c.currency, c.amount_minor) for c in charges] == [("MXN", 90000)]
        assert [(s.currency, s.unit_amount_minor) for s in services] == [("MXN", 55000)]

    def test_records_the_order_in_the_accounts_history(self, shop, account):
        order = shop.order(account, shop.seats_line(quantity=3))
        [record] = [r for r in history.list_history(
            shop.session, shop.scope, object_type="billing_account", object_id=account.id,
            limit=10) if r.action == "ordered"]
        changes = {c["field"]: c["new_value"] for c in record.changes}
        assert changes["order_id"] == order.id
        assert changes["order_lines"][0]["sku"] == "SEAT"
        assert changes["order_lines"][0]["quantity"] == 3
        assert record.actor == ACTOR

    def test_start_date_defaults_to_the_tenants_today_and_quantity_to_one(self, shop, account):
        with frozen_at(datetime(2026, 4, 2, 12, tzinfo=UTC)):
            order = shop.order(account, {"price_id": shop.setup_fee.id})
        [line] = orders.order_lines(shop.session, [order.id])[order.id]
        assert (line.start_date, line.quantity) == (date(2026, 4, 2), 1)

    def test_refuses_a_deactivated_account_naming_it(self, shop, account):
        shop.desk.update_account(account, status="deactivated")
        refused = refusal(shop, account, shop.setup_line())
        assert fields_of(refused) == ["billing_account_id"]

    def test_a_suspended_account_may_still_order(self, shop, account):
        shop.desk.update_account(account, status="suspended")
        assert shop.order(account, shop.setup_line()).id.startswith("ord_")

    def test_refuses_a_price_without_an_amount_in_the_accounts_currency(self, shop, account):
        euro_only = shop.price(shop.seats, kind="one_time", amounts_minor={"EUR": 100})
        refused = refusal(shop, account, shop.setup_line(),
                          {"price_id": euro_only.id, "start_date": date(2026, 3, 1)})
        assert fields_of(refused) == ["lines[1].price_id"]
        assert refused.errors[0].code == "currency_mismatch"

    def test_refuses_an_inactive_price(self, shop, account):
        with transaction(shop.session):
            catalog.set_price_active(shop.session, shop.scope, price_id=shop.setup_fee.id,
                                     active=False)
        assert fields_of(refusal(shop, account, shop.setup_line())) == ["lines[0].price_id"]

    def test_refuses_a_price_of_an_inactive_product(self, shop, account):
        with transaction(shop.session):
            catalog.update_product(shop.session, shop.scope, product_id=shop.seats.id,
                                   changes={"active": False})
        refused = refusal(shop, account, shop.setup_line(), shop.seats_line())
        assert fields_of(refused) == ["lines[1].price_id"]

    @pytest.mark.parametrize("quantity", [0, -1, 10**9 + 1, 1.5, True, "2"])
    def test_refuses_a_quantity_that_is_not_a_whole_number_of_at_least_one(
            self, shop, account, quantity):
        refused = refusal(shop, account, shop.setup_line(quantity=quantity))
        assert fields_of(refused) == ["lines[0].quantity"]

    def test_refuses_a_quantity_whose_amount_would_overflow(self, shop, account):
        big = shop.price(shop.setup, kind="one_time", amounts_minor={"USD": 10**12})
        refused = refusal(shop, account, {"price_id": big.id, "quantity": 1001,
                                          "start_date": date(2026, 3, 1)})
        assert fields_of(refused) == ["lines[0].quantity"]

    def test_refuses_a_start_date_before_the_accounts_start_date(self, shop, account):
        assert account.start_date == date(2026, 2, 1)
        refused = refusal(shop, account, shop.seats_line(start=date(2026, 1, 31)))
        assert fields_of(refused) == ["lines[0].start_date"]
        assert shop.order(account, shop.seats_line(start=date(2026, 2, 1))).id

    def test_one_wrong_line_refuses_the_whole_order(self, shop, account):
        refused = refusal(shop, account, shop.setup_line(), shop.seats_line(quantity=0),
                          shop.setup_line(start=date(2020, 1, 1)))
        assert fields_of(refused) == ["lines[1].quantity", "lines[2].start_date"]

    @pytest.mark.parametrize("lines", [[], [None], [{"quantity": 1}], [{"price_id": 7}],
                                       [{"price_id": "price_x", "colour": "red"}]])
    def test_refuses_lines_that_are_missing_or_malformed(self, shop, account, lines):
        before = shop.counts()
        with pytest.raises(ValidationFailed) as refused, transaction(shop.session):
            orders.create_order(shop.session, shop.scope, billing_account_id=account.id,
                                lines=lines, actor=ACTOR)
        assert all(f.startswith("lines") for f in fields_of(refused.value))
        assert shop.counts() == before

    def test_refuses_another_tenants_account_and_price_as_if_they_did_not_exist(
            self, shop, account, make_desk):
        theirs = Shop(make_desk())
        their_account = theirs.account()
        refused = refusal(shop, their_account.id, shop.setup_line())
        assert fields_of(refused) == ["billing_account_id"]
        assert refused.errors[0].code == "not_found"
        refused = refusal(shop, account, {"price_id": theirs.setup_fee.id,
                                          "start_date": date(2026, 3, 1)})
        assert fields_of(refused) == ["lines[0].price_id"]
        assert theirs.counts()["order"] == 0

    def test_later_catalog_changes_do_not_change_what_was_ordered(self, shop, account):
        order = shop.order(account, shop.setup_line(), shop.seats_line())
        with transaction(shop.session):
            catalog.update_product(shop.session, shop.scope, product_id=shop.setup.id,
                                   changes={"name": "Onboarding", "tax_category": "exempt"})
        shop.session.expire_all()
        [charge] = orders.uninvoiced_charges(shop.session, shop.scope, account.id)
        assert (charge.description, charge.tax_category, charge.order_id) == (
            "Setup fee", "standard", order.id)


class TestChangeQuantity:
    def test_a_change_starts_a_new_quantity_segment_from_its_date(self, shop):
        service = shop.service(quantity=3)
        changed = shop.change(service, 5, date(2026, 4, 15))
        assert shop.schedule(changed) == [(date(2026, 3, 11), 3), (date(2026, 4, 15), 5)]
        assert orders.quantity_on(
            orders.quantity_segments(shop.session, [service.id])[service.id],
            date(2026, 4, 14)) == 3

    def test_records_the_change_in_the_accounts_history(self, shop):
        service = shop.service(quantity=3)
        shop.change(service, 5, date(2026, 4, 15))
        [record] = history.list_history(shop.session, shop.scope, object_type="billing_account",
                                        object_id=service.billing_account_id, limit=10)[-1:]
        assert {c["field"]: (c["old_value"], c["new_value"]) for c in record.changes} == {
            f"services.{service.id}.quantity": (3, 5),
            f"services.{service.id}.quantity_effective_date": (None, "2026-04-15")}

    def test_a_second_change_on_the_same_date_replaces_the_first(self, shop):
        service = shop.service(quantity=3)
        shop.change(service, 5, date(2026, 4, 15))
        shop.change(service, 6, date(2026, 4, 15))
        assert shop.schedule(service) == [(date(2026, 3, 11), 3), (date(2026, 4, 15), 6)]

    def test_changing_back_on_the_same_date_undoes_the_change(self, shop):
        service = shop.service(quantity=3)
        shop.change(service, 5, date(2026, 4, 15))
        shop.change(service, 3, date(2026, 4, 15))
        assert shop.schedule(service) == [(date(2026, 3, 11), 3)]

    def test_a_change_on_the_start_date_changes_the_first_quantity(self, shop):
        service = shop.service(quantity=3)
        shop.change(service, 4, date(2026, 3, 11))
        assert shop.schedule(service) == [(date(2026, 3, 11), 4)]

    @pytest.mark.parametrize(("quantity", "effective", "field"), [
        (5, date(2026, 3, 10), "effective_date"),  # before the service starts
        (5, date(2026, 4, 14), "effective_date"),  # before the latest change
        (0, date(2026, 5, 1), "quantity"),
        (10**9 + 1, date(2026, 5, 1), "quantity"),
        (4, date(2026, 5, 1), "quantity"),  # already 4 since April 15
        (4, date(2026, 4, 15), "quantity"),
    ])
    def test_refuses_a_wrong_change_naming_the_field(self, shop, quantity, effective, field):
        service = shop.service(quantity=3)
        shop.change(service, 4, date(2026, 4, 15))
        with pytest.raises(ValidationFailed) as refused:
            shop.change(service, quantity, effective)
        assert fields_of(refused.value) == [field]
        assert shop.schedule(service) == [(date(2026, 3, 11), 3), (date(2026, 4, 15), 4)]

    def test_refuses_a_change_after_the_end_date(self, shop):
        service = shop.cancel(shop.service(), date(2026, 6, 30))
        with pytest.raises(ValidationFailed) as refused:
            shop.change(service, 9, date(2026, 7, 1))
        assert fields_of(refused.value) == ["effective_date"]
        assert shop.change(service, 9, date(2026, 6, 30)).end_date == date(2026, 6, 30)

    def test_another_tenants_service_is_not_found(self, shop, make_desk):
        theirs = Shop(make_desk()).service()
        with pytest.raises(NotFound):
            shop.change(theirs, 7, date(2026, 5, 1))
        with pytest.raises(NotFound):
            orders.get_service(shop.session, shop.scope, theirs.id)


class TestCancelService:
    def test_sets_the_last_day_billed_and_the_status(self, shop):
        service = shop.cancel(shop.service(), date(2026, 6, 30))
        assert (service.end_date, service.status) == (date(2026, 6, 30), "cancelled")

    def test_the_end_date_may_move_until_the_service_is_closed(self, shop):
        service = shop.service()
        shop.cancel(service, date(2026, 6, 30))
        assert shop.cancel(service, date(2026, 8, 31)).end_date == date(2026, 8, 31)

    def test_a_service_may_end_on_the_day_it_starts(self, shop):
        service = shop.service(start=date(2026, 3, 11))
        assert shop.cancel(service, date(2026, 3, 11)).end_date == date(2026, 3, 11)

    def test_refuses_an_end_date_before_the_start_date(self, shop):
        service = shop.service(start=date(2026, 3, 11))
        with pytest.raises(ValidationFailed) as refused:
            shop.cancel(service, date(2026, 3, 10))
        assert fields_of(refused.value) == ["end_date"]
        assert "start date 2026-03-11" in refused.value.errors[0].message
        shop.session.expire_all()
        assert shop.session.get(Service, service.id).end_date is None

    def test_refuses_an_end_date_before_a_scheduled_quantity_change(self, shop):
        service = shop.service()
        shop.change(service, 5, date(2026, 5, 1))
        with pytest.raises(ValidationFailed) as refused:
            shop.cancel(service, date(2026, 4, 30))
        assert fields_of(refused.value) == ["end_date"]

    def test_records_the_cancellation_in_the_accounts_history(self, shop):
        service = shop.cancel(shop.service(), date(2026, 6, 30))
        [record] = history.list_history(shop.session, shop.scope, object_type="billing_account",
                                        object_id=service.billing_account_id, limit=10)[-1:]
        assert {c["field"]: (c["old_value"], c["new_value"]) for c in record.changes} == {
            f"services.{service.id}.end_date": (None, "2026-06-30"),
            f"services.{service.id}.status": ("active", "cancelled")}

    def test_end_services_closes_what_has_ended_and_then_nothing_changes_it(self, shop):
        account = shop.account()
        ended = shop.cancel(shop.service(account), date(2026, 4, 30))
        unbilled = shop.cancel(shop.service(account), date(2026, 4, 30))
        running = shop.cancel(shop.service(account), date(2026, 5, 1))
        untouched = shop.service(account)
        with transaction(shop.session):  # a bill run has charged `ended` through its end
            shop.session.get(Service, ended.id).billed_through = date(2026, 4, 30)
            shop.session.get(Service, unbilled.id).billed_through = date(2026, 3, 31)
        with transaction(shop.session):
            assert orders.end_services(shop.session, shop.scope, as_of=date(2026, 5, 1)) == 1
        shop.session.expire_all()
        assert [shop.session.get(Service, s.id).status
                for s in (ended, unbilled, running, untouched)] \
            == ["ended", "cancelled", "cancelled", "active"]
        with pytest.raises(Conflict) as refused:
            shop.cancel(ended, date(2026, 5, 31))
        assert refused.value.code == "service_ended"
        with pytest.raises(Conflict):
            shop.change(ended, 9, date(2026, 4, 1))

    def test_end_services_leaves_other_tenants_alone(self, shop, make_desk):
        theirs = Shop(make_desk())
        their_service = theirs.cancel(theirs.service(), date(2026, 4, 30))
        with transaction(shop.session):
            shop.session.get(Service, their_service.id).billed_through = date(2026, 4, 30)
        with transaction(shop.session):
            assert orders.end_services(shop.session, shop.scope, as_of=date(2027, 1, 1)) == 0
        shop.session.expire_all()
        assert shop.session.get(Service, their_service.id).status == "cancelled"


class TestQueries:
    def test_services_for_account_in_a_period_are_those_active_on_one_of_its_days(self, shop):
        account = shop.account()
        march = shop.service(account, start=date(2026, 3, 11))
        april = shop.service(account, start=date(2026, 4, 1))
        ended = shop.cancel(shop.service(account, start=date(2026, 2, 1)), date(2026, 2, 28))
        last_day = shop.cancel(shop.service(account, start=date(2026, 2, 1)), date(2026, 3, 1))
        in_march = orders.services_for_account(shop.session, shop.scope, account.id,
                                               period_start=date(2026, 3, 1),
                                               period_end=date(2026, 3, 31))
        assert [s.id for s in in_march] == [march.id, last_day.id]
        everything = orders.services_for_account(shop.session, shop.scope, account.id)
        assert {s.id for s in everything} == {march.id, april.id, ended.id, last_day.id}

    def test_quantity_segments_feed_proration(self, shop):
        service = shop.service(quantity=1, start=date(2026, 2, 1))
        shop.change(service, 2, date(2026, 3, 11))
        segments = orders.quantity_segments(shop.session, [service.id])[service.id]
        assert segments == [QuantitySegment(date(2026, 2, 1), 1),
                            QuantitySegment(date(2026, 3, 11), 2)]

    def test_pending_total_sums_the_uninvoiced_charges_only(self, shop, account):
        assert orders.pending_total(shop.session, shop.scope, account.id) == 0
        shop.order(account, shop.setup_line(quantity=2), shop.seats_line())
        shop.order(account, shop.setup_line(quantity=1, start=date(2026, 5, 1)))
        assert orders.pending_total(shop.session, shop.scope, account.id) == 15000
        first = orders.uninvoiced_charges(shop.session, shop.scope, account.id)[0]
        with transaction(shop.session):
            first.invoice_id = "inv_" + "0" * 32
        totals = orders.pending_totals(shop.session, shop.scope, account.id)
        assert (totals.count, totals.amount_minor, totals.currency) == (1, 5000, "USD")

    def test_uninvoiced_charges_through_a_date(self, shop, account):
        shop.order(account, shop.setup_line(start=date(2026, 3, 1)))
        shop.order(account, shop.setup_line(start=date(2026, 4, 1)))
        through = orders.uninvoiced_charges(shop.session, shop.scope, account.id,
                                            through=date(2026, 3, 31))
        assert [c.charge_date for c in through] == [date(2026, 3, 1)]

    def test_another_tenants_account_is_not_found(self, shop, make_desk):
        theirs = Shop(make_desk())
        their_account = theirs.account()
        theirs.order(their_account, theirs.setup_line())
        for query in (orders.pending_total, orders.uninvoiced_charges,
                      orders.services_for_account):
            with pytest.raises(NotFound):
                query(shop.session, shop.scope, their_account.id)

    def test_lists_filter_by_account_and_status(self, shop):
        first, second = shop.account(), shop.account("Second Co")
        mine = shop.service(first)
        shop.service(second)
        cancelled = shop.cancel(shop.service(first), date(2026, 6, 30))
        listed = orders.list_services(shop.session, shop.scope, limit=10,
                                      billing_account_id=first.id)
        assert [s.id for s in listed] == [mine.id, cancelled.id]
        assert [s.id for s in orders.list_services(shop.session, shop.scope, limit=10,
                                                   status="cancelled")] == [cancelled.id]
        assert len(orders.list_orders(shop.session, shop.scope, limit=10,
                                      billing_account_id=second.id)) == 1
