"""Per-process request metrics: plain counters, recorded once per exchange.

Each worker counts on its own, in plain Python ints and lists; nothing is
shared between processes and nothing locks. The supervisor asks every
worker for a ``snapshot()`` when ``/metrics`` is scraped and merges them
(merge.py). This is the one part of observability on the hot path: one
``finish(exchange)`` call when an exchange ends, about a microsecond.

Per route: requests by (method, status code), a fine duration histogram
(sketch.py: real percentiles, and the Prometheus buckets derived from the
same counts), the duration sum, min and max. Per service: a histogram of
the last upstream attempt's duration.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import deque
from typing import TYPE_CHECKING, Any

from propylon.observability.logs import current as current_writer
from propylon.observability.sketch import Layout, layout, sparse

if TYPE_CHECKING:
    from collections.abc import Callable

    from propylon.config.models import GatewayConfig
    from propylon.server.exchange_base import ExchangeBase

# Pseudo route names for requests that matched no route. Route names must
# start with a letter or digit (config/models.py), so these never collide.
UNMATCHED = "_unmatched"
HEALTH = "_health"

ErrorEntry = tuple[float, str, str, int, float, str, str, str, str]


class RouteStats:
    __slots__ = ("counts", "max", "min", "name", "sketch", "sum")

    def __init__(self, name: str, layout: Layout) -> None:
        self.name = name
        self.counts: dict[tuple[str, int], int] = {}
        self.sketch = layout.new_counts()
        self.sum = 0.0
        self.min = math.inf
        self.max = 0.0

    def snapshot(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "sum": self.sum,
            "sketch": sparse(self.sketch),
            "min": self.min if self.min != math.inf else None,
            "max": self.max,
        }

    def total(self) -> int:
        return sum(self.counts.values())


class ServiceStats:
    __slots__ = ("buckets", "sum")

    def __init__(self, bucket_count: int) -> None:
        self.buckets = [0] * (bucket_count + 1)
        self.sum = 0.0

    def snapshot(self) -> dict[str, Any]:
        return {"buckets": list(self.buckets), "sum": self.sum}


class Recorder:
    """What one process counted; ``finish`` is called by every exchange that ends."""

    def __init__(self, config: GatewayConfig, clock: Callable[[], float]) -> None:
        self.bounds = tuple(config.metrics.buckets)
        count = len(self.bounds)
        self.layout = layout(self.bounds)
        self._fine = self.layout.bounds
        self.routes = {route.name: RouteStats(route.name, self.layout) for route in config.routes}
        self.unmatched = RouteStats(UNMATCHED, self.layout)
        self.health = RouteStats(HEALTH, self.layout)
        self.services = {name: ServiceStats(count) for name in config.services}
        self.bytes_in = 0
        self.bytes_out = 0
        self.errors: deque[ErrorEntry] = deque(maxlen=config.metrics.errors_kept)
        # Where finished exchanges go for the access log (logs/writer.py), if on.
        self.access: Callable[[float, ExchangeBase], None] | None = None
        writer = current_writer()
        if writer is not None and config.logging.access:
            self.access = writer.access
        self._clock = clock

    def finish(self, ex: ExchangeBase) -> None:
        now = self._clock()
        duration = now - ex.started
        stats = self.routes.get(ex.route_name)
        if stats is None:
            stats = self.health if ex.path.startswith("/health") else self.unmatched
        status = ex.status
        key = (ex.method, status)
        counts = stats.counts
        counts[key] = counts.get(key, 0) + 1
        stats.sketch[bisect_left(self._fine, duration)] += 1
        stats.sum += duration
        if duration > stats.max:
            stats.max = duration
        if duration < stats.min:
            stats.min = duration
        self.bytes_in += ex.bytes_in
        self.bytes_out += ex.bytes_out
        attempt_started = ex._attempt_started
        route = ex.route
        if attempt_started and route is not None:
            upstream = self.services[route.service.name]
            took = now - attempt_started
            upstream.buckets[bisect_left(self.bounds, took)] += 1
            upstream.sum += took
        if status >= 400 and stats is not self.health:  # not every failed probe
            self._error(ex, duration)
        access = self.access
        if access is not None:
            access(now, ex)

    def _error(self, ex: ExchangeBase, duration: float) -> None:
        agent = ex.request_header(b"user-agent")
        self.errors.append(
            (
                time.time(),
                ex.method,
                ex.path,
                ex.status,
                round(duration * 1000, 3),
                agent.decode("latin-1") if agent is not None else "",
                ex.client_ip,
                ex.request_id.decode("latin-1"),
                ex.route_name,
            )
        )

    def all_routes(self) -> list[RouteStats]:
        return [*self.routes.values(), self.unmatched, self.health]

    def requests(self) -> int:
        return sum(stats.total() for stats in self.all_routes())

    def snapshot(self) -> dict[str, Any]:
        return {
            "bounds": list(self.bounds),
            "routes": {stats.name: stats.snapshot() for stats in self.all_routes()},
            "services": {name: s.snapshot() for name, s in self.services.items()},
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "errors": list(self.errors),
        }

    def reset_view(self) -> None:
        """``POST /admin/monitoring/reset``: what is not a counter starts over
        (min, max, the error buffer); counters stay monotonic for Prometheus and
        the supervisor subtracts a baseline instead (merge.py)."""
        self.errors.clear()
        for stats in self.all_routes():
            stats.min = math.inf
            stats.max = 0.0


class CountingRecorder(Recorder):
    """``metrics.enabled: false``: count requests (and write the access log), nothing else."""

    def __init__(self, config: GatewayConfig, clock: Callable[[], float]) -> None:
        super().__init__(config, clock)
        self.count = 0

    def finish(self, ex: ExchangeBase) -> None:
        self.count += 1
        access = self.access
        if access is not None:
            access(self._clock(), ex)

    def requests(self) -> int:
        return self.count


def make_recorder(config: GatewayConfig, clock: Callable[[], float]) -> Recorder:
    return Recorder(config, clock) if config.metrics.enabled else CountingRecorder(config, clock)
