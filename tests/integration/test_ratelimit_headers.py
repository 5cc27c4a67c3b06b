"""RateLimit-* headers on 200 and 429 tell the client the state of its limits."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.gateway import route, service
from tests.support.problems import assert_problem


def headers_gateway(gateway: Any, upstream: Any, **route_settings: Any) -> Any:
    return gateway(
        {
            "services": {"up": service(upstream.url)},
            "rate_limits": {"global": "5/m", "failed_login": False},
            "routes": [route("api", "/api", **route_settings), route("bare", "/bare")],
        }
    )


def limit_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith(("ratelimit-", "retry-"))}


def test_remaining_counts_down_on_200_and_the_429_says_when_to_retry(gateway, upstream) -> None:
    gw = headers_gateway(gateway, upstream)
    with httpx.Client() as client:
        seen = [limit_headers(client.get(gw.url + "/bare")) for _ in range(5)]
        assert [h["ratelimit-remaining"] for h in seen] == ["4", "3", "2", "1", "0"]
        assert {h["ratelimit-limit"] for h in seen} == {"5"}
        assert {h["ratelimit-policy"] for h in seen} == {"5;w=60"}
        # Reset: seconds until the bucket is full again, 12 s per request used.
        assert [int(h["ratelimit-reset"]) for h in seen] == [12, 24, 36, 48, 60]
        assert "retry-after" not in seen[0]
        rejected = client.get(gw.url + "/bare")
        assert_problem(rejected, 429)
        headers = limit_headers(rejected)
        assert headers["ratelimit-remaining"] == "0"
        assert headers["ratelimit-limit"] == "5"
        assert 11 <= int(headers["retry-after"]) <= 12  # one request refills in 12 s
        assert int(headers["ratelimit-reset"]) in (59, 60)


def test_the_most_restrictive_of_several_limits_is_reported(gateway, upstream) -> None:
    gw = headers_gateway(gateway, upstream, rate_limit={"rate": "10/m", "burst": 2})
    with httpx.Client() as client:
        first = limit_headers(client.get(gw.url + "/api"))
        # The route's burst of 2 leaves 1; the global limit leaves 4.
        assert first["ratelimit-limit"] == "2"
        assert first["ratelimit-remaining"] == "1"
        assert first["ratelimit-policy"] == "5;w=60, 10;w=60;burst=2"
        second = limit_headers(client.get(gw.url + "/api"))
        assert second["ratelimit-remaining"] == "0"
        third = client.get(gw.url + "/api")
        body = assert_problem(third, 429)
        assert "route.api" in body["detail"]
        assert limit_headers(third)["retry-after"] == "6"  # 10 per minute: one per 6 s
        # The rejected request cost the global limit nothing: 3 of 5 left.
        assert limit_headers(client.get(gw.url + "/bare"))["ratelimit-remaining"] == "2"


def test_headers_can_be_turned_off(gateway, upstream) -> None:
    gw = gateway(
        {
            "services": {"up": service(upstream.url)},
            "rate_limits": {"global": "1/m", "headers": False},
            "routes": [route("bare", "/bare")],
        }
    )
    assert limit_headers(httpx.get(gw.url + "/bare")) == {}
    rejected = httpx.get(gw.url + "/bare")
    assert_problem(rejected, 429)
    assert set(limit_headers(rejected)) == {"retry-after"}
