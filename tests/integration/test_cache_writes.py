"""Invalidation on writes, request collapsing and the memory bound."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import httpx
import pytest

from tests.support.cache import cache_config, origin_fixture  # noqa: F401 - the `origin` fixture
from tests.support.gateway import route


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_write_evicts_the_item_its_children_and_its_list(gateway, origin, method) -> None:
    gw = gateway(cache_config(origin.url))
    with httpx.Client(base_url=gw.url) as http:
        urls = [
            "/items/42",
            "/items/42?fields=name",
            "/items/42/notes",
            "/items",
            "/items?page=2",
            "/items/7",
            "/items/420",
        ]
        for url in urls:
            http.get(url)
        assert all(http.get(url).headers["x-cache"] == "HIT" for url in urls)
        written = http.request(method, "/items/42")
        assert written.status_code == 200
        assert written.headers["x-cache"] == "BYPASS"
        after = {url: http.get(url).headers["x-cache"] for url in urls}
    assert after == {
        "/items/42": "MISS",
        "/items/42?fields=name": "MISS",
        "/items/42/notes": "MISS",
        "/items": "MISS",
        "/items?page=2": "MISS",
        "/items/7": "HIT",  # a sibling stays
        "/items/420": "HIT",  # a prefix of the path is not the resource
    }


def test_a_failed_write_evicts_nothing(gateway, origin) -> None:
    gw = gateway(cache_config(origin.url))
    with httpx.Client(base_url=gw.url) as http:
        http.get("/items/1")
        assert http.put("/items/1?status=409").status_code == 409
        assert http.get("/items/1").headers["x-cache"] == "HIT"


def test_configured_patterns_replace_the_default_invalidation(gateway, origin) -> None:
    cache = {"invalidate": ["/items/reports/*", "{path}"]}
    gw = gateway(cache_config(origin.url, cache))
    with httpx.Client(base_url=gw.url) as http:
        for url in ["/items/1", "/items", "/items/reports/daily"]:
            http.get(url)
        http.post("/items/1")
        after = {
            url: http.get(url).headers["x-cache"]
            for url in ["/items/1", "/items", "/items/reports/daily"]
        }
    assert after == {"/items/1": "MISS", "/items": "HIT", "/items/reports/daily": "MISS"}


def test_a_write_on_another_route_evicts_the_cached_resource(gateway, origin) -> None:
    config = cache_config(origin.url)
    config["routes"][0]["match"]["methods"] = ["GET", "HEAD"]
    config["routes"].append(route("items-write", "/items", cache={"methods": ["GET"]}))
    gw = gateway(config)
    with httpx.Client(base_url=gw.url) as http:
        http.get("/items/5")
        http.delete("/items/5")
        assert http.get("/items/5").headers["x-cache"] == "MISS"


def test_purge_by_pattern_and_by_route(gateway, origin, bg) -> None:
    config = cache_config(origin.url)
    config["routes"].append(route("other", "/other", cache={"ttl": "30s"}))
    gw = gateway(config)
    with httpx.Client(base_url=gw.url) as http:
        for url in ["/items/1", "/items/2", "/other/1"]:
            http.get(url)
        assert bg.run(gw.state.cache.purge("/items/1", None)) == 1
        assert http.get("/items/1").headers["x-cache"] == "MISS"
        assert http.get("/items/2").headers["x-cache"] == "HIT"
        assert bg.run(gw.state.cache.purge(None, "items")) == 2
        assert http.get("/items/2").headers["x-cache"] == "MISS"
        assert http.get("/other/1").headers["x-cache"] == "HIT"
        assert bg.run(gw.state.cache.purge("*", None)) >= 2


# -- collapsing ---------------------------------------------------------------------------


def _many_gets(url: str, count: int) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: httpx.get(url, timeout=20), range(count)))


def test_100_concurrent_misses_make_one_upstream_request(gateway, origin) -> None:
    gw = gateway(cache_config(origin.url))
    responses = _many_gets(gw.url + "/items/hot?delay=1", 100)
    assert [r.status_code for r in responses] == [200] * 100
    assert {r.content for r in responses} == {responses[0].content}
    assert origin.hits["/items/hot"] == 1
    outcomes = sorted(r.headers["x-cache"] for r in responses)
    assert outcomes.count("MISS") == 1
    assert gw.state.cache.snapshot()["routes"]["items"]["collapsed"] >= 1


def test_waiters_go_upstream_themselves_when_the_leader_cannot_store(gateway, origin) -> None:
    gw = gateway(cache_config(origin.url))
    responses = _many_gets(gw.url + "/items/private?delay=0.5&cc=private", 5)
    assert [r.status_code for r in responses] == [200] * 5
    assert origin.hits["/items/private"] == 5  # nothing was shareable


def test_waiters_stop_waiting_after_collapse_wait(gateway, origin) -> None:
    config = cache_config(origin.url, route_cache={"ttl": "30s"}) | {
        "cache": {"collapse_wait": "200ms"}
    }
    gw = gateway(config)
    responses = _many_gets(gw.url + "/items/slow?delay=1.5", 3)
    assert [r.status_code for r in responses] == [200] * 3
    assert origin.hits["/items/slow"] == 3


# -- the memory bound ---------------------------------------------------------------------


def test_the_memory_store_stays_within_its_byte_bound(gateway, origin) -> None:
    config: dict[str, Any] = cache_config(origin.url, route_cache={"max_object_size": "64KB"})
    config["cache"] = {"max_bytes": "200KB"}
    gw = gateway(config)
    with httpx.Client(base_url=gw.url) as http:
        for n in range(40):
            assert http.get(f"/items/blob{n}?size=20000").status_code == 200
            assert gw.state.cache.memory.bytes <= 200 * 1024
        # The oldest went first; the newest are still there.
        assert http.get("/items/blob39?size=20000").headers["x-cache"] == "HIT"
        assert http.get("/items/blob0?size=20000").headers["x-cache"] == "MISS"
    snapshot = gw.state.cache.snapshot()
    assert snapshot["memory"]["bytes"] <= 200 * 1024
    assert snapshot["routes"]["items"]["evictions"] >= 30
