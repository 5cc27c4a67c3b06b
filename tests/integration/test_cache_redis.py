"""The Redis cache: shared entries, invalidation across gateway processes,
purges, and a Redis outage that clients never notice."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import redis

from tests.support.cache import cache_config, origin_fixture  # noqa: F401 - the `origin` fixture
from tests.support.gateway import wait_until

pytestmark = pytest.mark.redis
HOST = {"Host": "shop.example"}  # one key space for gateways on different ports


def redis_cache(origin: Any, url: str, prefix: str, **cache: Any) -> dict[str, Any]:
    return cache_config(
        origin.url,
        {"ttl": "30s", **cache},
        redis={"url": url, "key_prefix": prefix},
        cache={"backend": "redis"},
    )


def test_a_hit_from_redis_is_byte_identical_and_shared(
    gateway, origin, redis_url, redis_prefix
) -> None:
    config = redis_cache(origin, redis_url, redis_prefix, stale_ttl="10s")
    one, two = gateway(config), gateway(config)
    first = httpx.get(one.url + "/items/1?b=1&a=2", headers=HOST)
    assert first.headers["x-cache"] == "MISS"
    assert wait_until(
        lambda: httpx.get(two.url + "/items/1?a=2&b=1", headers=HOST).headers["x-cache"] == "HIT"
    )
    hit = httpx.get(two.url + "/items/1?a=2&b=1", headers=HOST)
    assert hit.content == first.content
    assert origin.hits["/items/1"] == 1
    client = redis.Redis.from_url(redis_url)
    try:
        keys = client.keys(redis_prefix + "cache:e:*")
        assert len(keys) == 1
        assert 30_000 < client.pttl(keys[0]) <= 40_000  # ttl + stale_ttl, set with PX
        # The index sets expire with their entries: nothing is left behind.
        for index in (redis_prefix + "cache:paths", redis_prefix + "cache:p:/items/1"):
            assert 30_000 < client.pttl(index) <= 40_000
    finally:
        client.close()


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_write_on_one_gateway_process_evicts_on_the_other(
    gateway_process, origin, redis_url, redis_prefix, method
) -> None:
    config = redis_cache(origin, redis_url, redis_prefix)
    one, two = gateway_process(config), gateway_process(config)
    urls = ["/items/42", "/items/42/notes", "/items", "/items?page=2", "/items/7"]
    with (
        httpx.Client(base_url=one.url, headers=HOST) as a,
        httpx.Client(base_url=two.url, headers=HOST) as b,
    ):
        for url in urls:
            a.get(url)
        assert wait_until(lambda: all(b.get(u).headers["x-cache"] == "HIT" for u in urls))
        assert a.request(method, "/items/42").status_code == 200
        assert wait_until(lambda: b.get("/items/42").headers["x-cache"] == "MISS", timeout=2)
        after = {url: b.get(url).headers["x-cache"] for url in urls[1:]}
    assert after == {
        "/items/42/notes": "MISS",
        "/items": "MISS",
        "/items?page=2": "MISS",
        "/items/7": "HIT",
    }


def test_purge_by_pattern_and_route_in_redis(gateway, origin, redis_url, redis_prefix, bg) -> None:
    gw = gateway(redis_cache(origin, redis_url, redis_prefix))
    with httpx.Client(base_url=gw.url, headers=HOST) as http:
        for url in ["/items/1", "/items/2", "/items/2?x=1"]:
            http.get(url)
        assert wait_until(lambda: http.get("/items/2?x=1").headers["x-cache"] == "HIT")
        assert bg.run(gw.state.cache.purge("/items/2", None)) == 2
        assert http.get("/items/2").headers["x-cache"] == "MISS"
        assert http.get("/items/1").headers["x-cache"] == "HIT"
        time.sleep(0.1)
        assert bg.run(gw.state.cache.purge(None, "items")) == 2
        assert http.get("/items/1").headers["x-cache"] == "MISS"


def test_redis_stopped_mid_test_means_bypass_without_errors(gateway, origin, redis_server) -> None:
    gw = gateway(redis_cache(origin, redis_server.url, "propylon-test-outage:"))
    with httpx.Client(base_url=gw.url, headers=HOST, timeout=10) as http:
        http.get("/items/1")
        assert wait_until(lambda: http.get("/items/1").headers["x-cache"] == "HIT")
        redis_server.stop()
        during = [http.get("/items/1") for _ in range(20)]
        assert [r.status_code for r in during] == [200] * 20
        assert {r.headers["x-cache"] for r in during} == {"BYPASS"}
        assert http.post("/items/1").status_code == 200  # invalidation fails quietly
        stats = gw.state.cache.snapshot()
        assert stats["routes"]["items"]["redis_errors"] >= 1
        assert stats["redis"]["available"] is False
        redis_server.start()
        assert wait_until(lambda: http.get("/items/5").headers["x-cache"] == "MISS", timeout=5)
        assert wait_until(lambda: http.get("/items/5").headers["x-cache"] == "HIT", timeout=5)


def test_memory_caches_of_two_nodes_are_invalidated_over_redis_pub_sub(
    gateway_process, origin, redis_url, redis_prefix
) -> None:
    """Memory backend, a redis: section for state events: a write on one node
    evicts the entry the other node holds in its own memory."""
    config = cache_config(origin.url, redis={"url": redis_url, "key_prefix": redis_prefix})
    one, two = gateway_process(config), gateway_process(config)
    with (
        httpx.Client(base_url=one.url, headers=HOST) as a,
        httpx.Client(base_url=two.url, headers=HOST) as b,
    ):

        def write_on_a_evicts_on_b() -> bool:
            b.get("/items/8")  # stored (again) on node two
            assert b.get("/items/8").headers["x-cache"] == "HIT"
            assert a.patch("/items/8").status_code == 200
            time.sleep(0.1)
            return b.get("/items/8").headers["x-cache"] == "MISS"

        # Until node two's subscription is up, the first writes go unheard.
        assert wait_until(write_on_a_evicts_on_b, timeout=10, interval=0.1)


def test_a_stale_entry_in_redis_answers_while_the_upstream_is_down(
    gateway, origin, redis_url, redis_prefix, bg
) -> None:
    config = redis_cache(origin, redis_url, redis_prefix, ttl="1s", stale_ttl="30s")
    config["services"]["up"]["retries"] = {"attempts": 0}
    gw = gateway(config)
    with httpx.Client(base_url=gw.url, headers=HOST, timeout=10) as http:
        body = http.get("/items/s").content
        assert wait_until(lambda: http.get("/items/s").headers["x-cache"] == "HIT")
        time.sleep(1.2)
        bg.run(origin.stop())
        stale = http.get("/items/s")
    assert stale.status_code == 200
    assert stale.headers["x-cache"] == "STALE"
    assert stale.content == body
