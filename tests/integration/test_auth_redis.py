"""API keys in a real Redis: created at run time, seen by every gateway
process; cached locally; stale while Redis is down."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from propylon.auth.apikeys import RedisKeyStore, generate_key, hash_key
from propylon.auth.principal import KeyRecord
from propylon.auth.runtime import runtime_for
from propylon.config.redis import RedisConfig
from tests.support.gateway import route, service, wait_until
from tests.support.problems import assert_problem

pytestmark = pytest.mark.redis


def redis_config(upstream: Any, url: str, prefix: str, **api_keys: Any) -> dict[str, Any]:
    return {
        "services": {"up": service(upstream.url)},
        "redis": {"url": url, "key_prefix": prefix},
        "auth": {"api_keys": {"cache_ttl": "300ms", "negative_ttl": "200ms", **api_keys}},
        "consumers": [{"id": "acme", "tier": "premium", "roles": ["agent"]}],
        "routes": [route("api", "/api", auth="api_key")],
    }


def store_call(url: str, prefix: str, action: str, key_hash: str, record: Any = None) -> Any:
    async def run() -> Any:
        store = RedisKeyStore(RedisConfig(url=url, key_prefix=prefix))
        try:
            if action == "add":
                return await store.add(key_hash, record)
            return await store.remove(key_hash)
        finally:
            await store.aclose()

    return asyncio.run(run())


def status(gw: Any, key: str) -> int:
    return httpx.get(gw.url + "/api", headers={"X-API-Key": key}).status_code


def test_a_key_created_at_run_time_works_on_every_process(
    gateway_process, upstream, redis_url, redis_prefix
) -> None:
    config = redis_config(upstream, redis_url, redis_prefix)
    first, second = gateway_process(config), gateway_process(config)
    key = generate_key()
    assert status(second, key) == 401  # and now negatively cached there, briefly

    store_call(redis_url, redis_prefix, "add", hash_key(key), KeyRecord("acme", "standard"))
    assert status(first, key) == 200  # never looked up there: straight to Redis
    assert wait_until(lambda: status(second, key) == 200, timeout=3)
    seen = upstream.requests[-1].headers
    assert seen["x-consumer-id"] == "acme"
    assert seen["x-user-roles"] == "agent"  # the config's consumer roles apply

    assert store_call(redis_url, redis_prefix, "remove", hash_key(key)) is True
    # A revoked key works at most cache_ttl longer on a node that cached it.
    assert wait_until(lambda: status(first, key) == 401, timeout=3)
    assert wait_until(lambda: status(second, key) == 401, timeout=3)


def test_keys_new_stores_the_hash_where_both_processes_find_it(
    gateway_process, upstream, redis_url, redis_prefix, tmp_path: Path
) -> None:
    config = redis_config(upstream, redis_url, redis_prefix)
    first, second = gateway_process(config), gateway_process(config)
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "propylon", "keys", "new", "-c", str(config_file),
         "--consumer", "initech", "--tier", "premium", "--role", "manager"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("prop_")
    assert "Stored the hash in Redis" in result.stderr
    assert key not in result.stderr
    for gw in (first, second):
        assert status(gw, key) == 200
        seen = upstream.requests[-1].headers
        assert (seen["x-consumer-id"], seen["x-user-roles"]) == ("initech", "manager")


def test_the_store_keeps_only_hashes(redis_url, redis_prefix) -> None:
    import redis

    key = generate_key()
    store_call(redis_url, redis_prefix, "add", hash_key(key), KeyRecord("acme", None, ("a",)))
    client = redis.Redis.from_url(redis_url)
    try:
        names = [name.decode() for name in client.scan_iter(match=redis_prefix + "*")]
        assert names == [redis_prefix + "apikey:" + hash_key(key).removeprefix("sha256:")]
        values = client.hgetall(names[0])
        assert not any(key.encode() in value for value in values.values())
        assert values[b"consumer"] == b"acme"
    finally:
        client.close()


@pytest.fixture
def private_redis_gateway(gateway, upstream, redis_server, bg) -> Iterator[Any]:
    config = redis_config(upstream, redis_server.url, "propylon-test:outage:", cache_ttl="100ms")
    gw = gateway(config)
    yield gw
    gw.stop()
    # The gateway has no plugin shutdown hook yet: close the Redis client here.
    bg.run(runtime_for(gw.state.config).aclose())


def test_a_known_key_keeps_working_while_redis_is_down(private_redis_gateway, redis_server) -> None:
    gw = private_redis_gateway
    known = generate_key()
    store_call(redis_server.url, "propylon-test:outage:", "add", hash_key(known), KeyRecord("acme"))
    assert status(gw, known) == 200
    redis_server.stop()
    time.sleep(0.15)  # past cache_ttl: the next look-up goes to Redis and fails
    assert status(gw, known) == 200
    response = httpx.get(gw.url + "/api", headers={"X-API-Key": generate_key()})
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"
    redis_server.start()  # empty: this Redis keeps no data across restarts
    assert wait_until(lambda: status(gw, generate_key()) == 401, timeout=5)
