"""The Redis script decides exactly like the memory backend and the reference
model, for the same arrival times (hypothesis), and the operations on keys."""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from propylon.config.redis import RedisConfig
from propylon.ratelimit.gcra import MICROS, Policy
from propylon.ratelimit.memory import ALL, EACH, PEEK, MemoryBackend
from propylon.ratelimit.redis_backend import RedisBackend
from tests.support.loop import BackgroundLoop
from tests.unit.test_ratelimit_gcra import LeakyBucket

pytestmark = pytest.mark.redis
_runs = itertools.count()


@pytest.fixture
def backend(bg: BackgroundLoop, redis_url: str, redis_prefix: str) -> Iterator[RedisBackend]:
    redis = RedisBackend(RedisConfig(url=redis_url, key_prefix=redis_prefix))

    async def start() -> None:
        redis.start()

    bg.run(start())
    yield redis
    bg.run(redis.close())


scenario = st.fixed_dictionaries(
    {
        "limits": st.lists(
            st.tuples(st.integers(1, 8), st.sampled_from([1.0, 3.0, 60.0]), st.integers(0, 4)),
            min_size=1,
            max_size=3,
        ),
        "steps": st.lists(
            st.tuples(st.integers(0, 2_500_000), st.sampled_from([ALL, ALL, EACH, PEEK])),
            min_size=1,
            max_size=40,
        ),
    }
)


# Each example uses keys of its own, so sharing the backend between them is safe.
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenario)
def test_redis_memory_and_the_model_agree(
    bg: BackgroundLoop, backend: RedisBackend, case: dict[str, Any]
) -> None:
    policies = [Policy(f"p{i}", c, w, c + b) for i, (c, w, b) in enumerate(case["limits"])]
    run = next(_runs)
    keys = [f"{p.name}:run{run}" for p in policies]
    memory = MemoryBackend()
    models = [LeakyBucket(p.interval, p.capacity) for p in policies]
    now = 1_800_000_000 * MICROS
    for gap, mode in case["steps"]:
        now += gap
        remote = bg.run(backend.decide(policies, keys, mode, now=now))
        local = memory.decide(policies, keys, mode, now=now)
        assert remote == local
        if len(policies) == 1:
            # The model knows one key; with one key ALL and EACH are the same,
            # and PEEK is an offer on a copy.
            model = copy.deepcopy(models[0]) if mode == PEEK else models[0]
            assert local[0] == model.offer(now)


def test_redis_time_is_used_when_no_clock_is_given(
    bg: BackgroundLoop, backend: RedisBackend
) -> None:
    policy = Policy("p", 3, 60.0, 3)
    results = [bg.run(backend.decide([policy], ["p:x"], ALL))[0] for _ in range(4)]
    assert results == [True, True, True, False]
    ahead, _now = bg.run(backend.ahead("p:x"))
    assert ahead is not None
    assert 59 * MICROS < ahead <= 60 * MICROS


def test_reset_of_a_key_and_of_a_whole_limit(bg: BackgroundLoop, backend: RedisBackend) -> None:
    policy = Policy("p", 1, 60.0, 1)

    async def fill() -> None:
        await asyncio.gather(
            *(backend.decide([policy], [f"{name}:{n}"], ALL) for name in "pq" for n in range(30))
        )

    bg.run(fill())
    assert bg.run(backend.reset("p:0")) == 1
    assert bg.run(backend.ahead("p:0"))[0] is None
    assert bg.run(backend.decide([policy], ["p:0"], ALL))[0]
    assert bg.run(backend.reset("p:*")) == 30
    assert bg.run(backend.ahead("q:1"))[0] is not None
    assert bg.run(backend.reset("p:nothing")) == 0


def test_a_stopped_gateway_leaves_no_connection_to_redis(
    gateway: Any, upstream: Any, redis_server: Any
) -> None:
    import httpx
    import redis as redis_py

    from tests.support.gateway import route, service, wait_until

    gw = gateway(
        {
            "services": {"up": service(upstream.url)},
            "redis": {"url": redis_server.url},
            "consumers": [{"id": "c", "keys": ["sha256:" + "0" * 64]}],
            "rate_limits": {"global": "10/m"},  # plus the failed-login limiter on /api
            "routes": [route("api", "/api", auth="api_key"), route("open", "/open")],
        }
    )
    assert httpx.get(gw.url + "/open").status_code == 200
    assert httpx.get(gw.url + "/api").status_code == 401
    probe = redis_py.Redis.from_url(redis_server.url)
    try:
        assert probe.info("clients")["connected_clients"] > 1
        gw.stop()
        assert wait_until(lambda: probe.info("clients")["connected_clients"] == 1)
    finally:
        probe.close()
