"""Plain in-process counters per cached route, read by health and metrics.

Counting is an attribute increment on the hot path; ``snapshot()`` builds
the dict only when someone asks.
"""

from __future__ import annotations

from typing import Any

COUNTERS = (
    "hits",
    "misses",
    "bypass",
    "stale",
    "stores",
    "evictions",
    "invalidations",
    "redis_errors",
    "collapsed",
)


class RouteStats:
    __slots__ = (*COUNTERS, "bytes", "keys")

    def __init__(self) -> None:
        self.hits = self.misses = self.bypass = self.stale = 0
        self.stores = self.evictions = self.invalidations = 0
        self.redis_errors = self.collapsed = 0
        self.keys = self.bytes = 0  # held in this worker's memory store

    def as_dict(self, *, local_sizes: bool) -> dict[str, Any]:
        data: dict[str, Any] = {name: getattr(self, name) for name in COUNTERS}
        lookups = self.hits + self.stale + self.misses
        data["hit_rate"] = round((self.hits + self.stale) / lookups, 4) if lookups else 0.0
        if local_sizes:
            data["keys"] = self.keys
            data["bytes"] = self.bytes
        return data


class CacheStats:
    def __init__(self) -> None:
        self.routes: dict[str, RouteStats] = {}

    def route(self, name: str) -> RouteStats:
        stats = self.routes.get(name)
        if stats is None:
            stats = self.routes[name] = RouteStats()
        return stats
