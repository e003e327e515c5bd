"""Prefix search through the API over a tenant with 100,000 billing accounts.

The tenant is seeded through the service layer (50,000 customers with two accounts each,
500 customers per transaction), so every row is exactly what the service would write; for
PostgreSQL the service writes to SQLite and the rows are copied (see ``_seed``). The
queries are prefixes of values that exist, in a fixed mix per endpoint, typed in the case a
person would type them; each request asks for the first page of 10.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from bench import data, service_create
from bench.backends import settle_statistics
from bench.server import running_server
from bench.stats import latency_ms, result
from billfold.core.db import make_engine, make_sessionmaker
from billfold.customers.models import BillingAccount, Customer

TARGET_P95_MS = 20
SEED_BATCH = 500
REQUESTS = 500
WARM_UP = 50


def run(url: str, backend: str, *, quick: bool) -> list[dict[str, Any]]:
    customer_count = 2_500 if quick else 50_000
    bodies = list(data.customers(seed=3, count=customer_count))
    with tempfile.TemporaryDirectory(prefix="billfold_bench_search_") as tmp:
        tenant, seeded = _seed(url, bodies, Path(tmp))
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            account_numbers = list(session.scalars(select(BillingAccount.number)))
            customer_numbers = list(session.scalars(select(Customer.number)))
    finally:
        engine.dispose()
    rng = random.Random(4)
    names = [_name(b) for b in bodies]
    emails = [b["primary_email"] for b in bodies]
    mixes = {
        # (kind, share of requests, how to pick a query)
        "billing_accounts": [
            ("customer_name", 0.6, lambda: _prefix(rng, rng.choice(names), 3, 5)),
            ("account_number", 0.4, lambda: _prefix(rng, rng.choice(account_numbers), 3, 10)),
        ],
        "customers": [
            ("name", 0.5, lambda: _prefix(rng, rng.choice(names), 3, 5)),
            ("customer_number", 0.25, lambda: _prefix(rng, rng.choice(customer_numbers), 3, 10)),
            ("email", 0.25, lambda: _prefix(rng, rng.choice(emails), 3, 5)),
        ],
    }
    rows = []
    with tempfile.TemporaryDirectory(prefix="billfold_bench_search_") as tmp, \
            running_server(url, Path(tmp)) as base_url, \
            httpx.Client(base_url=base_url, trust_env=False, timeout=30,
                         headers={"Authorization": f"Bearer {tenant.api_key}"}) as http:
        for endpoint, mix in mixes.items():
            plan = [_pick(rng, mix) for _ in range(WARM_UP + REQUESTS)]
            measured = _query(http, f"/v1/{endpoint}", plan)
            all_latencies = [s for _, s, _ in measured[WARM_UP:]]
            summary = latency_ms(all_latencies)
            by_kind = {
                kind: latency_ms([s for k, s, _ in measured[WARM_UP:] if k == kind])
                for kind, _, _ in mix
            }
            empty = sum(1 for _, _, n in measured[WARM_UP:] if n == 0)
            row = result(
                "search", backend, case=endpoint, metric="p95 latency", unit="ms",
                target=TARGET_P95_MS, higher_is_better=False, measured=summary["p95_ms"],
                details=summary | {"by_kind": by_kind, "empty_pages": empty,
                                   "warm_up_requests": WARM_UP, "page_size": 10} | seeded)
            row["passed"] = row["passed"] and empty == 0
            rows.append(row)
    return rows


def _seed(url: str, bodies: list[dict[str, Any]], tmp: Path
          ) -> tuple[data.BenchTenant, dict[str, Any]]:
    """Create a customer with two accounts per body through the service layer's import
    path (bulk.create_customers: the same checks as one at a time, multi-row inserts)."""
    engine = make_engine(url)
    try:
        sessions = make_sessionmaker(engine)
        tenant = data.create_tenant(sessions)
        seconds = service_create.create_bulk(sessions, tenant, bodies, batch=SEED_BATCH)
        settle_statistics(engine)
    finally:
        engine.dispose()
    details: dict[str, Any] = {
        "customers": len(bodies), "billing_accounts": 2 * len(bodies),
        "seeded_through": "service layer (bulk.create_customers)",
        "seed_seconds": round(seconds, 1),
        "seed_accounts_per_second": round(2 * len(bodies) / seconds, 1)}
    return tenant, details


def _name(body: dict[str, Any]) -> str:
    return str(body.get("company_name") or f"{body['first_name']} {body['last_name']}")


def _prefix(rng: random.Random, value: str, shortest: int, longest: int) -> str:
    return value[:rng.randint(shortest, longest)]


def _pick(rng: random.Random, mix: list[Any]) -> tuple[str, str]:
    kinds = [kind for kind, _, _ in mix]
    (index,) = rng.choices(range(len(mix)), weights=[share for _, share, _ in mix])
    return kinds[index], mix[index][2]()


def _query(http: httpx.Client, path: str, plan: list[tuple[str, str]]
           ) -> list[tuple[str, float, int]]:
    """Run the queries one after another; (kind, seconds, rows on the page) for each."""
    out = []
    for kind, query in plan:
        started = time.perf_counter()
        response = http.get(path, params={"query": query, "limit": 10})
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}?query={query!r}: {response.status_code} "
                               f"{response.text[:300]}")
        out.append((kind, elapsed, len(response.json()["data"])))
    return out
