"""Products, prices, orders, services and pending charges end to end through the API: bad
input is a problem naming the field and writes nothing; another tenant's objects are 404
on paths and unknown inside bodies."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import customer_body, seed_reference
from tests.web.helpers import assert_problem, list_ids

MY_LISTS = ("/v1/products", "/v1/prices", "/v1/orders", "/v1/services")


class Biller:
    """One tenant over HTTP: an account in USD starting 2026-02-01, a one-time setup fee
    and a recurring seat licence."""

    def __init__(self, client: Any) -> None:
        self.client = client
        ref = seed_reference(client)
        customer = client.post("/v1/customers", json=customer_body(ref))
        assert customer.status_code == 201, customer.text
        self.account_id = customer.json()["billing_account"]["id"]
        self.setup = self.created("/v1/products", {
            "name": "Setup fee", "sku": "SETUP", "tax_category": "standard"})
        self.seats = self.created("/v1/products", {
            "name": "Seat licence", "sku": "SEAT", "tax_category": "digital_services"})
        self.setup_fee = self.created("/v1/prices", {
            "product_id": self.setup["id"], "kind": "one_time",
            "amounts_minor": {"USD": 5000, "MXN": 90000}, "tax_inclusive": True})
        self.seat_monthly = self.created("/v1/prices", {
            "product_id": self.seats["id"], "kind": "recurring",
            "amounts_minor": {"USD": 3100}, "billing_timing": "in_advance"})

    def created(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def order(self, *lines: dict[str, Any], account_id: str | None = None) -> Any:
        return self.client.post("/v1/orders", json={
            "billing_account_id": account_id or self.account_id, "lines": list(lines)})

    def seats_line(self, quantity: int = 3, start: str = "2026-03-11") -> dict[str, Any]:
        return {"price_id": self.seat_monthly["id"], "quantity": quantity, "start_date": start}

    def setup_line(self, quantity: int = 1, start: str = "2026-03-11") -> dict[str, Any]:
        return {"price_id": self.setup_fee["id"], "quantity": quantity, "start_date": start}

    def service(self, quantity: int = 3) -> dict[str, Any]:
        order = self.order(self.seats_line(quantity=quantity))
        assert order.status_code == 201, order.text
        response = self.client.get(f"/v1/services/{order.json()['lines'][0]['service_id']}")
        return dict(response.json())

    def state(self) -> dict[str, Any]:
        """Everything a refused request must leave as it was."""
        lists = {path: list_ids(self.client, path) for path in MY_LISTS}
        account = f"/v1/billing_accounts/{self.account_id}"
        return {**lists,
                "pending": list_ids(self.client, f"{account}/pending_charges"),
                "history": list_ids(self.client, f"{account}/history"),
                "services": self.client.get("/v1/services", params={"limit": 100}).json()}


@pytest.fixture
def biller(client: Any) -> Biller:
    return Biller(client)


@pytest.fixture
def intruder(make_client: Any) -> Biller:
    return Biller(make_client())


class TestCatalog:
    def test_products_and_prices_are_created_read_and_listed(self, biller):
        client = biller.client
        assert client.get(f"/v1/products/{biller.seats['id']}").json() == biller.seats
        assert biller.seats["tax_category"] == "digital_services"
        assert biller.seats["active"] is True
        assert list_ids(client, "/v1/products") == [biller.setup["id"], biller.seats["id"]]
        price = client.get(f"/v1/prices/{biller.setup_fee['id']}").json()
        assert price["amounts_minor"] == {"MXN": 90000, "USD": 5000}
        assert (price["kind"], price["billing_timing"], price["tax_inclusive"]) == (
            "one_time", None, True)
        assert list_ids(client, "/v1/prices", product_id=biller.seats["id"]) == [
            biller.seat_monthly["id"]]

    def test_a_duplicate_sku_in_another_case_is_a_409_naming_sku(self, biller):
        before = biller.state()
        response = biller.client.post("/v1/products", json={
            "name": "Other", "sku": "seat", "tax_category": "standard"})
        assert_problem(response, 409, "duplicate_sku", field="sku")
        assert biller.state() == before

    @pytest.mark.parametrize(("body", "field"), [
        ({"name": "W", "sku": "W-1", "tax_category": "Standard"}, "tax_category"),
        ({"name": "W", "sku": "W 1", "tax_category": "standard"}, "sku"),
        ({"name": "W", "sku": "W-1"}, "tax_category"),
        ({"name": "W", "sku": "W-1", "tax_category": "standard", "colour": "red"}, "colour"),
        ({"name": "W", "sku": "W-1", "tax_category": "standard", "active": "yes"}, "active"),
    ])
    def test_a_wrong_product_is_a_422_naming_the_field(self, biller, body, field):
        before = biller.state()
        assert_problem(biller.client.post("/v1/products", json=body), 422, "validation_failed",
                       field=field)
        assert biller.state() == before

    @pytest.mark.parametrize(("changes", "field"), [
        ({"amounts_minor": {"ZZZ": 100}}, "amounts_minor.ZZZ"),
        ({"amounts_minor": {"XTS": 100}}, "amounts_minor.XTS"),
        ({"amounts_minor": {}}, "amounts_minor"),
        ({"amounts_minor": {"USD": -5}}, "amounts_minor.USD"),
        ({"kind": "recurring"}, "billing_timing"),
        ({"billing_timing": "in_arrears"}, "billing_timing"),
    ])
    def test_a_wrong_price_is_a_422_naming_the_field(self, biller, changes, field):
        before = biller.state()
        body = {"product_id": biller.setup["id"], "kind": "one_time",
                "amounts_minor": {"USD": 100}, **changes}
        problem = assert_problem(biller.client.post("/v1/prices", json=body), 422)
        assert any(e["field"].startswith(field) for e in problem["errors"]), problem
        assert biller.state() == before

    def test_a_price_is_deactivated_and_then_cannot_be_ordered(self, biller):
        response = biller.client.patch(f"/v1/prices/{biller.setup_fee['id']}",
                                       json={"active": False})
        assert response.status_code == 200, response.text
        assert response.json()["active"] is False
        assert response.json()["amounts_minor"] == biller.setup_fee["amounts_minor"]
        before = biller.state()
        assert_problem(biller.order(biller.setup_line()), 422, field="lines[0].price_id")
        assert biller.state() == before

    def test_a_price_amount_cannot_be_changed(self, biller):
        response = biller.client.patch(f"/v1/prices/{biller.setup_fee['id']}",
                                       json={"amounts_minor": {"USD": 1}})
        assert_problem(response, 422, field="amounts_minor")
        assert biller.client.get(f"/v1/prices/{biller.setup_fee['id']}").json() == \
            biller.setup_fee

    def test_a_product_is_renamed_and_deactivated(self, biller):
        response = biller.client.patch(f"/v1/products/{biller.seats['id']}",
                                       json={"name": "Seats", "active": False})
        assert response.status_code == 200, response.text
        assert (response.json()["name"], response.json()["active"]) == ("Seats", False)
        assert list_ids(biller.client, "/v1/products", active="false") == [biller.seats["id"]]
        assert_problem(biller.order(biller.seats_line()), 422, field="lines[0].price_id")


class TestPlacingAnOrder:
    def test_an_order_becomes_a_service_and_a_pending_charge(self, biller):
        response = biller.order(biller.seats_line(quantity=3), biller.setup_line(quantity=2))
        assert response.status_code == 201, response.text
        order = response.json()
        assert order["id"].startswith("ord_")
        assert (order["billing_account_id"], order["currency"]) == (biller.account_id, "USD")
        seats, setup = order["lines"]
        assert (seats["line_number"], seats["kind"], seats["quantity"],
                seats["unit_amount_minor"], seats["pending_charge_id"]) == (
            1, "recurring", 3, 3100, None)
        assert (setup["line_number"], setup["kind"], setup["service_id"]) == (2, "one_time",
                                                                             None)
        client = biller.client
        assert client.get(f"/v1/orders/{order['id']}").json() == order
        assert list_ids(client, "/v1/orders", billing_account_id=biller.account_id) == [
            order["id"]]

        service = client.get(f"/v1/services/{seats['service_id']}").json()
        assert (service["status"], service["quantity"], service["start_date"],
                service["end_date"], service["billing_timing"], service["tax_category"]) == (
            "active", 3, "2026-03-11", None, "in_advance", "digital_services")
        assert service["quantities"] == [{"effective_date": "2026-03-11", "quantity": 3}]
        assert list_ids(client, "/v1/services", billing_account_id=biller.account_id,
                        status="active") == [service["id"]]

        [charge] = client.get(
            f"/v1/billing_accounts/{biller.account_id}/pending_charges").json()["data"]
        assert charge["id"] == setup["pending_charge_id"]
        assert (charge["description"], charge["quantity"], charge["unit_amount_minor"],
                charge["amount_minor"], charge["currency"], charge["tax_category"],
                charge["tax_inclusive"], charge["charge_date"], charge["invoice_id"]) == (
            "Setup fee", 2, 5000, 10000, "USD", "standard", True, "2026-03-11", None)

    def test_the_account_summary_shows_the_pending_charges(self, biller):
        summary_path = f"/v1/billing_accounts/{biller.account_id}/summary"
        assert biller.client.get(summary_path).json()["pending_charges"]["amount_minor"] == 0
        biller.order(biller.setup_line(quantity=2), biller.seats_line())
        biller.order(biller.setup_line(quantity=1))
        summary = biller.client.get(summary_path).json()
        assert summary["pending_charges"] == {"amount_minor": 15000, "currency": "USD"}
        assert summary["pending_charges_count"] == 2

    def test_the_order_is_in_the_accounts_history(self, biller):
        order = biller.order(biller.setup_line()).json()
        history = biller.client.get(
            f"/v1/billing_accounts/{biller.account_id}/history").json()["data"]
        [ordered] = [h for h in history if h["action"] == "ordered"]
        assert {"field": "order_id", "old_value": None, "new_value": order["id"]} in \
            ordered["changes"]

    def test_a_replayed_order_is_placed_once(self, biller):
        headers = {"Idempotency-Key": "order-1"}
        body = {"billing_account_id": biller.account_id, "lines": [biller.setup_line()]}
        first = biller.client.post("/v1/orders", json=body, headers=headers)
        again = biller.client.post("/v1/orders", json=body, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json() == first.json()
        assert list_ids(biller.client, "/v1/orders") == [first.json()["id"]]


class TestRefusedOrders:
    @pytest.mark.parametrize(("line", "field"), [
        ({"quantity": 0}, "lines[1].quantity"),
        ({"quantity": 1.5}, "lines[1].quantity"),
        ({"start_date": "2026-01-31"}, "lines[1].start_date"),
        ({"start_date": "next tuesday"}, "lines[1].start_date"),
        ({"colour": "red"}, "lines[1].colour"),
        ({"price_id": "price_" + "0" * 32}, "lines[1].price_id"),
        ({"price_id": "not an id"}, "lines[1].price_id"),
    ])
    def test_a_wrong_line_is_a_422_naming_it_and_nothing_is_written(self, biller, line, field):
        biller.order(biller.setup_line())
        before = biller.state()
        response = biller.order(biller.seats_line(), {**biller.setup_line(), **line})
        problem = assert_problem(response, 422, "validation_failed")
        assert field in [e["field"] for e in problem["errors"]], problem
        assert biller.state() == before

    def test_a_price_without_the_accounts_currency_refuses_the_whole_order(self, biller):
        euro = biller.created("/v1/prices", {"product_id": biller.setup["id"],
                                             "kind": "one_time", "amounts_minor": {"EUR": 1}})
        before = biller.state()
        response = biller.order(biller.seats_line(), {"price_id": euro["id"],
                                                      "start_date": "2026-03-01"})
        problem = assert_problem(response, 422, field="lines[1].price_id")
        assert "USD" in problem["detail"]
        assert biller.state() == before

    def test_a_deactivated_account_cannot_order(self, biller):
        response = biller.client.patch(f"/v1/billing_accounts/{biller.account_id}",
                                       json={"status": "deactivated"})
        assert response.status_code == 200, response.text
        before = biller.state()
        assert_problem(biller.order(biller.setup_line()), 422, field="billing_account_id")
        assert biller.state() == before

    @pytest.mark.parametrize("body", [
        {"lines": []},
        {"billing_account_id": None},
        {"lines": None},
        {"extra": 1},
    ])
    def test_a_malformed_order_is_a_422(self, biller, body):
        before = biller.state()
        full = {"billing_account_id": biller.account_id, "lines": [biller.setup_line()], **body}
        problem = assert_problem(biller.client.post("/v1/orders", json=full), 422)
        assert problem["errors"]
        assert all(e["field"] for e in problem["errors"])
        assert biller.state() == before


class TestServices:
    def test_a_quantity_change_from_a_date(self, biller):
        service = biller.service(quantity=3)
        response = biller.client.post(f"/v1/services/{service['id']}/quantity",
                                      json={"quantity": 5, "effective_date": "2026-04-15"})
        assert response.status_code == 200, response.text
        assert response.json()["quantities"] == [
            {"effective_date": "2026-03-11", "quantity": 3},
            {"effective_date": "2026-04-15", "quantity": 5}]

    @pytest.mark.parametrize(("body", "field"), [
        ({"quantity": 5, "effective_date": "2026-03-10"}, "effective_date"),
        ({"quantity": 0, "effective_date": "2026-04-01"}, "quantity"),
        ({"quantity": 3, "effective_date": "2026-04-01"}, "quantity"),
        ({"quantity": 5}, "effective_date"),
    ])
    def test_a_wrong_quantity_change_is_a_422_naming_the_field(self, biller, body, field):
        service = biller.service(quantity=3)
        before = biller.state()
        response = biller.client.post(f"/v1/services/{service['id']}/quantity", json=body)
        assert_problem(response, 422, field=field)
        assert biller.state() == before

    def test_a_cancelled_service_bills_through_its_end_date(self, biller):
        service = biller.service()
        response = biller.client.post(f"/v1/services/{service['id']}/cancel",
                                      json={"end_date": "2026-06-30"})
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["end_date"]) == ("cancelled",
                                                                           "2026-06-30")
        assert list_ids(biller.client, "/v1/services", status="cancelled") == [service["id"]]
        assert list_ids(biller.client, "/v1/services", status="active") == []

    def test_an_end_date_before_the_start_is_a_422_naming_end_date(self, biller):
        service = biller.service()
        before = biller.state()
        response = biller.client.post(f"/v1/services/{service['id']}/cancel",
                                      json={"end_date": "2026-03-10"})
        assert_problem(response, 422, field="end_date")
        assert biller.state() == before


class TestAnotherTenant:
    def test_their_objects_are_404_on_every_path(self, biller, intruder):
        service = biller.service()
        order_id = biller.client.get("/v1/orders").json()["data"][0]["id"]
        before = biller.state()
        for path in (f"/v1/products/{biller.setup['id']}", f"/v1/prices/{biller.setup_fee['id']}",
                     f"/v1/orders/{order_id}", f"/v1/services/{service['id']}",
                     f"/v1/billing_accounts/{biller.account_id}/pending_charges"):
            assert_problem(intruder.client.get(path), 404, "not_found")
        assert_problem(intruder.client.post(f"/v1/services/{service['id']}/quantity", json={
            "quantity": 9, "effective_date": "2026-05-01"}), 404, "not_found")
        assert_problem(intruder.client.post(f"/v1/services/{service['id']}/cancel", json={
            "end_date": "2026-05-01"}), 404, "not_found")
        assert_problem(intruder.client.patch(f"/v1/prices/{biller.setup_fee['id']}", json={
            "active": False}), 404, "not_found")
        assert_problem(intruder.client.patch(f"/v1/products/{biller.setup['id']}", json={
            "name": "Mine"}), 404, "not_found")
        assert biller.state() == before

    def test_their_lists_show_none_of_ours(self, biller, intruder):
        biller.service()
        mine = set().union(*(list_ids(biller.client, p) for p in MY_LISTS))
        theirs = set().union(*(list_ids(intruder.client, p) for p in MY_LISTS))
        assert not mine & theirs
        assert list_ids(intruder.client, "/v1/orders", billing_account_id=biller.account_id) \
            == []
        assert list_ids(intruder.client, "/v1/prices", product_id=biller.setup["id"]) == []

    def test_their_account_and_price_cannot_be_ordered_as_if_they_did_not_exist(
            self, biller, intruder):
        before = intruder.state()
        problem = assert_problem(intruder.order(intruder.setup_line(),
                                                account_id=biller.account_id),
                                 422, field="billing_account_id")
        assert problem["errors"][0]["code"] == "not_found"
        assert_problem(intruder.order({"price_id": biller.setup_fee["id"],
                                       "start_date": "2026-03-01"}),
                       422, field="lines[0].price_id")
        assert_problem(intruder.client.post("/v1/prices", json={
            "product_id": biller.setup["id"], "kind": "one_time",
            "amounts_minor": {"USD": 1}}), 422, field="product_id")
        assert intruder.state() == before


class TestTheDemo:
    def test_the_demo_biller_has_a_catalog_services_and_a_billed_run(
            self, fresh_database_url, tmp_path):
        from fastapi.testclient import TestClient

        from billfold import demo
        from billfold.cli import _job_handlers
        from billfold.core import jobs
        from billfold.core.config import Settings
        from billfold.core.db import make_engine, make_sessionmaker
        from billfold.web.app import create_app

        engine = make_engine(fresh_database_url)
        sessions = make_sessionmaker(engine)
        settings = Settings(database_url=fresh_database_url, data_dir=tmp_path)
        with sessions() as session:
            key = demo.load(session, tmp_path).api_key
        with TestClient(create_app(settings, engine)) as client:
            client.headers["Authorization"] = f"Bearer {key}"
            skus = [p["sku"] for p in client.get("/v1/products").json()["data"]]
            assert skus == ["ONBOARD", "SEAT", "SUPPORT-PREMIUM"]
            [acme] = client.get("/v1/customers", params={"query": "acme"}).json()["data"]
            account_id = acme["default_billing_account_id"]
            [seats] = client.get("/v1/services",
                                 params={"billing_account_id": account_id}).json()["data"]
            assert [q["quantity"] for q in seats["quantities"]] == [5, 8]
            assert len(client.get("/v1/orders").json()["data"]) == 9
            # Loading starts the bill run; a worker, with the worker's handlers, bills it.
            [run] = client.get("/v1/bill_runs").json()["data"]
            assert run["status"] == "running"
            summary = client.get(f"/v1/billing_accounts/{account_id}/summary").json()
            assert summary["pending_charges"] == {"amount_minor": 25000, "currency": "USD"}
            while jobs.run_pending(sessions, _job_handlers(settings), worker_id="test-worker"):
                pass
            [run] = client.get("/v1/bill_runs").json()["data"]
            assert run["status"] == "completed"
            invoices = client.get("/v1/invoices", params={"billing_account_id": account_id}
                                  ).json()["data"]
            assert len(invoices) == 3  # January, February and March 2026
            summary = client.get(f"/v1/billing_accounts/{account_id}/summary").json()
            assert summary["pending_charges"] == {"amount_minor": 0, "currency": "USD"}
            assert summary["balance"]["amount_minor"] == \
                sum(i["total_minor"] for i in invoices) > 0
            pdf = client.get(f"/v1/invoices/{invoices[0]['id']}/pdf")
            assert pdf.content.startswith(b"%PDF")
            assert list((tmp_path / "mail").glob("*.eml"))
        engine.dispose()
