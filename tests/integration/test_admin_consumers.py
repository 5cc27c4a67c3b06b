"""Consumers and API keys through the admin API, against a real Redis and a
real gateway that must accept a new key at once and drop a revoked one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from propylon.admin.app import AdminServer
from propylon.auth.apikeys import generate_key, hash_key
from propylon.config.cluster import AdminConfig
from propylon.config.models import GatewayConfig
from tests.integration.test_admin_app import FakeControl
from tests.support.gateway import InProcessGateway, route, service, wait_until
from tests.support.loop import BackgroundLoop
from tests.support.upstream import Upstream

pytestmark = pytest.mark.redis

TOKEN = "a-token-of-some-length"
CONFIG_KEY = generate_key()


def config(upstream: Upstream, redis: dict[str, Any] | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "services": {"up": service(upstream.url)},
        "auth": {"api_keys": {"cache_ttl": "200ms", "negative_ttl": "100ms"}},
        "consumers": [
            {"id": "acme", "tier": "premium", "roles": ["agent"], "keys": [hash_key(CONFIG_KEY)]}
        ],
        "routes": [route("api", "/api", auth="api_key")],
    }
    if redis is not None:
        result["redis"] = redis
    return result


class ConfigControl(FakeControl):
    def __init__(self, config: GatewayConfig) -> None:
        super().__init__()
        self.config = config


def serve_admin(bg: BackgroundLoop, gateway_config: dict[str, Any]) -> Iterator[httpx.Client]:
    control = ConfigControl(GatewayConfig.model_validate(gateway_config))
    server = bg.run(AdminServer.start(AdminConfig(listen="127.0.0.1:0", token=TOKEN), control))
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client
    bg.run(server.close())


@pytest.fixture
def setup(
    bg: BackgroundLoop,
    upstream: Upstream,
    redis_url: str,
    redis_prefix: str,
    gateway: Callable[[dict[str, Any]], InProcessGateway],
) -> Iterator[tuple[httpx.Client, InProcessGateway]]:
    gateway_config = config(upstream, {"url": redis_url, "key_prefix": redis_prefix})
    gw = gateway(gateway_config)
    for admin in serve_admin(bg, gateway_config):
        yield admin, gw


def call(gw: InProcessGateway, key: str) -> int:
    return httpx.get(gw.url + "/api", headers={"X-API-Key": key}).status_code


def test_a_key_made_through_the_admin_api_works_at_once_and_until_revoked(
    setup: tuple[httpx.Client, InProcessGateway], upstream: Upstream
) -> None:
    admin, gw = setup
    made = admin.post("/admin/consumers/acme/keys", json={"roles": ["reporting"]})
    assert made.status_code == 201
    body = made.json()
    key = body["key"]
    assert key.startswith("prop_")
    assert body["id"] == hash_key(key).removeprefix("sha256:")[:12]
    assert call(gw, key) == 200
    assert upstream.requests[-1].headers["x-consumer-id"] == "acme"

    listed = admin.get("/admin/consumers/acme").json()
    assert listed["in_config"] is True
    assert {k["source"] for k in listed["keys"]} == {"config", "redis"}
    assert key not in admin.get("/admin/consumers").text  # shown once, never again

    revoked = admin.delete(f"/admin/consumers/acme/keys/{body['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked"] == [body["id"]]
    assert wait_until(lambda: call(gw, key) == 401, timeout=3)  # once the cache expires
    assert call(gw, CONFIG_KEY) == 200  # the config's key is untouched


def test_a_new_consumer_and_its_removal(setup: tuple[httpx.Client, InProcessGateway]) -> None:
    admin, gw = setup
    made = admin.post("/admin/consumers", json={"id": "partner-1", "tier": "standard"})
    assert made.status_code == 201
    second = admin.post("/admin/consumers/partner-1/keys", json={})
    assert second.status_code == 201
    ids = {c["id"] for c in admin.get("/admin/consumers").json()["consumers"]}
    assert ids == {"acme", "partner-1"}
    view = admin.get("/admin/consumers/partner-1/keys").json()
    assert len(view["keys"]) == 2
    assert {k["tier"] for k in view["keys"]} == {"standard", None}
    assert call(gw, made.json()["key"]) == 200
    gone = admin.delete("/admin/consumers/partner-1")
    assert sorted(gone.json()["revoked"]) == sorted(k["id"] for k in view["keys"])
    assert admin.get("/admin/consumers/partner-1").status_code == 404
    assert wait_until(lambda: call(gw, made.json()["key"]) == 401, timeout=3)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/admin/consumers/acme/keys", {"tier": "platinum"}, 422),
        ("POST", "/admin/consumers/acme/keys", {"roles": ["has space"]}, 422),
        ("POST", "/admin/consumers/acme/keys", {"roles": "agent"}, 422),
        ("POST", "/admin/consumers/acme/keys", {"colour": "red"}, 422),
        ("POST", "/admin/consumers/bad%20id/keys", {}, 422),
        ("POST", "/admin/consumers", {"tier": "free"}, 422),
        ("POST", "/admin/consumers", [1, 2], 400),
        ("GET", "/admin/consumers/nobody", None, 404),
        ("DELETE", "/admin/consumers/nobody", None, 404),
        ("DELETE", "/admin/consumers/acme/keys/0123456789ab", None, 404),
        ("DELETE", f"/admin/consumers/acme/keys/{hash_key(CONFIG_KEY)[7:19]}", None, 409),
    ],
)
def test_bad_requests_are_problems(
    setup: tuple[httpx.Client, InProcessGateway],
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    admin, _gw = setup
    response = admin.request(method, path, json=body)
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["status"] == status
    assert response.headers["content-type"].startswith("application/problem+json")


def test_without_redis_keys_cannot_be_made_but_config_consumers_show(
    bg: BackgroundLoop, upstream: Upstream
) -> None:
    for admin in serve_admin(bg, config(upstream, None)):
        listed = admin.get("/admin/consumers").json()["consumers"]
        assert [c["id"] for c in listed] == ["acme"]
        refused = admin.post("/admin/consumers/acme/keys", json={})
        assert refused.status_code == 409
        assert "redis" in refused.json()["detail"]
