"""API keys: generated here, stored only as SHA-256 hashes, found by hash.

Two sources: the ``consumers:`` of the config (an in-memory index) and, when
a top-level ``redis:`` is configured, Redis, where keys created at run time
live so that every node sees them. Redis layout: one hash per key,
``{key_prefix}apikey:{sha256 hex}`` with fields ``consumer``, ``tier``,
``roles`` (comma-separated) and ``created``.

Redis is kept off most requests' path: each node caches what it looked up
for ``cache_ttl`` (so a revoked key keeps working that long at most) and
unknown keys for ``negative_ttl``; concurrent look-ups of one key share one
Redis call. While Redis fails, a key seen before keeps working (stale) and
an unseen key gets KeyStoreUnavailable (a 503, not a misleading 401); after
a failure Redis is left alone for a moment instead of making every request
wait for its timeout.

Timing: a key is hashed, the hash is looked up, and the stored hash is
compared with hmac.compare_digest. Hashes of secrets leak nothing an
attacker can steer byte by byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from propylon.auth.principal import KeyRecord, Principal, PrincipalFactory, UnusableClaims
from propylon.config.auth import KEY_HASH_PREFIX, ApiKeysConfig, ConsumerConfig
from propylon.config.redis import RedisConfig
from propylon.errors import PropylonError

log = logging.getLogger("propylon.auth")

KEY_PREFIX = "prop_"
MAX_KEY_BYTES = 256
_PAUSE_AFTER_FAILURE = 1.0  # seconds Redis is not asked again after it failed
_MAX_CACHED = 100_000


class KeyStoreUnavailable(PropylonError):
    """The key store could not answer (Redis down or too slow)."""


def generate_key() -> str:
    """A new API key: a recognisable prefix (for secret scanners) and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str | bytes) -> str:
    """The form a key is stored in: ``sha256:<hex>``."""
    raw = key.encode() if isinstance(key, str) else key
    return KEY_HASH_PREFIX + hashlib.sha256(raw).hexdigest()


class RedisKeyStore:
    """API key records in Redis (redis.asyncio over hiredis)."""

    def __init__(self, config: RedisConfig) -> None:
        self._config = config
        self._prefix = config.key_prefix + "apikey:"
        self._client: aioredis.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paused_until = 0.0

    def _redis(self) -> aioredis.Redis:
        # Created on first use inside the serving loop (a worker forked after
        # config load must not share a parent's connections).
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = aioredis.Redis.from_url(
                self._config.url,
                socket_timeout=self._config.timeout,
                socket_connect_timeout=self._config.timeout,
                retry=Retry(NoBackoff(), 0),  # a slow answer is worse than a fast 503
            )
            self._loop = loop
        return self._client

    async def get(self, key_hash: str) -> KeyRecord | None:
        now = time.monotonic()
        if now < self._paused_until:
            raise KeyStoreUnavailable("Redis failed a moment ago")
        try:
            fields = await self._redis().hgetall(self._prefix + key_hash.removeprefix("sha256:"))
        except (RedisError, OSError, TimeoutError) as exc:
            self._paused_until = now + _PAUSE_AFTER_FAILURE
            log.warning("API key store: Redis failed (%s)", type(exc).__name__)
            raise KeyStoreUnavailable("Redis failed") from None
        text = {_text(name): _text(value) for name, value in fields.items()}
        if "consumer" not in text:
            return None
        return KeyRecord(
            consumer_id=text["consumer"],
            tier=text.get("tier") or None,
            roles=tuple(role for role in text.get("roles", "").split(",") if role),
        )

    async def add(self, key_hash: str, record: KeyRecord) -> None:
        await self._redis().hset(
            self._prefix + key_hash.removeprefix("sha256:"),
            mapping={
                "consumer": record.consumer_id,
                "tier": record.tier or "",
                "roles": ",".join(record.roles),
                "created": str(int(time.time())),
            },
        )

    async def remove(self, key_hash: str) -> bool:
        return bool(await self._redis().delete(self._prefix + key_hash.removeprefix("sha256:")))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class _Cached:
    principal: Principal | None
    until: float


class ApiKeyAuthenticator:
    def __init__(
        self,
        config: ApiKeysConfig,
        consumers: Iterable[ConsumerConfig],
        principals: PrincipalFactory,
        store: RedisKeyStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._principals = principals
        self._store = store
        self._clock = clock
        self._cache_ttl = config.cache_ttl
        self._negative_ttl = config.negative_ttl
        self._static: dict[bytes, tuple[bytes, Principal]] = {}
        for consumer in consumers:
            principal = principals.for_key(KeyRecord(consumer.id, consumer.tier))
            for key_hash in consumer.keys:
                digest = bytes.fromhex(key_hash.removeprefix(KEY_HASH_PREFIX))
                self._static[digest] = (digest, principal)
        self._cache: dict[bytes, _Cached] = {}
        self._pending: dict[bytes, asyncio.Task[Principal | None]] = {}

    @property
    def has_store(self) -> bool:
        return self._store is not None

    def cached(self, key: bytes) -> Principal | None:
        """The principal of a key known without asking Redis (config keys and
        fresh cache entries), else None: then ``find`` decides."""
        if not key or len(key) > MAX_KEY_BYTES:
            return None
        digest = hashlib.sha256(key).digest()
        found = self._static.get(digest)
        if found is not None:
            return found[1] if hmac.compare_digest(found[0], digest) else None
        cached = self._cache.get(digest)
        if cached is not None and self._clock() < cached.until:
            return cached.principal
        return None

    async def find(self, key: bytes) -> Principal | None:
        """The principal of a valid key, None for an unknown one.

        Raises KeyStoreUnavailable when only Redis could tell and it cannot.
        """
        principal = self.cached(key)
        if principal is not None or self._store is None or not 0 < len(key) <= MAX_KEY_BYTES:
            return principal
        digest = hashlib.sha256(key).digest()
        cached = self._cache.get(digest)
        if cached is not None and self._clock() < cached.until:
            return None  # negatively cached
        task = self._pending.get(digest)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._look_up(digest))
            task.add_done_callback(_retrieve)
            self._pending[digest] = task
        try:
            return await asyncio.shield(task)
        except KeyStoreUnavailable:
            if cached is not None and cached.principal is not None:
                return cached.principal  # stale beats locking out a known caller
            raise

    async def _look_up(self, digest: bytes) -> Principal | None:
        assert self._store is not None
        try:
            record = await self._store.get(digest.hex())
        finally:
            self._pending.pop(digest, None)
        principal: Principal | None = None
        if record is not None:
            try:
                principal = self._principals.for_key(record)
            except UnusableClaims:
                log.warning("API key store: a record has an unusable consumer id or roles")
        ttl = self._cache_ttl if principal is not None else self._negative_ttl
        if len(self._cache) >= _MAX_CACHED:
            del self._cache[next(iter(self._cache))]
        self._cache.pop(digest, None)  # re-insert at the end: the oldest go first
        self._cache[digest] = _Cached(principal, self._clock() + ttl)
        return principal


def _retrieve(task: asyncio.Task[Principal | None]) -> None:
    # Every waiter may have gone (clients hung up): mark a failure as seen so
    # asyncio does not log it as never retrieved.
    if not task.cancelled():
        task.exception()
