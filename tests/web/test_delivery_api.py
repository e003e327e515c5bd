"""Invoice delivery through HTTP: Distribute Invoice rules, an invoice's PDF and the print
batches of bill runs and one-off paper invoices, once the worker has made them.

The module has a database of its own: its worker claims every due job in the database,
and other modules' jobs are none of its business."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy.orm import Session, sessionmaker

from billfold import cli
from billfold.core import jobs
from tests.conftest import account_body, customer_body, seed_reference
from tests.web.helpers import assert_problem, database_of_its_own, list_ids

RULES = "/v1/invoice_distribution_rules"
ALL_TYPES = ["none", "email", "paper", "paper_and_email"]
ADDRESS = {"line1": "9 Harbour Rd", "city": "Portland", "region": "OR", "postal_code": "97201",
           "country": "US"}


engine, sessions, app = database_of_its_own()


def work(app: Any, sessions: sessionmaker[Session]) -> None:
    """What `billfold worker` does until nothing is due."""
    handlers = cli._job_handlers(app.state.settings)
    while jobs.run_pending(sessions, handlers, worker_id="test-worker"):
        pass


class Biller:
    """A tenant over HTTP whose accounts may have any invoice type."""

    def __init__(self, client: Any) -> None:
        self.client = client
        assert client.patch("/v1/settings", json={
            "invoice_distribution_options": ALL_TYPES}).status_code == 200
        self.ref = seed_reference(client)

    def account(self, name: str = "Harbour Freight", invoice_type: str = "email") -> str:
        response = self.client.post("/v1/customers", json=customer_body(
            self.ref, name=name, billing_address=ADDRESS,
            billing_account=account_body(self.ref, invoice_type=invoice_type)))
        assert response.status_code == 201, response.text
        return str(response.json()["billing_account"]["id"])

    def one_off(self, account_id: str) -> dict[str, Any]:
        draft = self.client.post("/v1/invoices", json={"billing_account_id": account_id, "lines": [
            {"description": "Dock fees", "quantity": 3, "unit_amount_minor": 2000}]})
        assert draft.status_code == 201, draft.text
        final = self.client.post(f"/v1/invoices/{draft.json()['id']}/finalize")
        assert final.status_code == 200, final.text
        return dict(final.json())

    def bill_run(self, *account_ids: str) -> str:
        product = self.client.post("/v1/products", json={
            "name": "Berth", "sku": "BERTH", "tax_category": "standard"}).json()
        price = self.client.post("/v1/prices", json={
            "product_id": product["id"], "kind": "recurring", "amounts_minor": {"USD": 4500},
            "billing_timing": "in_advance"}).json()
        for account_id in account_ids:
            order = self.client.post("/v1/orders", json={"billing_account_id": account_id,
                                                         "lines": [{"price_id": price["id"],
                                                                    "start_date": "2026-03-01"}]})
            assert order.status_code == 201, order.text
        run = self.client.post("/v1/bill_runs", json={"as_of_date": "2026-03-01"})
        assert run.status_code == 201, run.text
        return str(run.json()["id"])


@pytest.fixture
def biller(client: Any) -> Biller:
    return Biller(client)


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


class TestDistributionRules:
    def test_rules_are_created_listed_read_and_deleted(self, biller):
        client, account_id = biller.client, biller.account()

        everyone = client.post(RULES, json={})
        billing_contacts = client.post(RULES, json={"billing_account_id": account_id,
                                                    "contact_category": "billing"})

        assert everyone.status_code == billing_contacts.status_code == 201, everyone.text
        assert everyone.json()["applies_to"] == "all"
        assert everyone.json()["id"].startswith("idr_")
        assert billing_contacts.json()["applies_to"] == f"account:{account_id}/category:billing"
        assert list_ids(client, RULES) == [everyone.json()["id"], billing_contacts.json()["id"]]
        assert list_ids(client, RULES, billing_account_id=account_id) == [
            billing_contacts.json()["id"]]
        path = f"{RULES}/{everyone.json()['id']}"
        assert client.get(path).json() == everyone.json()
        deleted = client.delete(path)
        assert (deleted.status_code, deleted.content) == (204, b"")
        assert_problem(client.get(path), 404, "not_found")
        assert_problem(client.delete(path), 404, "not_found")
        assert list_ids(client, RULES) == [billing_contacts.json()["id"]]

    def test_the_same_rule_twice_is_a_conflict(self, client):
        first = client.post(RULES, json={"contact_category": "billing"})
        again = client.post(RULES, json={"contact_category": "billing"})

        assert first.status_code == 201
        problem = assert_problem(again, 409, "distribution_rule_exists")
        assert first.json()["id"] in problem["detail"]
        assert len(list_ids(client, RULES)) == 1

    @pytest.mark.parametrize(("body", "field"), [
        ({"contact_category": "accounting"}, "contact_category"),
        ({"contact_category": 3}, "contact_category"),
        ({"billing_account_id": "ba_" + "0" * 32}, "billing_account_id"),
        ({"billing_account_id": "not an id"}, "billing_account_id"),
        ({"billing_account_id": 17}, "billing_account_id"),
        ({"contact_categry": "billing"}, "contact_categry"),
    ])
    def test_bad_input_is_refused_naming_the_field(self, client, body, field):
        assert_problem(client.post(RULES, json=body), 422, field=field)
        assert list_ids(client, RULES) == []

    def test_another_tenants_rules_and_accounts_are_not_found(self, biller, make_client):
        theirs = biller.client.post(RULES, json={"billing_account_id": biller.account()})
        intruder = make_client()
        path = f"{RULES}/{theirs.json()['id']}"

        assert_problem(intruder.get(path), 404, "not_found")
        assert_problem(intruder.delete(path), 404, "not_found")
        assert_problem(intruder.post(RULES, json={
            "billing_account_id": theirs.json()["billing_account_id"]}), 422,
            field="billing_account_id")
        assert list_ids(intruder, RULES) == []
        assert biller.client.get(path).status_code == 200


class TestInvoicePdf:
    def test_the_pdf_is_served_once_the_worker_has_rendered_it(self, biller, app, sessions,
                                                              make_client):
        biller.client.post(RULES, json={})
        invoice = biller.one_off(biller.account())
        path = f"/v1/invoices/{invoice['id']}/pdf"
        assert invoice["delivery_status"] == "pending"
        assert_problem(biller.client.get(path), 404, "not_found")

        work(app, sessions)

        response = biller.client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/pdf"
        assert invoice["number"] in pdf_text(response.content)
        assert biller.client.get(f"/v1/invoices/{invoice['id']}").json()["delivery_status"] == "sent"
        assert_problem(make_client().get(path), 404, "not_found")

    def test_without_a_rule_the_invoice_says_why_it_was_not_emailed(self, biller, app, sessions):
        invoice = biller.one_off(biller.account())

        work(app, sessions)

        read = biller.client.get(f"/v1/invoices/{invoice['id']}").json()
        assert read["delivery_status"] == "failed"
        assert "Distribute Invoice is not enabled" in read["delivery_error"]


class TestPrintBatches:
    def test_a_bill_runs_print_batch_is_served_once_made(self, biller, app, sessions,
                                                        make_client):
        paper = biller.account("Paper Co", invoice_type="paper")
        emailed = biller.account("Inbox Co", invoice_type="email")
        run_id = biller.bill_run(paper, emailed)
        pdf_path = f"/v1/bill_runs/{run_id}/print_batch.pdf"
        csv_path = f"/v1/bill_runs/{run_id}/print_batch.csv"
        assert_problem(biller.client.get(pdf_path), 404, "not_found")
        assert_problem(biller.client.get(csv_path), 404, "not_found")

        work(app, sessions)

        (invoice,) = biller.client.get("/v1/invoices", params={
            "billing_account_id": paper}).json()["data"]
        pdf = biller.client.get(pdf_path)
        assert (pdf.status_code, pdf.headers["content-type"]) == (200, "application/pdf")
        assert invoice["number"] in pdf_text(pdf.content)
        manifest = biller.client.get(csv_path)
        assert manifest.status_code == 200
        assert manifest.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(manifest.text)))
        assert [(r["invoice_number"], r["name"], r["city"]) for r in rows] == [
            (invoice["number"], "Paper Co", "Portland")]
        assert invoice["delivery_status"] == "sent"
        intruder = make_client()
        assert_problem(intruder.get(pdf_path), 404, "not_found")
        assert_problem(intruder.get(csv_path), 404, "not_found")

    def test_a_one_off_paper_invoice_has_a_print_batch_of_its_own(self, biller, app, sessions,
                                                                 make_client):
        invoice = biller.one_off(biller.account("Paper Co", invoice_type="paper"))
        path = f"/v1/invoices/{invoice['id']}/print_batch"
        assert_problem(biller.client.get(path + ".pdf"), 404, "not_found")

        work(app, sessions)

        assert invoice["number"] in pdf_text(biller.client.get(path + ".pdf").content)
        rows = list(csv.DictReader(io.StringIO(biller.client.get(path + ".csv").text)))
        assert [r["invoice_number"] for r in rows] == [invoice["number"]]
        assert_problem(make_client().get(path + ".csv"), 404, "not_found")

    def test_an_email_only_invoice_has_no_print_batch(self, biller, app, sessions):
        biller.client.post(RULES, json={})
        invoice = biller.one_off(biller.account())

        work(app, sessions)

        assert_problem(biller.client.get(f"/v1/invoices/{invoice['id']}/print_batch.pdf"), 404)
