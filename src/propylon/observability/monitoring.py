"""The JSON documents of /admin/monitoring/* and /health/detailed, from a merged View.

Shapes follow the design documents the product comes from (durations in
ms, rates as strings with a % sign where they had them), with snake_case
keys like the rest of propylon's API.
"""

from __future__ import annotations

import time
from typing import Any

from propylon.observability import sketch
from propylon.observability.merge import Counters, View
from propylon.observability.recorder import HEALTH
from propylon.observability.timestamps import iso

__all__ = ["detailed", "errors", "iso", "performance", "services", "stats", "uptime"]

TOP_ROUTES = 10
MB = 1024 * 1024


def uptime(seconds: float) -> dict[str, Any]:
    minutes = int(seconds // 60)
    return {"milliseconds": int(seconds * 1000), "formatted": f"{minutes // 60}h {minutes % 60}m"}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _percent(part: int, whole: int) -> str:
    return f"{(part / whole * 100) if whole else 0:.2f}%"


class Totals:
    """Request figures of a counters document, health probes left out."""

    def __init__(self, counters: Counters, layout: sketch.Layout) -> None:
        self.layout = layout
        self.by_method: dict[str, int] = {}
        self.by_status: dict[str, int] = {}
        self.by_route: dict[str, int] = {}
        self.route_sum: dict[str, float] = {}
        self.sketch: dict[int, int] = {}
        self.total = self.errors = 0
        self.duration_sum = 0.0
        for name, route in counters["routes"].items():
            if name == HEALTH:
                continue
            count = 0
            for (method, status), n in route["counts"].items():
                self.by_method[method] = self.by_method.get(method, 0) + n
                self.by_status[str(status)] = self.by_status.get(str(status), 0) + n
                key = f"{method} {name}"
                self.by_route[key] = self.by_route.get(key, 0) + n
                count += n
                if status >= 400:
                    self.errors += n
            self.total += count
            if count:
                self.duration_sum += route["sum"]
                self.route_sum[name] = route["sum"]
                sketch.merge(self.sketch, route["sketch"])

    def latency(self, extremes: dict[str, tuple[float | None, float]]) -> dict[str, Any]:
        lows = [low for name, (low, _) in extremes.items() if name != HEALTH and low is not None]
        highs = [high for name, (_, high) in extremes.items() if name != HEALTH]
        low = min(lows) if lows else None
        high = max(highs) if highs and self.total else None
        p50, p95, p99 = (
            _within(q, low, high) for q in self.layout.quantiles(self.sketch, (0.5, 0.95, 0.99))
        )
        return {
            "average": _ms(self.duration_sum / self.total) if self.total else None,
            "min": _ms(low),
            "max": _ms(high),
            "p50": _ms(p50),
            "p95": _ms(p95),
            "p99": _ms(p99),
            "unit": "ms",
        }


def _within(value: float | None, low: float | None, high: float | None) -> float | None:
    """A sketch estimate is off by up to 1%: never show it outside what was seen."""
    if value is None or low is None or high is None:
        return value
    return min(max(value, low), high)


def stats(view: View, counters: Counters, since: float, layout: sketch.Layout) -> dict[str, Any]:
    totals = Totals(counters, layout)
    top = sorted(totals.by_route.items(), key=lambda item: -item[1])[:TOP_ROUTES]
    return {
        "uptime": uptime(time.time() - since),
        "requests": {
            "total": totals.total,
            "by_method": totals.by_method,
            "by_status_code": totals.by_status,
            "top_routes": [{"route": route, "count": count} for route, count in top],
        },
        "response_time": totals.latency(view.extremes()),
        "circuit_breakers": _breakers(view),
    }


def errors(view: View, limit: int) -> dict[str, Any]:
    entries = view.errors(limit)
    fields = ("method", "path", "status", "duration_ms", "user_agent", "ip", "request_id", "route")
    return {
        "total": len(entries),
        "errors": [
            {"timestamp": iso(entry[0]), **dict(zip(fields, entry[1:], strict=True))}
            for entry in reversed(entries)  # newest first
        ],
    }


def performance(
    view: View, counters: Counters, since: float, layout: sketch.Layout
) -> dict[str, Any]:
    totals = Totals(counters, layout)
    elapsed = max(time.time() - since, 1e-9)
    slowest = []
    for name, route in counters["routes"].items():
        count = sum(route["counts"].values())
        if name == HEALTH or not count:
            continue
        (p95,) = layout.quantiles(route["sketch"], (0.95,))
        slowest.append(
            {
                "route": name,
                "count": count,
                "avg_response_time": _ms(route["sum"] / count),
                "p95": _ms(p95),
            }
        )
    slowest.sort(key=lambda row: -(row["avg_response_time"] or 0))
    latency = totals.latency(view.extremes())
    success = totals.total - totals.errors
    return {
        "throughput": {
            "requests_per_second": f"{totals.total / elapsed:.2f}",
            "total_requests": totals.total,
            "uptime": uptime(elapsed)["formatted"],
        },
        "latency": {k: latency[k] for k in ("average", "p50", "p95", "p99", "unit")},
        "reliability": {
            "error_rate": _percent(totals.errors, totals.total),
            "success_rate": _percent(success, totals.total) if totals.total else "100.00%",
            "error_count": totals.errors,
            "success_count": success,
        },
        "slowest_routes": slowest[:TOP_ROUTES],
    }


def _breakers(view: View) -> dict[str, Any]:
    out: dict[str, Any] = {}
    states = {0: "CLOSED", 1: "HALF_OPEN", 2: "OPEN"}
    merged = view.breaker_state()
    for process in view.processes:
        for name, service in process["services"].items():
            breaker = service["circuit_breaker"]
            row = out.setdefault(name, {"state": states[merged.get(name, 0)], "total": 0})
            row["total"] += int(breaker["total"])
            row.setdefault("total_failures", 0)
            row["total_failures"] += int(breaker["total_failures"])
    for row in out.values():
        total = row["total"]
        row["success_rate"] = _percent(total - row["total_failures"], total) if total else "100.00%"
    return out


def services(view: View) -> dict[str, Any]:
    """Every service with its targets, summed over the workers."""
    out: dict[str, Any] = {}
    for process in view.processes:
        for name, service in process["services"].items():
            row = out.setdefault(
                name, {"balance": service["balance"], "in_flight": 0, "targets": {}}
            )
            row["in_flight"] += int(service["in_flight"])
            for target in service["targets"]:
                mine = row["targets"].setdefault(
                    target["id"],
                    {
                        "url": target["url"],
                        "weight": target["weight"],
                        "draining": target["draining"],
                        "healthy": False,
                        "available": False,
                        "in_flight": 0,
                    },
                )
                mine["healthy"] = mine["healthy"] or bool(target["healthy"])
                mine["available"] = mine["available"] or bool(target["available"])
                mine["in_flight"] += int(target["in_flight"])
    breakers = _breakers(view)
    for name, row in out.items():
        row["circuit_breaker"] = breakers.get(name)
        row["targets"] = [{"id": tid, **target} for tid, target in row["targets"].items()]
    return out


def detailed(view: View, status: dict[str, Any]) -> dict[str, Any]:
    redis = [p["redis"] for p in view.processes if p.get("redis") is not None]
    cache = [p["sources"]["cache"] for p in view.processes if "cache" in p.get("sources", {})]
    memory = sum(int(p["process"]["rss_bytes"]) for p in view.processes)
    failing = [
        name for name, s in services(view).items() if not any(t["available"] for t in s["targets"])
    ]
    return {
        "status": "degraded" if failing or any(r["status"] != "up" for r in redis) else "healthy",
        "name": status.get("name"),
        "version": status.get("version"),
        "pid": status.get("pid"),
        "pids": [int(p["process"]["pid"]) for p in view.processes],
        "uptime": uptime(float(status.get("uptime", 0.0))),
        "memory": {"rss_bytes": memory, "rss": f"{memory / MB:.2f} MB"},
        "workers": status.get("workers", []),
        "connections": view.connections,
        "services": services(view),
        "redis": _redis(redis),
        "cache": cache,
        "config": status.get("config"),
        "timestamp": iso(time.time()),
    }


def _redis(reports: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not reports:
        return None
    latencies = [r["latency_ms"] for r in reports if r["latency_ms"] is not None]
    return {
        "status": "up" if all(r["status"] == "up" for r in reports) else "down",
        "latency_ms": max(latencies) if latencies else None,
        "errors": sorted({r["error"] for r in reports if r["error"]}),
    }
