"""Authenticated requests: bypass unless per_consumer, then one entry per consumer."""

from __future__ import annotations

from typing import Any

import httpx

from propylon.auth.apikeys import generate_key, hash_key
from tests.support.cache import origin_fixture  # noqa: F401 - the `origin` fixture
from tests.support.gateway import route, service
from tests.support.jwks import SECRET, mint

ACME_KEY = generate_key()
GLOBEX_KEY = generate_key()


def auth_gateway(gateway: Any, origin: Any, **cache: Any) -> Any:
    return gateway(
        {
            "services": {"up": service(origin.url)},
            "auth": {"jwt": {"secret": SECRET, "algorithms": ["HS256"], "audience": "propylon"}},
            "consumers": [
                {"id": "acme", "keys": [hash_key(ACME_KEY)]},
                {"id": "globex", "keys": [hash_key(GLOBEX_KEY)]},
            ],
            "routes": [
                route("items", "/items", auth=["jwt", "api_key"], cache={"ttl": "30s", **cache})
            ],
        }
    )


def test_authenticated_requests_bypass_without_per_consumer(gateway, origin) -> None:
    gw = auth_gateway(gateway, origin)
    with httpx.Client(base_url=gw.url, headers={"X-API-Key": ACME_KEY}) as http:
        first = http.get("/items/me")
        second = http.get("/items/me")
    assert first.headers["x-cache"] == second.headers["x-cache"] == "BYPASS"
    assert origin.hits["/items/me"] == 2


def test_api_key_consumers_never_get_each_others_entries(gateway, origin) -> None:
    gw = auth_gateway(gateway, origin, per_consumer=True)
    with httpx.Client(base_url=gw.url) as http:
        acme = http.get("/items/me", headers={"X-API-Key": ACME_KEY})
        globex = http.get("/items/me", headers={"X-API-Key": GLOBEX_KEY})
        acme_again = http.get("/items/me", headers={"X-API-Key": ACME_KEY})
        globex_again = http.get("/items/me", headers={"X-API-Key": GLOBEX_KEY})
    assert acme.json()["consumer"] == "acme"
    assert globex.headers["x-cache"] == "MISS"
    assert globex.json()["consumer"] == "globex"
    assert acme_again.headers["x-cache"] == "HIT"
    assert acme_again.json()["consumer"] == "acme"
    assert globex_again.headers["x-cache"] == "HIT"
    assert globex_again.json()["consumer"] == "globex"


def test_jwt_users_never_get_each_others_entries(gateway, origin) -> None:
    gw = auth_gateway(gateway, origin, per_consumer=True)
    alice = {"Authorization": f"Bearer {mint(sub='alice', iss=None)}"}
    bob = {"Authorization": f"Bearer {mint(sub='bob', iss=None)}"}
    with httpx.Client(base_url=gw.url) as http:
        a1 = http.get("/items/me", headers=alice)
        b1 = http.get("/items/me", headers=bob)
        a2 = http.get("/items/me", headers=alice)
        # A fresh token of the same user is the same consumer.
        a3 = http.get(
            "/items/me", headers={"Authorization": f"Bearer {mint(sub='alice', iss=None, jti='x')}"}
        )
    assert (a1.headers["x-cache"], b1.headers["x-cache"]) == ("MISS", "MISS")
    assert b1.json()["serial"] == 2
    assert a2.headers["x-cache"] == a3.headers["x-cache"] == "HIT"
    assert a2.content == a3.content == a1.content


def test_an_anonymous_request_is_refused_before_the_cache(gateway, origin) -> None:
    gw = auth_gateway(gateway, origin, per_consumer=True)
    with httpx.Client(base_url=gw.url) as http:
        http.get("/items/me", headers={"X-API-Key": ACME_KEY})
        anonymous = http.get("/items/me")
    assert anonymous.status_code == 401
    assert anonymous.headers["x-cache"] == "BYPASS"
    assert "consumer" not in anonymous.text
