"""Bill runs, invoices and adjustments end to end through the API: one-off invoices from
draft to void, adjustments against an invoice or the next one, bill runs billed by the
worker's handler, list filters and pages; bad input is a problem naming the field and
writes nothing; another tenant's objects are 404."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from billfold.core import jobs
from billfold.invoicing import billrun
from tests.conftest import account_body, customer_body, seed_reference
from tests.web.helpers import assert_problem, list_ids

MY_LISTS = ("/v1/invoices", "/v1/adjustments", "/v1/bill_runs", "/v1/ledger/entries")
MARCH = "2026-03-01"


def bill(app: Any) -> None:
    """What `billfold worker` does with bill runs: bill every queued chunk."""
    while jobs.run_pending(app.state.sessions, {billrun.JOB_KIND: billrun.bill_chunk},
                           worker_id="api-test", kinds=[billrun.JOB_KIND]):
        pass


class Biller:
    """One tenant over HTTP: accounts in USD starting 2026-02-01 on Net 30 terms, and a
    $30 monthly hosting price billed in advance."""

    def __init__(self, client: Any, app: Any) -> None:
        self.client, self.app = client, app
        self.ref = seed_reference(client)
        self.account_id = self.new_account("Acme Brick")
        product = self.created("/v1/products", {
            "name": "Hosting", "sku": "HOST", "tax_category": "standard"})
        self.monthly = self.created("/v1/prices", {
            "product_id": product["id"], "kind": "recurring", "amounts_minor": {"USD": 3000},
            "billing_timing": "in_advance"})

    def new_account(self, name: str, **extra: Any) -> str:
        body = customer_body(self.ref, name=name, billing_account=account_body(
            self.ref, payment_term_id=self.ref["payment_term_id"], **extra))
        return str(self.created("/v1/customers", body)["billing_account"]["id"])

    def created(self, path: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
        response = self.client.post(path, json=body)
        assert response.status_code == status, response.text
        return dict(response.json())

    def draft(self, account_id: str | None = None, **extra: Any) -> dict[str, Any]:
        return self.created("/v1/invoices", {
            "billing_account_id": account_id or self.account_id,
            "lines": [{"description": "Consulting", "quantity": 2, "unit_amount_minor": 1500,
                       "tax_percent": "10"}], **extra})

    def finalized(self, account_id: str | None = None) -> dict[str, Any]:
        draft = self.draft(account_id)
        return self.created(f"/v1/invoices/{draft['id']}/finalize", {}, status=200)

    def adjust(self, amount_minor: int, kind: str = "credit", **extra: Any) -> Any:
        return self.client.post("/v1/adjustments", json={
            "billing_account_id": self.account_id, "kind": kind, "amount_minor": amount_minor,
            "reason": "Goodwill", **extra})

    def subscribe(self, account_id: str, start: str = MARCH) -> None:
        self.created("/v1/orders", {"billing_account_id": account_id, "lines": [
            {"price_id": self.monthly["id"], "start_date": start}]})

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        return dict(self.client.get(f"/v1/invoices/{invoice_id}").json())

    def receivable(self, account_id: str | None = None) -> int:
        accounts = self.client.get("/v1/ledger/accounts", params={
            "billing_account_id": account_id or self.account_id}).json()["data"]
        return sum(a["balance_minor"] for a in accounts if a["kind"] == "receivable")

    def state(self) -> dict[str, Any]:
        """Everything a refused request must leave as it was."""
        return {path: self.client.get(path, params={"limit": 100}).json() for path in MY_LISTS}


@pytest.fixture
def biller(client: Any, app: Any) -> Biller:
    return Biller(client, app)


@pytest.fixture
def other(make_client: Any, app: Any) -> Biller:
    """Another tenant, sold the same."""
    return Biller(make_client(), app)


def today() -> date:
    return datetime.now(UTC).date()  # the tenants' time zone is UTC, the clock the real one


class TestOneOffInvoices:
    def test_a_draft_is_finalized_with_a_number_and_a_due_date_then_voided(self, biller):
        entries = list_ids(biller.client, "/v1/ledger/entries")
        draft = biller.draft(memo="March work", assignment_key="PO-77")
        assert draft["id"].startswith("inv_")
        assert (draft["status"], draft["number"], draft["issue_date"], draft["due_date"]) == (
            "draft", None, None, None)
        assert (draft["subtotal_minor"], draft["tax_minor"], draft["total_minor"],
                draft["amount_due_minor"]) == (3000, 300, 3300, 3300)
        [line] = draft["lines"]
        assert (line["kind"], line["quantity"], line["unit_amount_minor"], line["amount_minor"],
                line["tax_minor"], line["tax_percent"]) == ("manual", 2, 1500, 3000, 300, "10")
        assert (draft["memo"], draft["assignment_key"]) == ("March work", "PO-77")
        assert list_ids(biller.client, "/v1/ledger/entries") == entries  # a draft posts nothing

        response = biller.client.post(f"/v1/invoices/{draft['id']}/finalize")
        assert response.status_code == 200, response.text
        invoice = response.json()
        assert invoice["number"] == "INV-000001"
        assert invoice["status"] == "open"
        assert invoice["issue_date"] == today().isoformat()
        assert invoice["due_date"] == (today() + timedelta(days=30)).isoformat()  # Net 30
        assert invoice["finalized_at"] is not None
        assert biller.invoice(draft["id"]) == invoice
        assert biller.receivable() == 3300
        assert_problem(biller.client.post(f"/v1/invoices/{draft['id']}/finalize"), 409,
                       "invoice_not_draft")

        response = biller.client.post(f"/v1/invoices/{draft['id']}/void")
        assert response.status_code == 200, response.text
        voided = response.json()
        assert (voided["status"], voided["number"], voided["amount_due_minor"]) == (
            "void", "INV-000001", 0)
        assert voided["voided_at"] is not None
        assert biller.receivable() == 0  # the void reversed the invoice's entry
        [posted] = biller.client.get("/v1/ledger/entries", params={
            "source_type": "invoice", "source_id": draft["id"]}).json()["data"]
        [reversal] = biller.client.get("/v1/ledger/entries", params={
            "source_type": "reversal", "source_id": posted["id"]}).json()["data"]
        assert reversal["reverses_entry_id"] == posted["id"]
        assert sorted(p["amount_minor"] for p in reversal["postings"]) == sorted(
            -p["amount_minor"] for p in posted["postings"])
        assert_problem(biller.client.post(f"/v1/invoices/{draft['id']}/void"), 409,
                       "invoice_not_voidable")
        # The voided number stays used: the next invoice takes the one after it.
        assert biller.finalized()["number"] == "INV-000002"

    def test_due_on_receipt_without_a_payment_term(self, biller):
        body = customer_body(biller.ref, name="Cash Only")
        account_id = biller.created("/v1/customers", body)["billing_account"]["id"]
        invoice = biller.finalized(account_id)
        assert invoice["due_date"] == invoice["issue_date"] == today().isoformat()

    def test_a_draft_is_voided_without_a_number_or_an_entry(self, biller):
        draft = biller.draft()
        voided = biller.created(f"/v1/invoices/{draft['id']}/void", {}, status=200)
        assert (voided["status"], voided["number"]) == ("void", None)
        assert_problem(biller.client.post(f"/v1/invoices/{draft['id']}/finalize"), 409,
                       "invoice_not_draft")
        assert list_ids(biller.client, "/v1/ledger/entries", source_id=draft["id"]) == []

    def test_void_is_refused_once_a_credit_was_made_against_the_invoice(self, biller):
        invoice = biller.finalized()
        assert biller.adjust(300, invoice_id=invoice["id"]).status_code == 201
        before, kept = biller.state(), biller.invoice(invoice["id"])
        assert_problem(biller.client.post(f"/v1/invoices/{invoice['id']}/void"), 409,
                       "invoice_has_payments")
        assert biller.invoice(invoice["id"]) == kept
        assert biller.state() == before

    def test_invoices_are_numbered_without_gaps_per_tenant(self, biller, other):
        assert [biller.finalized()["number"] for _ in range(3)] == [
            "INV-000001", "INV-000002", "INV-000003"]
        assert other.finalized()["number"] == "INV-000001"


class TestAdjustments:
    def test_a_credit_against_an_invoice_lowers_what_is_due(self, biller):
        invoice = biller.finalized()  # 33.00 due
        response = biller.adjust(1300, invoice_id=invoice["id"], reason="Late delivery")
        assert response.status_code == 201, response.text
        adjustment = response.json()
        assert adjustment["id"].startswith("adj_")
        assert (adjustment["kind"], adjustment["amount_minor"], adjustment["currency"],
                adjustment["invoice_id"], adjustment["applied_invoice_id"],
                adjustment["reason"]) == ("credit", 1300, "USD", invoice["id"], None,
                                          "Late delivery")
        after = biller.invoice(invoice["id"])
        assert (after["adjustments_minor"], after["amount_due_minor"], after["status"]) == (
            -1300, 2000, "open")
        assert biller.receivable() == 2000
        assert biller.client.get(f"/v1/adjustments/{adjustment['id']}").json() == adjustment
        assert list_ids(biller.client, "/v1/adjustments",
                        billing_account_id=biller.account_id) == [adjustment["id"]]

    def test_a_credit_may_take_the_invoice_to_zero_but_not_below(self, biller):
        invoice = biller.finalized()
        assert biller.adjust(3000, invoice_id=invoice["id"]).status_code == 201
        before, kept = biller.state(), biller.invoice(invoice["id"])

        problem = assert_problem(biller.adjust(301, invoice_id=invoice["id"]), 422,
                                 "validation_failed", field="amount_minor")
        assert "300" in problem["detail"]  # says what is still due
        assert biller.state() == before
        assert biller.invoice(invoice["id"]) == kept

        assert biller.adjust(300, invoice_id=invoice["id"]).status_code == 201
        settled = biller.invoice(invoice["id"])
        assert (settled["amount_due_minor"], settled["status"]) == (0, "paid")
        assert_problem(biller.adjust(1, invoice_id=invoice["id"]), 422, field="amount_minor")

    def test_a_debit_against_an_invoice_raises_what_is_due(self, biller):
        invoice = biller.finalized()
        assert biller.adjust(700, kind="debit", invoice_id=invoice["id"]).status_code == 201
        assert biller.invoice(invoice["id"])["amount_due_minor"] == 4000
        assert biller.receivable() == 4000

    def test_an_account_credit_lands_on_the_next_bill_run_invoice(self, biller):
        biller.subscribe(biller.account_id)
        credit = biller.adjust(500).json()
        assert (credit["invoice_id"], credit["applied_invoice_id"]) == (None, None)
        assert biller.receivable() == -500  # posted when made

        biller.created("/v1/bill_runs", {"as_of_date": MARCH})
        bill(biller.app)

        [invoice] = biller.client.get("/v1/invoices", params={
            "billing_account_id": biller.account_id}).json()["data"]
        assert [(line["kind"], line["amount_minor"]) for line in invoice["lines"]] == [
            ("recurring", 3000), ("adjustment", -500)]
        assert (invoice["total_minor"], invoice["amount_due_minor"]) == (2500, 2500)
        assert biller.client.get(f"/v1/adjustments/{credit['id']}").json()[
            "applied_invoice_id"] == invoice["id"]
        assert biller.receivable() == 2500  # the credit is not counted twice

    @pytest.mark.parametrize("status", ["draft", "void"])
    def test_an_invoice_that_is_not_issued_cannot_be_adjusted(self, biller, status):
        invoice = biller.draft()
        if status == "void":
            biller.created(f"/v1/invoices/{invoice['id']}/void", {}, status=200)
        before = biller.state()
        assert_problem(biller.adjust(100, invoice_id=invoice["id"]), 422, field="invoice_id")
        assert biller.state() == before

    def test_another_accounts_invoice_cannot_be_adjusted_through_this_account(self, biller):
        other = biller.finalized(biller.new_account("Other Co"))
        before = biller.state()
        assert_problem(biller.adjust(100, invoice_id=other["id"]), 422, field="invoice_id")
        assert biller.state() == before


class TestBillRuns:
    def test_a_bill_run_is_billed_by_the_worker_and_reports_counts_and_totals(self, biller):
        biller.subscribe(biller.account_id, start="2026-02-01")  # February and March
        small = biller.new_account("Small Co", minimum_invoice_amount_minor=10000)
        biller.subscribe(small)
        idle = biller.new_account("Idle Co")

        started = biller.created("/v1/bill_runs", {"as_of_date": MARCH})
        assert started["id"].startswith("br_")
        assert (started["status"], started["as_of_date"], started["accounts_total"],
                started["bill_cycle_id"], started["invoices"]) == (
            "running", MARCH, 3, None, 0)
        bill(biller.app)

        run = biller.client.get(f"/v1/bill_runs/{started['id']}").json()
        assert run["status"] == "completed"
        assert run["completed_at"] is not None
        # Per bill date: Acme two invoices; Small Co suppressed on 1 March (under its
        # minimum) after nothing on 1 February; Idle Co nothing on either date.
        assert (run["accounts_invoiced"], run["accounts_suppressed"],
                run["accounts_with_nothing_to_bill"], run["accounts_failed"]) == (2, 1, 3, 0)
        assert (run["invoices"], run["totals_minor"], run["failures"]) == (2, {"USD": 6000}, [])
        issued = biller.client.get("/v1/invoices", params={
            "billing_account_id": biller.account_id}).json()["data"]
        assert [(i["issue_date"], i["number"], i["bill_run_id"], i["due_date"])
                for i in issued] == [
            ("2026-02-01", "INV-000001", run["id"], "2026-03-03"),
            ("2026-03-01", "INV-000002", run["id"], "2026-03-31")]
        [suppressed] = biller.client.get("/v1/invoices", params={
            "billing_account_id": small}).json()["data"]
        assert (suppressed["status"], suppressed["number"], suppressed["amount_due_minor"]) == (
            "suppressed", None, 0)
        assert list_ids(biller.client, "/v1/invoices", billing_account_id=idle) == []
        assert list_ids(biller.client, "/v1/bill_runs") == [run["id"]]

    def test_posting_the_same_date_again_returns_the_run_and_writes_nothing(self, biller):
        biller.subscribe(biller.account_id)
        first = biller.created("/v1/bill_runs", {"as_of_date": MARCH})
        bill(biller.app)
        done = biller.client.get(f"/v1/bill_runs/{first['id']}").json()
        before = biller.state()

        again = biller.client.post("/v1/bill_runs", json={"as_of_date": MARCH})
        assert again.status_code == 200, again.text
        assert again.json() == done
        bill(biller.app)
        assert biller.state() == before

    def test_two_runs_of_the_same_date_started_together_bill_each_account_once(self, biller):
        biller.subscribe(biller.account_id, start="2026-02-01")
        first = biller.created("/v1/bill_runs", {"as_of_date": MARCH})
        second = biller.created("/v1/bill_runs", {"as_of_date": MARCH})  # nothing billed yet
        assert first["id"] != second["id"]
        bill(biller.app)
        runs = [biller.client.get(f"/v1/bill_runs/{r['id']}").json() for r in (first, second)]
        assert [r["status"] for r in runs] == ["completed", "completed"]
        assert sum(r["accounts_invoiced"] for r in runs) == 2  # 1 February and 1 March, once
        assert [i["number"] for i in biller.client.get("/v1/invoices").json()["data"]] == [
            "INV-000001", "INV-000002"]

    def test_a_run_of_one_bill_cycle_bills_only_its_accounts(self, biller):
        weekly = biller.created("/v1/bill_cycles", {
            "name": "Weekly", "frequency": "weekly", "bill_day": 1, "start_date": "2026-01-05"})
        biller.subscribe(biller.account_id)
        other = biller.new_account("Weekly Co", bill_cycle_id=weekly["id"])
        run = biller.created("/v1/bill_runs", {"as_of_date": MARCH,
                                               "bill_cycle_id": weekly["id"]})
        assert (run["bill_cycle_id"], run["accounts_total"]) == (weekly["id"], 1)
        bill(biller.app)
        assert list_ids(biller.client, "/v1/invoices", billing_account_id=biller.account_id) == []
        assert biller.client.get(f"/v1/bill_runs/{run['id']}").json()[
            "accounts_with_nothing_to_bill"] == 4  # the Mondays of February
        assert list_ids(biller.client, "/v1/bill_runs") == [run["id"]]
        assert other.startswith("ba_")


class TestListingInvoices:
    @pytest.fixture
    def invoices(self, biller) -> dict[str, Any]:
        """Bill-run invoices issued 1 February and 1 March for Acme, one for Beta on
        1 March, and one-off invoices (draft, open, void) for Acme issued today."""
        beta = biller.new_account("Beta Co")
        biller.subscribe(biller.account_id, start="2026-02-01")
        biller.subscribe(beta)
        biller.created("/v1/bill_runs", {"as_of_date": MARCH})
        bill(biller.app)
        voided = biller.finalized()
        biller.created(f"/v1/invoices/{voided['id']}/void", {}, status=200)
        return {"beta": beta, "open": biller.finalized(), "draft": biller.draft(),
                "void": voided, "all": list_ids(biller.client, "/v1/invoices")}

    def test_every_invoice_is_listed_once_across_pages(self, biller, invoices):
        assert len(invoices["all"]) == 6
        assert invoices["all"] == sorted(invoices["all"])
        seen, after = [], None
        while True:
            params = {"limit": 4, **({"starting_after": after} if after else {})}
            page = biller.client.get("/v1/invoices", params=params).json()
            seen += [i["id"] for i in page["data"]]
            if not page["has_more"]:
                break
            after = seen[-1]
        assert seen == invoices["all"]
        last = biller.client.get("/v1/invoices", params={"starting_after": seen[-1]}).json()
        assert last == {"data": [], "has_more": False}

    @pytest.mark.parametrize(("params", "expected"), [
        ({"status": "draft"}, ["draft"]),
        ({"status": "void"}, ["void"]),
        ({"status": "paid"}, []),
        ({"billing_account_id": "beta"}, ["beta March"]),
        ({"issued_from": "2026-02-01", "issued_to": "2026-02-28"}, ["acme February"]),
        ({"issued_from": MARCH, "issued_to": MARCH}, ["acme March", "beta March"]),
        ({"issued_to": "2026-01-31"}, []),
        ({"status": "open", "issued_from": "2026-03-02"}, ["open"]),
    ])
    def test_filters(self, biller, invoices, params, expected):
        if params.get("billing_account_id") == "beta":
            params = {**params, "billing_account_id": invoices["beta"]}
        found = biller.client.get("/v1/invoices", params={"limit": 100, **params}).json()["data"]
        named = {i["id"]: name for name, i in self._named(biller, invoices).items()}
        assert sorted(named[i["id"]] for i in found) == sorted(expected)

    @staticmethod
    def _named(biller: Biller, invoices: dict[str, Any]) -> dict[str, Any]:
        everything = biller.client.get("/v1/invoices", params={"limit": 100}).json()["data"]
        named = {name: invoices[name] for name in ("open", "draft", "void")}
        for invoice in everything:
            if invoice["bill_run_id"]:
                who = "beta" if invoice["billing_account_id"] == invoices["beta"] else "acme"
                month = "February" if invoice["issue_date"] == "2026-02-01" else "March"
                named[f"{who} {month}"] = invoice
        return named


class TestBadInput:
    @pytest.mark.parametrize(("change", "field"), [
        ({"colour": "red"}, "colour"),
        ({"lines": []}, "lines"),
        ({"lines": [{"description": "X", "unit_amount_minor": -1}]}, "lines[0].unit_amount_minor"),
        ({"lines": [{"description": "X", "unit_amount_minor": 1.5}]}, "lines[0].unit_amount_minor"),
        ({"lines": [{"description": "X", "unit_amount_minor": 100, "quantity": 0}]},
         "lines[0].quantity"),
        ({"lines": [{"description": "", "unit_amount_minor": 100}]}, "lines[0].description"),
        ({"lines": [{"description": "X", "unit_amount_minor": 100, "tax_percent": "ten"}]},
         "lines[0].tax_percent"),
        ({"lines": [{"description": "X", "unit_amount_minor": 100, "tax_percent": "100.5"}]},
         "lines[0].tax_percent"),
        ({"lines": [{"description": "X", "unit_amount_minor": 100, "discount": 5}]},
         "lines[0].discount"),
        # More than the amount columns (and the ledger's sums of them) can hold.
        ({"lines": [{"description": "X", "unit_amount_minor": 10**15, "quantity": 10**6}]},
         "lines[0].unit_amount_minor"),
        ({"lines": [{"description": "X", "unit_amount_minor": 10**15}] * 2}, "lines"),
        ({"billing_account_id": "ba_" + "0" * 32}, "billing_account_id"),
        ({"billing_account_id": "not an id"}, "billing_account_id"),
        ({"billing_account_id": None}, "billing_account_id"),
        ({"assignment_key": ""}, "assignment_key"),
    ])
    def test_a_wrong_invoice_is_a_422_naming_the_field(self, biller, change, field):
        before = biller.state()
        body = {"billing_account_id": biller.account_id,
                "lines": [{"description": "Consulting", "unit_amount_minor": 1500}], **change}
        assert_problem(biller.client.post("/v1/invoices", json=body), 422, field=field)
        assert biller.state() == before

    @pytest.mark.parametrize(("change", "field"), [
        ({"amount_minor": -100}, "amount_minor"),
        ({"amount_minor": 0}, "amount_minor"),
        ({"amount_minor": "100"}, "amount_minor"),
        ({"kind": "refund"}, "kind"),
        ({"reason": ""}, "reason"),
        ({"colour": "red"}, "colour"),
        ({"invoice_id": "inv_" + "0" * 32}, "invoice_id"),
        ({"invoice_id": "INV-000001"}, "invoice_id"),
        ({"billing_account_id": "ba_" + "0" * 32}, "billing_account_id"),
    ])
    def test_a_wrong_adjustment_is_a_422_naming_the_field(self, biller, change, field):
        biller.finalized()
        before = biller.state()
        body = {"billing_account_id": biller.account_id, "kind": "credit",
                "amount_minor": 100, "reason": "Goodwill", **change}
        assert_problem(biller.client.post("/v1/adjustments", json=body), 422, field=field)
        assert biller.state() == before

    @pytest.mark.parametrize(("body", "field"), [
        ({"as_of_date": "2026-02-30"}, "as_of_date"),
        ({"as_of_date": "next tuesday"}, "as_of_date"),
        ({}, "as_of_date"),
        ({"as_of_date": MARCH, "colour": "red"}, "colour"),
        ({"as_of_date": MARCH, "bill_cycle_id": "bc_" + "0" * 32}, "bill_cycle_id"),
        ({"as_of_date": MARCH, "bill_cycle_id": "weekly"}, "bill_cycle_id"),
    ])
    def test_a_wrong_bill_run_is_a_422_naming_the_field(self, biller, body, field):
        biller.subscribe(biller.account_id)
        before = biller.state()
        assert_problem(biller.client.post("/v1/bill_runs", json=body), 422, field=field)
        assert biller.state() == before

    @pytest.mark.parametrize(("params", "field"), [
        ({"status": "overdue"}, "status"),
        ({"issued_from": "2026-13-01"}, "issued_from"),
        ({"issued_to": "yesterday"}, "issued_to"),
        ({"billing_account_id": "x" * 41}, "billing_account_id"),
        ({"limit": 0}, "limit"),
        ({"starting_after": "inv 1"}, "starting_after"),
    ])
    def test_a_wrong_invoice_filter_is_a_422_naming_it(self, biller, params, field):
        assert_problem(biller.client.get("/v1/invoices", params=params), 422,
                       "validation_failed", field=field)

    @pytest.mark.parametrize("path", [
        "/v1/invoices/inv_nope", "/v1/invoices/inv_nope/pdf", "/v1/bill_runs/br_nope",
        "/v1/adjustments/adj_nope", "/v1/invoices/" + "x" * 300])
    def test_an_unknown_id_is_a_404(self, biller, path):
        assert_problem(biller.client.get(path), 404, "not_found")

    @pytest.mark.parametrize("action", ["finalize", "void"])
    def test_acting_on_an_unknown_invoice_is_a_404_and_writes_nothing(self, biller, action):
        before = biller.state()
        assert_problem(biller.client.post(f"/v1/invoices/inv_{'0' * 32}/{action}"), 404,
                       "not_found")
        assert biller.state() == before

    def test_an_invoice_for_a_deactivated_account_is_refused(self, biller):
        account_id = biller.new_account("Gone Co")
        response = biller.client.patch(f"/v1/billing_accounts/{account_id}",
                                       json={"status": "deactivated"})
        assert response.status_code == 200, response.text
        before = biller.state()
        assert_problem(biller.client.post("/v1/invoices", json={
            "billing_account_id": account_id,
            "lines": [{"description": "X", "unit_amount_minor": 100}]}), 422,
            field="billing_account_id")
        assert biller.state() == before


class TestAnotherTenant:
    @pytest.fixture
    def theirs(self, other) -> dict[str, str]:
        other.subscribe(other.account_id)
        run = other.created("/v1/bill_runs", {"as_of_date": MARCH})
        bill(other.app)
        invoice = other.finalized()
        adjustment = other.adjust(100, invoice_id=invoice["id"]).json()
        return {"invoice": invoice["id"], "run": run["id"], "adjustment": adjustment["id"],
                "account": other.account_id}

    def test_their_objects_are_404_and_never_listed(self, biller, other, theirs):
        before = other.state()
        for path in (f"/v1/invoices/{theirs['invoice']}", f"/v1/invoices/{theirs['invoice']}/pdf",
                     f"/v1/bill_runs/{theirs['run']}", f"/v1/adjustments/{theirs['adjustment']}"):
            assert_problem(biller.client.get(path), 404, "not_found")
        for action in ("finalize", "void"):
            assert_problem(biller.client.post(f"/v1/invoices/{theirs['invoice']}/{action}"), 404)
        mine = biller.state()
        assert not any(theirs_id in str(mine) for theirs_id in theirs.values())
        assert other.state() == before

    def test_their_account_and_invoice_are_unknown_inside_a_body(self, biller, theirs):
        before = biller.state()
        line = {"description": "X", "unit_amount_minor": 100}
        assert_problem(biller.client.post("/v1/invoices", json={
            "billing_account_id": theirs["account"], "lines": [line]}), 422,
            field="billing_account_id")
        assert_problem(biller.adjust(100, invoice_id=theirs["invoice"]), 422, field="invoice_id")
        assert_problem(biller.client.post("/v1/adjustments", json={
            "billing_account_id": theirs["account"], "kind": "credit", "amount_minor": 1,
            "reason": "x"}), 422, field="billing_account_id")
        assert biller.state() == before
