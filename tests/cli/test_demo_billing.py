"""`billfold demo`, run twice as a real process, leaves a completed bill run: aggregated,
per-account and suppressed invoices, taxed and exempt accounts, four currencies and four
languages, PDFs, a print batch and mail as .eml files; the second run adds nothing."""

from __future__ import annotations

import csv
import email
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from billfold import demo as demo_data
from billfold.core.db import make_engine, make_sessionmaker
from billfold.core.jobs import Job
from billfold.customers.models import BillingAccount, Customer
from billfold.invoicing.models import BilledPeriod, BillRun, Invoice, InvoiceLine
from billfold.ledger.models import LedgerEntry
from billfold.notifications.models import OutboxMessage
from billfold.orders.models import Order
from tests.conftest import migrated_database

BILLFOLD = str(Path(sys.executable).with_name("billfold"))
COUNTED = (Customer, BillingAccount, Order, BillRun, BilledPeriod, Invoice, InvoiceLine,
           LedgerEntry, OutboxMessage, Job)
INVOICE_WORD = {"en": "Invoice", "es": "Factura", "sv": "Faktura", "ru": "Счёт"}


@dataclass
class Demo:
    data_dir: Path
    first: str  # what the first `billfold demo` printed
    second: str
    counts: tuple[dict[str, int], dict[str, int]]  # rows and files after each run
    client: Any
    accounts: dict[str, dict[str, Any]]  # by external number
    invoices: list[dict[str, Any]]

    def account_id(self, external_number: str) -> str:
        return str(self.accounts[external_number]["id"])

    def invoices_of(self, external_number: str) -> list[dict[str, Any]]:
        """The invoices the account owes, oldest bill date first."""
        owner = self.account_id(external_number)
        return sorted((i for i in self.invoices if i["billing_account_id"] == owner),
                      key=lambda i: (i["period_start"], i["id"]))

    def issued(self) -> list[dict[str, Any]]:
        return [i for i in self.invoices if i["status"] != "suppressed"]

    def mail(self) -> list[Any]:
        """The .eml files written, parsed."""
        return [email.message_from_bytes(path.read_bytes(), policy=policy.default)
                for path in sorted((self.data_dir / "mail").glob("*.eml"))]


def _counts(url: str, data_dir: Path) -> dict[str, int]:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        found = {model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
                 for model in COUNTED}
    engine.dispose()
    found["files"] = sum(1 for path in data_dir.rglob("*") if path.is_file())
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    from fastapi.testclient import TestClient

    from billfold.core.config import Settings
    from billfold.web.app import create_app

    tmp = tmp_path_factory.mktemp("demo")
    data_dir = tmp / "var"
    with migrated_database(tmp) as url:
        env = {k: v for k, v in os.environ.items() if k != "BILLFOLD_SMTP_URL"}
        env.update(BILLFOLD_DATABASE_URL=url, BILLFOLD_DATA_DIR=str(data_dir))

        def run() -> str:
            result = subprocess.run([BILLFOLD, "demo"], env=env, capture_output=True,
                                    text=True, timeout=120)
            assert result.returncode == 0, result.stderr
            return result.stdout

        first = run()
        after_first = _counts(url, data_dir)
        second = run()
        after_second = _counts(url, data_dir)
        key = next(line.split(": ", 1)[1] for line in first.splitlines()
                   if line.startswith("demo API key"))
        engine = make_engine(url)
        with TestClient(create_app(Settings(database_url=url, data_dir=data_dir),
                                   engine)) as client:
            client.headers["Authorization"] = f"Bearer {key}"
            accounts = client.get("/v1/billing_accounts", params={"limit": 100}).json()["data"]
            invoices = client.get("/v1/invoices", params={"limit": 100}).json()
            assert not invoices["has_more"]
            yield Demo(data_dir, first, second, (after_first, after_second), client,
                       {a["external_number"]: a for a in accounts}, invoices["data"])
        engine.dispose()


class TestTheBillRun:
    def test_one_run_as_of_the_first_of_march_completed_without_failures(self, demo):
        [run] = demo.client.get("/v1/bill_runs").json()["data"]
        assert (run["as_of_date"], run["status"], run["accounts_failed"]) == \
            ("2026-03-01", "completed", 0)
        assert run["invoices"] == len(demo.issued()) > 0
        assert {i["bill_run_id"] for i in demo.invoices} == {run["id"]}

    def test_the_output_says_what_was_billed_and_where_the_pdfs_and_mail_went(self, demo):
        run_id = demo.invoices[0]["bill_run_id"]
        line = next(line for line in demo.first.splitlines() if line.startswith("bill run"))
        assert f"bill run {run_id} as of 2026-03-01: completed" in line
        assert f"{len(demo.issued())} invoices issued (MXN, RUB, SEK, USD)" in line
        assert "2 suppressed" in line
        assert "/test/invoices/" in demo.first
        assert f"print/{run_id}.pdf" in demo.first
        assert f"written as .eml files to {demo.data_dir / 'mail'}/" in demo.first


class TestHierarchies:
    def test_widgets_us_invoice_aggregates_the_lines_of_the_zimbabwe_office(self, demo):
        us, zimbabwe = demo.account_id("WIDGETS-US"), demo.account_id("WIDGETS-ZIM")
        invoices = demo.invoices_of("WIDGETS-US")
        assert invoices
        assert all(i["rendering_type"] == "aggregated" for i in invoices)
        assert not demo.invoices_of("WIDGETS-ZIM")  # billed on the responsible account
        for invoice in invoices:
            assert {line["billing_account_id"] for line in invoice["lines"]} == {us, zimbabwe}
            # Texas sales tax for the Austin office; the office abroad is not taxable.
            taxed = {line["billing_account_id"] for line in invoice["lines"] if line["tax_minor"]}
            assert taxed == {us}

    def test_nordviks_head_office_owes_its_depots_per_account_invoices(self, demo):
        head_office, depot = demo.account_id("NORDVIK-STO"), demo.account_id("NORDVIK-GOT")
        invoices = demo.invoices_of("NORDVIK-STO")
        per_account = [i for i in invoices if i["rendering_type"] == "per_account"]
        own = [i for i in invoices if i["rendering_type"] is None]
        assert len(per_account) == len(own) == 3  # one of each per bill date
        for invoice in per_account:
            assert invoice["invoiced_account_id"] == depot
            assert {line["billing_account_id"] for line in invoice["lines"]} == {depot}
        assert all(i["invoiced_account_id"] == head_office for i in own)
        assert not demo.invoices_of("NORDVIK-GOT")


class TestSuppression:
    def test_the_russian_office_invoice_under_its_minimum_gets_no_number_and_carries_forward(
            self, demo):
        january, february, march = demo.invoices_of("WIDGETS-RUS")
        assert [i["status"] for i in (january, february, march)] == \
            ["suppressed", "open", "suppressed"]
        minimum = demo.accounts["WIDGETS-RUS"]["minimum_invoice_amount_minor"]
        for suppressed in (january, march):
            assert suppressed["number"] is None
            assert suppressed["total_minor"] < minimum
            assert suppressed["amount_due_minor"] == 0
            assert suppressed["delivery_status"] == "not_required"
        assert january["carried_to_invoice_id"] == february["id"]
        assert march["carried_to_invoice_id"] is None  # waits for April's invoice
        assert february["number"]
        assert february["total_minor"] >= minimum
        # January's seat, carried forward, and February's.
        assert sorted(line["period_start"] for line in february["lines"]) == \
            ["2026-01-01", "2026-02-01"]


class TestTax:
    def test_acme_brick_pays_texas_sales_tax(self, demo):
        invoices = demo.invoices_of("ACME-US")
        assert invoices
        assert all(i["tax_minor"] > 0 for i in invoices)
        assert {line["tax_percent"] for i in invoices for line in i["lines"]} == {"8.25"}

    def test_nordvik_pays_swedish_vat(self, demo):
        invoices = demo.invoices_of("NORDVIK-STO")
        assert invoices
        assert all(i["tax_minor"] > 0 for i in invoices)
        assert {line["tax_percent"] for i in invoices for line in i["lines"]} == {"25"}

    def test_northwinds_resale_certificate_exempts_its_invoices(self, demo):
        account_id = demo.account_id("NORTHWIND-HQ")
        [exemption] = demo.client.get(
            f"/v1/billing_accounts/{account_id}/tax_exemptions").json()["data"]
        assert exemption["certificate_number"] == demo_data.TEXAS_RESALE_CERTIFICATE
        invoices = demo.invoices_of("NORTHWIND-HQ")
        assert invoices
        assert all(i["tax_minor"] == 0 and i["total_minor"] > 0 for i in invoices)
        assert {line["tax_exemption_certificate"] for i in invoices for line in i["lines"]} == \
            {demo_data.TEXAS_RESALE_CERTIFICATE}


class TestCurrenciesAndLanguages:
    def test_invoices_are_issued_in_four_currencies(self, demo):
        assert {i["currency"] for i in demo.issued()} == {"USD", "MXN", "RUB", "SEK"}

    def test_each_invoice_email_speaks_the_owing_accounts_language(self, demo):
        by_id = {a["id"]: a for a in demo.accounts.values()}
        words = {}
        for invoice in demo.issued():
            account = by_id[invoice["billing_account_id"]]
            if "email" in account["invoice_type"]:
                words[invoice["number"]] = INVOICE_WORD[account["preferred_language"]]
        subjects = {message["subject"].split(" ")[1]: message["subject"].split(" ")[0]
                    for message in demo.mail()}
        assert subjects == words
        assert set(words.values()) == set(INVOICE_WORD.values())


class TestDocuments:
    def test_every_issued_invoice_has_a_pdf_and_was_delivered(self, demo):
        for invoice in demo.issued():
            response = demo.client.get(f"/v1/invoices/{invoice['id']}/pdf")
            assert response.status_code == 200, invoice["number"]
            assert response.content.startswith(b"%PDF")
            assert invoice["delivery_status"] == "sent", invoice["delivery_error"]

    def test_mail_is_written_as_eml_files_carrying_the_invoice_pdf(self, demo):
        messages = demo.mail()
        assert messages
        for message in messages:
            [attachment] = list(message.iter_attachments())
            assert attachment.get_content_type() == "application/pdf"
            assert attachment.get_content().startswith(b"%PDF")
        assert {m["to"] for m in messages} >= {"billing@acmebrick.example",
                                               "ap@widgets.example", "faktura@nordvik.example"}

    def test_the_paper_invoices_are_in_the_runs_print_batch(self, demo):
        run_id = demo.invoices[0]["bill_run_id"]
        pdf = demo.client.get(f"/v1/bill_runs/{run_id}/print_batch.pdf")
        assert pdf.status_code == 200
        assert pdf.content.startswith(b"%PDF")
        manifest = demo.client.get(f"/v1/bill_runs/{run_id}/print_batch.csv").text
        printed = {row["invoice_number"] for row in csv.DictReader(io.StringIO(manifest))}
        paper = {i["number"] for name in ("ACME-US", "NORTHWIND-HQ")
                 for i in demo.invoices_of(name)}
        assert printed == paper
        assert not any(m["to"] == "accounts@northwind.example" for m in demo.mail())


class TestSummary:
    def test_an_invoiced_account_shows_its_balance_and_no_pending_charges(self, demo):
        account_id = demo.account_id("ACME-US")
        summary = demo.client.get(f"/v1/billing_accounts/{account_id}/summary").json()
        owed = sum(i["amount_due_minor"] for i in demo.invoices_of("ACME-US"))
        assert owed > 0
        assert summary["balance"] == {"amount_minor": owed, "currency": "USD"}
        assert summary["pending_charges"] == {"amount_minor": 0, "currency": "USD"}


class TestRunningTwice:
    def test_the_second_run_bills_mails_and_writes_nothing_new(self, demo):
        after_first, after_second = demo.counts
        assert after_second == after_first
        assert after_first["invoice"] == len(demo.invoices)
        assert "already loaded, nothing duplicated" in demo.second
        run_line = [line for line in demo.first.splitlines() if line.startswith("bill run")]
        assert run_line
        assert run_line[0] in demo.second.splitlines()
