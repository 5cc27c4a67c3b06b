"""One view over every worker of the node: merge their snapshots at scrape time.

Counters and histograms add up. They must never go backwards while the
node runs, although workers come and go (crashes, max_memory, reloads), so
the aggregator keeps what every worker that left had counted (``retire``):
its final snapshot when it drained, else the last one a scrape saw. Gauges
(connections, targets, breakers) are taken from the workers serving now.

``POST /admin/monitoring/reset`` must not reset Prometheus counters, so it
stores a baseline that the monitoring endpoints subtract.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from propylon.observability import sketch
from propylon.observability.snapshot import METRICS, METRICS_RESET

Counters = dict[str, Any]
Ask = Callable[[dict[str, Any]], Awaitable[list[dict[str, Any]]]]


def empty_counters() -> Counters:
    return {
        "routes": {},
        "services": {},
        "bytes_in": 0,
        "bytes_out": 0,
        "rate_limit": {},
        "redis_fallback": 0,
        "cache": {},
    }


def counters_of(snapshot: dict[str, Any]) -> Counters:
    """The additive part of one process's snapshot."""
    metrics = snapshot["metrics"]
    out = empty_counters()
    for name, route in metrics["routes"].items():
        out["routes"][name] = {
            "counts": dict(route["counts"]),
            "sum": route["sum"],
            "sketch": dict(route["sketch"]),
        }
    out["services"] = copy.deepcopy(metrics["services"])
    out["bytes_in"] = metrics["bytes_in"]
    out["bytes_out"] = metrics["bytes_out"]
    extra = snapshot.get("sources", {})
    limits = extra.get("rate_limit") or {}
    out["rate_limit"] = dict(limits.get("decisions") or {})
    out["redis_fallback"] = int(limits.get("redis_fallback") or 0)
    cache = extra.get("cache") or {}
    for route, results in (cache.get("routes") or {}).items():
        for result, count in results.items():
            if isinstance(count, int):
                out["cache"][(route, result)] = count
    return out


def _add_histogram(into: dict[str, Any], other: dict[str, Any]) -> None:
    if "buckets" not in into:
        into["buckets"] = [0] * len(other["buckets"])
        into["sum"] = 0.0
    if len(into["buckets"]) != len(other["buckets"]):
        return  # bucket bounds changed by a reload: keep the running ones
    into["buckets"] = [a + b for a, b in zip(into["buckets"], other["buckets"], strict=True)]
    into["sum"] += other["sum"]


def add(into: Counters, other: Counters) -> None:
    for name, route in other["routes"].items():
        mine = into["routes"].setdefault(name, {"counts": {}, "sketch": {}, "sum": 0.0})
        for key, count in route["counts"].items():
            mine["counts"][key] = mine["counts"].get(key, 0) + count
        mine["sum"] += route["sum"]
        sketch.merge(mine["sketch"], route["sketch"])
    for name, service in other["services"].items():
        _add_histogram(into["services"].setdefault(name, {}), service)
    into["bytes_in"] += other["bytes_in"]
    into["bytes_out"] += other["bytes_out"]
    into["redis_fallback"] += other["redis_fallback"]
    for part in ("rate_limit", "cache"):
        for key, count in other[part].items():
            into[part][key] = into[part].get(key, 0) + count


def subtract(total: Counters, base: Counters) -> Counters:
    """``total - base`` for the monitoring view after a reset (never negative)."""
    out = empty_counters()
    for name, route in total["routes"].items():
        old = base["routes"].get(name)
        if old is None:
            out["routes"][name] = copy.deepcopy(route)
            continue
        out["routes"][name] = {
            "counts": {
                key: n - old["counts"].get(key, 0)
                for key, n in route["counts"].items()
                if n - old["counts"].get(key, 0) > 0
            },
            "sum": max(0.0, route["sum"] - old["sum"]),
            "sketch": sketch.subtract(route["sketch"], old["sketch"]),
        }
    for key in ("bytes_in", "bytes_out", "redis_fallback"):
        out[key] = max(0, total[key] - base[key])
    return out


@dataclass
class View:
    """The merged state of the node at one moment."""

    counters: Counters
    processes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def connections(self) -> int:
        return sum(int(p.get("connections", 0)) for p in self.processes)

    def target_up(self) -> dict[tuple[str, str], int]:
        """1 when any worker can send to the target (0 only when none can)."""
        out: dict[tuple[str, str], int] = {}
        for process in self.processes:
            for name, service in process["services"].items():
                for target in service["targets"]:
                    key = (name, target["id"])
                    out[key] = max(out.get(key, 0), 1 if target["available"] else 0)
        return out

    def breaker_state(self) -> dict[str, int]:
        """The most open state any worker sees: 0 closed, 1 half-open, 2 open."""
        order = {"closed": 0, "half_open": 1, "open": 2}
        out: dict[str, int] = {}
        for process in self.processes:
            for name, service in process["services"].items():
                state = str(service["circuit_breaker"]["state"]).lower().replace("-", "_")
                out[name] = max(out.get(name, 0), order.get(state, 0))
        return out

    def errors(self, limit: int) -> list[tuple[Any, ...]]:
        entries = [entry for p in self.processes for entry in p["metrics"]["errors"]]
        entries.sort(key=lambda entry: entry[0])
        return entries[-limit:]

    def extremes(self) -> dict[str, tuple[float | None, float]]:
        """(min, max) duration per route since the last reset."""
        out: dict[str, tuple[float | None, float]] = {}
        for process in self.processes:
            for name, route in process["metrics"]["routes"].items():
                low, high = out.get(name, (None, 0.0))
                mine = route["min"]
                if mine is not None and (low is None or mine < low):
                    low = mine
                out[name] = (low, max(high, route["max"]))
        return out


class Aggregator:
    """Asks every process for its snapshot and keeps what departed workers counted."""

    def __init__(self, ask: Ask) -> None:
        self._ask = ask
        self.retired = empty_counters()
        self._last: dict[int, Counters] = {}
        self.baseline: Counters | None = None

    async def collect(self) -> View:
        replies = await self._ask({"type": METRICS})
        processes = [reply for reply in replies if "metrics" in reply]
        for process in processes:
            self._last[int(process["process"]["pid"])] = counters_of(process)
        # A worker that did not answer (it is exiting, or slow) still counts
        # with what it last reported, until ``retire`` takes its final counts.
        counters = copy.deepcopy(self.retired)
        for mine in self._last.values():
            add(counters, mine)
        return View(counters, processes)

    def retire(self, pid: int, final: dict[str, Any] | None = None) -> None:
        """A worker exited: keep its counts (its last words, or the last scrape's)."""
        last = self._last.pop(pid, None)
        counted = counters_of(final) if final is not None and "metrics" in final else last
        if counted is not None:
            add(self.retired, counted)

    def monitoring(self, view: View) -> Counters:
        return view.counters if self.baseline is None else subtract(view.counters, self.baseline)

    async def reset(self) -> None:
        view = await self.collect()
        self.baseline = view.counters
        await self._ask({"type": METRICS_RESET})
