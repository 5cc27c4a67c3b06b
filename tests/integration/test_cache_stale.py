"""Stale-if-error: an expired entry within stale_ttl answers when the upstream cannot."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.support.cache import cache_config, origin_fixture  # noqa: F401 - the `origin` fixture
from tests.support.controlled import on_loop
from tests.support.problems import assert_problem


def stale_gateway(gateway: Any, origin: Any, **service: Any) -> Any:
    config = cache_config(origin.url, {"ttl": "1s", "stale_ttl": "30s"})
    config["services"]["up"].update(
        {"retries": {"attempts": 0}, "health_check": {"passive": None}, **service}
    )
    return gateway(config)


def expired_entry(http: httpx.Client, path: str = "/items/1") -> bytes:
    body = http.get(path).content
    assert http.get(path).headers["x-cache"] == "HIT"
    time.sleep(1.2)  # past the TTL, inside stale_ttl
    return body


def test_stale_is_served_while_the_upstream_is_down(gateway, origin, bg) -> None:
    gw = stale_gateway(gateway, origin)
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        body = expired_entry(http)
        bg.run(origin.stop())
        stale = http.get("/items/1")
        uncached = http.get("/items/2")
    assert stale.status_code == 200
    assert stale.headers["x-cache"] == "STALE"
    assert stale.content == body
    assert int(stale.headers["age"]) >= 1
    assert_problem(uncached, 502)  # nothing stored for it: the honest error
    stats = gw.state.cache.snapshot()["routes"]["items"]
    assert stats["stale"] == 1


def test_stale_is_served_while_the_breaker_is_open(gateway, origin, bg) -> None:
    gw = stale_gateway(gateway, origin)
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        body = expired_entry(http)
        on_loop(bg, gw.state.services["up"].breaker.trip)
        stale = http.get("/items/1")
        other = http.get("/items/9")
    assert stale.headers["x-cache"] == "STALE"
    assert stale.content == body
    assert_problem(other, 503)
    assert origin.hits["/items/1"] == 1  # the open breaker kept the upstream out


def test_stale_replaces_an_upstream_5xx(gateway, origin) -> None:
    gw = stale_gateway(gateway, origin)
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        body = expired_entry(http)
        origin.fail(503)
        stale = http.get("/items/1")
        origin.fail(None)
        fresh = http.get("/items/1")
    assert stale.headers["x-cache"] == "STALE"
    assert stale.content == body
    assert fresh.headers["x-cache"] == "MISS"  # the upstream is back: refreshed
    assert fresh.json()["serial"] == 2


def test_stale_is_served_when_the_upstream_times_out(gateway, origin) -> None:
    gw = stale_gateway(gateway, origin, timeouts={"read": "300ms"})
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        body = expired_entry(http)
        origin.delay = 2.0
        stale = http.get("/items/1")
        uncached = http.get("/items/3")
    assert stale.headers["x-cache"] == "STALE"
    assert stale.content == body
    assert_problem(uncached, 504)


def test_nothing_stale_after_stale_ttl(gateway, origin, bg) -> None:
    config = cache_config(origin.url, {"ttl": "1s", "stale_ttl": "1s"})
    config["services"]["up"]["retries"] = {"attempts": 0}
    gw = gateway(config)
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        http.get("/items/1")
        time.sleep(2.3)
        bg.run(origin.stop())
        response = http.get("/items/1")
    assert_problem(response, 502)
    assert response.headers["x-cache"] == "MISS"


def test_without_stale_ttl_an_expired_entry_is_never_served(gateway, origin, bg) -> None:
    config = cache_config(origin.url, {"ttl": "1s"})
    config["services"]["up"]["retries"] = {"attempts": 0}
    gw = gateway(config)
    with httpx.Client(base_url=gw.url, timeout=10) as http:
        http.get("/items/1")
        time.sleep(1.2)
        bg.run(origin.stop())
        assert_problem(http.get("/items/1"), 502)
