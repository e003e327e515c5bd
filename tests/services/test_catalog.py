"""Products and prices: SKUs unique per tenant and mode in any case, a tax category on every
product, one amount per active currency on every price, timing only on recurring prices."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from billfold.catalog import service as catalog
from billfold.catalog.models import Price, Product
from billfold.core.db import transaction
from billfold.core.errors import Conflict, NotFound, ValidationFailed
from billfold.core.scope import Scope
from tests.services.conftest import fields_of


class Catalog:
    def __init__(self, session: Any, scope: Scope) -> None:
        self.session, self.scope = session, scope

    def product(self, sku: str = "WID-1", **extra: Any) -> Product:
        values = {"name": "Widget", "sku": sku, "tax_category": "standard", **extra}
        with transaction(self.session):
            return catalog.create_product(self.session, self.scope, **values)

    def price(self, product: Product, **extra: Any) -> Price:
        values = {"kind": "one_time", "amounts_minor": {"USD": 2500}, **extra}
        with transaction(self.session):
            return catalog.create_price(self.session, self.scope, product_id=product.id,
                                        **values)

    def update(self, product: Product, **changes: Any) -> Product:
        with transaction(self.session):
            return catalog.update_product(self.session, self.scope, product_id=product.id,
                                          changes=changes)

    def set_active(self, price: Price, active: bool) -> Price:
        with transaction(self.session):
            return catalog.set_price_active(self.session, self.scope, price_id=price.id,
                                            active=active)

    def count(self, model: Any) -> int:
        self.session.expire_all()
        return self.session.scalar(select(func.count()).select_from(model).where(
            model.tenant_id == self.scope.tenant_id, model.mode == self.scope.mode)) or 0


@pytest.fixture
def shop(session: Any, scope: Scope) -> Catalog:
    return Catalog(session, scope)


class TestCreateProduct:
    def test_creates_an_active_product_with_its_tax_category(self, shop):
        product = shop.product(description="A fine widget")
        assert product.id.startswith("prod_")
        assert (product.name, product.sku, product.tax_category) == ("Widget", "WID-1",
                                                                     "standard")
        assert product.active is True
        assert product.description == "A fine widget"

    def test_refuses_a_sku_another_product_has_in_any_case(self, shop):
        shop.product("WID-1")
        with pytest.raises(Conflict) as refused:
            shop.product("wid-1", name="Other widget")
        assert refused.value.code == "duplicate_sku"
        assert fields_of(refused.value) == ["sku"]
        assert shop.count(Product) == 1

    def test_the_same_sku_is_free_in_another_tenant_and_in_the_other_mode(self, shop, session,
                                                                        make_scope):
        shop.product("WID-1")
        other = Catalog(session, make_scope())
        live = Catalog(session, Scope(shop.scope.tenant_id, "live"))
        assert other.product("WID-1").sku == "WID-1"
        assert live.product("wid-1").sku == "wid-1"

    @pytest.mark.parametrize(("changes", "field"), [
        ({"name": "  "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"sku": ""}, "sku"),
        ({"sku": "has space"}, "sku"),
        ({"sku": "-leading-dash"}, "sku"),
        ({"sku": "x" * 65}, "sku"),
        ({"tax_category": None}, "tax_category"),
        ({"tax_category": "Standard"}, "tax_category"),
        ({"tax_category": "exempt goods"}, "tax_category"),
        ({"tax_category": "x" * 41}, "tax_category"),
        ({"active": "yes"}, "active"),
    ])
    def test_refuses_a_wrong_field_naming_it_and_writes_nothing(self, shop, changes, field):
        with pytest.raises(ValidationFailed) as refused:
            shop.product(**changes)
        assert fields_of(refused.value) == [field]
        assert shop.count(Product) == 0

    def test_names_every_wrong_field_at_once(self, shop):
        with pytest.raises(ValidationFailed) as refused:
            shop.product(sku="bad sku", name="", tax_category="")
        assert sorted(fields_of(refused.value)) == ["name", "sku", "tax_category"]


class TestUpdateProduct:
    def test_renames_recategorises_and_deactivates(self, shop):
        product = shop.product()
        updated = shop.update(product, name="Widget Pro", tax_category="exempt_goods",
                              active=False)
        assert (updated.name, updated.tax_category, updated.active) == (
            "Widget Pro", "exempt_goods", False)
        assert updated.updated_at >= updated.created_at

    def test_refuses_a_sku_another_product_has(self, shop):
        shop.product("WID-1")
        second = shop.product("WID-2")
        with pytest.raises(Conflict):
            shop.update(second, sku="Wid-1")
        assert shop.session.get(Product, second.id).sku == "WID-2"

    def test_keeps_its_own_sku_in_another_case(self, shop):
        product = shop.product("WID-1")
        assert shop.update(product, sku="wid-1").sku == "wid-1"

    def test_refuses_an_unknown_field_and_a_cleared_name(self, shop):
        product = shop.product()
        with pytest.raises(ValidationFailed) as refused:
            shop.update(product, colour="red")
        assert fields_of(refused.value) == ["colour"]
        with pytest.raises(ValidationFailed) as refused:
            shop.update(product, name=None)
        assert fields_of(refused.value) == ["name"]
        shop.session.expire_all()
        assert shop.session.get(Product, product.id).name == "Widget"

    def test_another_tenants_product_is_not_found(self, shop, session, make_scope):
        theirs = Catalog(session, make_scope()).product()
        with pytest.raises(NotFound):
            shop.update(theirs, name="Mine now")
        with pytest.raises(NotFound):
            catalog.get_product(session, shop.scope, theirs.id)


class TestCreatePrice:
    def test_a_recurring_price_keeps_one_amount_per_currency(self, shop):
        price = shop.price(shop.product(), kind="recurring", billing_timing="in_advance",
                           amounts_minor={"MXN": 45000, "USD": 2500}, nickname="Monthly")
        assert price.id.startswith("price_")
        assert price.amounts_minor == {"MXN": 45000, "USD": 2500}
        assert (price.kind, price.billing_timing, price.tax_inclusive, price.active) == (
            "recurring", "in_advance", False, True)
        assert price.amount_in("MXN") == 45000
        assert price.amount_in("EUR") is None

    def test_a_zero_amount_is_a_price(self, shop):
        assert shop.price(shop.product(), amounts_minor={"JPY": 0}).amounts_minor == {"JPY": 0}

    @pytest.mark.parametrize(("amounts", "field"), [
        ({}, "amounts_minor"),
        (None, "amounts_minor"),
        ([2500], "amounts_minor"),
        ({"ZZZ": 100}, "amounts_minor.ZZZ"),
        ({"usd": 100}, "amounts_minor.usd"),
        ({"XTS": 100}, "amounts_minor.XTS"),
        ({"XAU": 100}, "amounts_minor.XAU"),
        ({"USD": -1}, "amounts_minor.USD"),
        ({"USD": 25.0}, "amounts_minor.USD"),
        ({"USD": True}, "amounts_minor.USD"),
        ({"USD": "2500"}, "amounts_minor.USD"),
        ({"USD": 10**15 + 1}, "amounts_minor.USD"),
    ])
    def test_refuses_amounts_that_are_not_minor_units_of_active_currencies(
            self, shop, amounts, field):
        product = shop.product()
        with pytest.raises(ValidationFailed) as refused:
            shop.price(product, amounts_minor=amounts)
        assert fields_of(refused.value) == [field]
        assert shop.count(Price) == 0

    def test_a_recurring_price_needs_a_billing_timing(self, shop):
        with pytest.raises(ValidationFailed) as refused:
            shop.price(shop.product(), kind="recurring")
        assert fields_of(refused.value) == ["billing_timing"]

    def test_a_one_time_price_has_no_billing_timing(self, shop):
        with pytest.raises(ValidationFailed) as refused:
            shop.price(shop.product(), kind="one_time", billing_timing="in_arrears")
        assert fields_of(refused.value) == ["billing_timing"]

    @pytest.mark.parametrize(("changes", "field"), [
        ({"kind": "weekly"}, "kind"),
        ({"kind": "recurring", "billing_timing": "whenever"}, "billing_timing"),
        ({"tax_inclusive": None}, "tax_inclusive"),
        ({"nickname": "x" * 101}, "nickname"),
    ])
    def test_refuses_other_wrong_fields(self, shop, changes, field):
        with pytest.raises(ValidationFailed) as refused:
            shop.price(shop.product(), **changes)
        assert field in fields_of(refused.value)
        assert shop.count(Price) == 0

    def test_refuses_another_tenants_product_as_if_it_did_not_exist(self, shop, session,
                                                                   make_scope):
        theirs = Catalog(session, make_scope()).product()
        with pytest.raises(ValidationFailed) as refused:
            shop.price(theirs)
        assert refused.value.errors[0].field == "product_id"
        assert refused.value.errors[0].code == "not_found"

    def test_refuses_an_inactive_product(self, shop):
        product = shop.product(active=False)
        with pytest.raises(ValidationFailed) as refused:
            shop.price(product)
        assert fields_of(refused.value) == ["product_id"]


class TestPriceActivation:
    def test_a_price_can_be_deactivated_and_reactivated(self, shop):
        price = shop.price(shop.product())
        assert shop.set_active(price, False).active is False
        assert shop.set_active(price, True).active is True

    def test_reactivation_waits_for_the_product(self, shop):
        product = shop.product()
        price = shop.price(product)
        shop.set_active(price, False)
        shop.update(product, active=False)
        with pytest.raises(ValidationFailed) as refused:
            shop.set_active(price, True)
        assert fields_of(refused.value) == ["active"]

    def test_another_tenants_price_is_not_found(self, shop, session, make_scope):
        other = Catalog(session, make_scope())
        theirs = other.price(other.product())
        with pytest.raises(NotFound):
            shop.set_active(theirs, False)
        session.expire_all()
        assert session.get(Price, theirs.id).active is True


class TestLists:
    def test_prices_filter_by_product_and_page_by_id(self, shop):
        first, second = shop.product("A-1"), shop.product("B-1")
        mine = [shop.price(first), shop.price(first, amounts_minor={"EUR": 1})]
        shop.price(second)
        listed = catalog.list_prices(shop.session, shop.scope, limit=10, product_id=first.id)
        assert [p.id for p in listed] == [p.id for p in mine]
        after = catalog.list_prices(shop.session, shop.scope, limit=10, product_id=first.id,
                                    starting_after=mine[0].id)
        assert [p.id for p in after] == [mine[1].id]

    def test_products_filter_by_active_and_show_no_other_tenants(self, shop, session,
                                                               make_scope):
        active, inactive = shop.product("A-1"), shop.product("B-1", active=False)
        Catalog(session, make_scope()).product("C-1")
        assert [p.id for p in catalog.list_products(session, shop.scope, limit=10)] == [
            active.id, inactive.id]
        assert [p.id for p in catalog.list_products(session, shop.scope, limit=10,
                                                    active=False)] == [inactive.id]
