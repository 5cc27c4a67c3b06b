"""``/health/ready`` follows Redis and the required services; ``/health/detailed``
on the admin listener shows what an operator needs to see."""

from __future__ import annotations

import httpx

from tests.support.cluster import Cluster
from tests.support.gateway import route, service, simple_config, wait_until
from tests.support.scrape import get_json


def _dead(**settings: object) -> dict[str, object]:
    """A service whose only target refuses connections and is ejected at once."""
    passive = {"passive": {"consecutive_failures": 1}}
    return {**service("http://127.0.0.1:9"), "health_check": passive, **settings}


def _ready(url: str) -> tuple[int, dict]:
    response = httpx.get(url + "/health/ready", timeout=10)
    return response.status_code, response.json()


def test_readiness_follows_the_redis_it_needs(gateway, upstream, redis_server) -> None:
    gw = gateway(simple_config(upstream.url, redis={"url": redis_server.url, "timeout": "200ms"}))
    assert wait_until(lambda: _ready(gw.url)[0] == 200, 5)
    assert _ready(gw.url)[1]["checks"]["redis"]["status"] == "pass"
    redis_server.stop()
    assert wait_until(lambda: _ready(gw.url)[0] == 503, 5)
    status, body = _ready(gw.url)
    assert status == 503
    assert body["status"] == "not_ready"
    assert body["checks"]["redis"]["status"] == "fail"
    assert body["checks"]["service:up"]["status"] == "pass"
    redis_server.start()
    assert wait_until(lambda: _ready(gw.url)[0] == 200, 8)


def test_a_service_not_required_does_not_make_the_gateway_unready(gateway, upstream) -> None:
    config = {
        "services": {
            "up": service(upstream.url),
            "optional": _dead(required=False),
            "needed": _dead(),
        },
        "routes": [route("a", "/a"), route("b", "/b", "optional"), route("c", "/c", "needed")],
    }
    gw = gateway(config)
    for path in ("/b", "/c"):  # a connect error ejects each service's only target
        assert httpx.get(gw.url + path, timeout=10).status_code in (502, 503)
    status, body = _ready(gw.url)
    assert status == 503
    assert body["checks"]["service:optional"]["status"] == "warn"
    assert body["checks"]["service:needed"]["status"] == "fail"
    assert body["checks"]["service:up"]["status"] == "pass"


def test_required_false_alone_keeps_the_gateway_ready(gateway) -> None:
    config = {
        "services": {"optional": _dead(required=False)},
        "routes": [route("b", "/b", "optional")],
    }
    gw = gateway(config)
    assert httpx.get(gw.url + "/b", timeout=10).status_code in (502, 503)
    status, body = _ready(gw.url)
    assert status == 200
    assert body["checks"]["service:optional"]["status"] == "warn"


def test_health_detailed_on_the_admin_listener(tmp_path, upstream) -> None:
    config = {
        "services": {"up": {"targets": [{"url": upstream.url, "weight": 3}]}},
        "routes": [route("all", "/")],
    }
    with Cluster(config, tmp_path, workers=2) as gw:
        assert httpx.get(gw.url + "/x", timeout=10).status_code == 200
        status, body = get_json(gw.admin_url + "/health/detailed")
        unauthorised, _ = get_json(gw.admin_url + "/health/detailed", token=None)
    assert unauthorised == 401
    assert status == 200
    assert body["status"] == "healthy"
    assert body["version"]
    assert len(body["pids"]) == 2
    assert body["uptime"]["milliseconds"] >= 0
    assert body["uptime"]["formatted"].endswith("m")
    assert body["memory"]["rss_bytes"] > 10_000_000
    assert [w["id"] for w in body["workers"] if w["state"] == "ready"] == [1, 2]
    service_row = body["services"]["up"]
    target = service_row["targets"][0]
    assert target["weight"] == 3
    assert target["healthy"] is True
    assert target["in_flight"] == 0
    assert service_row["circuit_breaker"]["state"] == "CLOSED"
    assert service_row["circuit_breaker"]["total"] == 1
    assert len(body["config"]["sha256"]) == 64
    assert body["redis"] is None
