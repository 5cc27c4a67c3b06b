"""The rate limiter of one config: policies, backends, fallback, counters.

One instance per config (found by identity, like auth/runtime.py, since
chains are built with only the config at hand); every route's plugins and
``GatewayState.rate_limiter`` share it.

Decisions go to Redis when the config has one (``backend: auto``), else to
this process's memory. While Redis fails, ``on_redis_error`` decides:
``local`` uses a per-node memory bucket of ``limit / expected_nodes``,
``allow`` lets requests through, ``deny`` answers 503. The shared Redis
client raises at once while it knows Redis is down (and probes in the
background), so after the first failure no request waits for a timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING

from propylon.config.per_config import PerConfig
from propylon.config.ratelimit import RateLimitsConfig
from propylon.ratelimit.gcra import MICROS, Policy, Verdict, describe
from propylon.ratelimit.memory import ALL, MemoryBackend
from propylon.ratelimit.rules import Rule, policy_for

if TYPE_CHECKING:
    from collections.abc import Sequence

    from propylon.config.models import GatewayConfig, RouteConfig
    from propylon.ratelimit.redis_backend import RedisBackend

log = logging.getLogger("propylon.ratelimit")

OFF = RateLimitsConfig.model_validate(
    {"global": False, "per_user": False, "tiers": {}, "failed_login": False}
)


class RedisDown(Exception):
    """``on_redis_error: deny`` and Redis failed: the request gets a 503."""


class RateLimiter:
    def __init__(self, config: GatewayConfig) -> None:
        settings = config.rate_limits or OFF
        self.settings = settings
        self.enabled = config.rate_limits is not None or any(r.rate_limit for r in config.routes)
        self.nodes = settings.expected_nodes
        self.on_error = settings.on_redis_error
        self.policies: dict[str, Policy] = {}
        self._route_rules: dict[str, list[Rule]] = {}
        self.memory = MemoryBackend(max_keys=settings.max_keys)
        self.local = MemoryBackend(max_keys=settings.max_keys)  # the outage fallback
        self.fallbacks = 0
        self._next_warning = 0.0
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.redis: RedisBackend | None = None
        use_redis = settings.backend == "redis" or (
            settings.backend == "auto" and config.redis is not None
        )
        if use_redis and config.redis is not None:
            from propylon.ratelimit.redis_backend import RedisBackend

            self.redis = RedisBackend(config.redis)
        self.sync = self.redis is None

        self.global_rule = self._rule("global", settings.global_)
        self.user_rule = self._rule("user", settings.per_user)
        self.tier_rules: dict[str, Rule] = {}
        for tier, spec in settings.tiers.items():
            if spec is not False and tier in config.auth.tiers:
                self.tier_rules[tier] = self._rule(f"tier.{tier}", spec)  # type: ignore[assignment]
        self.login_policy: Policy | None = None
        if settings.failed_login is not False:
            rate = settings.failed_login.rate
            self.login_policy = self._register(
                Policy("failed_login", rate.limit, rate.window, rate.limit)
            )
        for route in config.routes:
            self.route_rules(route)  # every limit is known from the start (ops, metrics)
        self.bypass = _bypass_roles(config, settings.bypass_roles)

    def _register(self, policy: Policy) -> Policy:
        if policy.name in self.policies:
            raise ValueError(f"two rate limits are named {policy.name!r}")
        policy.local = policy.scaled(self.nodes)
        self.policies[policy.name] = policy
        return policy

    def _rule(self, name: str, spec: object) -> Rule | None:
        if spec is False or spec is None:
            return None
        from propylon.config.ratelimit import LimitSpec

        assert isinstance(spec, LimitSpec)
        return Rule(self._register(policy_for(spec.name or name, spec)), spec.by)

    def route_rules(self, route: RouteConfig) -> list[Rule]:
        """The route's own limits (``rate_limit:``), registered once per route."""
        if not route.rate_limit:
            return []
        known = self._route_rules.get(route.name)
        if known is not None:
            return known
        rules: list[Rule] = []
        self._route_rules[route.name] = rules
        many = len(route.rate_limit) > 1
        for index, spec in enumerate(route.rate_limit):
            default = f"route.{route.name}" + (f".{index}" if many else "")
            name = spec.name or default
            existing = self.policies.get(name)
            if existing is not None and spec.name is not None:
                rules.append(Rule(existing, spec.by))  # a named limit shared by routes
                continue
            rule = self._rule(name, spec)
            assert rule is not None
            rules.append(rule)
        return rules

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Every plugin of the config calls this; the first call connects."""
        if self.redis is not None and not self._closed:
            self.redis.start()

    async def close(self) -> None:
        """Every plugin calls this at stop; the first call releases the client."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        if self.redis is not None:
            await self.redis.close()

    def spawn(self, work: Coroutine[object, object, None]) -> None:
        """Run backend work off the request path (keeping a reference to it)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- decisions ---------------------------------------------------------------

    def decide_memory(
        self, policies: Sequence[Policy], keys: Sequence[str], mode: int = ALL
    ) -> Verdict:
        if mode == ALL and len(keys) == 1:
            policy = policies[0]
            ok, ahead = self.memory.take_one(policy, keys[0])
            if ok:
                policy.allowed += 1
                remaining = (policy.capacity - ahead) // policy.interval
                return Verdict(policy, True, remaining, -(-ahead // MICROS), 0)
            policy.rejected += 1
            return describe(policy, False, ahead)
        everything, passed, aheads = self.memory.decide(policies, keys, mode)
        return verdict(policies, everything, passed, aheads, True)

    async def decide(
        self, policies: Sequence[Policy], keys: Sequence[str], mode: int = ALL
    ) -> Verdict | None:
        """The verdict for one request; None when Redis failed and on_error is allow.

        Raises RedisDown when Redis failed and on_error is deny.
        """
        redis = self.redis
        if redis is None:
            return self.decide_memory(policies, keys, mode)
        if mode == ALL and len(keys) == 1:
            return await self._take_one_redis(redis, policies[0], keys[0])
        if redis.available:
            try:
                everything, passed, aheads = await redis.decide(policies, keys, mode)
            except Exception as exc:  # Redis trouble (or a bad reply): never a 500
                self._log_failure(exc)
            else:
                return verdict(policies, everything, passed, aheads, True)
        return self.fallback(policies, keys, mode)

    async def _take_one_redis(
        self, redis: RedisBackend, policy: Policy, key: str
    ) -> Verdict | None:
        """The common case, one limit: the script call without the general plumbing."""
        if redis.available:
            try:
                client = redis.client or redis.start()
                keys = [redis.btag + key.encode()]
                reply = await client.run_script(redis.script, keys, policy.take_args)
                ahead = int(reply[3])
            except Exception as exc:  # Redis trouble (or a bad reply): never a 500
                self._log_failure(exc)
            else:
                if reply[1]:
                    policy.allowed += 1
                    remaining = (policy.capacity - ahead) // policy.interval
                    return Verdict(policy, True, remaining, -(-ahead // MICROS), 0)
                policy.rejected += 1
                return describe(policy, False, ahead)
        return self.fallback([policy], [key], ALL)

    def _log_failure(self, exc: Exception) -> None:
        # Unavailability is logged by the client (once per outage); anything
        # else (an error reply, a reply of the wrong shape) once a minute.
        from propylon.state.redis import RedisUnavailable

        now = asyncio.get_running_loop().time()
        if not isinstance(exc, RedisUnavailable) and now >= self._next_warning:
            self._next_warning = now + 60.0
            log.warning(
                "a Redis rate limit decision failed, deciding locally: %s: %s",
                type(exc).__name__,
                exc,
            )

    def fallback(
        self, policies: Sequence[Policy], keys: Sequence[str], mode: int
    ) -> Verdict | None:
        self.fallbacks += 1
        if self.on_error == "allow":
            return None
        if self.on_error == "deny":
            raise RedisDown
        local = [p.local or p for p in policies]
        everything, passed, aheads = self.local.decide(local, keys, mode)
        for policy, ok in zip(policies, passed, strict=True):
            if everything:
                policy.allowed += 1
            elif not ok:
                policy.rejected += 1
        return verdict(local, everything, passed, aheads, False)

    async def record(self, policy: Policy, keys: Sequence[str]) -> None:
        """Count one event (a failed login) on each key that still has room."""
        from propylon.ratelimit.memory import EACH

        policies = [policy] * len(keys)
        redis = self.redis
        if redis is None:
            self.memory.decide(policies, keys, EACH)
            return
        if redis.available:
            try:
                await redis.decide(policies, keys, EACH)
                return
            except Exception:  # counted locally instead
                pass
        if self.on_error == "local":
            self.local.decide([policy.local or policy] * len(keys), keys, EACH)

    # -- metrics -----------------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        """Counters for metrics: decisions by limit and result, and fallbacks.

        ``{"backend": "redis"|"memory", "decisions": {name: {"allowed": n,
        "rejected": n}}, "fallback": n, "redis_available": bool|None}``;
        counts are totals since start, per process.
        """
        return {
            "backend": "memory" if self.redis is None else "redis",
            "decisions": {
                name: {"allowed": p.allowed, "rejected": p.rejected}
                for name, p in self.policies.items()
            },
            "fallback": self.fallbacks,
            "redis_available": None if self.redis is None else self.redis.available,
        }


def verdict(
    policies: Sequence[Policy],
    everything: bool,
    passed: Sequence[bool],
    aheads: Sequence[int],
    count: bool,
) -> Verdict:
    """The most restrictive limit's view (allowed), or the one that rejected."""
    if everything:
        best: Policy | None = None
        best_remaining = best_ahead = 0
        for policy, ahead in zip(policies, aheads, strict=True):
            remaining = (policy.capacity - ahead) // policy.interval
            if (
                best is None
                or remaining < best_remaining
                or (remaining == best_remaining and ahead > best_ahead)
            ):
                best, best_remaining, best_ahead = policy, remaining, ahead
            if count:
                policy.allowed += 1
        assert best is not None
        return Verdict(best, True, max(0, best_remaining), -(-best_ahead // MICROS), 0)
    worst: Verdict | None = None
    for policy, ok, ahead in zip(policies, passed, aheads, strict=True):
        if ok:
            continue
        if count:
            policy.rejected += 1
        candidate = describe(policy, False, ahead)
        if worst is None or candidate.retry_after > worst.retry_after:
            worst = candidate
    assert worst is not None
    return worst


def _bypass_roles(config: GatewayConfig, bypass: list[str]) -> frozenset[str]:
    """The bypass roles, and every role that includes one through the hierarchy."""
    roles = set(bypass)
    if not roles or not config.auth.roles:
        return frozenset(roles)
    from propylon.auth.rbac import RoleHierarchy  # only configs with a hierarchy load auth

    hierarchy = RoleHierarchy(config.auth.roles)
    names = {*config.auth.roles, *(r for c in config.consumers for r in c.roles)}
    return frozenset(
        role for role in names | roles if not roles.isdisjoint(hierarchy.expand([role]))
    )


limiter_for = PerConfig(RateLimiter)
