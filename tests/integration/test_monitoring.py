"""``/admin/monitoring/stats|errors|performance`` and ``POST /admin/monitoring/reset``,
merged over two workers."""

from __future__ import annotations

import http.client

from tests.support.cluster import Cluster
from tests.support.gateway import route, service
from tests.support.scrape import get_json, scrape, value


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def _config(upstream_url: str) -> dict[str, object]:
    return {
        "services": {"up": service(upstream_url)},
        "routes": [route("echo", "/echo"), route("slow", "/slow"), route("status", "/status")],
        "metrics": {"errors_kept": 5},
    }


def test_monitoring_documents_over_two_workers(tmp_path, upstream) -> None:
    with Cluster(_config(upstream.url), tmp_path, workers=2) as gw:
        for _ in range(8):
            assert _get(gw.port, "/echo/a") == 200
        for _ in range(2):
            assert _get(gw.port, "/slow?delay=0.15") == 200
        agent = {"User-Agent": "monitoring-test/1.0", "X-Request-ID": "req-monitoring-1"}
        assert _get(gw.port, "/status/503?secret=s3cr3t", agent) == 503
        assert _get(gw.port, "/missing") == 404
        _, stats = get_json(gw.admin_url + "/admin/monitoring/stats")
        _, errors = get_json(gw.admin_url + "/admin/monitoring/errors")
        _, performance = get_json(gw.admin_url + "/admin/monitoring/performance")
        code, _ = get_json(gw.admin_url + "/admin/monitoring/reset", method="POST")
        assert code == 200
        assert _get(gw.port, "/echo/b") == 200
        _, after = get_json(gw.admin_url + "/admin/monitoring/stats")
        _, errors_after = get_json(gw.admin_url + "/admin/monitoring/errors")
        samples = scrape(gw.admin_url)

    requests = stats["requests"]
    assert requests["total"] == 12
    assert requests["by_method"] == {"GET": 12}
    assert requests["by_status_code"] == {"200": 10, "503": 1, "404": 1}
    assert requests["top_routes"][0] == {"route": "GET echo", "count": 8}
    latency = stats["response_time"]
    assert latency["unit"] == "ms"
    assert latency["min"] <= latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert latency["max"] >= 150  # the two slow requests
    assert latency["p50"] < 150  # most were fast
    assert stats["circuit_breakers"]["up"]["state"] == "CLOSED"

    assert errors["total"] == 2
    newest, older = errors["errors"]
    assert newest["status"] == 404
    assert newest["path"] == "/missing"
    assert older["status"] == 503
    assert older["path"] == "/status/503"  # the query (and what it carries) is left out
    assert older["user_agent"] == "monitoring-test/1.0"
    assert older["request_id"] == "req-monitoring-1"
    assert older["ip"] == "127.0.0.1"
    assert older["method"] == "GET"
    assert older["route"] == "status"
    assert older["duration_ms"] >= 0
    assert older["timestamp"].endswith("Z")

    assert performance["throughput"]["total_requests"] == 12
    assert performance["reliability"]["error_count"] == 2
    assert performance["reliability"]["error_rate"] == "16.67%"
    assert performance["slowest_routes"][0]["route"] == "slow"
    assert performance["slowest_routes"][0]["avg_response_time"] >= 150

    # The reset starts the monitoring view over; Prometheus counters go on.
    assert after["requests"]["total"] == 1
    assert after["requests"]["by_status_code"] == {"200": 1}
    assert errors_after["total"] == 0
    assert (
        value(samples, "propylon_http_requests_total", route="echo", method="GET", code="200") == 9
    )


def test_the_errors_buffer_keeps_the_last_n(tmp_path, upstream) -> None:
    with Cluster(_config(upstream.url), tmp_path, workers=0) as gw:
        for index in range(8):
            assert _get(gw.port, f"/missing/{index}") == 404
        _, errors = get_json(gw.admin_url + "/admin/monitoring/errors")
    assert [e["path"] for e in errors["errors"]] == [f"/missing/{i}" for i in (7, 6, 5, 4, 3)]
