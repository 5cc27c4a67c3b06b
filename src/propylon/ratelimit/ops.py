"""Operations on limit keys: read a key's usage, reset a key or a whole limit.

A key is what the limiter buckets on, ``NAME:SUBJECT``: ``global:203.0.113.7``,
``user:alice``, ``tier.free:acme``, ``route.search:10.0.0.1|tenant-a``,
``failed_login:ip:10.0.0.1``. ``NAME`` alone (or ``NAME:*``) means every
key of that limit. The CLI, the admin API and the workers all call these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from propylon.ratelimit.gcra import MICROS

if TYPE_CHECKING:
    from propylon.ratelimit.service import RateLimiter


class UnknownLimit(ValueError):
    pass


def normalise(limiter: RateLimiter, key: str) -> tuple[str, str]:
    """(limit name, key or ``NAME:*``); raises UnknownLimit."""
    name, sep, subject = key.partition(":")
    if name not in limiter.policies:
        known = ", ".join(sorted(limiter.policies)) or "none"
        raise UnknownLimit(f"no rate limit is named {name!r} (limits: {known})")
    if not sep or subject == "":
        return name, name + ":*"
    return name, key


async def reset(limiter: RateLimiter, key: str) -> dict[str, Any]:
    """Forget a key (or all keys of a limit) in Redis and in this process."""
    name, key = normalise(limiter, key)
    deleted = limiter.memory.reset(key) + limiter.local.reset(key)
    if limiter.redis is not None:
        deleted += await limiter.redis.reset(key)
    return {"key": key, "limit": name, "deleted": deleted}


async def usage(limiter: RateLimiter, key: str) -> dict[str, Any]:
    """How much of its limit a key has used, as the headers would say."""
    name, key = normalise(limiter, key)
    if key.endswith("*"):
        raise UnknownLimit("usage needs one key (NAME:SUBJECT), not a whole limit")
    policy = limiter.policies[name]
    if limiter.redis is not None:
        ahead, _now = await limiter.redis.ahead(key)
        backend = "redis"
    else:
        ahead, backend = limiter.memory.ahead(key), "memory"
    used = ahead or 0
    remaining = max(0, (policy.capacity - used) // policy.interval)
    return {
        "key": key,
        "limit": name,
        "backend": backend,
        "policy": policy.header_policy.decode(),
        "capacity": policy.burst,
        "remaining": remaining,
        "reset": -(-used // MICROS),
    }
