"""Latency summaries and the pass/fail record every benchmark returns."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p% of values at or below."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_ms(seconds: Sequence[float]) -> dict[str, float | int]:
    ms = [s * 1000 for s in seconds]
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(sum(ms) / len(ms), 2),
    }


def result(
    benchmark: str, backend: str, *, metric: str, unit: str, target: float | None,
    higher_is_better: bool, measured: float, details: dict[str, Any], case: str | None = None,
) -> dict[str, Any]:
    """One measured figure. ``target`` None reports a figure that no target judges
    (``passed`` None): one that explains another case's result."""
    passed = None if target is None else (
        measured >= target if higher_is_better else measured <= target)
    return {
        "benchmark": benchmark,
        "case": case,
        "backend": backend,
        "metric": metric,
        "unit": unit,
        "target": None if target is None else {
            "value": target, "comparison": ">=" if higher_is_better else "<="},
        "measured": round(measured, 2),
        "passed": passed,
        "details": details,
    }
