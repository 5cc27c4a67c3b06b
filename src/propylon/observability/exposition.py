"""Render a merged View as Prometheus text, through prometheus_client.

prometheus_client only renders here (a custom Collector over the merged
numbers), so names, escaping and the format stay correct while the data
plane never calls it. Labels are route names, methods, status codes,
service names and target ids: never paths, addresses or consumers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from propylon import __version__
from propylon.observability import sketch
from propylon.observability.merge import View

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Every family /metrics exports, for the dashboard/alert test and the docs.
FAMILIES = (
    "propylon_info",
    "propylon_http_requests_total",
    "propylon_http_request_duration_seconds",
    "propylon_upstream_request_duration_seconds",
    "propylon_upstream_target_up",
    "propylon_circuit_breaker_state",
    "propylon_rate_limit_decisions_total",
    "propylon_cache_requests_total",
    "propylon_redis_fallback_total",
    "propylon_redis_up",
    "propylon_active_connections",
    "propylon_bytes_total",
    "propylon_workers",
    "propylon_worker_resident_memory_bytes",
    "propylon_worker_cpu_seconds_total",
    "propylon_worker_open_fds",
    "propylon_log_lines_dropped_total",
)


def _le(bound: float) -> str:
    return repr(float(bound))


def _histogram(
    family: HistogramMetricFamily,
    labels: list[str],
    bounds: list[float],
    buckets: list[int] | None,
    total: float,
) -> None:
    if not buckets or len(buckets) != len(bounds) + 1:
        return
    cumulative, rows = 0, []
    for bound, count in zip([*bounds, float("inf")], buckets, strict=True):
        cumulative += count
        rows.append(("+Inf" if bound == float("inf") else _le(bound), cumulative))
    family.add_metric(labels, rows, total)


class ViewCollector(Collector):
    def __init__(self, view: View, bounds: list[float]) -> None:
        self.view = view
        self.bounds = bounds
        self.layout = sketch.layout(bounds)

    def collect(self) -> Iterator[Metric]:
        view, counters = self.view, self.view.counters
        info = GaugeMetricFamily("propylon_info", "The running propylon", labels=["version"])
        info.add_metric([__version__], 1)
        yield info

        requests = CounterMetricFamily(
            "propylon_http_requests",
            "Requests answered, by route, method and status code",
            labels=["route", "method", "code"],
        )
        durations = HistogramMetricFamily(
            "propylon_http_request_duration_seconds",
            "Time from the request head to the last response byte, by route",
            labels=["route"],
        )
        for name, route in sorted(counters["routes"].items()):
            for (method, status), count in sorted(route["counts"].items()):
                requests.add_metric([name, method, str(status)], count)
            if route["counts"]:
                buckets = self.layout.prometheus_buckets(route["sketch"])
                _histogram(durations, [name], self.bounds, buckets, route["sum"])
        yield requests
        yield durations

        upstream = HistogramMetricFamily(
            "propylon_upstream_request_duration_seconds",
            "Duration of the last upstream attempt of a request, by service",
            labels=["service"],
        )
        for name, service in sorted(counters["services"].items()):
            _histogram(upstream, [name], self.bounds, service.get("buckets"), service.get("sum", 0))
        yield upstream

        up = GaugeMetricFamily(
            "propylon_upstream_target_up",
            "1 while some worker can send to the target (healthy, not ejected or drained)",
            labels=["service", "target"],
        )
        for (service_name, target), value in sorted(view.target_up().items()):
            up.add_metric([service_name, target], value)
        yield up

        breaker = GaugeMetricFamily(
            "propylon_circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            labels=["service"],
        )
        for name, state in sorted(view.breaker_state().items()):
            breaker.add_metric([name], state)
        yield breaker

        yield from self._parts(counters)
        yield from self._process_figures()

    def _parts(self, counters: dict[str, Any]) -> Iterator[Metric]:
        view = self.view
        decisions = CounterMetricFamily(
            "propylon_rate_limit_decisions",
            "Rate limit decisions, by limit and result",
            labels=["limit", "result"],
        )
        for (limit, result), count in sorted(counters["rate_limit"].items()):
            decisions.add_metric([str(limit), str(result)], count)
        yield decisions
        cache = CounterMetricFamily(
            "propylon_cache_requests",
            "Cache lookups, by route and result (hit, miss, stale, bypass)",
            labels=["route", "result"],
        )
        for (route, result), count in sorted(counters["cache"].items()):
            cache.add_metric([str(route), str(result)], count)
        yield cache
        yield CounterMetricFamily(
            "propylon_redis_fallback",
            "Decisions taken without Redis because it was unavailable",
            value=counters["redis_fallback"],
        )
        redis = [p["redis"] for p in view.processes if p.get("redis") is not None]
        if redis:
            yield GaugeMetricFamily(
                "propylon_redis_up",
                "1 while the configured Redis answers (every worker)",
                value=1 if all(r["status"] == "up" for r in redis) else 0,
            )
        yield GaugeMetricFamily(
            "propylon_active_connections", "Open client connections", value=view.connections
        )
        traffic = CounterMetricFamily(
            "propylon_bytes", "Body bytes, by direction (in: from clients)", labels=["direction"]
        )
        traffic.add_metric(["in"], counters["bytes_in"])
        traffic.add_metric(["out"], counters["bytes_out"])
        yield traffic

    def _process_figures(self) -> Iterator[Metric]:
        processes = self.view.processes
        yield GaugeMetricFamily(
            "propylon_workers", "Serving worker processes", value=len(processes)
        )
        rss = GaugeMetricFamily(
            "propylon_worker_resident_memory_bytes", "Resident memory", labels=["worker"]
        )
        cpu = CounterMetricFamily("propylon_worker_cpu_seconds", "CPU time", labels=["worker"])
        fds = GaugeMetricFamily("propylon_worker_open_fds", "Open descriptors", labels=["worker"])
        dropped = CounterMetricFamily(
            "propylon_log_lines_dropped",
            "Log lines dropped because the writer queue was full",
            labels=["worker"],
        )
        for process in sorted(processes, key=lambda p: int(p["worker"])):
            worker = str(process["worker"])
            figures = process["process"]
            rss.add_metric([worker], figures["rss_bytes"])
            cpu.add_metric([worker], figures["cpu_seconds"])
            if figures["open_fds"] is not None:
                fds.add_metric([worker], figures["open_fds"])
            logs = process.get("logs")
            if logs is not None:
                dropped.add_metric([worker], logs["dropped"])
        yield from (rss, cpu, fds, dropped)


def render(view: View, bounds: list[float]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ViewCollector(view, bounds))
    ProcessCollector(registry=registry)  # the process that serves /metrics
    return generate_latest(registry)
