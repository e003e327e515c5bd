"""Autopay: an account's owner enrolls a saved method; each invoice is charged once, its
due date plus the offset after, however many times and workers run it; a decline fails the
attempt and emails the payer."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from billfold.access.models import PayerGrant
from billfold.collections import autopay
from billfold.collections import enrollment as enrolling
from billfold.collections.models import AutopayAttempt, AutopayEnrollment
from billfold.core import clock
from billfold.core.config import Settings
from billfold.core.db import make_engine, make_sessionmaker, transaction
from billfold.core.errors import NotFound, ValidationFailed
from billfold.core.scope import Scope
from billfold.customers import settings as settings_service
from billfold.customers.models import BillingAccount, ChangeRecord
from billfold.invoicing.models import Invoice
from billfold.notifications.models import OutboxMessage
from billfold.payments import after, paying, recording, sessions
from billfold.payments.gateways.base import CardDetails
from billfold.payments.gateways.test_models import TestGatewayCharge
from billfold.payments.models import Payment, SavedMethod
from billfold.tenants import service as tenants
from tests.conftest import Reference
from tests.services.conftest import Desk, fields_of, frozen_at
from tests.services.test_saved_methods import BANK, Wallet

BASE = "https://billing.example.com"


class Autopayer(Wallet):
    """A wallet whose owner has saved a Visa, with the steps of autopay."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.visa = self.save()

    def run(self, today: date | None = None) -> autopay.Summary:
        return autopay.run(self.factory, lambda scope: self.gateway, self.scope, base_url=BASE,
                           today=today)

    def get(self, model: Any, object_id: str) -> Any:
        with self.factory() as s:
            found = s.get(model, object_id)
            assert found is not None
            s.expunge(found)
            return found

    def count(self, model: Any, *where: Any) -> int:
        with self.factory() as s:
            return int(s.scalar(select(func.count()).select_from(model).where(
                model.tenant_id == self.scope.tenant_id, *where)) or 0)

    def attempt(self, invoice: Invoice) -> AutopayAttempt:
        with self.factory() as s:
            found = s.scalars(select(AutopayAttempt).where(
                AutopayAttempt.invoice_id == invoice.id)).one()
            s.expunge(found)
            return found

    def payments_for(self, invoice: Invoice) -> int:
        return self.count(Payment, Payment.submission_key == f"autopay:{invoice.id}")

    def emails(self) -> list[OutboxMessage]:
        with self.factory() as s:
            found = list(s.scalars(select(OutboxMessage).where(
                OutboxMessage.tenant_id == self.scope.tenant_id,
                OutboxMessage.about_type == "autopay_attempt")))
            s.expunge_all()
            return found

    def configure(self, **changes: Any) -> None:
        with self.factory() as s, transaction(s):
            settings_service.update_settings(s, self.scope, changes)


@pytest.fixture
def payer(sessions: sessionmaker[Session], session: Session, scope: Scope, ref: Any
          ) -> Autopayer:
    return Autopayer(sessions, session, scope, Desk(session, scope, ref))


def due(invoice: Invoice) -> date:
    assert invoice.due_date is not None
    return invoice.due_date


class TestEnroll:
    def test_an_owner_enrolls_and_the_account_records_it(self, payer: Autopayer) -> None:
        enrollment = payer.enroll(payer.visa, offset_days=3)
        assert (enrollment.saved_method_id, enrollment.offset_days) == (payer.visa.id, 3)
        account = payer.get(BillingAccount, payer.account.id)
        assert (account.authorize_auto_payment, account.auto_pay_offset_days) == (True, 3)
        with payer.factory() as s:
            record = s.scalars(select(ChangeRecord).where(
                ChangeRecord.object_id == payer.account.id,
                ChangeRecord.actor == "payer:olive@widgets.example")).one()
        assert {"field": "authorize_auto_payment", "old_value": False,
                "new_value": True} in record.changes

    def test_enrolling_again_changes_the_method_and_offset_of_the_one_enrollment(
            self, payer: Autopayer) -> None:
        first = payer.enroll(payer.visa, offset_days=1)
        bank = payer.save(payer.pay(bank=BANK))
        again = payer.enroll(bank, offset_days=5)
        assert again.id == first.id
        assert (again.saved_method_id, again.offset_days) == (bank.id, 5)
        assert payer.count(AutopayEnrollment) == 1

    def test_a_payer_who_is_not_the_owner_is_refused(self, payer: Autopayer) -> None:
        clerk = payer.user("paul@widgets.example", role="payer")
        mine = payer.save(payer.pay(), user=clerk)
        with pytest.raises(enrolling.NotAccountOwner) as refused:
            payer.enroll(mine, user=clerk)
        assert refused.value.status == 403
        assert payer.account.number in refused.value.detail
        assert payer.count(AutopayEnrollment) == 0

    def test_a_user_without_a_grant_finds_no_account(self, payer: Autopayer) -> None:
        stranger = payer.user("sam@elsewhere.example")
        mine = payer.save(payer.pay(), user=stranger)
        with pytest.raises(NotFound):
            payer.enroll(mine, user=stranger)

    @pytest.mark.parametrize("offset", [1, 6, -1])
    def test_refuses_an_offset_outside_the_tenants_limits(self, payer: Autopayer,
                                                          offset: int) -> None:
        payer.configure(autopay_min_offset_days=2, autopay_max_offset_days=5)
        with pytest.raises(ValidationFailed) as refused:
            payer.enroll(payer.visa, offset_days=offset)
        assert fields_of(refused.value) == ["offset_days"]
        assert "from 2 to 5" in refused.value.errors[0].message
        assert payer.get(BillingAccount, payer.account.id).authorize_auto_payment is False

    def test_refuses_a_method_of_another_user(self, payer: Autopayer) -> None:
        other = payer.user("otto@widgets.example", role="owner")
        theirs = payer.save(payer.pay(), user=other)
        with pytest.raises(ValidationFailed) as refused:
            payer.enroll(theirs)
        assert fields_of(refused.value) == ["saved_method_id"]

    def test_refuses_a_removed_method(self, payer: Autopayer) -> None:
        payer.remove(payer.visa)
        with pytest.raises(ValidationFailed) as refused:
            payer.enroll(payer.visa)
        assert fields_of(refused.value) == ["saved_method_id"]

    def test_refuses_a_bank_account_for_an_account_not_in_dollars(self, payer: Autopayer
                                                                  ) -> None:
        _, euros = payer.desk.create_customer("Euro GmbH", account=payer.desk.account("EUR"))
        payer.grant(payer.owner, euros, "owner")
        bank = payer.save(payer.pay(bank=BANK))
        with pytest.raises(ValidationFailed) as refused:
            payer.enroll(bank, account=euros)
        assert "USD" in refused.value.errors[0].message
        assert payer.enroll(payer.visa, account=euros).saved_method_id == payer.visa.id

    def test_cancel_turns_autopay_off(self, payer: Autopayer) -> None:
        payer.enroll(payer.visa)
        with payer.factory() as s, transaction(s):
            assert enrolling.cancel(s, payer.scope, user=payer.owner,
                                  billing_account_id=payer.account.id) is True
        with payer.factory() as s:
            assert enrolling.enrollment_of(s, payer.scope, payer.account.id) is None
        assert payer.get(BillingAccount, payer.account.id).authorize_auto_payment is False
        invoice = payer.invoice()
        assert payer.run(due(invoice) + timedelta(days=30)).claimed == 0


class TestRun:
    def test_charges_a_due_invoice_once_however_often_it_runs(self, payer: Autopayer) -> None:
        payer.enroll(payer.visa)
        invoice = payer.invoice(2500)
        first = payer.run(due(invoice))
        again = payer.run(due(invoice))
        assert (first.claimed, first.succeeded) == (1, 1)
        assert (again.claimed, again.succeeded) == (0, 0)
        assert payer.get(Invoice, invoice.id).status == "paid"
        assert payer.payments_for(invoice) == 1
        attempt = payer.attempt(invoice)
        assert (attempt.status, attempt.amount_minor) == ("succeeded", 2500)
        payment = payer.get(Payment, str(attempt.payment_id))
        assert (payment.method, payment.last4, payment.amount_minor) == ("card", "4242", 2500)
        assert payer.count(TestGatewayCharge, TestGatewayCharge.idempotency_key == payment.id) == 1

    def test_waits_for_the_due_date_plus_the_offset(self, payer: Autopayer) -> None:
        payer.enroll(payer.visa, offset_days=3)
        invoice = payer.invoice()
        assert payer.run(due(invoice) + timedelta(days=2)).claimed == 0
        assert payer.get(Invoice, invoice.id).status == "open"
        assert payer.run(due(invoice) + timedelta(days=3)).succeeded == 1
        assert payer.get(Invoice, invoice.id).status == "paid"

    def test_charges_what_is_left_of_an_invoice_paid_in_part(self, payer: Autopayer) -> None:
        payer.enroll(payer.visa)
        invoice = payer.invoice(1000)
        with payer.factory() as s, transaction(s):
            token = sessions.create_native(s, payer.scope, invoices=[
                {"invoice_id": invoice.id, "allow_partial": True}]).token
        paying.pay(payer.factory, payer.gateway, token, paying.Submission(
            nonce="part", amounts={"1": 400}, method="card",
            details=CardDetails("4242424242424242", 12, 2030, "123", "Olive")))
        payer.run(due(invoice))
        assert payer.attempt(invoice).amount_minor == 600
        assert payer.get(Invoice, invoice.id).status == "paid"

    def test_a_decline_fails_the_attempt_and_emails_the_payer_once(self, payer: Autopayer
                                                                   ) -> None:
        payer.enroll(payer.visa)
        with payer.factory() as s, transaction(s):  # the gateway no longer knows the token
            s.execute(update(SavedMethod).where(SavedMethod.id == payer.visa.id)
                      .values(token="tok_revoked"))
        invoice = payer.invoice(1000)
        summary = payer.run(due(invoice))
        assert (summary.claimed, summary.failed) == (1, 1)
        attempt = payer.attempt(invoice)
        assert attempt.status == "failed"
        assert attempt.failure_message == "This saved payment method is not on file."
        assert payer.get(Invoice, invoice.id).status == "open"
        (email,) = payer.emails()
        assert email.to == ["olive@widgets.example"]
        assert str(invoice.number) in email.subject
        assert "Test Biller" in email.subject
        assert "$10.00" in email.text_body
        assert "This saved payment method is not on file." in email.text_body
        assert f"{BASE}/portal/invoices" in email.text_body
        payer.run(due(invoice) + timedelta(days=1))
        assert len(payer.emails()) == 1
        assert payer.payments_for(invoice) == 1

    def test_a_bank_payment_stays_pending_until_it_settles(self, payer: Autopayer) -> None:
        payer.enroll(payer.save(payer.pay(bank=BANK)))
        invoice = payer.invoice()
        assert payer.run(due(invoice)).pending == 1
        assert payer.attempt(invoice).status == "pending"
        after.advance_test_clock(payer.factory, payer.gateway, payer.scope, days=7)
        assert payer.run(due(invoice)).succeeded == 1
        assert payer.attempt(invoice).status == "succeeded"

    def test_a_payer_who_no_longer_owns_the_account_is_not_charged(self, payer: Autopayer
                                                                   ) -> None:
        payer.enroll(payer.visa)
        with payer.factory() as s, transaction(s):
            s.execute(update(PayerGrant).where(PayerGrant.payer_user_id == payer.owner.id)
                      .values(role="viewer"))
        invoice = payer.invoice()
        assert payer.run(due(invoice)).skipped == 1
        assert payer.attempt(invoice).status == "skipped"
        assert payer.payments_for(invoice) == 0
        assert payer.emails() == []

    def test_an_attempt_a_crashed_worker_claimed_is_charged_by_a_later_run(
            self, payer: Autopayer) -> None:
        payer.enroll(payer.visa)
        invoice = payer.invoice()
        assert autopay._claim(payer.factory, payer.scope, invoice.id, due(invoice))
        assert payer.run(due(invoice)).claimed == 0  # someone else's, and still fresh
        assert payer.payments_for(invoice) == 0
        with frozen_at(clock.utcnow() + timedelta(minutes=11)):
            assert payer.run(due(invoice)).succeeded == 1
        assert payer.attempt(invoice).status == "succeeded"
        assert payer.payments_for(invoice) == 1

    def test_a_crash_after_the_charge_is_not_charged_again(self, payer: Autopayer) -> None:
        payer.enroll(payer.visa)
        invoice = payer.invoice(1000)
        assert autopay._claim(payer.factory, payer.scope, invoice.id, due(invoice))
        made = recording.record(  # the crashed worker got this far
            payer.factory, lambda scope: payer.gateway, payer.scope,
            billing_account_id=payer.account.id, amount_minor=1000, method="card",
            instrument_token=payer.visa.token, invoice_ids=[invoice.id],
            submission_key=f"autopay:{invoice.id}")
        charges = payer.count(TestGatewayCharge)
        with frozen_at(clock.utcnow() + timedelta(minutes=11)):
            assert payer.run(due(invoice)).succeeded == 1
        assert payer.attempt(invoice).payment_id == made.id
        assert payer.count(TestGatewayCharge) == charges


class TestRunEverywhere:
    def test_runs_the_scopes_with_enrollments(self, payer: Autopayer) -> None:
        payer.enroll(payer.visa)
        invoice = payer.invoice()
        with payer.factory() as s, transaction(s):
            s.execute(update(Invoice).where(Invoice.id == invoice.id)
                      .values(due_date=date(2020, 1, 1)))
        autopay.run_everywhere(payer.factory, lambda scope: payer.gateway,
                               Settings(base_url=BASE))
        assert payer.attempt(invoice).status == "succeeded"


class TestWorker:
    def test_billfold_worker_charges_the_invoices_that_have_come_due(
            self, own_database: tuple[Autopayer, str], tmp_path: Path) -> None:
        payer, url = own_database
        payer.enroll(payer.visa)
        invoice = payer.invoice()
        with payer.factory() as s, transaction(s):
            yesterday = tenants.today(s, payer.scope) - timedelta(days=1)
            s.execute(update(Invoice).where(Invoice.id == invoice.id).values(due_date=yesterday))
        env = {**os.environ, "BILLFOLD_DATABASE_URL": url, "BILLFOLD_DATA_DIR": str(tmp_path)}
        worker = subprocess.run([str(Path(sys.executable).with_name("billfold")), "worker",
                                 "--once"], env=env, capture_output=True, text=True, timeout=300)
        assert worker.returncode == 0, worker.stderr
        assert payer.attempt(invoice).status == "succeeded"
        assert payer.get(Invoice, invoice.id).status == "paid"


@pytest.fixture
def own_database(fresh_database_url: str) -> Iterator[tuple[Autopayer, str]]:
    """An autopayer in a database of its own: the worker works through the whole database."""
    engine = make_engine(fresh_database_url)
    factory = make_sessionmaker(engine)
    with factory() as s, transaction(s):
        scope = Scope(tenants.create_tenant(s, name="Worker Biller").id, "test")
    with factory() as s:
        yield Autopayer(factory, s, scope, Desk(s, scope, Reference(s, scope))), \
            fresh_database_url
    engine.dispose()


class TestTestClock:
    def test_advancing_past_the_due_date_runs_autopay(self, make_client: Any,
                                                      ref_for: Any) -> None:
        client = make_client()
        payer = ref_for(client.scope)
        payer.enroll(payer.visa)
        invoice = payer.invoice()
        with payer.factory() as s:
            days = (due(invoice) - tenants.today(s, payer.scope)).days
        response = client.post("/v1/test_clock/advance", json={"days": days})
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"today", "clock_offset_days", "mode"}
        assert payer.attempt(invoice).status == "succeeded"
        assert payer.get(Invoice, invoice.id).status == "paid"


@pytest.fixture
def ref_for(sessions: sessionmaker[Session], session: Session) -> Any:
    def make(scope: Scope) -> Autopayer:
        return Autopayer(sessions, session, scope, Desk(session, scope, Reference(session, scope)))

    return make


@pytest.mark.postgres_only
class TestConcurrentRuns:
    def test_two_workers_at_once_charge_each_invoice_once(self, payer: Autopayer) -> None:
        payer.enroll(payer.visa)
        invoices = [payer.invoice(100 + i) for i in range(12)]
        when = max(due(i) for i in invoices)
        charges = payer.count(TestGatewayCharge)
        start = threading.Barrier(4)
        results: list[autopay.Summary] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                start.wait()
                results.append(payer.run(when))
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sum(r.claimed for r in results) == len(invoices)
        assert payer.count(TestGatewayCharge) - charges == len(invoices)
        assert [payer.payments_for(i) for i in invoices] == [1] * len(invoices)
        assert {payer.get(Invoice, i.id).status for i in invoices} == {"paid"}
