"""Payments through a real server, 8 concurrent keep-alive clients:

- ``pay_sessions``: POST /v1/pay_sessions, each over an open invoice, from one server
  process; target ≥ 1,000 sessions/s.
- ``payment_record``: POST /v1/payments recording a payment on an invoice — allocation,
  one ledger entry, the invoice's new status, events — each on its own account; target
  p99 ≤ 50 ms.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from bench import data
from bench.server import running_server
from bench.stats import latency_ms, result
from billfold.core.db import make_engine, make_sessionmaker, transaction
from billfold.customers import service as customers
from billfold.invoicing import service as invoicing

CLIENTS = 8
WARM_UP_PER_CLIENT = 10
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
        latencies, errors, elapsed = _load(base_url, tenant.api_key, "/v1/pay_sessions", bodies,
                                           per_client)
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
        latencies, errors, elapsed = _load(base_url, tenant.api_key, "/v1/payments", bodies,
                                           per_client)
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
        return tenant, _invoices(factory, tenant, count)
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


def _load(base_url: str, api_key: str, path: str, bodies: list[dict[str, Any]],
          per_client: int) -> tuple[list[float], list[str], float]:
    """Each client posts its share: a warm-up, then (after every client has warmed up) the
    measured requests. Returns the measured latencies, any errors and the wall time."""
    share = WARM_UP_PER_CLIENT + per_client
    ready = threading.Barrier(CLIENTS + 1, timeout=600)
    done = threading.Barrier(CLIENTS + 1, timeout=600)
    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    errors: list[str] = []

    def client(index: int) -> None:
        mine = bodies[index * share:(index + 1) * share]
        with httpx.Client(base_url=base_url, trust_env=False, timeout=30,
                          headers={"Authorization": f"Bearer {api_key}"}) as http:
            post = _poster(http, path, errors)
            try:
                for body in mine[:WARM_UP_PER_CLIENT]:
                    post(body)
                ready.wait()
                for body in mine[WARM_UP_PER_CLIENT:]:
                    started = time.perf_counter()
                    post(body)
                    latencies[index].append(time.perf_counter() - started)
            finally:
                done.wait()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    done.wait()
    elapsed = time.perf_counter() - started
    for thread in threads:
        thread.join()
    return [s for per in latencies for s in per], errors, elapsed


def _poster(http: httpx.Client, path: str, errors: list[str]) -> Callable[[dict[str, Any]], None]:
    def post(body: dict[str, Any]) -> None:
        try:
            response = http.post(path, json=body)
        except httpx.HTTPError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            return
        if response.status_code != 201:
            errors.append(f"{response.status_code}: {response.text[:300]}")

    return post
