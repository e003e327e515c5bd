"""POST /v1/customers from 8 concurrent keep-alive clients against a real server."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench import data
from bench.server import running_server
from bench.stats import latency_ms, result
from billfold.core.db import make_engine, make_sessionmaker

TARGET_P99_MS = 50
CLIENTS = 8
WARM_UP_PER_CLIENT = 10
BARRIER_TIMEOUT_SECONDS = 600
PROCESSES_ON_POSTGRES = 2


def run(url: str, backend: str, *, quick: bool) -> list[dict[str, Any]]:
    per_client = 25 if quick else 250
    engine = make_engine(url)
    try:
        tenant = data.create_tenant(make_sessionmaker(engine))
    finally:
        engine.dispose()
    bodies = [
        body | {"billing_account": tenant.account_json()}
        for body in data.customers(seed=2, count=CLIENTS * (WARM_UP_PER_CLIENT + per_client))
    ]
    # PostgreSQL is served as in production, by one API process per core; SQLite by one
    # process, whose writers take turns on an in-process lock (DESIGN: the embedded default).
    processes = 1 if backend == "sqlite" else PROCESSES_ON_POSTGRES
    with tempfile.TemporaryDirectory(prefix="billfold_bench_http_") as tmp, \
            running_server(url, Path(tmp), processes) as base_url:
        latencies, errors, elapsed = load(base_url, tenant.api_key, bodies, per_client)
    summary = latency_ms(latencies)
    row = result(
        "http_create", backend, metric="p99 latency", unit="ms", target=TARGET_P99_MS,
        higher_is_better=False, measured=summary["p99_ms"],
        details=summary | {"clients": CLIENTS, "requests_per_client": per_client,
                           "warm_up_requests": CLIENTS * WARM_UP_PER_CLIENT,
                           "server_processes": processes,
                           "throughput_rps": round(len(latencies) / elapsed, 1),
                           "seconds": round(elapsed, 3), "errors": errors},
    )
    row["passed"] = row["passed"] and not errors
    return [row]


def load(base_url: str, api_key: str, bodies: list[dict[str, Any]], per_client: int,
         path: str = "/v1/customers") -> tuple[list[float], list[str], float]:
    """Each client posts its share: a warm-up, then (after every client has warmed up) the
    measured requests. Returns the measured latencies, any errors and the wall time."""
    share = WARM_UP_PER_CLIENT + per_client
    # Timeouts keep a client that died from hanging the run (BrokenBarrierError instead).
    ready = threading.Barrier(CLIENTS + 1, timeout=BARRIER_TIMEOUT_SECONDS)
    done = threading.Barrier(CLIENTS + 1, timeout=BARRIER_TIMEOUT_SECONDS)
    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    errors: list[str] = []

    def client(index: int) -> None:
        mine = bodies[index * share:(index + 1) * share]
        with httpx.Client(base_url=base_url, trust_env=False, timeout=30,
                          headers={"Authorization": f"Bearer {api_key}"}) as http:
            try:
                for body in mine[:WARM_UP_PER_CLIENT]:
                    _post(http, path, body, errors)
                ready.wait()
                for body in mine[WARM_UP_PER_CLIENT:]:
                    started = time.perf_counter()
                    _post(http, path, body, errors)
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


def _post(http: httpx.Client, path: str, body: dict[str, Any], errors: list[str]) -> None:
    try:
        response = http.post(path, json=body)
    except httpx.HTTPError as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
        return
    if response.status_code != 201:
        errors.append(f"{response.status_code}: {response.text[:300]}")
