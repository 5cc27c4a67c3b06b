"""What every cached route of one config shares in a worker: the store, the
stats, the flights of collapsed misses, and how invalidations spread.

With the memory backend each worker has its own LRU, so an invalidation is
applied here and published as a ``cache`` event (server/sync.py) that the
other workers of the node (supervisor channel) and other nodes (Redis
pub/sub, when configured) apply too. With the Redis backend the entries are
shared, so deleting them once is enough.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from propylon.cache.collapse import Flights
from propylon.cache.entry import Entry
from propylon.cache.memory import MemoryStore
from propylon.cache.patterns import matcher
from propylon.cache.stats import CacheStats
from propylon.config.cache import CacheSettings
from propylon.config.per_config import PerConfig

if TYPE_CHECKING:
    from propylon.cache.redis_store import RedisStore
    from propylon.config.models import GatewayConfig

log = logging.getLogger("propylon.cache")

EVENT_KIND = "cache"


class CacheRuntime:
    def __init__(self, config: GatewayConfig) -> None:
        self.settings = config.cache or CacheSettings()
        self.stats = CacheStats()
        self.flights = Flights(self.settings.collapse_wait)
        self.memory: MemoryStore | None = None
        self.redis: RedisStore | None = None
        if self.settings.backend == "redis":
            from propylon.cache.redis_store import RedisStore

            assert config.redis is not None  # checked by GatewayConfig
            self.redis = RedisStore(config.redis, self.stats)
        else:
            self.memory = MemoryStore(self.settings.max_bytes, self.stats)
        # Set by GatewayState: hands an event to the other workers and nodes.
        self.publish: Callable[[dict[str, Any]], None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = self._closed = False
        self.warming: asyncio.Task[int] | None = None  # cache/warm.py, started by the gateway

    async def start(self) -> None:
        """Once per runtime (every cached route's plugin calls it)."""
        if self._started:
            return
        self._started = True
        if self.redis is not None:
            self.redis.start()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.warming is not None:
            self.warming.cancel()
        await self.drain()
        if self.redis is not None:
            await self.redis.close()
        if self.memory is not None:
            self.memory.clear()  # a closed gateway's entries are of no use

    # -- storing ----------------------------------------------------------------------

    def put(self, key: str, entry: Entry) -> None:
        if self.memory is not None:
            self.memory.put(key, entry)
        elif self.redis is not None:
            self.background(self.redis.put(key, entry))

    # -- invalidation and purges ----------------------------------------------------

    def invalidate(self, patterns: list[str], route: str | None = None) -> None:
        """Drop entries whose path matches (a write on a cached route, a purge)."""
        if self.memory is not None:
            self.memory.delete_matching(matcher(patterns), route)
            if self.publish is not None:
                self.publish({"kind": EVENT_KIND, "patterns": patterns, "route": route})
        elif self.redis is not None:
            self.background(self.redis.delete_matching(patterns, route))

    async def purge(self, pattern: str | None, route: str | None, *, spread: bool = True) -> int:
        """Entries removed from this worker's store (or from Redis; -1: Redis
        could not be asked). ``spread``: tell the other workers and nodes."""
        patterns = [pattern or "*"]
        if self.memory is not None:
            removed = self.memory.delete_matching(matcher(patterns), route)
            if spread and self.publish is not None:
                self.publish({"kind": EVENT_KIND, "patterns": patterns, "route": route})
            return removed
        assert self.redis is not None
        return await self.redis.delete_matching(patterns, route)

    def apply_event(self, event: dict[str, Any]) -> None:
        """An invalidation from another worker or node (memory backend only)."""
        patterns = event.get("patterns")
        route = event.get("route")
        if self.memory is None or not isinstance(patterns, list):
            return
        if route is not None and not isinstance(route, str):
            return
        self.memory.delete_matching(matcher(str(p) for p in patterns), route)

    # -- background work ---------------------------------------------------------------

    def background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- statistics ----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Counters per route and totals; cheap, for health and metrics."""
        local = self.memory is not None
        routes = {
            name: stats.as_dict(local_sizes=local) for name, stats in self.stats.routes.items()
        }
        totals: dict[str, Any] = {}
        for data in routes.values():
            for name, value in data.items():
                if name != "hit_rate":
                    totals[name] = totals.get(name, 0) + value
        lookups = totals.get("hits", 0) + totals.get("stale", 0) + totals.get("misses", 0)
        served = totals.get("hits", 0) + totals.get("stale", 0)
        totals["hit_rate"] = round(served / lookups, 4) if lookups else 0.0
        snapshot: dict[str, Any] = {
            "backend": self.settings.backend,
            "routes": routes,
            "totals": totals,
            "at": time.time(),
        }
        if self.memory is not None:
            snapshot["memory"] = {
                "keys": len(self.memory),
                "bytes": self.memory.bytes,
                "max_bytes": self.memory.max_bytes,
            }
        if self.redis is not None:
            snapshot["redis"] = {
                "available": self.redis.available,
                "delete_errors": self.redis.errors,
            }
        return snapshot


# The runtime of a config (chains are built per route, with the config only).
cache_runtime_for = PerConfig(CacheRuntime)
