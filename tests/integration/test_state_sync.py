"""Breaker transitions and target changes reach other gateways through Redis."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.support.gateway import wait_until


def _config(upstream_url: str, redis_url: str, prefix: str) -> dict[str, Any]:
    return {
        "redis": {"url": redis_url, "key_prefix": prefix},
        "services": {
            "api": {
                "targets": [
                    {"url": upstream_url, "id": "blue"},
                    {"url": upstream_url, "id": "green", "weight": 0},
                ]
            }
        },
        "routes": [{"name": "all", "match": {"path": "/"}, "service": "api"}],
    }


def _on_loop(bg: Any, fn: Any) -> Any:
    async def call() -> Any:
        return fn()

    return bg.run(call())


def _connected(bg: Any, gw: Any) -> bool:
    return bool(_on_loop(bg, lambda: gw.state.redis_events.connected.is_set()))


def test_a_tripped_breaker_opens_on_the_other_gateway_within_a_second(
    bg, gateway, upstream, redis_url, redis_prefix
) -> None:
    first = gateway(_config(upstream.url, redis_url, redis_prefix))
    second = gateway(_config(upstream.url, redis_url, redis_prefix))
    assert wait_until(lambda: _connected(bg, first) and _connected(bg, second))
    started = time.monotonic()
    _on_loop(bg, lambda: first.state.services["api"].breaker.trip())
    assert wait_until(
        lambda: _on_loop(bg, lambda: second.state.services["api"].breaker.state) == "OPEN",
        timeout=1.0,
    ), "the second gateway's breaker did not open within 1 s"
    print(f"breaker propagated in {time.monotonic() - started:.3f}s")
    hits = len(upstream.requests)
    response = httpx.get(second.url + "/x")
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert len(upstream.requests) == hits  # failed fast, the backend was not called
    _on_loop(bg, lambda: first.state.services["api"].breaker.reset())
    assert wait_until(
        lambda: _on_loop(bg, lambda: second.state.services["api"].breaker.state) == "CLOSED",
        timeout=1.0,
    )
    assert httpx.get(second.url + "/x").status_code == 200


def test_weight_and_drain_changes_reach_the_other_gateway(
    bg, gateway, upstream, redis_url, redis_prefix
) -> None:
    first = gateway(_config(upstream.url, redis_url, redis_prefix))
    second = gateway(_config(upstream.url, redis_url, redis_prefix))
    assert wait_until(lambda: _connected(bg, first) and _connected(bg, second))
    service = first.state.services["api"]
    _on_loop(bg, lambda: service.set_weight("green", 100))
    _on_loop(bg, lambda: service.set_draining("blue", True))
    other = second.state.services["api"]
    assert wait_until(
        lambda: (
            _on_loop(bg, lambda: (other.target("green").weight, other.target("blue").draining))
            == (100, True)
        ),
        timeout=1.0,
    )


def test_redis_down_leaves_local_changes_standing(bg, gateway, upstream, redis_server) -> None:
    gw = gateway(_config(upstream.url, redis_server.url, "propylon-test:down:"))
    assert wait_until(lambda: _connected(bg, gw))
    redis_server.stop()
    service = gw.state.services["api"]
    _on_loop(bg, lambda: service.breaker.trip())
    assert httpx.get(gw.url + "/x").status_code == 503
    _on_loop(bg, lambda: service.breaker.reset())
    assert httpx.get(gw.url + "/x").status_code == 200
    redis_server.start()
    assert wait_until(lambda: _connected(bg, gw), timeout=5.0)
