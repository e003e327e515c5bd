"""Payments through a real server, 8 concurrent keep-alive clients:

- ``pay_sessions``: POST /v1/pay_sessions, each over an open invoice, from one server
  process; target ≥ 1,000 sessions/s.
- ``payment_record``: POST /v1/payments recording a payment on an invoice — allocation,
  one ledger entry, the invoice's new status, events — each on its own account; target
  p99 ≤ 50 ms.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bench import data, http_create
from bench.backends import settle_statistics
from bench.server import running_server
from bench.stats import latency_ms, result
from billfold.core.db import make_engine, make_sessionmaker, transaction
from billfold.customers import service as customers
from billfold.invoicing import service as invoicing

CLIENTS = http_create.CLIENTS
WARM_UP_PER_CLIENT = http_create.WARM_UP_PER_CLIENT
TARGET_SESSIONS_PER_SECOND = 1000
TARGET_P99_MS = 50
PROCESSES_ON_POSTGRES = 2
INVOICE_MINOR = 12_500


def run_sessions(url: str, backend: str, *, quick: bool) -> list[dict[str, Any]]:
    per_client = 30 if quick else 300
    tenant, invoices = _prepare(url, 200)
    bodies = [{"invoices": [{"invoice_id": invoices[i % len(invoices)][1],
                             "allow_partial": True, "card_fee_minor": 100}]}
              for i in range(CLIENTS * (WARM_UP_PER_CLIENT + per_client))]
    with tempfile.TemporaryDirectory(prefix="billfold_bench_pay_") as tmp, \
            running_server(url, Path(tmp), 1) as base_url:
        latencies, errors, elapsed = http_create.load(base_url, tenant.api_key, bodies,
                                                      per_client, "/v1/pay_sessions")
    summary = latency_ms(latencies)
    rate = len(latencies) / elapsed
    row = result("pay_sessions", backend, metric="throughput", unit="sessions/s",
                 target=TARGET_SESSIONS_PER_SECOND, higher_is_better=True, measured=rate,
                 details=summary | {"clients": CLIENTS, "requests_per_client": per_client,
                                    "server_processes": 1, "seconds": round(elapsed, 3),
                                    "errors": errors[:5], "error_count": len(errors)})
    row["passed"] = row["passed"] and not errors
    return [row]


def run_record(url: str, backend: str, *, quick: bool) -> list[dict[str, Any]]:
    per_client = 25 if quick else 250
    count = CLIENTS * (WARM_UP_PER_CLIENT + per_client)
    tenant, invoices = _prepare(url, count)
    bodies = [{"billing_account_id": account_id, "amount_minor": INVOICE_MINOR,
               "method": "check", "invoice_ids": [invoice_id], "reference": f"Check {i}"}
              for i, (account_id, invoice_id) in enumerate(invoices)]
    processes = 1 if backend == "sqlite" else PROCESSES_ON_POSTGRES
    with tempfile.TemporaryDirectory(prefix="billfold_bench_pay_") as tmp, \
            running_server(url, Path(tmp), processes) as base_url:
        latencies, errors, elapsed = http_create.load(base_url, tenant.api_key, bodies,
                                                      per_client, "/v1/payments")
    summary = latency_ms(latencies)
    row = result("payment_record", backend, metric="p99 latency", unit="ms",
                 target=TARGET_P99_MS, higher_is_better=False, measured=summary["p99_ms"],
                 details=summary | {"clients": CLIENTS, "requests_per_client": per_client,
                                    "server_processes": processes,
                                    "throughput_rps": round(len(latencies) / elapsed, 1),
                                    "seconds": round(elapsed, 3), "errors": errors[:5],
                                    "error_count": len(errors)})
    row["passed"] = row["passed"] and not errors
    return [row]


def _prepare(url: str, count: int) -> tuple[data.BenchTenant, list[tuple[str, str]]]:
    """A tenant with ``count`` accounts, each owing one open invoice."""
    engine = make_engine(url)
    try:
        factory = make_sessionmaker(engine)
        tenant = data.create_tenant(factory)
        made = _invoices(factory, tenant, count)
        settle_statistics(engine)
        return tenant, made
    finally:
        engine.dispose()


def _invoices(factory: sessionmaker[Session], tenant: data.BenchTenant, count: int
              ) -> list[tuple[str, str]]:
    made: list[tuple[str, str]] = []
    bodies = list(data.customers(seed=7, count=count))
    for start in range(0, count, 200):
        with factory() as session, transaction(session):
            for body in bodies[start:start + 200]:
                _, account = customers.create_customer(
                    session, tenant.scope, data=body | {"billing_account": tenant.account()},
                    actor=data.ACTOR)
                draft = invoicing.create_draft(
                    session, tenant.scope, billing_account_id=account.id, actor=data.ACTOR,
                    lines=[{"description": "Consulting", "quantity": 1,
                            "unit_amount_minor": INVOICE_MINOR}])
                invoicing.finalize(session, tenant.scope, invoice_id=draft.id, actor=data.ACTOR)
                made.append((account.id, draft.id))
    return made
