"""The payer portal's invoice history through a real server: one payer user granted three
billing accounts holding 5,000 invoices between them, in a tenant whose other accounts
hold 20,000 more. Measured one request after another, signed in by the session cookie:
GET /portal/invoices (page 1, newest first, 50 a page) and the page the "Next page" links
lead to 99 pages on (page 100, the last), each p95 ≤ 50 ms.

Invoices are written with one Core INSERT per 1,000 rows: the page reads invoices and
nothing else, so their ledger entries would only slow the seeding.
"""

from __future__ import annotations

import html
import random
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from itertools import islice
from pathlib import Path
from typing import Any, cast

import httpx
from sqlalchemy import Table
from sqlalchemy.orm import Session, sessionmaker

from bench import data
from bench.backends import settle_statistics
from bench.server import running_server
from bench.stats import latency_ms, result
from billfold.access import payers
from billfold.core import clock, ids
from billfold.core.db import make_engine, make_sessionmaker, transaction
from billfold.customers import service as customers
from billfold.invoicing.models import Invoice
from billfold.web.pages import portal, portal_base

TARGET_P95_MS = 50
ACCOUNT_SHARES = (0.5, 0.3, 0.2)  # of the payer's invoices, per granted account
OTHER_ACCOUNTS = 100
WARM_UP = 20
INSERT_BATCH = 1000
FIRST_ISSUE = date(2012, 1, 2)
_NEXT = re.compile(r'<a href="([^"]+)" rel="next">')
_ROW = re.compile(r'<th scope="row">')


def run(url: str, backend: str, *, quick: bool) -> list[dict[str, Any]]:
    payer_invoices, other_invoices = (600, 1_200) if quick else (5_000, 20_000)
    requests = 30 if quick else 300
    session_cookie, seeded = _seed(url, payer_invoices, other_invoices)
    last_page = -(-payer_invoices // portal.PAGE_SIZE)
    rows = []
    with tempfile.TemporaryDirectory(prefix="billfold_bench_portal_") as tmp, \
            running_server(url, Path(tmp)) as base_url, \
            httpx.Client(base_url=base_url, trust_env=False, timeout=30,
                         cookies={portal_base.SESSION_COOKIE: session_cookie}) as http:
        paths = _page_paths(http, last_page)
        for case, path in (("page_1", paths[0]), (f"page_{last_page}", paths[-1])):
            seconds = _time(http, path, WARM_UP + requests)[WARM_UP:]
            summary = latency_ms(seconds)
            rows.append(result(
                "portal_history", backend, case=case, metric="p95 latency", unit="ms",
                target=TARGET_P95_MS, higher_is_better=False, measured=summary["p95_ms"],
                details=summary | seeded | {"page_size": portal.PAGE_SIZE,
                                            "warm_up_requests": WARM_UP, "path": path}))
    return rows


def _seed(url: str, payer_invoices: int, other_invoices: int
          ) -> tuple[str, dict[str, Any]]:
    """The tenant, the payer's three accounts and the others, their invoices, and a signed-in
    session of the payer user; the session's cookie value."""
    engine = make_engine(url)
    try:
        factory = make_sessionmaker(engine)
        tenant = data.create_tenant(factory)
        began = time.perf_counter()
        granted = _accounts(factory, tenant, len(ACCOUNT_SHARES), seed=11)
        others = _accounts(factory, tenant, OTHER_ACCOUNTS, seed=12)
        rng = random.Random(5)
        counts = [round(payer_invoices * share) for share in ACCOUNT_SHARES]
        counts[0] += payer_invoices - sum(counts)
        owners = [a for a, n in zip(granted, counts, strict=True) for _ in range(n)]
        owners += [rng.choice(others) for _ in range(other_invoices)]
        rng.shuffle(owners)  # interleaved in id order, as bill runs would leave them
        _insert_invoices(factory, tenant, owners, rng)
        with factory() as session, transaction(session):
            user = payers.new_user(session, tenant.scope, email="payer@bench.example",
                                   name="Bench Payer", verified=True)
            for account in granted:
                payers.grant(session, user, account, role="owner", source="staff")
            _, cookie = payers.start_session(session, user, method="password")
        seconds = time.perf_counter() - began
        settle_statistics(engine)
    finally:
        engine.dispose()
    return cookie, {"payer_invoices": payer_invoices, "granted_accounts": len(granted),
                    "other_invoices_in_tenant": other_invoices,
                    "other_accounts": OTHER_ACCOUNTS, "seed_seconds": round(seconds, 1)}


def _accounts(factory: sessionmaker[Session], tenant: data.BenchTenant, count: int, *,
              seed: int) -> list[Any]:
    made = []
    with factory() as session, transaction(session):
        for body in data.customers(seed=seed, count=count):
            _, account = customers.create_customer(
                session, tenant.scope, data=body | {"billing_account": tenant.account()},
                actor=data.ACTOR)
            made.append(account)
    return made


def _insert_invoices(factory: sessionmaker[Session], tenant: data.BenchTenant,
                     owners: list[Any], rng: random.Random) -> None:
    table = cast(Table, Invoice.__table__)
    rows = _invoice_rows(tenant, owners, rng)
    with factory() as session, transaction(session):
        while batch := list(islice(rows, INSERT_BATCH)):
            session.execute(table.insert(), batch)


def _invoice_rows(tenant: data.BenchTenant, owners: list[Any], rng: random.Random
                  ) -> Iterator[dict[str, Any]]:
    """Issued a day apart per account, oldest first; all but the last few months paid,
    one in fifty voided, the rest open or paid in part."""
    now = clock.utcnow()
    issued_so_far: dict[str, int] = {}
    per_account = Counter(account.id for account in owners)
    for number, account in enumerate(owners, start=1):
        index = issued_so_far.get(account.id, 0)
        issued_so_far[account.id] = index + 1
        issue = FIRST_ISSUE + timedelta(days=index)
        total = rng.randint(20, 2_000) * 100 + rng.choice((0, 25, 50, 99))
        remaining = per_account[account.id] - index
        status = "void" if rng.random() < 0.02 else "paid" if remaining > 90 else \
            rng.choice(("open", "open", "partially_paid", "paid"))
        paid = {"paid": total, "partially_paid": total // 3}.get(status, 0)
        yield {
            "id": ids.new_id("invoice"), "tenant_id": tenant.scope.tenant_id,
            "mode": tenant.scope.mode, "number": f"INV-{number:07d}", "status": status,
            "billing_account_id": account.id, "invoiced_account_id": account.id,
            "customer_id": account.customer_id, "currency": "USD", "rendering_type": None,
            "bill_date": issue, "period_start": issue - timedelta(days=30),
            "period_end": issue - timedelta(days=1), "issue_date": issue,
            "due_date": issue + timedelta(days=30), "subtotal_minor": total, "tax_minor": 0,
            "total_minor": total, "amount_paid_minor": paid, "adjustments_minor": 0,
            "assignment_key": None, "bill_run_id": None, "carried_to_invoice_id": None,
            "memo": None, "pdf_key": None, "delivery_status": "not_required",
            "delivery_error": None, "created_at": now, "finalized_at": now,
            "voided_at": now if status == "void" else None}


def _page_paths(http: httpx.Client, pages: int) -> list[str]:
    """The paths of pages 1 to ``pages``, following "Next page" as a payer would."""
    paths = ["/portal/invoices"]
    while True:
        response = http.get(paths[-1])
        if response.status_code != 200:
            raise RuntimeError(f"GET {paths[-1]}: {response.status_code} {response.text[:300]}")
        shown = len(_ROW.findall(response.text))
        found = _NEXT.search(response.text)
        if shown != portal.PAGE_SIZE:
            raise RuntimeError(f"page {len(paths)} shows {shown} invoices")
        if found is None:
            break
        paths.append(html.unescape(found.group(1)))
    if len(paths) != pages:
        raise RuntimeError(f"{len(paths)} pages where {pages} were expected")
    return paths


def _time(http: httpx.Client, path: str, count: int) -> list[float]:
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        response = http.get(path)
        seconds.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
    return seconds
