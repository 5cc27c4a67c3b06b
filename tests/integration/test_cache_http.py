"""The memory cache as a client sees it: hits, expiry, HTTP rules, keys, Age, HEAD."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.support.cache import cache_config, origin_fixture  # noqa: F401 - the `origin` fixture
from tests.support.gateway import wait_until


def cached(gateway: Any, origin: Any, **cache: Any) -> httpx.Client:
    gw = gateway(cache_config(origin.url, cache))
    return httpx.Client(base_url=gw.url, timeout=10)


def test_a_hit_after_a_miss_is_byte_identical_and_skips_the_upstream(gateway, origin) -> None:
    with cached(gateway, origin) as http:
        first = http.get("/items/1?b=2&a=1")
        second = http.get("/items/1?b=2&a=1")
    assert first.status_code == second.status_code == 200
    assert first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "HIT"
    assert second.content == first.content
    assert second.headers["content-type"] == first.headers["content-type"]
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    assert origin.hits["/items/1"] == 1


def test_a_chunked_upstream_body_is_stored_and_served_with_a_length(gateway, origin) -> None:
    with cached(gateway, origin) as http:
        first = http.get("/items/c?chunked=1")
        second = http.get("/items/c?chunked=1")
    assert "transfer-encoding" in first.headers
    assert second.headers["x-cache"] == "HIT"
    assert second.headers["content-length"] == str(len(first.content))
    assert second.content == first.content


def test_entries_expire_after_the_ttl(gateway, origin) -> None:
    with cached(gateway, origin, ttl="1s") as http:
        assert http.get("/items/t").headers["x-cache"] == "MISS"
        assert http.get("/items/t").headers["x-cache"] == "HIT"
        time.sleep(1.2)
        expired = http.get("/items/t")
    assert expired.headers["x-cache"] == "MISS"
    assert expired.json()["serial"] == 2


def test_age_counts_the_seconds_since_the_entry_was_stored(gateway, origin) -> None:
    with cached(gateway, origin) as http:
        assert "age" not in http.get("/items/a").headers
        assert http.get("/items/a").headers["age"] == "0"
        time.sleep(1.1)
        assert int(http.get("/items/a").headers["age"]) >= 1
        # An answer that was already 5 s old upstream is that much older here.
        http.get("/items/old?age=5")
        assert int(http.get("/items/old?age=5").headers["age"]) >= 5


def test_head_is_answered_from_the_get_entry(gateway, origin) -> None:
    with cached(gateway, origin) as http:
        body = http.get("/items/h").content
        head = http.head("/items/h")
    assert head.status_code == 200
    assert head.headers["x-cache"] == "HIT"
    assert head.headers["content-length"] == str(len(body))
    assert head.content == b""
    assert origin.methods["HEAD"] == 0


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"If-None-Match": '"v1"'}, 304),
        ({"If-None-Match": 'W/"v1", "v0"'}, 304),
        ({"If-None-Match": "*"}, 304),
        ({"If-None-Match": '"v2"'}, 200),
        ({"If-Modified-Since": "Tue, 01 Dec 2026 10:00:00 GMT"}, 304),
        ({"If-Modified-Since": "Mon, 30 Nov 2026 10:00:00 GMT"}, 200),
        ({"If-None-Match": '"v2"', "If-Modified-Since": "Tue, 01 Dec 2026 10:00:00 GMT"}, 200),
    ],
)
def test_a_conditional_get_is_answered_from_the_entry(gateway, origin, headers, status) -> None:
    with cached(gateway, origin) as http:
        full = http.get('/items/e?etag="v1"')
        answer = http.get('/items/e?etag="v1"', headers=headers)
    assert answer.status_code == status
    assert answer.headers["x-cache"] == "HIT"
    assert answer.headers["etag"] == '"v1"'
    assert answer.content == (b"" if status == 304 else full.content)
    assert origin.total == 1


def test_a_head_miss_goes_upstream_and_stores_nothing(gateway, origin) -> None:
    with cached(gateway, origin) as http:
        assert http.head("/items/h2").headers["x-cache"] == "MISS"
        assert http.get("/items/h2").headers["x-cache"] == "MISS"
        assert http.get("/items/h2").headers["x-cache"] == "HIT"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("cookie=1", "Set-Cookie"),
        ("cc=no-store", "no-store"),
        ("cc=private", "private"),
        ("cc=private,%20max-age%3D60", "private with max-age"),
        ("cc=no-cache", "no-cache (needs revalidation)"),
        ("cc=max-age%3D0", "max-age=0"),
        ("cc=s-maxage%3D0,%20max-age%3D60", "s-maxage=0 wins over max-age"),
        ("expires=-10", "Expires in the past"),
        ("vary=*", "Vary: *"),
        ("vary=Accept-Language", "Vary on a header outside the key"),
        ("status=500", "an unlisted status"),
        ("status=201", "201 is not listed by default"),
        ("size=2048", "larger than max_object_size"),
    ],
)
def test_responses_that_must_not_be_stored(gateway, origin, query, reason) -> None:
    with cached(gateway, origin, max_object_size="1KB") as http:
        first = http.get(f"/items/n?{query}")
        second = http.get(f"/items/n?{query}")
    assert first.headers["x-cache"] == "MISS", reason
    assert second.headers["x-cache"] == "MISS", reason
    assert second.content == first.content or "serial" in second.text
    assert origin.total == 2, reason


def test_a_body_over_max_object_size_still_streams_whole(gateway, origin) -> None:
    with cached(gateway, origin, max_object_size="64KB") as http:
        response = http.get("/items/big?size=1000000")
    assert response.status_code == 200
    assert len(response.content) == 1_000_000


@pytest.mark.parametrize("status", [203, 204, 300, 301, 404, 410])
def test_the_default_heuristic_statuses_are_stored(gateway, origin, status) -> None:
    with cached(gateway, origin) as http:
        first = http.get(f"/items/s?status={status}", follow_redirects=False)
        second = http.get(f"/items/s?status={status}", follow_redirects=False)
    assert first.status_code == second.status_code == status
    assert second.headers["x-cache"] == "HIT"
    assert origin.total == 1


def test_configured_statuses_replace_the_defaults(gateway, origin) -> None:
    with cached(gateway, origin, statuses=[200, 201]) as http:
        http.get("/items/x?status=404")
        assert http.get("/items/x?status=404").headers["x-cache"] == "MISS"
        http.get("/items/x?status=201")
        assert http.get("/items/x?status=201").headers["x-cache"] == "HIT"


def test_upstream_max_age_shortens_the_ttl(gateway, origin) -> None:
    with cached(gateway, origin, ttl="1h") as http:
        http.get("/items/m?cc=max-age%3D1")
        assert http.get("/items/m?cc=max-age%3D1").headers["x-cache"] == "HIT"
        time.sleep(1.2)
        assert http.get("/items/m?cc=max-age%3D1").headers["x-cache"] == "MISS"


def test_s_maxage_wins_over_max_age_for_a_shared_cache(gateway, origin) -> None:
    with cached(gateway, origin, ttl="1h") as http:
        url = "/items/s?cc=max-age%3D3600,%20s-maxage%3D1"
        http.get(url)
        assert http.get(url).headers["x-cache"] == "HIT"
        time.sleep(1.2)
        assert http.get(url).headers["x-cache"] == "MISS"


def test_upstream_max_age_never_lengthens_the_ttl(gateway, origin) -> None:
    with cached(gateway, origin, ttl="1s") as http:
        http.get("/items/l?cc=max-age%3D3600")
        time.sleep(1.2)
        assert http.get("/items/l?cc=max-age%3D3600").headers["x-cache"] == "MISS"


@pytest.mark.parametrize(
    "headers",
    [{"Cache-Control": "no-cache"}, {"Cache-Control": "max-age=0"}, {"Pragma": "no-cache"}],
)
def test_a_request_no_cache_skips_the_lookup_and_refreshes(gateway, origin, headers) -> None:
    with cached(gateway, origin) as http:
        assert http.get("/items/r").json()["serial"] == 1
        refreshed = http.get("/items/r", headers=headers)
        after = http.get("/items/r")
    assert refreshed.headers["x-cache"] == "MISS"
    assert refreshed.json()["serial"] == 2
    assert after.headers["x-cache"] == "HIT"
    assert after.json()["serial"] == 2  # the refreshed entry replaced the old one


def test_a_request_no_store_bypasses_and_leaves_the_entry(gateway, origin) -> None:
    with cached(gateway, origin) as http:
        http.get("/items/ns")
        bypass = http.get("/items/ns", headers={"Cache-Control": "no-store"})
        after = http.get("/items/ns")
    assert bypass.headers["x-cache"] == "BYPASS"
    assert bypass.json()["serial"] == 2
    assert after.json()["serial"] == 1


def test_only_configured_methods_are_cached(gateway, origin) -> None:
    with cached(gateway, origin, methods=["GET"]) as http:
        http.get("/items/g")
        assert http.head("/items/g").headers["x-cache"] == "BYPASS"
        assert http.options("/items/g").headers["x-cache"] == "BYPASS"


def test_an_unchecked_authorization_header_bypasses(gateway, origin) -> None:
    with cached(gateway, origin) as http:
        http.get("/items/p")
        response = http.get("/items/p", headers={"Authorization": "Bearer someone"})
    assert response.headers["x-cache"] == "BYPASS"
    assert response.json()["serial"] == 2


def test_an_uncached_route_has_no_x_cache(gateway, origin) -> None:
    with cached(gateway, origin) as http:
        assert "x-cache" not in http.get("/plain/x").headers


# -- keys ------------------------------------------------------------------------------


def test_query_order_and_encoding_do_not_split_entries(gateway, origin) -> None:
    with cached(gateway, origin) as http:
        http.get("/items/q?b=2&a=%41")
        assert http.get("/items/q?a=A&b=2").headers["x-cache"] == "HIT"
        assert http.get("/items/q?a=A&b=3").headers["x-cache"] == "MISS"
        assert http.get("/items/q").headers["x-cache"] == "MISS"


def test_vary_query_allow_list_ignores_other_parameters(gateway, origin) -> None:
    with cached(gateway, origin, vary_query=["page"]) as http:
        http.get("/items/v?page=1&utm_source=x")
        assert http.get("/items/v?utm_source=y&page=1").headers["x-cache"] == "HIT"
        assert http.get("/items/v?page=2").headers["x-cache"] == "MISS"


def test_vary_headers_are_part_of_the_key(gateway, origin) -> None:
    with cached(gateway, origin, vary_headers=["Accept-Language"]) as http:
        http.get("/items/l?vary=Accept-Language", headers={"Accept-Language": "de"})
        de = http.get("/items/l?vary=Accept-Language", headers={"Accept-Language": "de"})
        fr = http.get("/items/l?vary=Accept-Language", headers={"Accept-Language": "fr"})
    assert de.headers["x-cache"] == "HIT"
    assert fr.headers["x-cache"] == "MISS"


def test_unkeyed_forwarding_headers_cannot_poison_the_entry(gateway, origin) -> None:
    """The upstream reflects X-Forwarded-Host; a client's own copy never reaches it
    or the entry, so every later client gets the gateway's honest answer."""
    with cached(gateway, origin) as http:
        evil = {
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "https",
            "X-Original-URL": "/admin",
            "X-Forwarded-Prefix": "/evil",
        }
        poisoned = http.get("/items/home", headers=evil)
        honest = http.get("/items/home")
    assert poisoned.headers["x-cache"] == "MISS"
    assert "evil" not in poisoned.text
    assert honest.headers["x-cache"] == "HIT"
    assert honest.content == poisoned.content
    assert "evil" not in honest.text


def test_the_host_is_part_of_the_key(gateway, origin) -> None:
    with cached(gateway, origin) as http:
        a = http.get("/items/h", headers={"Host": "a.example"})
        b = http.get("/items/h", headers={"Host": "b.example"})
        again = http.get("/items/h", headers={"Host": "A.example"})
    assert a.headers["x-cache"] == b.headers["x-cache"] == "MISS"
    assert b.json()["forwarded_host"] == "b.example"
    assert again.headers["x-cache"] == "HIT"
    assert again.json()["forwarded_host"] == "a.example"


def test_a_trusted_proxys_forwarded_host_is_part_of_the_key(gateway, origin) -> None:
    config = cache_config(origin.url, gateway={"trusted_proxies": ["127.0.0.1/32"]})
    gw = gateway(config)
    with httpx.Client(base_url=gw.url) as http:
        one = http.get("/items/f", headers={"X-Forwarded-Host": "one.example"})
        two = http.get("/items/f", headers={"X-Forwarded-Host": "two.example"})
    assert one.json()["forwarded_host"] == "one.example"
    assert two.headers["x-cache"] == "MISS"
    assert two.json()["forwarded_host"] == "two.example"


def test_debug_shows_the_key(gateway, origin) -> None:
    gw = gateway(cache_config(origin.url, route_cache={"ttl": "30s"}) | {"cache": {"debug": True}})
    with httpx.Client(base_url=gw.url) as http:
        miss = http.get("/items/k?z=1&a=2")
        hit = http.get("/items/k?a=2&z=1")
    assert miss.headers["x-cache-key"] == hit.headers["x-cache-key"]
    assert hit.headers["x-cache-key"].endswith("/items/k?a=2&z=1")


def test_no_key_header_without_debug(gateway, origin) -> None:
    with cached(gateway, origin) as http:
        http.get("/items/k")
        assert "x-cache-key" not in http.get("/items/k").headers


# -- statistics ----------------------------------------------------------------------


def test_statistics_count_hits_misses_and_bypasses(gateway, origin) -> None:
    gw = gateway(cache_config(origin.url))
    with httpx.Client(base_url=gw.url) as http:
        for _ in range(3):
            http.get("/items/s")
        http.get("/items/s", headers={"Cache-Control": "no-store"})
    assert wait_until(lambda: gw.state.cache.snapshot()["routes"]["items"]["hits"] == 2)
    stats = gw.state.cache.snapshot()["routes"]["items"]
    assert (stats["misses"], stats["bypass"], stats["stores"], stats["keys"]) == (1, 1, 1, 1)
    assert stats["hit_rate"] == round(2 / 3, 4)
    assert stats["bytes"] > 0
