"""POST /v1/customers from 8 concurrent keep-alive clients against a real server."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench import data
from bench.load import post_all
from bench.server import running_server
from bench.stats import latency_ms, result
from billfold.core.db import make_engine, make_sessionmaker

TARGET_P99_MS = 50
CLIENTS = 8
WARM_UP_PER_CLIENT = 10
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
    outcome = post_all(base_url, path, api_key, bodies[:CLIENTS * share], clients=CLIENTS,
                       warm_up_per_client=WARM_UP_PER_CLIENT)
    return outcome.latencies, outcome.errors, outcome.elapsed
