"""The Redis store: entries shared by every worker and node.

Layout, under ``<redis.key_prefix>cache:``:
- ``e:<key>``: one value per entry (a fixed binary header, the header
  lines, then the body; entry.py), written with ``SET PX`` so Redis drops
  it when its stale window ends;
- ``p:<path>``: a set of the keys stored for one normalised path (every
  query and vary variant), expiring with the longest-lived of them;
- ``paths``: the set of paths that have entries.

Both index sets expire with the longest-lived entry they name, so nothing
the cache writes outlives its entries.

Invalidation and purges run one Lua script: it walks ``paths``, matches
each against the patterns, and deletes the matching entries and index
sets (pruning paths whose entries all expired). No ``KEYS`` or ``SCAN``
over the keyspace; the cost grows with the number of distinct cached paths.
The script touches keys it computes itself, so it needs a single Redis (or
Sentinel) rather than a Redis Cluster.

Redis trouble never reaches a client: a failed lookup is a bypass, a failed
store or delete is logged and counted (``redis_errors``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from propylon.cache.entry import Entry
from propylon.cache.keys import SEPARATOR, key_path, key_route
from propylon.cache.patterns import lua_pattern
from propylon.cache.stats import CacheStats
from propylon.state.redis import (
    RedisClient,
    RedisReplyError,
    RedisUnavailable,
    Script,
    shared_client,
)

if TYPE_CHECKING:
    from propylon.config.redis import RedisConfig

log = logging.getLogger("propylon.cache")

_PUT = Script(
    """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
redis.call('SADD', KEYS[3], ARGV[4])
if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return 1
"""
)

_DELETE = Script(
    """
local prefix, route, sep = ARGV[1], ARGV[2], ARGV[3]
local removed = 0
for _, path in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local set = prefix .. 'p:' .. path
  local hit = false
  for i = 4, #ARGV do
    if string.find(path, ARGV[i]) then hit = true break end
  end
  if hit then
    for _, key in ipairs(redis.call('SMEMBERS', set)) do
      if route == '' or string.sub(key, 1, #route + #sep) == route .. sep then
        removed = removed + redis.call('DEL', prefix .. 'e:' .. key)
        redis.call('SREM', set, key)
      end
    end
  end
  if redis.call('SCARD', set) == 0 then
    redis.call('SREM', KEYS[1], path)
  end
end
return removed
"""
)


class RedisStore:
    def __init__(self, config: RedisConfig, stats: CacheStats) -> None:
        self.config = config
        self.stats = stats
        self.prefix = config.key_prefix + "cache:"
        self.client: RedisClient | None = None
        self.errors = 0  # failed deletes (lookups and stores count per route)

    @property
    def available(self) -> bool:
        return self.client is not None and self.client.available

    def start(self) -> None:
        if self.client is None:
            self.client = shared_client(self.config)

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.close()

    async def get(self, key: str, now: float) -> tuple[Entry | None, bool]:
        """(the entry or None, whether Redis answered)."""
        client = self.client
        if client is None:
            return None, False
        try:
            data = await client.execute(b"GET", self.prefix + "e:" + key)
        except (RedisUnavailable, RedisReplyError):
            self.stats.route(key_route(key)).redis_errors += 1
            return None, False
        if data is None:
            return None, True
        try:
            entry = Entry.decode(data)
        except ValueError:
            return None, True  # written by something else: a miss, overwritten on store
        return (entry, True) if now < entry.stale_until else (None, True)

    async def put(self, key: str, entry: Entry) -> None:
        client = self.client
        if client is None:
            return
        ttl_ms = int((entry.stale_until - time.time()) * 1000)
        if ttl_ms <= 0:
            return
        path = key_path(key)
        keys = [self.prefix + "e:" + key, self.prefix + "p:" + path, self.prefix + "paths"]
        try:
            await client.run_script(_PUT, keys, [entry.encode(), ttl_ms, key, path])
        except (RedisUnavailable, RedisReplyError) as exc:
            self.stats.route(key_route(key)).redis_errors += 1
            log.debug("could not store a cache entry in Redis: %s", exc)

    async def delete_matching(self, patterns: list[str], route: str | None) -> int:
        """Entries deleted; -1 when Redis could not be asked."""
        client = self.client
        if client is None:
            return -1
        args = [self.prefix, route or "", SEPARATOR, *(lua_pattern(p) for p in patterns)]
        try:
            removed = await client.run_script(_DELETE, [self.prefix + "paths"], args)
        except (RedisUnavailable, RedisReplyError) as exc:
            self.errors += 1
            log.warning("could not invalidate cache entries in Redis: %s", exc)
            return -1
        return int(removed)
