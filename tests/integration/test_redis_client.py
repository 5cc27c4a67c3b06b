"""The request-path Redis client against a real Redis: replies, pipelining,
scripts, database and password set-up, and how it behaves in an outage."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis

from propylon.config.redis import RedisConfig
from propylon.state.redis import (
    RedisClient,
    RedisReplyError,
    RedisUnavailable,
    Script,
    shared_client,
)
from tests.support.loop import BackgroundLoop

pytestmark = pytest.mark.redis


def test_replies_come_back_to_their_own_callers(
    bg: BackgroundLoop, redis_url: str, redis_prefix: str
) -> None:
    async def scenario() -> tuple[list[Any], list[Any]]:
        client = RedisClient(redis_url)
        try:
            # 300 commands issued in one loop turn: one batch on the wire.
            sets = [client.execute("SET", f"{redis_prefix}{i}", f"v{i}") for i in range(300)]
            await asyncio.gather(*sets)
            gets = [client.execute("GET", f"{redis_prefix}{i}") for i in range(300)]
            incrs = [client.execute("INCR", f"{redis_prefix}counter") for _ in range(300)]
            return list(await asyncio.gather(*gets)), list(await asyncio.gather(*incrs))
        finally:
            await client.aclose()

    values, counts = bg.run(scenario())
    assert values == [f"v{i}".encode() for i in range(300)]
    assert counts == list(range(1, 301))  # in the order they were issued


def test_an_error_reply_fails_only_its_command(
    bg: BackgroundLoop, redis_url: str, redis_prefix: str
) -> None:
    async def scenario() -> tuple[BaseException | Any, ...]:
        client = RedisClient(redis_url)
        try:
            await client.execute("SET", redis_prefix + "text", "abc")
            results = await asyncio.gather(
                client.execute("INCR", redis_prefix + "text"),
                client.execute("ECHO", "still fine"),
                return_exceptions=True,
            )
            return (*results, client.available)
        finally:
            await client.aclose()

    error, echo, available = bg.run(scenario())
    assert isinstance(error, RedisReplyError)
    assert "not an integer" in str(error)
    assert echo == b"still fine"
    assert available is True


def test_scripts_load_themselves_after_a_flush(
    bg: BackgroundLoop, redis_url: str, redis_prefix: str
) -> None:
    script = Script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    sync = redis.Redis.from_url(redis_url)
    sync.script_flush()

    def evalsha_calls() -> int:
        stats = sync.info("commandstats").get("cmdstat_evalsha", {})
        return int(stats.get("calls", 0))

    async def scenario() -> list[Any]:
        client = RedisClient(redis_url)
        try:
            first = await client.run_script(script, [redis_prefix + "n"], [5])
            second = await client.run_script(script, [redis_prefix + "n"], [2])
            return [first, second]
        finally:
            await client.aclose()

    before = evalsha_calls()
    try:
        assert bg.run(scenario()) == [5, 7]
        # NOSCRIPT once (a failed EVALSHA counts as a call), then EVALSHA hits.
        assert evalsha_calls() - before == 2
    finally:
        sync.close()


def test_the_url_selects_the_database(bg: BackgroundLoop, redis_server: Any) -> None:
    async def scenario() -> None:
        client = RedisClient(redis_server.url.rsplit("/", 1)[0] + "/5")
        try:
            await client.execute("SET", "where", "db5")
        finally:
            await client.aclose()

    bg.run(scenario())
    db5 = redis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/5")
    db0 = redis.Redis.from_url(redis_server.url)
    try:
        assert db5.get("where") == b"db5"
        assert db0.get("where") is None
    finally:
        db5.close()
        db0.close()


def test_a_password_in_the_url_authenticates(bg: BackgroundLoop, redis_server: Any) -> None:
    admin = redis.Redis.from_url(redis_server.url)
    admin.config_set("requirepass", "s3cret")
    admin.close()
    host = redis_server.url.split("//", 1)[1]

    async def scenario(url: str) -> Any:
        client = RedisClient(url)
        try:
            return await client.execute("PING")
        finally:
            await client.aclose()

    assert bg.run(scenario(f"redis://:s3cret@{host}")) == b"PONG"
    with pytest.raises(RedisUnavailable, match="set-up"):
        bg.run(scenario(f"redis://:wrong@{host}"))


def test_an_outage_fails_fast_and_recovery_is_noticed(
    bg: BackgroundLoop, redis_server: Any
) -> None:
    events: list[tuple[bool, float]] = []

    async def start() -> RedisClient:
        # A long timeout: waiting for it would show in the durations below.
        client = RedisClient(redis_server.url, timeout=3.0, probe_interval=0.1)
        client.add_listener(lambda up: events.append((up, time.monotonic())))
        assert await client.execute("PING") == b"PONG"
        return client

    async def call(client: RedisClient) -> tuple[str, float]:
        started = time.monotonic()
        try:
            await client.execute("PING")
            outcome = "ok"
        except RedisUnavailable:
            outcome = "unavailable"
        return outcome, time.monotonic() - started

    client = bg.run(start())
    try:
        redis_server.stop()
        first = bg.run(call(client))  # finds the connection gone
        later = [bg.run(call(client)) for _ in range(50)]
        assert first[0] == "unavailable"
        assert all(outcome == "unavailable" for outcome, _ in later)
        # Known down: no connect attempt, no timeout waited for.
        assert max(duration for _, duration in later) < 0.5
        assert [up for up, _ in events] == [False]

        redis_server.start()
        back = time.monotonic()
        deadline = back + 5
        while not client.available and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.available
        assert bg.run(call(client))[0] == "ok"
        assert [up for up, _ in events] == [False, True]
        print(f"\nRedis back in use {events[1][1] - back:.3f}s after it restarted")
    finally:
        bg.run(client.aclose())


def test_a_silent_server_times_out(bg: BackgroundLoop) -> None:
    async def scenario() -> tuple[str, float, bool]:
        writers: list[asyncio.StreamWriter] = []

        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            await reader.read(1 << 16)  # and never answer

        server = await asyncio.start_server(swallow, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = RedisClient(f"redis://127.0.0.1:{port}", timeout=0.2, probe_interval=5)
        started = time.monotonic()
        try:
            await client.execute("PING")
            outcome = "ok"
        except RedisUnavailable as exc:
            outcome = str(exc)
        finally:
            elapsed = time.monotonic() - started
            available = client.available
            await client.aclose()
            server.close()
            for writer in writers:
                writer.close()
            await server.wait_closed()
        return outcome, elapsed, available

    outcome, elapsed, available = bg.run(scenario())
    assert "did not answer within 0.2s" in outcome
    assert 0.15 <= elapsed < 2.0
    assert available is False


def test_a_refused_connection_is_unavailable(bg: BackgroundLoop) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed

    async def scenario() -> bool:
        client = RedisClient(f"redis://127.0.0.1:{port}", probe_interval=5)
        try:
            with pytest.raises(RedisUnavailable, match="cannot connect"):
                await client.execute("PING")
            return client.available
        finally:
            await client.aclose()

    assert bg.run(scenario()) is False


def test_a_shared_client_lives_until_its_last_user_closes(
    bg: BackgroundLoop, redis_url: str
) -> None:
    config = RedisConfig(url=redis_url)

    async def scenario() -> tuple[bool, bool, bool]:
        first = shared_client(config)
        second = shared_client(config)
        same = first is second
        await first.close()
        still = await second.execute("PING") == b"PONG"
        await second.close()
        return same, still, second.closed

    assert bg.run(scenario()) == (True, True, True)
