"""Two gateway processes sharing one Redis admit exactly the limit, together."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.support.gateway import route, service

pytestmark = pytest.mark.redis

LIMIT = 12
WINDOW = 6.0  # one request refills every 0.5 s: far longer than a burst of 36 takes


async def burst(urls: list[str], total: int) -> tuple[list[int], float]:
    limits = httpx.Limits(max_connections=total, max_keepalive_connections=total)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        # Open the connections first (on a route without limits), so the
        # burst itself is just requests on warm connections.
        await asyncio.gather(*(client.get(urls[i % len(urls)] + "/free") for i in range(total)))
        started = time.monotonic()
        responses = await asyncio.gather(
            *(client.get(urls[i % len(urls)] + "/api") for i in range(total))
        )
        return [r.status_code for r in responses], time.monotonic() - started


def test_two_nodes_admit_exactly_the_limit_across_refills(
    gateway_process: Any, upstream: Any, redis_url: str, redis_prefix: str
) -> None:
    config = {
        "services": {"up": service(upstream.url)},
        "redis": {"url": redis_url, "key_prefix": redis_prefix},
        "rate_limits": {"global": f"{LIMIT}/{int(WINDOW)}s", "failed_login": False},
        "routes": [route("api", "/api"), route("free", "/free", rate_limit=False)],
    }
    nodes = [gateway_process(config), gateway_process(config)]
    urls = [node.url for node in nodes]
    for round_number in range(2):
        statuses, took = asyncio.run(burst(urls, 3 * LIMIT))
        print(f"round {round_number}: {statuses.count(200)} of {3 * LIMIT} allowed in {took:.3f} s")
        assert sorted(set(statuses)) == [200, 429]
        # Each request that arrived after the first refill could pass too.
        refilled = int(took / (WINDOW / LIMIT))
        assert LIMIT <= statuses.count(200) <= LIMIT + refilled
        if refilled == 0:
            assert statuses.count(200) == LIMIT
        time.sleep(WINDOW + 0.2)  # the bucket is full again
