"""`billfold bill-run` killed with SIGKILL at a random moment, then run again: every account
is billed exactly once per bill date (DESIGN.md decision 9), exactly as a run that was
never interrupted bills it, and the ledger still verifies.

Every seed gets a tenant of its own in one database, sold the same 60 accounts
(hierarchies, minimum invoice amounts, services, one-time charges, two currencies, tax)
through the service layer; a first tenant billed without interruption is the reference.
Also: the command's answers to wrong options and to a failing account, and `billfold
worker` billing a run it did not start.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from billfold import cli
from billfold.catalog import service as catalog
from billfold.catalog import tax_service
from billfold.core import jobs
from billfold.core.config import Settings, get_settings
from billfold.core.db import make_engine, make_sessionmaker, normalise_url, transaction
from billfold.core.scope import Scope
from billfold.customers import service as customers
from billfold.customers import settings as settings_service
from billfold.customers.models import BillingAccount
from billfold.invoicing import billrun
from billfold.invoicing.models import BilledPeriod, BillRun, Invoice, InvoiceLine
from billfold.ledger.models import LedgerAccount, LedgerEntry
from billfold.ledger.verify import verify
from billfold.orders import service as orders
from billfold.orders.models import PendingCharge, Service, ServiceQuantity
from billfold.tenants import service as tenants
from tests.conftest import BACKEND, Reference, _admin_engine
from tests.services.conftest import ACTOR

pytestmark = pytest.mark.slow

BILLFOLD = str(Path(sys.executable).with_name("billfold"))
SEEDS = range(20)
AS_OF = "2026-04-01"
BILL_DATES = (date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1))
ACCOUNTS = 60
TEXAS = {"line1": "1 Main St", "city": "Austin", "region": "TX", "postal_code": "78701",
         "country": "US"}


# -- a biller with 60 accounts, all due on 1 February, 1 March and 1 April 2026 ----------


def new_biller(sessions: sessionmaker[Session], name: str) -> Scope:
    """A tenant sold the same ~60 accounts as every other, in one transaction."""
    with sessions() as s:
        with transaction(s):
            tenant = tenants.create_tenant(s, name=name)
            scope = Scope(tenant.id, "test")
            settings_service.update_settings(s, scope,
                                             {"enable_responsible_account_management": True})
        ref = Reference(s, scope)
        with transaction(s):
            _sell(s, scope, ref)
    return scope


def _sell(s: Session, scope: Scope, ref: Reference) -> None:
    tax_service.create_tax_rate(s, scope, country="US", region="US-TX", tax_category="standard",
                                percent="8.25", name="Texas", valid_from=date(2026, 1, 1))
    hosting = catalog.create_product(s, scope, name="Hosting", sku="HOST", tax_category="standard")
    monthly = catalog.create_price(s, scope, product_id=hosting.id, kind="recurring",
                                   amounts_minor={"USD": 3000, "EUR": 2800},
                                   billing_timing="in_advance")
    setup = catalog.create_product(s, scope, name="Setup", sku="SETUP", tax_category="standard")
    fee = catalog.create_price(s, scope, product_id=setup.id, kind="one_time",
                               amounts_minor={"USD": 1000, "EUR": 900})

    def account(name: str, *, address: dict[str, str] | None = None, **extra: Any
                ) -> BillingAccount:
        data = ref.customer(name, billing_account=ref.account(**extra))
        if address:
            data["billing_address"] = address
        return customers.create_customer(s, scope, data=data, actor=ACTOR)[1]

    def order(account: BillingAccount, *lines: tuple[Any, int, str]) -> None:
        orders.create_order(s, scope, billing_account_id=account.id, actor=ACTOR, lines=[
            {"price_id": price.id, "quantity": quantity, "start_date": date.fromisoformat(start)}
            for price, quantity, start in lines])

    term = ref.term.id
    # 8 responsible accounts with 2 managed accounts each: half aggregated, half per account.
    for n in range(8):
        responsible = account(f"Group {n}", payment_term_id=term)
        first = account(f"Group {n} branch A", responsible_account_id=responsible.id)
        second = account(f"Group {n} branch B", responsible_account_id=responsible.id)
        customers.update_billing_account(s, scope, account_id=responsible.id, actor=ACTOR, changes={
            "invoice_rendering_type": "aggregated" if n % 2 else "per_account"})
        order(responsible, (monthly, 1, "2026-02-01"))
        order(first, (fee, 1, "2026-02-01"), (monthly, 2, "2026-03-01"))
        order(second, (monthly, 1, "2026-03-10"))  # prorated March
    # 8 with a minimum invoice amount: some invoices suppressed, their charges carried on.
    for n in range(8):
        small = account(f"Small {n}", minimum_invoice_amount_minor=5000 + 2000 * (n % 2))
        order(small, (monthly, 1, "2026-02-01"), *([(fee, 1, "2026-02-01")] if n % 2 else []))
    # 16 plain accounts with services and one-time charges, some started mid-period.
    for n in range(16):
        plain = account(f"Plain {n}", **({"payment_term_id": term} if n % 3 else {}))
        start = "2026-02-20" if n % 4 == 0 else "2026-02-01"
        order(plain, (monthly, 1 + n % 3, start), (fee, 1 + n % 2, start))
    for n in range(4):  # in euros
        order(account(f"Euro {n}", currency="EUR"), (monthly, 1, "2026-02-01"),
              (fee, 1, "2026-03-05"))
    for n in range(4):  # taxed by their Texas address
        order(account(f"Texan {n}", address=TEXAS), (monthly, 1, "2026-02-01"),
              (fee, 1, "2026-02-01"))
    for n in range(ACCOUNTS - 8 * 3 - 8 - 16 - 4 - 4):  # nothing sold: nothing to bill
        account(f"Idle {n}")


# -- what billing left behind ------------------------------------------------------------


@dataclass(frozen=True)
class Billed:
    """What billing wrote for one tenant, with accounts named by their (per tenant) number
    and no ids, so two tenants sold the same things compare equal."""

    invoices: Counter[tuple[Any, ...]]
    bill_dates: Counter[tuple[str, date]]
    balances: dict[tuple[str, str, str | None], int]  # of every ledger account
    invoice_entries: int
    numbers: list[str]


def billed(s: Session, scope: Scope) -> Billed:
    s.expire_all()
    mine = {"tenant_id": scope.tenant_id, "mode": scope.mode}
    number = dict(s.execute(select(BillingAccount.id, BillingAccount.number).filter_by(**mine)).all())
    lines: dict[str, list[tuple[Any, ...]]] = {}
    for line in s.scalars(select(InvoiceLine).filter_by(**mine)):
        lines.setdefault(line.invoice_id, []).append((
            line.kind, number[line.billing_account_id], line.description, line.quantity,
            line.amount_minor, line.tax_minor, line.period_start, line.period_end,
            line.service_id is not None, line.pending_charge_id is not None,
            line.carried_from_invoice_id is not None))
    invoices = Counter(
        (number[i.billing_account_id], number.get(i.invoiced_account_id), i.bill_date, i.status,
         i.currency, i.subtotal_minor, i.tax_minor, i.total_minor, i.due_date,
         tuple(sorted(lines.get(i.id, []), key=repr)))
        for i in s.scalars(select(Invoice).filter_by(**mine)))
    bill_dates = Counter((number[a], d) for a, d in s.execute(
        select(BilledPeriod.billing_account_id, BilledPeriod.bill_date).filter_by(**mine)))
    balances = {(kind, currency, number.get(owner)): balance
                for kind, currency, owner, balance in s.execute(
                    select(LedgerAccount.kind, LedgerAccount.currency,
                           LedgerAccount.billing_account_id, LedgerAccount.balance_minor)
                    .filter_by(**mine))}
    entries = s.scalar(select(func.count()).select_from(LedgerEntry).filter_by(
        source_type="invoice", **mine)) or 0
    numbers = sorted(n for n in s.scalars(select(Invoice.number).filter_by(**mine)) if n)
    return Billed(invoices, bill_dates, balances, entries, numbers)


def assert_billed_exactly_once(s: Session, scope: Scope, expected: Billed) -> None:
    got = billed(s, scope)
    mine = {"tenant_id": scope.tenant_id, "mode": scope.mode}
    invoices = list(s.scalars(select(Invoice).filter_by(**mine)))
    per_date = Counter((i.invoiced_account_id, i.bill_date) for i in invoices)
    assert [key for key, n in per_date.items() if n > 1] == [], "an account invoiced twice"
    accounts = list(s.scalars(select(BillingAccount).filter_by(**mine)))
    assert got.bill_dates == Counter({(a.number, d): 1 for a in accounts
                                      if a.responsible_account_id is None for d in BILL_DATES})
    assert {a.next_bill_date for a in accounts} == {date(2026, 5, 1)}
    assert [int(n.split("-")[1]) for n in got.numbers] == list(range(1, len(got.numbers) + 1))
    posted = {i.id for i in invoices if i.status != "suppressed"}
    on_posted = Counter(line.pending_charge_id for line in s.scalars(
        select(InvoiceLine).filter_by(**mine).where(InvoiceLine.pending_charge_id.is_not(None)))
        if line.invoice_id in posted)
    charges = list(s.scalars(select(PendingCharge).filter_by(**mine)))
    assert charges
    assert {c.id: (c.invoice_id is not None, on_posted[c.id]) for c in charges} == {
        c.id: (True, 1) for c in charges}, "a charge not on exactly one invoice"
    # The same invoices, lines, guard rows and ledger balances as a run never interrupted.
    assert got == expected


# -- killing the command -----------------------------------------------------------------


def billed_so_far(watch: Engine, scope: Scope) -> int:
    with watch.connect() as conn:
        return conn.scalar(select(func.count()).select_from(BilledPeriod).where(
            BilledPeriod.tenant_id == scope.tenant_id)) or 0


@dataclass(frozen=True)
class Timing:
    """Seconds from launching the command to its "started bill run" line (printed once the
    run is committed), from there to its first account billed, and on to its last."""

    starting: float
    claiming: float
    billing: float


def start_bill_run(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([BILLFOLD, "bill-run", "--as-of", AS_OF], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_started(command: subprocess.Popen[str]) -> None:
    assert command.stdout is not None
    line = command.stdout.readline()
    assert line.startswith("started bill run"), line


def billed_at_least(count: int, command: subprocess.Popen[str], watch: Engine, scope: Scope
                    ) -> None:
    deadline = time.monotonic() + 60
    while billed_so_far(watch, scope) < count and command.poll() is None:
        assert time.monotonic() < deadline, f"the bill run never billed {count}"
        time.sleep(0.002)


def timed_bill_run(env: dict[str, str], watch: Engine, scope: Scope) -> Timing:
    """Bill the tenant without interruption, timing the command's phases."""
    launched = time.monotonic()
    command = start_bill_run(env)
    run_started(command)
    started = time.monotonic()
    billed_at_least(1, command, watch, scope)
    first = time.monotonic()
    billed_at_least(BILLED_PER_TENANT, command, watch, scope)
    last = time.monotonic()
    _, err = command.communicate(timeout=120)
    assert command.returncode == 0, err
    return Timing(started - launched, first - started, max(last - first, 0.01))


def kill_at_random(env: dict[str, str], watch: Engine, scope: Scope, rng: random.Random,
                   timing: Timing) -> str:
    """SIGKILL `billfold bill-run` at a random moment: one time in five before it has
    started its run, one in five before it has billed an account, otherwise while it bills
    (mostly in the first half of the reference run's billing time: a run may go faster
    than the reference did, and a kill after its end proves less). Returns how far it had
    got."""
    command = start_bill_run(env)
    phase = rng.random()
    try:
        if phase < 0.2:
            time.sleep(rng.uniform(0, timing.starting))
        elif phase < 0.4:
            run_started(command)
            time.sleep(rng.uniform(0, timing.claiming))
        else:
            run_started(command)
            billed_at_least(1, command, watch, scope)
            share = 0.5 if phase < 0.85 else 1.2
            time.sleep(rng.uniform(0, timing.billing * share))
    finally:
        command.send_signal(signal.SIGKILL)
        command.communicate(timeout=30)
    done, runs = billed_so_far(watch, scope), 0
    with watch.connect() as conn:
        runs = conn.scalar(select(func.count()).select_from(BillRun).where(
            BillRun.tenant_id == scope.tenant_id)) or 0
    if not done:
        return "before the billing" if runs else "before the run"
    return "mid-run" if done < BILLED_PER_TENANT else "after the billing"


BILLED_PER_TENANT = 44 * len(BILL_DATES)  # accounts not managed by another, times dates


# -- the test ----------------------------------------------------------------------------


@pytest.fixture
def database(fresh_database_url: str) -> Iterator[tuple[sessionmaker[Session], Engine]]:
    if BACKEND == "postgres":
        # What is committed survives a killed client whether or not the server waited for
        # its disk; not waiting keeps the test's hundreds of commits fast.
        admin = _admin_engine()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{fresh_database_url.rsplit("/", 1)[1]}" '
                                 "SET synchronous_commit TO off")
        admin.dispose()
    engine = make_engine(fresh_database_url)
    # Reads while a command writes, outside any transaction of the test's own.
    watch = create_engine(normalise_url(fresh_database_url), isolation_level="AUTOCOMMIT")
    yield make_sessionmaker(engine), watch
    watch.dispose()
    engine.dispose()


def test_a_killed_bill_run_rerun_bills_every_account_exactly_once(
        database, fresh_database_url, tmp_path):
    sessions, watch = database
    env = {**os.environ, "BILLFOLD_DATABASE_URL": fresh_database_url,
           "BILLFOLD_DATA_DIR": str(tmp_path)}
    reference = new_biller(sessions, "Reference Biller")
    timing = timed_bill_run(env, watch, reference)
    with sessions() as s:
        expected = billed(s, reference)
    assert sum(expected.bill_dates.values()) == BILLED_PER_TENANT
    assert {key[3] for key in expected.invoices} == {"open", "suppressed"}
    assert {key[4] for key in expected.invoices} == {"USD", "EUR"}
    assert any(key[6] for key in expected.invoices), "some invoice carries tax"

    landed: Counter[str] = Counter()
    for seed in SEEDS:
        scope = new_biller(sessions, f"Seed {seed}")
        landed[kill_at_random(env, watch, scope, random.Random(seed), timing)] += 1
        # Every fourth time two commands rerun it at once, sharing the work like workers.
        reruns = [start_bill_run(env) for _ in range(2 if seed % 4 == 3 else 1)]
        for rerun in reruns:
            _, err = rerun.communicate(timeout=120)
            assert rerun.returncode == 0, f"seed {seed}: {err}"
        with sessions() as s:
            try:
                assert_billed_exactly_once(s, scope, expected)
                assert verify(s) == []
            except AssertionError as exc:
                raise AssertionError(f"seed {seed} ({landed}): {exc}") from exc
    verified = subprocess.run([BILLFOLD, "ledger", "verify"], env=env, capture_output=True,
                              text=True, timeout=120)
    assert verified.returncode == 0, verified.stderr
    # Kills that all fell before or after the billing would prove nothing.
    assert landed["mid-run"] >= len(SEEDS) // 4, landed


# -- the command's other answers ---------------------------------------------------------


def chunked_run(sessions: sessionmaker[Session], name: str) -> tuple[Scope, str]:
    """A new biller's run of 1 February cut into chunks of ten accounts."""
    scope = new_biller(sessions, name)
    with sessions() as s, transaction(s):
        run, _ = billrun.start_bill_run(s, scope, as_of_date=date(2026, 2, 1), actor=ACTOR,
                                        chunk_size=10)
    return scope, run.id


def assert_billed_once_by(sessions: sessionmaker[Session], scope: Scope, run_id: str
                          ) -> set[str]:
    """The run is complete, every account billed once, the ledger sound; who claimed its
    chunks."""
    with sessions() as s:
        report = billrun.report(s, scope, run_id)
        assert (report.run.status, report.failed) == ("completed", 0)
        assert report.invoiced + report.suppressed + report.nothing_to_bill == 44
        assert verify(s) == []
        return set(s.scalars(select(jobs.Job.locked_by).where(
            jobs.Job.kind == billrun.JOB_KIND, jobs.Job.tenant_id == scope.tenant_id)))


class TestTheCommand:
    @pytest.fixture
    def env(self, fresh_database_url: str, tmp_path: Path) -> dict[str, str]:
        return {**os.environ, "BILLFOLD_DATABASE_URL": fresh_database_url,
                "BILLFOLD_DATA_DIR": str(tmp_path)}

    @staticmethod
    def billfold(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BILLFOLD, *args], env=env, capture_output=True, text=True,
                              timeout=120)

    @pytest.mark.parametrize(("args", "option"), [
        (["--as-of", "2026-02-30"], "--as-of"),
        (["--as-of", "20260401"], "--as-of"),
        (["--as-of", AS_OF, "--tenant", "ten_nope"], "--tenant"),
        (["--as-of", AS_OF, "--bill-cycle", "bc_nope"], "--bill-cycle"),
        (["--as-of", AS_OF, "--mode", "prod"], "--mode"),
    ])
    def test_a_wrong_option_is_named_and_exits_2(self, env, args, option):
        result = self.billfold(env, "bill-run", *args)
        assert result.returncode == 2, result.stderr
        assert f"'{option}'" in result.stderr

    def test_the_worker_bills_a_run_started_elsewhere_and_a_failed_account_exits_1(
            self, database, env):
        sessions, _ = database
        scope = new_biller(sessions, "Worker Biller")
        with sessions() as s, transaction(s):
            run, _ = billrun.start_bill_run(s, scope, as_of_date=date(2026, 2, 1), actor=ACTOR)
        assert self.billfold(env, "worker", "--once").returncode == 0
        with sessions() as s:
            report = billrun.report(s, scope, run.id)
            assert (report.run.status, report.failed) == ("completed", 0)
            assert report.invoiced + report.suppressed + report.nothing_to_bill == 44
            assert report.invoice_count > 0
            # An amount no invoice column can hold makes one account fail on 1 March.
            broken = s.scalars(select(BillingAccount).filter_by(
                tenant_id=scope.tenant_id, minimum_invoice_amount_minor=0)
                .where(BillingAccount.responsible_account_id.is_(None),
                       BillingAccount.currency == "USD").order_by(BillingAccount.id)).first()
            assert broken is not None
            s.execute(update(Service).where(Service.billing_account_id == broken.id)
                      .values(unit_amount_minor=9 * 10**18))
            s.execute(update(ServiceQuantity).where(ServiceQuantity.service_id.in_(
                select(Service.id).where(Service.billing_account_id == broken.id)))
                .values(quantity=2))
            s.commit()

        result = self.billfold(env, "bill-run", "--as-of", "2026-03-01")

        assert result.returncode == 1, result.stderr
        assert "failed: 1" in result.stdout
        assert f"FAILED {broken.id}" in result.stderr
        with sessions() as s:
            assert s.scalar(select(func.count()).select_from(BilledPeriod).filter_by(
                tenant_id=scope.tenant_id, bill_date=date(2026, 3, 1))) == 43  # all but one

    def test_the_command_bills_chunks_in_threads_side_by_side(self, database, monkeypatch):
        sessions, _ = database
        scope, run_id = chunked_run(sessions, "Threaded Biller")
        # On PostgreSQL each thread's first chunk waits until the other thread holds one
        # too: the two are billed side by side, not one after the other. (On SQLite the
        # threads take turns at writing, and the first to wait would hold the turn.)
        both, first = threading.Barrier(2, timeout=60), set()
        bill_chunk = billrun.bill_chunk

        def side_by_side(session: Session, job: Any, **options: Any) -> None:
            if BACKEND == "postgres" and threading.get_ident() not in first:
                first.add(threading.get_ident())
                both.wait()
            bill_chunk(session, job, **options)

        monkeypatch.setattr(billrun, "bill_chunk", side_by_side)
        monkeypatch.setenv("BILLFOLD_WORKER_THREADS", "2")
        get_settings.cache_clear()
        try:
            cli._bill_until_done(sessions, {run_id: cli._Run(run_id, scope, 44, True)},
                                 [cli._Run(run_id, scope, 44, True)])
        finally:
            get_settings.cache_clear()

        claimed_by = assert_billed_once_by(sessions, scope, run_id)
        if BACKEND == "postgres":
            assert len(claimed_by) == 2

    def test_the_workers_job_threads_bill_a_runs_chunks(self, database, tmp_path):
        sessions, _ = database
        scope, run_id = chunked_run(sessions, "Job Thread Biller")
        stop = threading.Event()
        started = cli._start_job_threads(Settings(data_dir=tmp_path / "var"), sessions,
                                         "test-worker", 2, stop)
        try:
            deadline = time.monotonic() + 120
            while True:
                with sessions() as s:
                    if billrun.report(s, scope, run_id).run.status == "completed":
                        break
                assert time.monotonic() < deadline, "the job threads billed nothing"
                time.sleep(0.2)
        finally:
            stop.set()
            for thread in started:
                thread.join(timeout=60)

        assert assert_billed_once_by(sessions, scope, run_id) <= {
            "test-worker-jobs-1", "test-worker-jobs-2"}

    def test_in_threads_runs_the_work_in_as_many_threads_and_raises_their_error(self):
        ran: list[int] = []
        together = threading.Barrier(3, timeout=30)  # all three alive at once

        def work() -> None:
            together.wait()
            ran.append(threading.get_ident())
            if len(ran) == 2:
                raise RuntimeError("second thread failed")

        with pytest.raises(RuntimeError, match="second thread failed"):
            cli.in_threads(work, 3)
        assert len(set(ran)) == 3
