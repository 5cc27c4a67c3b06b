"""A named backend service at run time: targets, balancer, breaker, retry budget."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from urllib.parse import urlsplit

from propylon.config.upstream import ServiceConfig
from propylon.server.upstream.balancer import hash_key_function, make_balancer
from propylon.server.upstream.breaker import CircuitBreaker
from propylon.server.upstream.pool import TargetPool
from propylon.server.upstream.target import Target

log = logging.getLogger("propylon.upstream")

TargetChange = Callable[["ServiceRuntime", Target], None]


class ServiceRuntime:
    def __init__(self, name: str, config: ServiceConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.name = name
        self.config = config
        self.loop = loop
        passive = config.health_check.passive
        self.targets: list[Target] = []
        for target_config in config.targets:
            parts = urlsplit(target_config.url)
            assert parts.hostname is not None  # validated by the config model
            pool = TargetPool(
                parts.hostname,
                parts.port or 80,
                max_idle=config.pool.max_idle,
                idle_timeout=config.pool.idle_timeout,
                loop=loop,
            )
            self.targets.append(Target(name, target_config, pool, passive))
        self._by_id = {target.id: target for target in self.targets}
        self.balancer = make_balancer(config.balance, self.targets)
        self.hash_key = hash_key_function(config.hash) if config.balance == "hash" else None
        self.breaker = CircuitBreaker(name, config.circuit_breaker)
        self.retries = config.retries
        self.retry_methods = frozenset(m.encode() for m in config.retries.methods)
        self.retry_statuses = frozenset(config.retries.statuses)
        self.passive_statuses = frozenset(passive.statuses) if passive else frozenset()
        breaker = config.circuit_breaker
        self.breaker_5xx = "5xx" in breaker.failure_on
        self.breaker_statuses = frozenset(breaker.failure_statuses)
        self.breaker_connect = "connect_error" in breaker.failure_on
        self.breaker_timeout = "timeout" in breaker.failure_on
        self.in_flight = 0  # requests forwarded and not finished, for the retry budget
        self.retries_in_flight = 0
        self._observers: list[TargetChange] = []
        self._random = random.Random()

    # -- picking ----------------------------------------------------------------

    @property
    def pools(self) -> list[TargetPool]:
        return [target.pool for target in self.targets]

    def target(self, target_id: str) -> Target:
        return self._by_id[target_id]

    def pick(self, ctx: object, exclude: Target | None = None) -> Target | None:
        key_of = self.hash_key
        chosen = self.balancer.pick(
            self.targets,
            self.loop.time(),
            exclude,
            (lambda: key_of(ctx)) if key_of is not None else _no_key,
        )
        if chosen is not None:
            chosen.picked()
        return chosen

    def has_other_target(self, target: Target) -> bool:
        now = self.loop.time()
        return any(t is not target and t.available(now) for t in self.targets)

    def may_eject(self, target: Target, connect_error: bool) -> bool:
        """Never eject the last target standing unless it is unreachable."""
        return connect_error or self.has_other_target(target)

    # -- retries ------------------------------------------------------------------

    def retry_allowed(self) -> bool:
        """The retry budget: retries in flight stay under a share of requests."""
        limit = max(self.retries.min_concurrent, self.retries.budget * self.in_flight)
        return self.retries_in_flight < limit

    def backoff(self, retry: int) -> float:
        """Exponential backoff with full jitter (retry counts from 1)."""
        ceiling = min(self.retries.max_backoff, self.retries.backoff * (2 ** (retry - 1)))
        return self._random.uniform(0, ceiling)

    # -- run-time changes (blue-green, canary) -------------------------------------

    def add_observer(self, observer: TargetChange) -> None:
        self._observers.append(observer)

    def set_weight(self, target_id: str, weight: int, *, remote: bool = False) -> Target:
        if not 0 <= weight <= 1000:
            raise ValueError("a weight is 0 to 1000")
        target = self.target(target_id)
        if target.weight != weight:
            log.info("target %s/%s weight %d -> %d", self.name, target.id, target.weight, weight)
            target.weight = weight
            target.current = 0
            self._changed(target, remote)
        return target

    def set_draining(self, target_id: str, draining: bool, *, remote: bool = False) -> Target:
        target = self.target(target_id)
        if target.draining != draining:
            log.info("target %s/%s %s", self.name, target.id, "draining" if draining else "active")
            target.draining = draining
            self._changed(target, remote)
        return target

    def _changed(self, target: Target, remote: bool) -> None:
        if remote:
            return
        for observer in self._observers:
            try:
                observer(self, target)
            except Exception:
                log.exception("target observer failed")

    def ready(self) -> bool:
        now = self.loop.time()
        return any(target.available(now) for target in self.targets)

    def snapshot(self) -> dict[str, object]:
        now = self.loop.time()
        return {
            "name": self.name,
            "balance": self.config.balance,
            "in_flight": self.in_flight,
            "targets": [target.snapshot(now) for target in self.targets],
            "circuit_breaker": self.breaker.snapshot(),
        }

    def close(self) -> None:
        for target in self.targets:
            target.pool.close()


def _no_key() -> bytes:
    return b""
