"""Consumers and their API keys as an operator sees them (admin API).

Two sources, as for authentication (apikeys.py): the config's
``consumers:`` (read-only at run time: edit the file and reload) and the
keys in Redis (created and revoked at run time, seen by every node). Keys
are never shown, only the first 12 hex digits of their SHA-256 (``id``),
which is what an operator names to revoke one. A revoked key stops working
on a node once that node's cache of it expires (``auth.api_keys.cache_ttl``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from propylon.auth.apikeys import generate_key, hash_key
from propylon.config.auth import ConsumerConfig
from propylon.config.models import GatewayConfig
from propylon.errors import PropylonError

ID_LENGTH = 12  # hex digits of the key hash shown and accepted as a key id


class DirectoryError(PropylonError):
    """An operator request the directory cannot do; ``status`` is the HTTP answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass(frozen=True, slots=True)
class StoredKey:
    id: str
    consumer: str
    tier: str | None
    roles: tuple[str, ...]
    created: int | None
    source: str  # "config" or "redis"
    redis_key: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tier": self.tier,
            "roles": list(self.roles),
            "created": self.created,
            "source": self.source,
        }


class ConsumerDirectory:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        redis = config.redis
        self._prefix = redis.key_prefix + "apikey:" if redis is not None else ""
        self._client = (
            aioredis.Redis.from_url(
                redis.url, socket_timeout=max(redis.timeout, 2.0), socket_connect_timeout=2.0
            )
            if redis is not None
            else None
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    # -- reading -------------------------------------------------------------

    async def keys(self) -> list[StoredKey]:
        found = [
            StoredKey(
                h.removeprefix("sha256:")[:ID_LENGTH], c.id, c.tier, tuple(c.roles), None, "config"
            )
            for c in self.config.consumers
            for h in c.keys
        ]
        if self._client is None:
            return found
        names = [name async for name in self._client.scan_iter(match=self._prefix + "*", count=500)]
        if not names:
            return found
        async with self._client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(name)
            records = await pipe.execute()
        for name, record in zip(names, records, strict=True):
            fields = {_text(k): _text(v) for k, v in record.items()}
            if "consumer" not in fields:
                continue
            digest = _text(name).removeprefix(self._prefix)
            created = fields.get("created", "")
            found.append(
                StoredKey(
                    digest[:ID_LENGTH],
                    fields["consumer"],
                    fields.get("tier") or None,
                    tuple(r for r in fields.get("roles", "").split(",") if r),
                    int(created) if created.isdigit() else None,
                    "redis",
                    _text(name),
                )
            )
        return found

    async def consumers(self) -> list[dict[str, Any]]:
        keys = await self.keys()
        configured = {c.id: c for c in self.config.consumers}
        ids = sorted({*configured, *(k.consumer for k in keys)})
        return [self._view(i, configured.get(i), keys) for i in ids]

    async def consumer(self, consumer_id: str) -> dict[str, Any]:
        keys = await self.keys()
        configured = next((c for c in self.config.consumers if c.id == consumer_id), None)
        if configured is None and not any(k.consumer == consumer_id for k in keys):
            raise DirectoryError(404, f"no consumer {consumer_id!r} in the config or in Redis")
        return self._view(consumer_id, configured, keys)

    def _view(
        self, consumer_id: str, configured: ConsumerConfig | None, keys: list[StoredKey]
    ) -> dict[str, Any]:
        own = [k.view() for k in keys if k.consumer == consumer_id]
        return {
            "id": consumer_id,
            "tier": configured.tier if configured is not None else None,
            "roles": list(configured.roles) if configured is not None else [],
            "in_config": configured is not None,
            "keys": own,
        }

    # -- changing ------------------------------------------------------------

    async def new_key(
        self, consumer_id: str, tier: str | None, roles: list[str]
    ) -> tuple[str, StoredKey]:
        """Create a key; the key itself is returned once and stored nowhere."""
        client = self._require_redis()
        check_consumer_id(consumer_id)
        if tier is not None and tier not in self.config.auth.tiers:
            known = ", ".join(self.config.auth.tiers)
            raise DirectoryError(422, f"unknown tier {tier!r} (tiers: {known})")
        for role in roles:
            check_role(role)
        key = generate_key()
        digest = hash_key(key).removeprefix("sha256:")
        created = int(time.time())
        await client.hset(
            self._prefix + digest,
            mapping={
                "consumer": consumer_id,
                "tier": tier or "",
                "roles": ",".join(roles),
                "created": str(created),
            },
        )
        stored = StoredKey(
            digest[:ID_LENGTH], consumer_id, tier, tuple(roles), created, "redis", digest
        )
        return key, stored

    async def revoke(self, consumer_id: str, key_id: str | None = None) -> list[str]:
        """Delete one Redis key of the consumer (by id), or all of them."""
        client = self._require_redis()
        keys = [k for k in await self.keys() if k.consumer == consumer_id]
        if key_id is not None:
            key_id = key_id.removeprefix("sha256:")[:ID_LENGTH].lower()
            keys = [k for k in keys if k.id == key_id]
            if not keys:
                raise DirectoryError(404, f"consumer {consumer_id!r} has no key {key_id!r}")
        elif not keys:
            raise DirectoryError(404, f"no consumer {consumer_id!r} in the config or in Redis")
        if key_id is not None and all(k.source == "config" for k in keys):
            raise DirectoryError(409, "that key is in the config file: remove it there and reload")
        doomed = [k.redis_key for k in keys if k.redis_key is not None]
        if doomed:
            await client.delete(*doomed)
        return sorted(k.id for k in keys if k.redis_key is not None)

    def _require_redis(self) -> aioredis.Redis:
        if self._client is None:
            raise DirectoryError(
                409, "keys made at run time live in Redis: add a redis: section to the config"
            )
        return self._client


def check_consumer_id(value: str) -> None:
    try:
        ConsumerConfig(id=value)
    except ValueError:
        raise DirectoryError(
            422, "a consumer id is 1-128 letters, digits, '_', '.', '@', ':', '-'"
        ) from None


def check_role(value: str) -> None:
    try:
        ConsumerConfig(id="x", roles=[value])
    except ValueError:
        raise DirectoryError(
            422, f"role {value!r} must be 1-128 characters without spaces or commas"
        ) from None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
