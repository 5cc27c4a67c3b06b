"""``GET /metrics`` on the admin listener: counts match the traffic sent, in one
process and merged over a two-worker cluster, and survive worker restarts."""

from __future__ import annotations

import http.client

import pytest

from tests.support.cluster import Cluster
from tests.support.gateway import route, service, wait_until
from tests.support.scrape import fetch, scrape, total, value


def _config(upstream_url: str) -> dict[str, object]:
    return {
        "gateway": {"graceful_timeout": "5s"},
        "services": {"up": service(upstream_url), "down": service("http://127.0.0.1:9")},
        "routes": [route("items", "/items"), route("broken", "/broken", "down")],
    }


def _send(port: int, path: str, count: int, method: str = "GET", body: bytes = b"") -> list[int]:
    statuses = []
    for _ in range(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request(method, path, body=body or None)
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)
        conn.close()
    return statuses


def _traffic(port: int) -> None:
    assert _send(port, "/items/a", 7) == [200] * 7
    assert _send(port, "/items/b", 3, "POST", b"0123456789") == [200] * 3
    assert _send(port, "/nowhere", 2) == [404, 404]
    assert _send(port, "/broken", 1) == [502]  # then its only target is ejected
    assert _send(port, "/health/live", 1) == [200]


def _check_counts(samples: dict, workers: int) -> None:
    requests = "propylon_http_requests_total"
    assert value(samples, requests, route="items", method="GET", code="200") == 7
    assert value(samples, requests, route="items", method="POST", code="200") == 3
    assert value(samples, requests, route="_unmatched", method="GET", code="404") == 2
    assert value(samples, requests, route="broken", method="GET", code="502") == 1
    assert value(samples, requests, route="_health", method="GET", code="200") == 1
    # The histogram counted every request of the route, once.
    duration = "propylon_http_request_duration_seconds"
    assert value(samples, duration + "_count", route="items") == 10
    assert value(samples, duration + "_bucket", route="items", le="+Inf") == 10
    assert value(samples, duration + "_sum", route="items") > 0
    assert value(samples, "propylon_upstream_request_duration_seconds_count", service="up") == 10
    assert value(samples, "propylon_bytes_total", direction="in") == 30
    assert value(samples, "propylon_bytes_total", direction="out") > 0
    assert value(samples, "propylon_circuit_breaker_state", service="up") == 0
    assert value(samples, "propylon_workers") == workers
    assert total(samples, "propylon_worker_resident_memory_bytes") > 10_000_000
    assert value(samples, "process_resident_memory_bytes") > 0
    # No label carries a raw path.
    assert not any("/items" in str(labels) for (_, labels) in samples)


def _target_ids(samples: dict) -> set[str]:
    return {
        dict(labels)["target"]
        for (name, labels) in samples
        if name == "propylon_upstream_target_up"
    }


@pytest.mark.parametrize("workers", [0, 2], ids=["one-process", "two-workers"])
def test_metrics_count_the_traffic_sent(tmp_path, upstream, workers) -> None:
    with Cluster(_config(upstream.url), tmp_path, workers=workers) as gw:
        _traffic(gw.port)
        samples = scrape(gw.admin_url)
        _check_counts(samples, max(workers, 1))
        target = upstream.url.removeprefix("http://")
        assert value(samples, "propylon_upstream_target_up", service="up", target=target) == 1
        assert "127.0.0.1:9" in _target_ids(samples)


def test_metrics_need_the_admin_token(tmp_path, upstream) -> None:
    with Cluster(_config(upstream.url), tmp_path, workers=0) as gw:
        status, headers, body = fetch(gw.admin_url + "/metrics", token=None)
        assert status == 401
        assert headers["Content-Type"].startswith("application/problem+json")
        assert b"propylon_http_requests_total" not in body


def test_counters_survive_a_rolling_reload(tmp_path, upstream) -> None:
    with Cluster(_config(upstream.url), tmp_path, workers=2) as gw:
        assert _send(gw.port, "/items/x", 20) == [200] * 20
        before = scrape(gw.admin_url)
        old = {w["pid"] for w in gw.workers()}
        code, body = gw.admin("POST", "/admin/reload")
        assert code == 200, body
        assert wait_until(lambda: not old & {w["pid"] for w in gw.workers()}, 15)
        assert _send(gw.port, "/items/x", 5) == [200] * 5
        after = scrape(gw.admin_url)
    name = "propylon_http_requests_total"
    assert value(before, name, route="items", method="GET", code="200") == 20
    # The replaced workers' counts are kept: the counter never goes backwards.
    assert value(after, name, route="items", method="GET", code="200") == 25


def test_rate_limit_and_cache_families_count_what_those_parts_decided(tmp_path, upstream) -> None:
    config = {
        "services": {"up": service(upstream.url)},
        "routes": [route("cached", "/cached", cache={"ttl": "5m"}), route("items", "/items")],
        "rate_limits": {"global": "6/1m", "failed_login": False},
    }
    with Cluster(config, tmp_path, workers=0) as gw:
        statuses = _send(gw.port, "/cached/a", 3) + _send(gw.port, "/items/a", 5)
        samples = scrape(gw.admin_url)
    assert statuses.count(429) == 2
    decisions = "propylon_rate_limit_decisions_total"
    assert value(samples, decisions, limit="global", result="allowed") == 6
    assert value(samples, decisions, limit="global", result="rejected") == 2
    cache = "propylon_cache_requests_total"
    assert value(samples, cache, route="cached", result="miss") == 1
    assert value(samples, cache, route="cached", result="hit") == 2
    assert (
        value(samples, "propylon_http_requests_total", route="items", method="GET", code="429") == 2
    )
