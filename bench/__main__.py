"""``python -m bench [BENCHMARK ...] [--backend sqlite|postgres] [--quick]``

Runs the chosen benchmarks (all by default) on the chosen backends (both by default), each
benchmark on a fresh database, prints a table and writes the JSON results. Exits 1 when a
target is missed or a benchmark fails, so CI can run it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    bill_run,
    http_create,
    machine,
    payments,
    pdf_render,
    portal_history,
    search,
    service_create,
)
from bench.backends import BACKENDS, DEFAULT_POSTGRES_URL, autovacuum_stand_in, fresh_database

Benchmark = Callable[..., list[dict[str, Any]]]
BENCHMARKS: dict[str, Benchmark] = {
    "service_create": service_create.run,
    "http_create": http_create.run,
    "search": search.run,
    "pdf_render": pdf_render.run,
    "bill_run": bill_run.run,
    "pay_sessions": payments.run_sessions,
    "payment_record": payments.run_record,
    "portal_history": portal_history.run,
}
RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # Unwind on SIGTERM as on Ctrl-C, so the server is stopped and the database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if unknown := [b for b in args.benchmarks if b not in BENCHMARKS]:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    chosen = args.benchmarks or list(BENCHMARKS)
    backends = args.backend or list(BACKENDS)
    started_at = datetime.now(UTC)
    report: dict[str, Any] = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "quick": args.quick,
        "argv": sys.argv[1:] if argv is None else argv,
        "machine": machine.describe(args.postgres_url),
        "results": [],
    }
    for name in chosen:
        for backend in backends:
            print(f"-> {name} on {backend}{' (quick)' if args.quick else ''}", flush=True)
            began = time.perf_counter()
            try:
                with fresh_database(backend, args.postgres_url) as url, \
                        autovacuum_stand_in(url) as standing_in:
                    rows = BENCHMARKS[name](url, backend, quick=args.quick)
                for row in rows:
                    row["analyze_every_minute_by_bench"] = standing_in
            except Exception as exc:
                traceback.print_exc()
                rows = [{"benchmark": name, "case": None, "backend": backend, "passed": False,
                         "error": f"{type(exc).__name__}: {exc}"}]
            for row in rows:
                row["wall_seconds"] = round(time.perf_counter() - began, 1)
                print("   " + _line(row), flush=True)
            report["results"].extend(rows)
    report["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["all_passed"] = all(r["passed"] is not False for r in report["results"])
    path = _write(report, started_at)
    print(f"results: {path}")
    return 0 if report["all_passed"] else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmarks", nargs="*", metavar="BENCHMARK",
                        help=f"any of {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--backend", action="append", choices=BACKENDS,
                        help="sqlite or postgres; repeat for both (default: both)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: a smoke test of the suite, not a measurement")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "BILLFOLD_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="maintenance database used to create and drop billfold_bench_* databases")
    return parser


def _line(row: dict[str, Any]) -> str:
    name = row["benchmark"] + (f" {row['case']}" if row.get("case") else "")
    if "error" in row:
        return f"{name:<32} {row['backend']:<9} ERROR {row['error']}"
    target = row["target"]
    figure = f"{name:<32} {row['backend']:<9} {row['measured']:>10,.2f} {row['unit']:<11}"
    if target is None:
        return f"{figure} (no target: for comparison)"
    verdict = "pass" if row["passed"] else "MISS"
    return f"{figure} (target {target['comparison']} {target['value']:,}) {verdict}"


def _write(report: dict[str, Any], started_at: datetime) -> Path:
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(report, indent=2) + "\n"
    path = RESULTS / f"{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(text)
    (RESULTS / "latest.json").write_text(text)
    return path


if __name__ == "__main__":
    sys.exit(main())
