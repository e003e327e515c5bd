"""A billing account's ``email_notify`` off: its invoices are rendered but not emailed, its
paper still goes, and the skipped email is noted on the invoice's delivery."""

from __future__ import annotations

from sqlalchemy import update

from billfold.core.db import transaction
from billfold.customers.models import BillingAccount
from billfold.invoicing import billrun, delivery
from billfold.notifications import outbox
from tests.services import test_delivery
from tests.services.test_delivery import Clerk
from tests.services.test_outbox import Mailbox

# The delivery tests' database, clock, SMTP server and clerk.
sessions, frozen, mailbox = test_delivery.sessions, test_delivery.frozen, test_delivery.mailbox
settings, clerk = test_delivery.settings, test_delivery.clerk


class TestEmailNotifyOff:
    def test_an_email_account_gets_its_pdf_and_no_email(self, clerk: Clerk,
                                                         mailbox: Mailbox) -> None:
        clerk.rule()
        invoice = clerk.one_off(clerk.account(invoice_type="email", email_notify=False))
        assert invoice.delivery_status == "not_required"

        clerk.work()

        invoice = clerk.reload(invoice)
        assert str(invoice.number) in clerk.pdf_text(str(invoice.pdf_key))
        assert clerk.messages(invoice) == []
        assert mailbox.envelopes == []
        assert (invoice.delivery_status, invoice.delivery_error) == ("not_required",
                                                                    delivery.EMAIL_OFF)

    def test_paper_and_email_is_printed_and_not_emailed(self, clerk: Clerk,
                                                        mailbox: Mailbox) -> None:
        clerk.rule()
        invoice = clerk.one_off(clerk.account("Paper Mill", invoice_type="paper_and_email",
                                              email_notify=False))

        clerk.work()

        invoice = clerk.reload(invoice)
        assert clerk.files.exists(delivery.print_batch_key(clerk.scope, invoice.id, "pdf"))
        assert clerk.messages(invoice) == []
        assert mailbox.envelopes == []
        assert (invoice.delivery_status, invoice.delivery_error) == ("sent", delivery.EMAIL_OFF)

    def test_a_bill_run_emails_only_the_accounts_that_want_it(self, clerk: Clerk,
                                                              mailbox: Mailbox) -> None:
        clerk.rule()
        wants = clerk.account("Wants Mail", invoice_type="email")
        quiet = clerk.account("Quiet Ltd", invoice_type="email", email_notify=False)
        clerk.bill_run(wants, quiet)

        clerk.work(kinds=[billrun.JOB_KIND, delivery.RENDER, outbox.DELIVER])

        (sent,), (skipped,) = clerk.invoices_of(wants), clerk.invoices_of(quiet)
        assert len(mailbox.envelopes) == 1
        assert len(clerk.messages(sent)) == 1
        assert clerk.messages(skipped) == []
        assert (sent.delivery_status, skipped.delivery_status) == ("sent", "not_required")
        assert skipped.pdf_key is not None

    def test_an_email_sent_before_it_was_turned_off_still_counts(self, clerk: Clerk,
                                                                 mailbox: Mailbox) -> None:
        clerk.rule()
        account = clerk.account(invoice_type="email")
        invoice = clerk.one_off(account)
        clerk.work()
        with transaction(clerk.session):
            clerk.session.execute(update(BillingAccount).where(BillingAccount.id == account.id)
                                  .values(email_notify=False))
            delivery.settle(clerk.session, clerk.scope, clerk.reload(invoice))

        invoice = clerk.reload(invoice)
        assert len(mailbox.envelopes) == 1
        assert (invoice.delivery_status, invoice.delivery_error) == ("sent", None)
