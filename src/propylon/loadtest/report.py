"""Summaries of a load run: throughput, latency percentiles, statuses,
errors, per phase and overall, and the verdict of the thresholds."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from propylon.loadtest.generator import Outcome, RunResult
from propylon.loadtest.scenarios import Thresholds


def percentile(sorted_values: list[float], share: float) -> float:
    """Nearest-rank percentile of sorted values (0 when there are none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(outcomes: list[Outcome], seconds: float) -> dict[str, Any]:
    latencies = sorted(o.latency * 1000 for o in outcomes)
    errors = Counter(o.error for o in outcomes if not o.ok and o.error is not None)
    count = len(outcomes)
    failed = sum(1 for o in outcomes if not o.ok)
    return {
        "requests": count,
        "seconds": round(seconds, 3),
        "rps": round(count / seconds, 2) if seconds > 0 else 0.0,
        "errors": failed,
        "error_rate": round(failed / count, 4) if count else 0.0,
        "latency_ms": {
            "min": round(latencies[0], 3) if latencies else 0.0,
            "mean": round(sum(latencies) / count, 3) if count else 0.0,
            "p50": round(percentile(latencies, 0.50), 3),
            "p95": round(percentile(latencies, 0.95), 3),
            "p99": round(percentile(latencies, 0.99), 3),
            "max": round(latencies[-1], 3) if latencies else 0.0,
        },
        "statuses": {str(k): v for k, v in sorted(Counter(o.status for o in outcomes).items())},
        "error_kinds": dict(errors.most_common()),
        "by_request": dict(sorted(Counter(o.request for o in outcomes).items())),
    }


def verdict(summary: dict[str, Any], thresholds: Thresholds) -> list[dict[str, Any]]:
    """One line per threshold: what it asks, what was measured, pass or fail."""
    checks: list[tuple[str, float | None, float, bool]] = []
    latency = summary["latency_ms"]
    if thresholds.p95_ms is not None:
        checks.append(
            ("p95_ms", thresholds.p95_ms, latency["p95"], latency["p95"] <= thresholds.p95_ms)
        )
    if thresholds.p99_ms is not None:
        checks.append(
            ("p99_ms", thresholds.p99_ms, latency["p99"], latency["p99"] <= thresholds.p99_ms)
        )
    if thresholds.max_error_rate is not None:
        rate = summary["error_rate"]
        checks.append(
            ("max_error_rate", thresholds.max_error_rate, rate, rate <= thresholds.max_error_rate)
        )
    if thresholds.min_rps is not None:
        rps = summary["rps"]
        checks.append(("min_rps", thresholds.min_rps, rps, rps >= thresholds.min_rps))
    return [
        {"threshold": name, "limit": limit, "measured": measured, "passed": passed}
        for name, limit, measured, passed in checks
    ]


def build_report(result: RunResult, target: str) -> dict[str, Any]:
    scenario = result.scenario
    phases = []
    for index, phase in enumerate(scenario.phases):
        mine = [o for o in result.outcomes if o.phase == index]
        phases.append({"name": phase.name, **summarize(mine, phase.duration)})
    overall = summarize(result.outcomes, result.elapsed)
    checks = verdict(overall, scenario.thresholds)
    return {
        "target": target,
        "scenario": scenario.name,
        "overall": overall,
        "phases": phases,
        "thresholds": checks,
        "passed": all(check["passed"] for check in checks),
    }
