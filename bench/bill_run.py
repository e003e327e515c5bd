"""A bill run over many billing accounts, each with three recurring services.

Seeding (not measured): customers with one account each through the bulk import path, then
one order per account with three monthly services written directly. Measured: the run from
POST-equivalent (start_bill_run) to the last chunk done, with one worker process (and two
on PostgreSQL); invoices per second and each worker's peak resident memory. Then the same
date again, which must write no rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from bench import data
from bench.stats import result
from billfold.catalog import service as catalog
from billfold.core import clock, ids
from billfold.core.config import Settings
from billfold.core.db import make_engine, make_sessionmaker, transaction
from billfold.customers import bulk
from billfold.invoicing import billrun
from billfold.invoicing.models import BilledPeriod, Invoice, InvoiceLine
from billfold.ledger.models import LedgerEntry, LedgerPosting
from billfold.orders.models import Order, Service, ServiceQuantity

TARGET_INVOICES_PER_SECOND = 2_000
AS_OF = date(2026, 3, 1)
START = date(2026, 3, 1)  # services start on the bill date: one invoice per account
BATCH = 1_000
# A worker process as `billfold worker` and `billfold bill-run` run chunks: in
# BILLFOLD_WORKER_THREADS threads (one per core unless set), until no chunk is left.
WORKER = """
import sys, threading
from billfold.cli import in_threads
from billfold.core import jobs
from billfold.core.config import get_settings
from billfold.core.db import make_engine, make_sessionmaker
from billfold.invoicing import billrun
sessions = make_sessionmaker(make_engine(sys.argv[1]))
def bill():
    worker_id = f"{sys.argv[2]}-{threading.get_ident()}"
    while jobs.run_pending(sessions, {billrun.JOB_KIND: billrun.bill_chunk},
                           worker_id=worker_id, kinds=[billrun.JOB_KIND]):
        pass
in_threads(bill, get_settings().worker_threads)
"""


def run(url: str, backend: str, *, quick: bool) -> list[dict[str, Any]]:
    count = 500 if quick else 100_000
    engine = make_engine(url)
    try:
        sessions = make_sessionmaker(engine)
        tenant = data.create_tenant(sessions)
        seed(sessions, tenant, count)
    finally:
        engine.dispose()
    rows = []
    plans = [1] if backend == "sqlite" else [1, 2]
    for workers in plans:
        if workers > 1:  # a fresh tenant of the same size for the second measurement
            engine = make_engine(url)
            try:
                sessions = make_sessionmaker(engine)
                tenant = data.create_tenant(sessions, name=f"Bench Biller {workers}")
                seed(sessions, tenant, count)
            finally:
                engine.dispose()
        rows.append(_measure(url, backend, tenant, count, workers))
    return rows


def _measure(url: str, backend: str, tenant: data.BenchTenant, count: int, workers: int
             ) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        sessions = make_sessionmaker(engine)
        started = time.perf_counter()
        with sessions() as session, transaction(session):
            run_row, _ = billrun.start_bill_run(session, tenant.scope, as_of_date=AS_OF,
                                                actor=data.ACTOR)
            run_id = run_row.id
        peaks = _work(url, workers)
        elapsed = time.perf_counter() - started
        with sessions() as session:
            report = billrun.report(session, tenant.scope, run_id)
            before = _row_counts(session)
        with sessions() as session, transaction(session):
            billrun.start_bill_run(session, tenant.scope, as_of_date=AS_OF, actor=data.ACTOR)
        _work(url, 1)
        with sessions() as session:
            rerun_writes = sum(_row_counts(session).values()) - sum(before.values())
    finally:
        engine.dispose()
    invoices = report.invoice_count
    row = result(
        "bill_run", backend, case=f"{workers}_worker{'s' if workers > 1 else ''}",
        metric="invoices per second", unit="invoices/s", target=TARGET_INVOICES_PER_SECOND,
        higher_is_better=True, measured=invoices / elapsed,
        details={"billing_accounts": count, "services_per_account": 3, "invoices": invoices,
                 "failed": report.failed, "workers": workers,
                 "threads_per_worker": Settings().worker_threads,
                 "seconds": round(elapsed, 3),
                 "peak_rss_mb_per_worker": peaks, "rerun_rows_written": rerun_writes})
    row["passed"] = row["passed"] and rerun_writes == 0 and report.failed == 0 \
        and invoices == count
    return row


def _work(url: str, workers: int) -> list[float]:
    """Run ``workers`` processes until no chunk is left; their peak RSS in MB."""
    env = os.environ | {"BILLFOLD_DATABASE_URL": url}
    processes = [subprocess.Popen([sys.executable, "-c", WORKER, url, f"bench-{i}"], env=env)
                 for i in range(workers)]
    peaks = []
    for process in processes:
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"bill-run worker exited with {process.returncode}")
        peaks.append(round(usage.ru_maxrss / 1024, 1))  # kilobytes on Linux
    return peaks


def seed(sessions: sessionmaker[Session], tenant: data.BenchTenant, count: int) -> None:
    scope = tenant.scope
    with sessions() as session, transaction(session):
        product = catalog.create_product(session, scope, name="Hosting", sku="HOST",
                                         tax_category="standard")
        price = catalog.create_price(session, scope, product_id=product.id, kind="recurring",
                                     amounts_minor={"USD": 2500}, billing_timing="in_advance")
        product_id, price_id = product.id, price.id
    bodies = data.customers(seed=7, count=count)
    now = clock.utcnow()
    while True:
        batch = [next(bodies, None) for _ in range(BATCH)]
        batch = [b for b in batch if b is not None]
        if not batch:
            break
        with sessions() as session, transaction(session):
            created = bulk.create_customers(session, scope, actor=data.ACTOR, items=[
                b | {"billing_accounts": [tenant.account("USD")]} for b in batch])
            account_ids = [c.billing_account_ids[0] for c in created]
            orders, services, quantities = [], [], []
            for account_id in account_ids:
                order_id = ids.new_id("order")
                orders.append({"id": order_id, "tenant_id": scope.tenant_id, "mode": scope.mode,
                               "billing_account_id": account_id, "currency": "USD",
                               "placed_by": data.ACTOR, "created_at": now})
                for n, amount in enumerate((2500, 1200, 800), start=1):
                    service_id = ids.new_id("service")
                    services.append({
                        "id": service_id, "tenant_id": scope.tenant_id, "mode": scope.mode,
                        "billing_account_id": account_id, "order_id": order_id,
                        "product_id": product_id, "price_id": price_id,
                        "description": f"Service {n}", "currency": "USD",
                        "unit_amount_minor": amount, "billing_timing": "in_advance",
                        "tax_category": "standard", "tax_inclusive": False,
                        "start_date": START, "end_date": None, "status": "active",
                        "billed_through": None, "created_at": now, "updated_at": now})
                    quantities.append({
                        "id": ids.new_id("service_quantity"), "tenant_id": scope.tenant_id,
                        "mode": scope.mode, "service_id": service_id, "effective_date": START,
                        "quantity": 1, "created_at": now})
            session.execute(insert(Order), orders)
            session.execute(insert(Service), services)
            session.execute(insert(ServiceQuantity), quantities)
    # Accounts start on 1 February: move them past that empty bill date so the run bills
    # exactly one date (1 March) per account.
    with sessions() as session, transaction(session):
        from billfold.customers.models import BillingAccount

        session.execute(BillingAccount.__table__.update().where(
            BillingAccount.tenant_id == scope.tenant_id).values(next_bill_date=AS_OF))


def _row_counts(session: Session) -> dict[str, int]:
    return {model.__tablename__: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Invoice, InvoiceLine, BilledPeriod, LedgerEntry, LedgerPosting)}
