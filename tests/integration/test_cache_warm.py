"""Warming: the listed paths are fetched through the gateway when it starts."""

from __future__ import annotations

import httpx
import pytest

from propylon.config import ConfigError, load_config_text
from tests.support.cache import cache_config, origin_fixture  # noqa: F401 - the `origin` fixture
from tests.support.gateway import wait_until


def test_warm_paths_are_cached_before_the_first_client_asks(gateway, origin) -> None:
    config = cache_config(origin.url)
    config["cache"] = {
        "warm": [
            "/items/popular",
            "/items?page=1",
            "http://shop.example/items/7",
            "/plain/not-cached",
            "/nowhere",
        ]
    }
    gw = gateway(config)
    assert wait_until(lambda: gw.state.cache.warming.done())
    assert gw.state.cache.warming.result() == 4  # /nowhere has no route: 404
    with httpx.Client(base_url=gw.url) as http:
        popular = http.get("/items/popular", headers={"Host": "localhost"})
        listing = http.get("/items?page=1", headers={"Host": "localhost"})
        shop = http.get("/items/7", headers={"Host": "shop.example"})
    assert popular.headers["x-cache"] == listing.headers["x-cache"] == "HIT"
    assert shop.headers["x-cache"] == "HIT"
    assert origin.hits["/items/popular"] == 1  # the warm-up fetch, nothing since


@pytest.mark.parametrize("entry", ["items", "ftp://x/items", "http:///items"])
def test_a_warm_entry_must_be_a_path_or_an_http_url(entry) -> None:
    text = f"""
services: {{up: {{targets: [{{url: "http://127.0.0.1:1"}}]}}}}
routes: [{{name: r, service: up, cache: {{}}}}]
cache:
  warm: ["{entry}"]
"""
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "gateway.yaml")
    assert "cache.warm" in str(caught.value.issues[0])
    assert "must be a path" in str(caught.value.issues[0])


def test_config_errors_name_the_cache_key() -> None:
    text = """
services: {up: {targets: [{url: "http://127.0.0.1:1"}]}}
routes:
  - name: r
    service: up
    cache: {ttl: 10s, statuses: [206]}
"""
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "gateway.yaml")
    issue = str(caught.value.issues[0])
    assert "gateway.yaml:6" in issue
    assert "routes.0.cache.statuses" in issue or "routes[0].cache.statuses" in issue


def test_the_redis_backend_needs_a_redis_section() -> None:
    text = """
services: {up: {targets: [{url: "http://127.0.0.1:1"}]}}
routes: [{name: r, service: up, cache: {}}]
cache: {backend: redis}
"""
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "gateway.yaml")
    assert "needs a redis: section" in str(caught.value.issues[0])
