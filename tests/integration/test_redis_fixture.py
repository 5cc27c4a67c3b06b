"""The Redis the suite relies on is real, isolated per test, and cleaned up."""

from __future__ import annotations

import redis


def test_keys_live_under_the_test_prefix_and_are_cleaned(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.set(redis_prefix + "k", "v")
        assert client.get(redis_prefix + "k") == b"v"
    finally:
        client.close()


def test_a_private_server_can_be_stopped_and_started(redis_server) -> None:  # type: ignore[no-untyped-def]
    client = redis.Redis.from_url(redis_server.url, socket_timeout=1)
    try:
        assert client.ping()
        redis_server.stop()
        try:
            client.ping()
        except redis.ConnectionError:
            pass
        else:
            raise AssertionError("Redis answered while stopped")
        redis_server.start()
        assert client.ping()
    finally:
        client.close()
