"""One-page, ten-line invoices rendered to PDF/A-3b (with ``invoice.json`` attached) in this
process, against the same target twice: by one ``InvoiceRenderer``, one after another, and
by one renderer per core (at least two) in as many threads.

The first two cases involve no database (the figures are the same on either backend); the
third, ``worker_process_end_to_end``, is a real ``billfold worker`` working off the render
jobs of a bill run, which is what the target is about: invoices per second per worker
process. The invoices are generated deterministically in all seven shipped
languages and seven currencies (JPY without decimals), each with its own customer, amounts
and period, and a tax rate that varies line by line (so every line prints its rate). The
first ``WARM_UP`` renders of each renderer (fonts loaded, template parsed) are not measured.
Rendering is CPU-bound, so other load on the machine lowers the wall-clock rate;
``invoices_per_cpu_second`` in the details is the steadier figure. Typst lets go of the GIL
while it compiles, so threads do render in parallel, but only on cores nobody else is using.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from sqlalchemy import func, select

from bench import bill_run, data
from bench.stats import latency_ms, result
from billfold.core import jobs
from billfold.core.db import make_engine, make_sessionmaker, transaction
from billfold.invoicing import billrun, delivery
from billfold.invoicing.document import DocumentLine, InvoiceDocument, Party, PostalAddress
from billfold.invoicing.render import InvoiceRenderer
from billfold.money import Money

TARGET_INVOICES_PER_SECOND = 150
WARM_UP = 20
LINES = 10
LOCALES = (("en_US", "USD"), ("sv_SE", "SEK"), ("de_DE", "EUR"), ("fr_FR", "EUR"),
           ("es_MX", "MXN"), ("pt_BR", "BRL"), ("ru_RU", "RUB"), ("en_US", "JPY"))
PRODUCTS = ("Cloud hosting — standard plan", "Support hours", "Water usage (m³)",
            "Metered API calls", "Managed backup", "Additional seat", "Storage (GB-month)",
            "Late payment fee", "Installation service", "Equipment rental")
BILLER = Party(
    "Northwind Utilities Inc",
    PostalAddress("1 Main St", "Suite 200", "Springfield", "IL", "62701", "US"),
    email="billing@northwind.example", phone="+1 217 555 0100", tax_number="12-3456789",
)


def run(url: str, backend: str, *, quick: bool) -> list[dict[str, Any]]:
    count = 150 if quick else 1_500
    docs = list(invoices(seed=11, count=WARM_UP + count))
    threads = max(2, os.cpu_count() or 1)
    return [_case(docs, count, backend, threads=1),
            _case(docs, count, backend, threads=threads),
            _worker_case(url, backend, count)]


def _worker_case(url: str, backend: str, count: int) -> dict[str, Any]:
    """What a worker process does end to end: ``count`` invoices from a bill run, each a
    render job, worked off by one real ``billfold worker`` (its loop and its job
    threads, one per core) — claiming the job, reading the invoice, rendering, storing
    the PDF, queueing the email. Timed from the worker's start until no render job is
    left, the process's start-up included."""
    engine = make_engine(url)
    try:
        sessions = make_sessionmaker(engine)
        tenant = data.create_tenant(sessions, name="PDF Biller")
        bill_run.seed(sessions, tenant, count)
        with sessions() as session, transaction(session):
            billrun.start_bill_run(session, tenant.scope, as_of_date=bill_run.AS_OF,
                                   actor=data.ACTOR)
        while jobs.run_pending(sessions, {billrun.JOB_KIND: billrun.bill_chunk},
                               worker_id="bench-billing", kinds=[billrun.JOB_KIND]):
            pass
        left = select(func.count()).select_from(jobs.Job).where(
            jobs.Job.kind == delivery.RENDER, jobs.Job.status.in_(("queued", "running")))
        with sessions() as session:
            queued = session.scalar(left) or 0
        with tempfile.TemporaryDirectory(prefix="billfold_bench_pdf_") as tmp:
            env = os.environ | {"BILLFOLD_DATABASE_URL": url, "BILLFOLD_DATA_DIR": tmp,
                                "BILLFOLD_LOG_LEVEL": "WARNING"}
            started = time.perf_counter()
            worker = subprocess.Popen([str(Path(sys.executable).with_name("billfold")),
                                       "worker"], env=env)
            try:
                while True:
                    with sessions() as session:
                        if not session.scalar(left):
                            break
                    if worker.poll() is not None:
                        raise RuntimeError(f"billfold worker exited with {worker.returncode}")
                    time.sleep(0.1)
                elapsed = time.perf_counter() - started
            finally:
                worker.terminate()
                worker.wait(timeout=30)
    finally:
        engine.dispose()
    return result(
        "pdf_render", backend, case="worker_process_end_to_end", metric="invoices per second",
        unit="invoices/s", target=TARGET_INVOICES_PER_SECOND, higher_is_better=True,
        measured=queued / elapsed,
        details={"invoices": queued, "seconds": round(elapsed, 3),
                 "worker_threads": os.environ.get("BILLFOLD_WORKER_THREADS",
                                                  str(os.cpu_count() or 1))})


def _case(docs: list[InvoiceDocument], count: int, backend: str, *,
          threads: int) -> dict[str, Any]:
    renderers = [InvoiceRenderer() for _ in range(threads)]
    for renderer in renderers:
        for doc in docs[:WARM_UP]:
            renderer.render(doc)
    todo = iter(docs[WARM_UP:])
    take = threading.Lock()
    latencies: list[float] = []
    sizes: list[int] = []

    def work(renderer: InvoiceRenderer) -> None:
        while True:
            with take:
                doc = next(todo, None)
            if doc is None:
                return
            began = time.perf_counter()
            size = len(renderer.render(doc))
            latencies.append(time.perf_counter() - began)
            sizes.append(size)

    workers = [threading.Thread(target=work, args=(r,)) for r in renderers[1:]]
    cpu_started, started = time.process_time(), time.perf_counter()
    for worker in workers:
        worker.start()
    work(renderers[0])
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    # Outside the timing: the case is only what it claims if every invoice fits one page.
    page_counts = {len(PdfReader(io.BytesIO(renderers[0].render(doc))).pages)
                   for doc in docs[WARM_UP::max(1, count // 50)]}
    case = "one_page_ten_lines" if threads == 1 else f"one_page_ten_lines_{threads}_threads"
    row = result(
        "pdf_render", backend, case=case, metric="invoices per second",
        unit="invoices/s", target=TARGET_INVOICES_PER_SECOND, higher_is_better=True,
        measured=count / elapsed,
        details=latency_ms(latencies) | {
            "invoices": count, "lines_per_invoice": LINES, "threads": threads,
            "cpu_count": os.cpu_count(), "seconds": round(elapsed, 3),
            "cpu_seconds": round(cpu, 3), "invoices_per_cpu_second": round(count / cpu, 1),
            "mean_pdf_bytes": sum(sizes) // count, "page_counts_sampled": sorted(page_counts),
            "warm_up_renders": WARM_UP, "pdf_standard": "PDF/A-3b",
        },
    )
    row["passed"] = row["passed"] and page_counts == {1}
    return row


def invoices(seed: int, count: int) -> Iterator[InvoiceDocument]:
    """``count`` one-page invoices of ``LINES`` lines, cycling through LOCALES."""
    rng = random.Random(seed)
    customers = data.customers(seed=seed, count=count)
    for i, customer in zip(range(count), customers, strict=False):
        language, currency = LOCALES[i % len(LOCALES)]
        start = date(2026, 1, 1) + timedelta(days=rng.randrange(0, 330))
        end = start + timedelta(days=29)
        lines = tuple(_line(rng, start, end, currency) for _ in range(LINES))
        subtotal = sum(line.amount_minor for line in lines)
        tax = sum(line.tax_minor for line in lines)
        paid = rng.choice((0, 0, subtotal // 2))
        address = customer["billing_address"]
        name = customer.get("company_name") or f"{customer['first_name']} {customer['last_name']}"
        yield InvoiceDocument(
            invoice_id=f"inv_bench_{i:06d}", number=f"INV-{i + 1:06d}", status="open",
            language=language, currency=currency, issue_date=end + timedelta(days=1),
            due_date=end + timedelta(days=31), period_start=start, period_end=end,
            biller=BILLER,
            bill_to=Party(name, PostalAddress(address["line1"], None, address["city"],
                                              address["region"], address["postal_code"],
                                              address["country"]),
                          email=customer["primary_email"]),
            account_number=f"ACCT-{i + 1:06d}", lines=lines, subtotal_minor=subtotal,
            tax_minor=tax, total_minor=subtotal + tax, amount_paid_minor=paid,
            amount_due_minor=subtotal + tax - paid,
            payment_url=f"https://billing.example/pay/ps_{seed}_{i}",
            notes=("Thank you for your business.",),
        )


def _line(rng: random.Random, start: date, end: date, currency: str) -> DocumentLine:
    quantity = rng.randint(1, 40)
    unit = rng.randint(100, 25_000)
    amount = quantity * unit
    tax_percent = rng.choice(("0", "6", "8.25", "12", "20", "25"))
    tax = Money(amount, currency).percent(Decimal(tax_percent)).minor
    return DocumentLine(
        description=rng.choice(PRODUCTS), quantity=quantity, amount_minor=amount, tax_minor=tax,
        unit_amount_minor=unit, tax_percent=tax_percent, period_start=start, period_end=end,
    )
