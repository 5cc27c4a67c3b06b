"""The shortest path through the gateway: a GET proxied to a real upstream."""

from __future__ import annotations

import httpx

from tests.support.gateway import simple_config


def test_get_is_proxied_with_request_id(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    response = httpx.get(gw.url + "/hello?x=1")
    assert response.status_code == 200
    body = response.json()
    assert body["path"] == "/hello"
    assert body["query"] == "x=1"
    assert body["headers"]["x-request-id"] == response.headers["x-request-id"]
    assert body["headers"]["via"] == "1.1 propylon"


def test_gateway_process_serves_and_stops_on_sigterm(gateway_process, upstream) -> None:
    gw = gateway_process(simple_config(upstream.url))
    assert httpx.get(gw.url + "/health").json()["status"] == "healthy"
    gw.signal()
    assert gw.wait(10) == 0
