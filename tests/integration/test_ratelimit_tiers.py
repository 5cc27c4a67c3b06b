"""Which limits apply to whom: tiers by API key, per user, per route, the
global per-IP limit, admin bypass and the exempt health endpoints."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from propylon.auth.apikeys import generate_key, hash_key
from tests.support.gateway import route, service
from tests.support.jwks import SECRET, mint
from tests.support.problems import assert_problem

KEYS = {tier: generate_key() for tier in ("free", "standard", "premium", "admin")}
TIER_LIMITS = {"free": 2, "standard": 4, "premium": 7}


def limited_gateway(gateway: Any, upstream: Any, **limits: Any) -> Any:
    consumers = [
        {"id": f"c-{tier}", "tier": tier, "keys": [hash_key(KEYS[tier])]}
        for tier in ("free", "standard", "premium")
    ]
    consumers.append(
        {"id": "ops", "tier": "free", "roles": ["admin"], "keys": [hash_key(KEYS["admin"])]}
    )
    config = {
        "services": {"up": service(upstream.url)},
        "auth": {"jwt": {"secret": SECRET, "algorithms": ["HS256"], "audience": "propylon"}},
        "consumers": consumers,
        "rate_limits": {
            "global": "1000/h",
            "per_user": "3/h",
            "tiers": {tier: f"{n}/h" for tier, n in TIER_LIMITS.items()},
            "failed_login": False,
            **limits,
        },
        "routes": [
            route("keys", "/keys", auth="api_key"),
            route("users", "/users", auth="jwt"),
            route(
                "search",
                "/search",
                rate_limit={"rate": "2/h", "by": ["ip", "header:X-Tenant"], "name": "search"},
            ),
            route("open", "/open"),
            route("free", "/free", rate_limit=False),
        ],
    }
    return gateway(config)


def count_ok(url: str, n: int, headers: dict[str, str] | None = None) -> list[int]:
    with httpx.Client() as client:
        return [client.get(url, headers=headers).status_code for _ in range(n)]


@pytest.mark.parametrize("tier", list(TIER_LIMITS))
def test_each_tier_gets_its_own_number_of_requests(gateway, upstream, tier: str) -> None:
    gw = limited_gateway(gateway, upstream)
    limit = TIER_LIMITS[tier]
    statuses = count_ok(gw.url + "/keys", limit + 2, {"X-API-Key": KEYS[tier]})
    assert statuses == [200] * limit + [429, 429]


def test_tiers_count_per_consumer_and_name_the_tier_in_the_429(gateway, upstream) -> None:
    gw = limited_gateway(gateway, upstream)
    assert count_ok(gw.url + "/keys", 2, {"X-API-Key": KEYS["free"]}) == [200, 200]
    response = httpx.get(gw.url + "/keys", headers={"X-API-Key": KEYS["free"]})
    body = assert_problem(response, 429)
    assert "tier.free" in body["detail"]
    assert "c-free" not in response.text  # the key is never shown
    # Another consumer's bucket is untouched.
    assert count_ok(gw.url + "/keys", 4, {"X-API-Key": KEYS["standard"]}) == [200] * 4


def test_an_admin_bypasses_every_limit(gateway, upstream) -> None:
    gw = limited_gateway(gateway, upstream, **{"global": "2/h"})
    statuses = count_ok(gw.url + "/keys", 10, {"X-API-Key": KEYS["admin"]})
    assert statuses == [200] * 10
    response = httpx.get(gw.url + "/keys", headers={"X-API-Key": KEYS["admin"]})
    assert "ratelimit-limit" not in response.headers
    # Everyone else from the same IP is limited as usual.
    statuses = count_ok(gw.url + "/keys", 3, {"X-API-Key": KEYS["premium"]})
    assert statuses == [200, 200, 429]


def test_an_admin_role_from_a_jwt_bypasses_too(gateway, upstream) -> None:
    gw = limited_gateway(gateway, upstream)
    token = mint(sub="root", roles=["admin"])
    assert count_ok(gw.url + "/users", 6, {"Authorization": f"Bearer {token}"}) == [200] * 6


def test_each_user_has_a_limit_of_their_own(gateway, upstream) -> None:
    gw = limited_gateway(gateway, upstream)
    alice = {"Authorization": f"Bearer {mint(sub='alice')}"}
    bob = {"Authorization": f"Bearer {mint(sub='bob')}"}
    assert count_ok(gw.url + "/users", 4, alice) == [200, 200, 200, 429]
    assert count_ok(gw.url + "/users", 3, bob) == [200, 200, 200]
    body = assert_problem(httpx.get(gw.url + "/users", headers=alice), 429)
    assert "rate limit user " in body["detail"]


def test_a_route_limit_keys_on_a_combination_of_ip_and_header(gateway, upstream) -> None:
    gw = limited_gateway(gateway, upstream)
    assert count_ok(gw.url + "/search", 3, {"X-Tenant": "a"}) == [200, 200, 429]
    assert count_ok(gw.url + "/search", 2, {"X-Tenant": "b"}) == [200, 200]
    # Without the header the route limit does not apply (only the global one).
    assert count_ok(gw.url + "/search", 3) == [200, 200, 200]


def test_the_global_limit_is_per_ip_across_routes(gateway, upstream) -> None:
    gw = limited_gateway(gateway, upstream, **{"global": "3/h"})
    assert count_ok(gw.url + "/open", 2) == [200, 200]
    assert count_ok(gw.url + "/search", 2, {"X-Tenant": "z"}) == [200, 429]
    body = assert_problem(httpx.get(gw.url + "/open"), 429)
    assert "rate limit global (3 per 1h)" in body["detail"]
    # A route with rate_limit: false has none, and health is always exempt.
    assert count_ok(gw.url + "/free", 5) == [200] * 5
    assert count_ok(gw.url + "/health", 5) == [200] * 5
    assert "ratelimit-limit" not in httpx.get(gw.url + "/health/live").headers


def test_decisions_are_counted_for_metrics(gateway, upstream) -> None:
    gw = limited_gateway(gateway, upstream, **{"global": "2/h"})
    count_ok(gw.url + "/open", 3)
    snapshot = gw.state.rate_limiter.snapshot()
    assert snapshot["backend"] == "memory"
    assert snapshot["decisions"]["global"] == {"allowed": 2, "rejected": 1}
    assert snapshot["fallback"] == 0


def test_routes_naming_the_same_limit_share_its_buckets(gateway, upstream) -> None:
    shared = {"rate": "3/h", "name": "backoffice"}
    gw = gateway(
        {
            "services": {"up": service(upstream.url)},
            "routes": [route("a", "/a", rate_limit=shared), route("b", "/b", rate_limit=shared)],
        }
    )
    assert count_ok(gw.url + "/a", 2) == [200, 200]
    response = httpx.get(gw.url + "/b")
    assert response.headers["ratelimit-remaining"] == "0"
    body = assert_problem(httpx.get(gw.url + "/b"), 429)
    assert "rate limit backoffice " in body["detail"]
