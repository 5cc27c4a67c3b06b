"""Is the configured Redis answering? A PING per second, with its latency.

The shared client (state/redis.py) only learns that Redis is down when a
command fails; a gateway whose routes use no Redis feature would report it
up forever. This probe keeps /health/ready and /health/detailed true, and
its failures also bring the client's own fast recovery probe into play.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from propylon.state.redis import RedisReplyError, RedisUnavailable, shared_client

if TYPE_CHECKING:
    from propylon.config.redis import RedisConfig
    from propylon.state.redis import RedisClient

INTERVAL = 1.0


class RedisHealth:
    def __init__(self, config: RedisConfig, interval: float = INTERVAL) -> None:
        self.config = config
        self.interval = interval
        self.up: bool | None = None  # None until the first answer (or failure)
        self.latency_ms: float | None = None
        self.error: str | None = None
        self.checked_at: float | None = None
        self._client: RedisClient | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._client = shared_client(self.config)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        assert self._client is not None
        while True:
            await self.check(self._client)
            await asyncio.sleep(self.interval)

    async def check(self, client: RedisClient) -> None:
        started = time.perf_counter()
        try:
            await client.execute("PING")
        except (RedisUnavailable, RedisReplyError) as exc:
            self.up, self.error = False, str(exc)
        else:
            self.up, self.error = True, None
            self.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        self.checked_at = time.time()

    @property
    def ready(self) -> bool:
        client = self._client
        return bool(self.up) and client is not None and client.available

    def snapshot(self) -> dict[str, Any]:
        return {
            "status": "up" if self.ready else ("unknown" if self.up is None else "down"),
            "latency_ms": self.latency_ms,
            "error": self.error,
            "checked_at": self.checked_at,
        }

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.close()
            self._client = None
