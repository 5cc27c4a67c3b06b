"""The Redis backend: one script call (EVALSHA) decides all limits of a request.

Keys are ``<key_prefix>{rl}:<NAME>:<SUBJECT>``: they start with the
configured prefix like every key propylon writes, and share one hash tag,
so a multi-key call is valid on Redis Cluster (the limiter's keys then live
on one shard, which serves far more decisions per second than a fleet of
gateway nodes sends). Commands go through the shared client
(state/redis.py), which pipelines everything issued in one loop turn.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from propylon.ratelimit.redis_script import SOURCE
from propylon.state.redis import RedisUnavailable, Script, shared_client

if TYPE_CHECKING:
    from collections.abc import Sequence

    from propylon.config.redis import RedisConfig
    from propylon.ratelimit.gcra import Policy
    from propylon.state.redis import RedisClient

SCRIPT = Script(SOURCE)
_MODES = (b"0", b"1", b"2")


class RedisBackend:
    script = SCRIPT

    def __init__(self, config: RedisConfig) -> None:
        self.config = config
        self.tag = config.key_prefix + "{rl}:"
        self.btag = self.tag.encode()
        self.client: RedisClient | None = None
        self.closed = False

    def start(self) -> RedisClient:
        if self.closed:  # stopping: requests still finishing decide locally
            raise RedisUnavailable("the rate limiter is closed")
        if self.client is None:
            self.client = shared_client(self.config)
        return self.client

    async def close(self) -> None:
        self.closed = True
        client, self.client = self.client, None
        if client is not None:
            await client.close()

    @property
    def available(self) -> bool:
        client = self.client
        if client is None:
            return not self.closed  # before start(): try, and learn
        return client.available

    async def decide(
        self,
        policies: Sequence[Policy],
        keys: Sequence[str],
        mode: int,
        now: int | None = None,
    ) -> tuple[bool, list[bool], list[int]]:
        client = self.client or self.start()
        tag = self.tag
        # Bytes throughout: the client copies them as they are (no formatting).
        args: list[bytes] = [b"" if now is None else b"%d" % now, _MODES[mode]]
        for policy in policies:
            args += policy.script_args
        reply = await client.run_script(SCRIPT, [(tag + key).encode() for key in keys], args)
        passed = [bool(flag) for flag in reply[2::2]]
        aheads = [int(ahead) for ahead in reply[3::2]]
        return bool(reply[1]), passed, aheads

    # -- operations ----------------------------------------------------------------

    async def ahead(self, key: str) -> tuple[int | None, int]:
        """(TAT - Redis now in microseconds, or None at rest; Redis now)."""
        client = self.client or self.start()
        raw, clock = await asyncio.gather(
            client.execute("GET", self.tag + key), client.execute("TIME")
        )
        seconds, micros = clock
        now = int(seconds) * 1_000_000 + int(micros)
        if raw is None:
            return None, now
        ahead = int(raw) - now
        return (ahead if ahead > 0 else None), now

    async def reset(self, key: str) -> int:
        """Delete one key, or all keys matching ``NAME:*`` (SCAN, never KEYS)."""
        client = self.client or self.start()
        if not key.endswith("*"):
            return int(await client.execute("DEL", self.tag + key))
        pattern = _glob_escape(self.tag + key[:-1]) + "*"
        deleted, cursor = 0, b"0"
        while True:
            cursor, found = await client.execute("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            if found:
                deleted += int(await client.execute("DEL", *found))
            if cursor in (b"0", 0, "0"):
                return deleted


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
