"""Fixtures and helpers shared by the cache tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.cache_upstream import CacheUpstream
from tests.support.gateway import route, service
from tests.support.loop import BackgroundLoop


@pytest.fixture(name="origin")
def origin_fixture(bg: BackgroundLoop) -> Iterator[CacheUpstream]:
    server = CacheUpstream()
    bg.run(server.start())
    yield server
    bg.run(server.stop())


def cache_config(
    upstream_url: str, route_cache: dict[str, Any] | None = None, **top: Any
) -> dict[str, Any]:
    """One service and one cached route ``items`` on ``/items``, and an
    uncached route ``plain`` on ``/plain``."""
    config: dict[str, Any] = {
        "services": {"up": service(upstream_url)},
        "routes": [
            route("items", "/items", cache={"ttl": "30s", **(route_cache or {})}),
            route("plain", "/plain"),
        ],
    }
    config.update(top)
    return config
