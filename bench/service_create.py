"""Customers with two billing accounts each, created through the service layer, two ways:
the import path (``bulk.create_customers``, one call per batch of customers), which the
target of 2,000 accounts/s judges, and one call per customer and account
(``create_customer`` + ``add_billing_account``, what the API does per request), reported
beside it for comparison.

Why the target judges the import path: creating 10,000 customers at once is an import, and
one at a time the database's own work sets the pace. On PostgreSQL one customer with its
default account is at least five round trips that insert or look up (customer, account,
history, number checks), each a few tenths of a millisecond of server work on indexed
tables, before any Python runs; one at a time cannot reach 2,000 accounts/s there however
fast the Python is. The import path does the same checks and writes the same rows a batch
at a time. The per-request cost is what the ``http_create`` benchmark judges.

Batches of 100 customers (200 accounts) per transaction: large enough that the commit
(an fsync of the WAL on SQLite, a round trip and WAL flush on PostgreSQL) is not what we
measure, small enough to stand for an import job that must not hold locks for long.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bench import data
from bench.stats import result
from billfold.core.db import make_engine, make_sessionmaker, transaction
from billfold.customers import bulk
from billfold.customers import service as customers

TARGET_ACCOUNTS_PER_SECOND = 2_000
BATCH = 100


def run(url: str, backend: str, *, quick: bool) -> list[dict[str, Any]]:
    count = 500 if quick else 10_000
    results = []
    for case, create_all, target in (("bulk", create_bulk, TARGET_ACCOUNTS_PER_SECOND),
                                     ("one_at_a_time", create, None)):
        engine = make_engine(url)
        try:
            sessions = make_sessionmaker(engine)
            tenant = data.create_tenant(sessions)
            bodies = list(data.customers(seed=1, count=count))
            elapsed = create_all(sessions, tenant, bodies, batch=BATCH)
        finally:
            engine.dispose()
        accounts = 2 * count
        results.append(result(
            "service_create", backend, case=case, metric="accounts per second",
            unit="accounts/s", target=target, higher_is_better=True,
            measured=accounts / elapsed,
            details={"customers": count, "billing_accounts": accounts,
                     "customers_per_transaction": BATCH, "seconds": round(elapsed, 3)},
        ))
    return results


def create_bulk(sessions: sessionmaker[Session], tenant: data.BenchTenant,
                bodies: list[dict[str, Any]], *, batch: int) -> float:
    """The same customers and accounts through the import path, a batch per call."""
    started = time.perf_counter()
    for start in range(0, len(bodies), batch):
        with sessions() as session, transaction(session):
            bulk.create_customers(session, tenant.scope, actor=data.ACTOR, items=[
                body | {"billing_accounts": [tenant.account("USD"), tenant.account("EUR")]}
                for body in bodies[start:start + batch]])
    return time.perf_counter() - started


def create(sessions: sessionmaker[Session], tenant: data.BenchTenant,
           bodies: list[dict[str, Any]], *, batch: int) -> float:
    """Create a customer with a default and a second account for each body; return the
    seconds it took, commits included."""
    started = time.perf_counter()
    for start in range(0, len(bodies), batch):
        with sessions() as session, transaction(session):
            for body in bodies[start:start + batch]:
                customer, _ = customers.create_customer(
                    session, tenant.scope, actor=data.ACTOR,
                    data=body | {"billing_account": tenant.account("USD")})
                customers.add_billing_account(
                    session, tenant.scope, customer_id=customer.id, actor=data.ACTOR,
                    data=tenant.account("EUR"))
    return time.perf_counter() - started
