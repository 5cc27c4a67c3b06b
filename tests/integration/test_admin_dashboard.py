"""The live dashboard at ``GET /`` of the admin listener: it loads without a
token, needs nothing from the internet, and every field it reads is in the
answers of the endpoints it polls (checked against a running gateway)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from propylon.admin.app import build_app
from tests.integration.test_admin_app import FakeControl
from tests.support.cluster import TOKEN, Cluster
from tests.support.gateway import simple_config
from tests.support.upstream import Upstream

PAGE = Path(__file__).resolve().parents[2] / "src/propylon/admin/static/dashboard.html"


def endpoints() -> dict[str, str]:
    block = re.search(r"const ENDPOINTS = \{(.*?)\};", PAGE.read_text(), re.S)
    assert block is not None
    return dict(re.findall(r'(\w+): "([^"]+)"', block.group(1)))


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, bg: Any) -> Iterator[Cluster]:
    upstream = Upstream()
    bg.run(upstream.start())
    config = simple_config(upstream.url)
    with Cluster(config, tmp_path_factory.mktemp("dashboard"), workers=0) as gw:
        for _ in range(20):
            httpx.get(gw.url + "/orders")
        httpx.get(gw.url + "/status/503")
        yield gw
    bg.run(upstream.stop())


def test_the_page_loads_without_a_token_and_only_from_here(gw: Cluster) -> None:
    page = httpx.get(gw.admin_url + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    assert not re.search(r'(?:src|href)="https?:', page.text)
    assert "fetch(path" in page.text
    assert httpx.get(gw.admin_url + "/admin/status").status_code == 401  # the data is not public


def test_every_endpoint_the_page_polls_is_served() -> None:
    app = build_app(FakeControl(), "a-token-of-some-length")
    served = {
        resource.canonical
        for resource in app.router.resources()
        if any(route.method == "GET" for route in resource)
    }
    assert set(endpoints().values()) <= served


def test_the_fields_the_page_reads_are_in_the_answers(gw: Cluster) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answers = {
        name: httpx.get(gw.admin_url + path, headers=headers).json()
        for name, path in endpoints().items()
    }
    stats, perf = answers["stats"], answers["performance"]
    assert stats["requests"]["total"] >= 21
    assert {"p50", "p95", "p99", "average"} <= set(stats["response_time"])
    assert isinstance(stats["uptime"]["formatted"], str)
    assert isinstance(perf["reliability"]["error_rate"], str)
    assert {"route", "count", "avg_response_time", "p95"} <= set(perf["slowest_routes"][0])
    error = answers["errors"]["errors"][0]
    fields = {"timestamp", "method", "path", "status", "duration_ms", "ip", "request_id"}
    assert fields <= set(error)
    assert error["status"] == 503
    service = answers["services"]["services"][0]
    assert service["circuit_breaker"]["state"] == "CLOSED"
    target = service["targets"][0]
    assert {"id", "weight", "draining", "available", "ejected", "healthy", "in_flight"} <= set(
        target
    )
    status = answers["status"]
    assert {"name", "version", "workers"} <= set(status)
