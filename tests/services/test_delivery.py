"""From issued invoice to PDF, email and print batch, run by the worker's real job handlers
against a real SMTP server (aiosmtpd), or .eml files when none is configured.

Every test has a database of its own: the worker claims every due job in the database."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from billfold import cli
from billfold.catalog import service as catalog
from billfold.core import clock, jobs
from billfold.core.config import Settings
from billfold.core.db import transaction
from billfold.core.filestore import FileStore
from billfold.core.scope import Scope
from billfold.customers import records
from billfold.customers.models import BillingAccount
from billfold.invoicing import billrun, delivery, distribution, documents
from billfold.invoicing import service as invoices
from billfold.invoicing.models import Invoice
from billfold.notifications import outbox
from billfold.notifications.models import OutboxMessage
from billfold.orders import service as orders
from tests.services.conftest import ACTOR, Desk, frozen_at, sessions_on_a_fresh_database
from tests.services.test_outbox import Mailbox, attachment_bytes, smtp_server, unused_port

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MARCH = date(2026, 3, 1)
SENDER = "billing@biller.example"
ALL_TYPES = ["none", "email", "paper", "paper_and_email"]
ADDRESS = {"line1": "1 Main St", "city": "Springfield", "region": "IL", "postal_code": "62701",
           "country": "US"}


sessions = sessions_on_a_fresh_database()


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    with frozen_at(NOON) as frozen_clock:
        yield frozen_clock


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    port = unused_port()
    with smtp_server(port) as box:
        box.url = f"smtp://127.0.0.1:{port}"  # type: ignore[attr-defined]
        yield box


@pytest.fixture
def settings(tmp_path: Path, mailbox: Mailbox) -> Settings:
    return Settings(data_dir=tmp_path / "var", smtp_url=mailbox.url,  # type: ignore[attr-defined]
                    mail_from=f"Biller <{SENDER}>")


class Clerk:
    """A billing clerk in a fresh tenant whose accounts may have every invoice type, and the
    worker that delivers what the clerk issues."""

    def __init__(self, desk: Desk, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.desk, self.sessions, self.settings = desk, sessions, settings
        self.session, self.scope = desk.session, desk.scope
        self.files = FileStore(settings.data_dir)

    def account(self, name: str = "Acme Brick", invoice_type: str = "email", **extra: Any
                ) -> BillingAccount:
        account_data = self.desk.ref.account(invoice_type=invoice_type, **extra)
        return self.desk.create_customer(name, account=account_data,
                                         billing_address=ADDRESS)[1]

    def rule(self, billing_account: BillingAccount | None = None,
             contact_category: str | None = None) -> None:
        with transaction(self.session):
            distribution.create_rule(
                self.session, self.scope, contact_category=contact_category, actor=ACTOR,
                billing_account_id=billing_account.id if billing_account else None)

    def contact(self, account: BillingAccount, email: str, category: str) -> None:
        with transaction(self.session):
            records.add_contact(self.session, self.scope, account_id=account.id,
                                name=email.split("@")[0].title(), email=email, phone=None,
                                category=category)

    def one_off(self, account: BillingAccount, unit_amount_minor: int = 12_500) -> Invoice:
        """A finalized one-off invoice of one taxed line."""
        with transaction(self.session):
            draft = invoices.create_draft(
                self.session, self.scope, billing_account_id=account.id, actor=ACTOR, lines=[
                    {"description": "Boiler service", "quantity": 1,
                     "unit_amount_minor": unit_amount_minor, "tax_percent": "8"}])
            return invoices.finalize(self.session, self.scope, invoice_id=draft.id, actor=ACTOR)

    def bill_run(self, *accounts: BillingAccount) -> str:
        """Order a monthly product for each account from March and start a run for 1 March."""
        with transaction(self.session):
            product = catalog.create_product(self.session, self.scope, name="Hosting",
                                             sku=f"HOST-{len(accounts)}", tax_category="standard")
            price = catalog.create_price(self.session, self.scope, product_id=product.id,
                                         kind="recurring", amounts_minor={"USD": 3000},
                                         billing_timing="in_advance")
        for account in accounts:
            with transaction(self.session):
                orders.create_order(self.session, self.scope, billing_account_id=account.id,
                                    lines=[{"price_id": price.id, "quantity": 1,
                                            "start_date": MARCH}], actor=ACTOR)
        with transaction(self.session):
            run, _ = billrun.start_bill_run(self.session, self.scope, as_of_date=MARCH,
                                            actor=ACTOR)
        return run.id

    def work(self, kinds: list[str] | None = None) -> int:
        """What `billfold worker` does until nothing is due: every package's handlers."""
        self.session.commit()  # a read leaves SQLite's one writer turn taken until it ends
        handlers = cli._job_handlers(self.settings)
        ran = 0
        while done := jobs.run_pending(self.sessions, handlers, worker_id="test-worker",
                                       kinds=kinds):
            ran += done
        self.session.expire_all()
        return ran

    def reload(self, invoice: Invoice) -> Invoice:
        self.session.expire_all()
        found = self.session.get(Invoice, invoice.id)
        assert found is not None
        return found

    def invoices_of(self, account: BillingAccount) -> list[Invoice]:
        self.session.expire_all()
        return list(self.session.scalars(select(Invoice).where(
            Invoice.billing_account_id == account.id).order_by(Invoice.number)))

    def messages(self, invoice: Invoice) -> list[OutboxMessage]:
        return outbox.deliveries_for(self.session, self.scope, "invoice", invoice.id)

    def pdf_text(self, key: str) -> str:
        reader = PdfReader(io.BytesIO(self.files.get(key)))
        return "\n".join(page.extract_text() for page in reader.pages)


@pytest.fixture
def clerk(make_desk: Any, sessions: sessionmaker[Session], settings: Settings,
          frozen: clock.FrozenClock) -> Clerk:
    return Clerk(make_desk(invoice_distribution_options=ALL_TYPES,
                           enable_responsible_account_management=True), sessions, settings)


def recipients_of(email: EmailMessage) -> list[str]:
    return [a.strip() for a in str(email["To"]).split(",")]


class TestIssuing:
    def test_finalizing_queues_the_rendering_and_makes_delivery_pending(self, clerk):
        invoice = clerk.one_off(clerk.account(invoice_type="email"))

        job = clerk.session.scalars(select(jobs.Job).where(
            jobs.Job.kind == delivery.RENDER, jobs.Job.key == invoice.id)).one()
        assert (job.status, job.payload, job.scope) == ("queued", {"invoice_id": invoice.id},
                                                        clerk.scope)
        assert (invoice.delivery_status, invoice.pdf_key) == ("pending", None)

    def test_an_account_that_wants_no_invoice_sent_gets_a_pdf_and_nothing_else(
            self, clerk, mailbox):
        clerk.rule()
        invoice = clerk.one_off(clerk.account(invoice_type="none"))
        assert invoice.delivery_status == "not_required"

        clerk.work()

        invoice = clerk.reload(invoice)
        assert invoice.number in clerk.pdf_text(invoice.pdf_key)
        assert (invoice.delivery_status, invoice.delivery_error) == ("not_required", None)
        assert clerk.messages(invoice) == []
        assert mailbox.envelopes == []
        assert not clerk.files.exists(delivery.print_batch_key(clerk.scope, invoice.id, "pdf"))


class TestEmail:
    def test_the_pdf_is_emailed_to_the_customers_primary_email(self, clerk, mailbox):
        clerk.rule()
        invoice = clerk.one_off(clerk.account("Acme Brick", invoice_type="email"))

        clerk.work()

        invoice = clerk.reload(invoice)
        assert invoice.pdf_key == f"tenants/{clerk.scope.tenant_id}/test/invoices/{invoice.id}.pdf"
        text = clerk.pdf_text(invoice.pdf_key)
        assert invoice.number in text
        assert "Acme Brick" in text
        (email,) = mailbox.emails()
        assert recipients_of(email) == ["billing@acme.example"]
        assert mailbox.envelopes[0].rcpt_tos == ["billing@acme.example"]
        assert email["Subject"] == f"Invoice {invoice.number} · Test Biller"
        assert attachment_bytes(email) == {f"{invoice.number}.pdf": clerk.files.get(invoice.pdf_key)}
        body = email.get_body(("plain",)).get_content()
        assert "Amount due: $135.00" in body
        (message,) = clerk.messages(invoice)
        assert message.status == "sent"
        assert (invoice.delivery_status, invoice.delivery_error) == ("sent", None)

    def test_a_rule_for_one_account_emails_only_that_accounts_invoices(self, clerk, mailbox):
        covered = clerk.account("Covered Co")
        uncovered = clerk.account("Uncovered Co")
        clerk.rule(covered)
        sent, refused = clerk.one_off(covered), clerk.one_off(uncovered)

        clerk.work()

        (email,) = mailbox.emails()
        assert sent.number in email["Subject"]
        assert clerk.reload(sent).delivery_status == "sent"
        refused = clerk.reload(refused)
        assert refused.delivery_status == "failed"
        assert "Distribute Invoice is not enabled" in refused.delivery_error
        assert clerk.messages(refused) == []

    def test_a_contact_category_rule_adds_the_contacts_of_that_category(self, clerk, mailbox):
        account = clerk.account()
        clerk.contact(account, "payables@acme.example", "billing")
        clerk.contact(account, "it@acme.example", "technical")
        clerk.rule()
        clerk.rule(contact_category="billing")
        invoice = clerk.one_off(account)

        clerk.work()

        (email,) = mailbox.emails()
        assert recipients_of(email) == ["billing@acme.example", "payables@acme.example"]
        assert sorted(mailbox.envelopes[0].rcpt_tos) == ["billing@acme.example",
                                                         "payables@acme.example"]
        assert clerk.reload(invoice).delivery_status == "sent"

    def test_a_category_rule_alone_emails_the_contacts_and_not_the_customer(self, clerk,
                                                                          mailbox):
        account = clerk.account()
        clerk.contact(account, "payables@acme.example", "billing")
        clerk.rule(account, contact_category="billing")
        clerk.one_off(account)

        clerk.work()

        (email,) = mailbox.emails()
        assert recipients_of(email) == ["payables@acme.example"]

    def test_without_a_rule_the_delivery_fails_and_says_why(self, clerk, mailbox):
        invoice = clerk.one_off(clerk.account())

        clerk.work()

        invoice = clerk.reload(invoice)
        assert invoice.delivery_status == "failed"
        assert "Distribute Invoice is not enabled for account" in invoice.delivery_error
        assert invoice.number in clerk.pdf_text(invoice.pdf_key)  # rendered all the same
        assert mailbox.envelopes == []

    def test_a_category_rule_without_such_a_contact_fails_and_says_why(self, clerk, mailbox):
        account = clerk.account()
        clerk.contact(account, "it@acme.example", "technical")
        clerk.rule(contact_category="billing")
        invoice = clerk.one_off(account)

        clerk.work()

        invoice = clerk.reload(invoice)
        assert invoice.delivery_status == "failed"
        assert "no such contact with an email" in invoice.delivery_error
        assert mailbox.envelopes == []

    def test_an_email_the_server_never_accepts_fails_the_delivery_for_good(
            self, make_desk, sessions, tmp_path, frozen):
        down = Settings(data_dir=tmp_path / "var", smtp_url=f"smtp://127.0.0.1:{unused_port()}",
                        mail_from=SENDER)
        clerk = Clerk(make_desk(), sessions, down)
        clerk.rule()
        invoice = clerk.one_off(clerk.account())

        clerk.work()
        assert clerk.reload(invoice).delivery_status == "pending"  # queued for a retry
        for _ in range(10):
            frozen.advance(timedelta(hours=2))
            clerk.work()

        invoice = clerk.reload(invoice)
        (message,) = clerk.messages(invoice)
        assert message.status == "failed"
        assert invoice.delivery_status == "failed"
        assert invoice.delivery_error.startswith("the email to billing@acme.example failed:")

    def test_without_an_smtp_server_the_email_is_written_as_an_eml_file(
            self, make_desk, sessions, tmp_path, frozen):
        clerk = Clerk(make_desk(), sessions, Settings(data_dir=tmp_path / "var", mail_from=SENDER))
        clerk.rule()
        invoice = clerk.one_off(clerk.account())

        clerk.work()

        invoice = clerk.reload(invoice)
        (message,) = clerk.messages(invoice)
        eml = clerk.files.get(f"mail/{message.id}.eml")
        email = message_from_bytes(eml, policy=policy.default)
        assert recipients_of(email) == ["billing@acme.example"]
        assert attachment_bytes(email) == {f"{invoice.number}.pdf": clerk.files.get(invoice.pdf_key)}
        assert invoice.delivery_status == "sent"

    def test_the_email_and_pdf_speak_the_accounts_language(self, clerk, mailbox):
        clerk.rule()
        invoice = clerk.one_off(clerk.account(preferred_language="es-MX"))

        clerk.work()

        (email,) = mailbox.emails()
        assert email["Subject"] == f"Factura {clerk.reload(invoice).number} · Test Biller"
        assert "Importe adeudado:" in email.get_body(("plain",)).get_content()
        assert "Factura" in clerk.pdf_text(clerk.reload(invoice).pdf_key)

    def test_rendering_again_sends_no_second_email(self, clerk, mailbox):
        clerk.rule()
        invoice = clerk.one_off(clerk.account())
        clerk.work()
        with transaction(clerk.session):  # as if the worker died before recording "done"
            clerk.session.execute(update(jobs.Job).where(
                jobs.Job.kind == delivery.RENDER, jobs.Job.key == invoice.id)
                .values(status="queued", run_after=clock.utcnow()))

        assert clerk.work() == 1

        assert len(clerk.messages(invoice)) == 1
        assert len(mailbox.envelopes) == 1
        assert clerk.reload(invoice).delivery_status == "sent"


class TestPaper:
    def test_a_bill_run_prints_its_paper_invoices_in_one_batch(self, clerk, mailbox):
        clerk.rule()
        paper = clerk.account("Paper Mill", invoice_type="paper")
        both = clerk.account("Belt And Braces", invoice_type="paper_and_email")
        email = clerk.account("Inbox Inc", invoice_type="email")
        none = clerk.account("Quiet Ltd", invoice_type="none")
        run_id = clerk.bill_run(paper, both, email, none)

        clerk.work()

        printed = clerk.invoices_of(paper) + clerk.invoices_of(both)
        printed.sort(key=lambda i: i.number)
        assert len(printed) == 2
        manifest = list(csv.DictReader(io.StringIO(clerk.files.get(
            delivery.print_batch_key(clerk.scope, run_id, "csv")).decode())))
        assert [row["invoice_number"] for row in manifest] == [i.number for i in printed]
        assert [row["name"] for row in manifest] == [
            "Paper Mill" if i.billing_account_id == paper.id else "Belt And Braces"
            for i in printed]
        assert {row["city"] for row in manifest} == {"Springfield"}
        text = clerk.pdf_text(delivery.print_batch_key(clerk.scope, run_id, "pdf"))
        for invoice in printed:
            assert invoice.number in text
        (emailed,) = clerk.invoices_of(email)
        assert emailed.number not in text
        subjects = sorted(str(e["Subject"]) for e in mailbox.emails())
        (both_invoice,) = clerk.invoices_of(both)
        assert subjects == sorted(f"Invoice {i.number} · Test Biller"
                                  for i in (both_invoice, emailed))
        statuses = {a.id: [i.delivery_status for i in clerk.invoices_of(a)]
                    for a in (paper, both, email, none)}
        assert statuses == {paper.id: ["sent"], both.id: ["sent"], email.id: ["sent"],
                            none.id: ["not_required"]}
        for account in (paper, both, email, none):  # every invoice has its own PDF too
            (invoice,) = clerk.invoices_of(account)
            assert invoice.number in clerk.pdf_text(invoice.pdf_key)

    def test_paper_and_email_is_pending_until_the_print_batch_is_made(self, clerk, mailbox):
        clerk.rule()
        paper = clerk.account("Paper Mill", invoice_type="paper")
        both = clerk.account("Belt And Braces", invoice_type="paper_and_email")
        run_id = clerk.bill_run(paper, both)

        clerk.work(kinds=[billrun.JOB_KIND, delivery.RENDER, outbox.DELIVER])

        (paper_invoice,), (both_invoice,) = clerk.invoices_of(paper), clerk.invoices_of(both)
        assert len(mailbox.envelopes) == 1  # the email half is done
        assert (paper_invoice.delivery_status, both_invoice.delivery_status) == ("pending",
                                                                                "pending")
        assert not clerk.files.exists(delivery.print_batch_key(clerk.scope, run_id, "pdf"))

        clerk.work(kinds=[delivery.PRINT_BATCH])

        assert [clerk.reload(i).delivery_status for i in (paper_invoice, both_invoice)] == [
            "sent", "sent"]

    def test_a_one_off_paper_invoice_gets_a_print_batch_of_its_own(self, clerk, mailbox):
        invoice = clerk.one_off(clerk.account("Paper Mill", invoice_type="paper"))

        clerk.work()

        manifest = clerk.files.get(delivery.print_batch_key(clerk.scope, invoice.id, "csv"))
        rows = list(csv.DictReader(io.StringIO(manifest.decode())))
        assert [(r["invoice_number"], r["name"], r["first_page"]) for r in rows] == [
            (clerk.reload(invoice).number, "Paper Mill", "1")]
        assert invoice.number in clerk.pdf_text(
            delivery.print_batch_key(clerk.scope, invoice.id, "pdf"))
        assert clerk.reload(invoice).delivery_status == "sent"
        assert mailbox.envelopes == []  # paper only: no rule needed, nothing emailed

    def test_an_invoice_voided_before_delivery_is_neither_printed_nor_emailed(self, clerk,
                                                                              mailbox):
        clerk.rule()
        invoice = clerk.one_off(clerk.account(invoice_type="paper_and_email"))
        with transaction(clerk.session):
            invoices.void(clerk.session, clerk.scope, invoice_id=invoice.id, actor=ACTOR)

        clerk.work()

        invoice = clerk.reload(invoice)
        assert not clerk.files.exists(delivery.print_batch_key(clerk.scope, invoice.id, "pdf"))
        assert mailbox.envelopes == []
        assert (invoice.delivery_status, invoice.delivery_error) == ("not_required", None)


class TestDefaultDistribution:
    def test_a_new_tenant_gets_the_all_accounts_rule_in_both_modes_once(self, clerk):
        for _ in range(2):
            with transaction(clerk.session):
                distribution.enable_for_all_accounts(
                    clerk.session, tenant_id=clerk.scope.tenant_id, actor="cli")

        for mode in ("test", "live"):
            rules = distribution.list_rules(
                clerk.session, Scope(clerk.scope.tenant_id, mode), limit=10)
            assert [(r.applies_to, r.billing_account_id, r.contact_category) for r in rules] == [
                ("all", None, None)]


class TestDocuments:
    def test_an_aggregated_invoice_groups_the_lines_of_each_account(self, clerk):
        parent = clerk.account("Parent Co")
        branch = clerk.account("Branch", responsible_account_id=parent.id)
        clerk.desk.update_account(parent, invoice_rendering_type="aggregated")
        clerk.bill_run(parent, branch)
        clerk.work(kinds=[billrun.JOB_KIND])
        (invoice,) = clerk.invoices_of(parent)

        doc = documents.document_for(clerk.session, clerk.scope, invoice)

        assert [line.group for line in doc.lines] == [f"{parent.number} · Parent Co",
                                                     f"{branch.number} · Branch"]
        assert (doc.account_number, doc.bill_to.name, doc.biller.name) == (
            parent.number, "Parent Co", "Test Biller")
        assert doc.bill_to.address is not None
        assert doc.bill_to.address.city == "Springfield"
        assert (doc.total_minor, doc.amount_paid_minor, doc.amount_due_minor) == (6000, 0, 6000)

    def test_a_credit_shows_as_paid_and_lowers_the_amount_due(self, clerk):
        account = clerk.account(preferred_language="sv-SE")
        invoice = clerk.one_off(account, unit_amount_minor=10_000)
        with transaction(clerk.session):
            invoices.create_adjustment(clerk.session, clerk.scope, billing_account_id=account.id,
                                       kind="credit", amount_minor=2_500, reason="Goodwill",
                                       invoice_id=invoice.id, actor=ACTOR)

        doc = documents.document_for(clerk.session, clerk.scope, clerk.reload(invoice))

        assert (doc.number, doc.language, doc.currency) == (invoice.number, "sv-SE", "USD")
        assert [line.group for line in doc.lines] == [None]
        # Total, paid and due add up on paper: the credit counts as paid.
        assert (doc.total_minor, doc.amount_paid_minor, doc.amount_due_minor) == (
            10_800, 2_500, 8_300)
        assert doc.bill_to.email == "billing@acme.example"

    def test_another_tenants_invoice_has_no_document(self, clerk, make_scope):
        invoice = clerk.one_off(clerk.account())

        with pytest.raises(Exception, match="No invoice"):
            documents.document_for(clerk.session, make_scope(), invoice)


class TestRenderThreads:
    def test_each_thread_has_a_renderer_of_its_own(self):
        import threading

        seen: list[Any] = []
        thread = threading.Thread(target=lambda: seen.append(delivery.renderer()))
        thread.start()
        thread.join()
        assert delivery.renderer() is delivery.renderer()
        assert seen[0] is not delivery.renderer()

    def test_job_threads_render_every_invoice_once_beside_the_loop(self, clerk, mailbox):
        import threading
        import time

        clerk.rule()
        made = [clerk.one_off(clerk.account(f"Renter {i}", invoice_type="email"))
                for i in range(6)]
        clerk.session.commit()
        stop = threading.Event()
        started = cli._start_job_threads(clerk.settings, clerk.sessions, "test-worker", 2,
                                         stop)
        try:
            assert [t.name for t in started] == ["billfold-jobs-1", "billfold-jobs-2"]
            render_jobs = select(jobs.Job).where(jobs.Job.kind == delivery.RENDER)
            deadline = time.monotonic() + 60
            while any(j.status != "done" for j in clerk.session.scalars(render_jobs)):
                clerk.session.commit()
                assert time.monotonic() < deadline, "the render threads rendered nothing"
                time.sleep(0.2)
            clerk.session.commit()
        finally:
            stop.set()
            for thread in started:
                thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in started)
        # Rendered by the threads alone; the worker's own loop did not run.
        assert {j.locked_by for j in clerk.session.scalars(render_jobs)} <= {
            "test-worker-jobs-1", "test-worker-jobs-2"}
        clerk.work()  # the emails the renders queued
        for invoice in made:
            invoice = clerk.reload(invoice)
            assert invoice.number in clerk.pdf_text(invoice.pdf_key)
            assert len(clerk.messages(invoice)) == 1
        assert len(mailbox.envelopes) == 6


class TestRenderBatches:
    def test_one_batch_emails_each_invoice_to_its_own_accounts_recipients(self, clerk,
                                                                         mailbox):
        alpha, beta, gamma, delta = (clerk.account(f"{name} Co") for name in
                                     ("Alpha", "Beta", "Gamma", "Delta"))
        clerk.rule(alpha)
        clerk.contact(beta, "payables@beta.example", "billing")
        clerk.rule(beta, contact_category="billing")
        clerk.contact(delta, "it@delta.example", "technical")
        clerk.rule(delta, contact_category="billing")
        made = {name: clerk.one_off(account) for name, account in
                (("alpha", alpha), ("beta", beta), ("gamma", gamma), ("delta", delta))}

        assert clerk.work([delivery.RENDER]) == 4  # one batch
        clerk.work()
        sent = {str(email["Subject"]).split()[1]: recipients_of(email)
                for email in mailbox.emails()}
        assert sent == {made["alpha"].number: ["billing@acme.example"],  # the customer's
                        made["beta"].number: ["payables@beta.example"]}
        gamma_invoice, delta_invoice = clerk.reload(made["gamma"]), clerk.reload(made["delta"])
        assert (gamma_invoice.delivery_status, delta_invoice.delivery_status) == ("failed",
                                                                                  "failed")
        assert "Distribute Invoice is not enabled" in gamma_invoice.delivery_error
        assert "no such contact with an email" in delta_invoice.delivery_error
        for invoice in made.values():
            assert invoice.number in clerk.pdf_text(clerk.reload(invoice).pdf_key)

    def test_a_batch_costs_as_many_statements_for_sixteen_invoices_as_for_two(self, clerk,
                                                                             mailbox):
        from sqlalchemy import event

        clerk.rule()
        engine = clerk.sessions.kw["bind"]
        counts = []
        for size in (2, 16):
            for i in range(size):
                clerk.one_off(clerk.account(f"Batch {size} {i} Co"))
            statements: list[str] = []

            def count(*args: Any, _seen: list[str] = statements) -> None:
                _seen.append(args[2])

            event.listen(engine, "before_cursor_execute", count)
            try:
                assert clerk.work([delivery.RENDER]) == size
            finally:
                event.remove(engine, "before_cursor_execute", count)
            counts.append(len(statements))
        assert counts[0] == counts[1], counts

    def test_an_invoice_that_fails_in_a_batch_fails_alone(self, clerk, mailbox):
        clerk.rule()
        made = [clerk.one_off(clerk.account(f"Fine {i} Co")) for i in range(3)]
        with transaction(clerk.session):
            missing = jobs.enqueue(clerk.session, kind=delivery.RENDER, key="inv_gone",
                                   scope=clerk.scope, payload={"invoice_id": "inv_gone"})

        assert clerk.work([delivery.RENDER]) == 4

        for invoice in made:
            assert clerk.reload(invoice).pdf_key is not None
        failed = clerk.session.get(jobs.Job, missing.id)
        assert (failed.status, failed.attempts) == ("queued", 1)
        assert "inv_gone" in failed.last_error
