"""The run-time form of a config: services with pools, routes with chains.

Built once per config load (STYLE.md: chains are built at load, not per
request), shared by every connection of a worker.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from functools import lru_cache
from typing import TYPE_CHECKING

from propylon import __version__
from propylon.cache.runtime import EVENT_KIND as CACHE_EVENT
from propylon.cache.runtime import CacheRuntime, cache_runtime_for
from propylon.observability import logs
from propylon.observability.recorder import make_recorder
from propylon.observability.redis_health import RedisHealth
from propylon.observability.tracecontext import TraceSampler
from propylon.plugins.base import Plugin, PluginChain
from propylon.plugins.registry import build_chain
from propylon.ratelimit.service import RateLimiter, limiter_for
from propylon.server.http import Response
from propylon.server.router import Router, RouteSpec
from propylon.server.sync import EventHub, RedisEvents
from propylon.server.upstream.health import HealthChecker
from propylon.server.upstream.pool import TargetPool
from propylon.server.upstream.service import ServiceRuntime

if TYPE_CHECKING:
    from propylon.config.models import GatewayConfig, RouteConfig
    from propylon.config.upstream import FallbackConfig
    from propylon.server.protocol import ClientConnection


log = logging.getLogger("propylon")


class RouteRuntime:
    __slots__ = (
        "chain",
        "extra_lines",
        "fallback",
        "name",
        "prefix",
        "rewrite",
        "service",
        "strip_prefix",
    )

    def __init__(self, config: RouteConfig, service: ServiceRuntime, chain: PluginChain) -> None:
        self.name = config.name
        self.prefix = config.match.path
        self.service = service
        self.strip_prefix = config.strip_prefix
        self.rewrite = config.rewrite
        self.chain = chain
        self.fallback = _fallback_response(config.fallback) if config.fallback else None
        # When the upstream sees another path than the client, tell it the
        # public prefix so it can build links (X-Forwarded-Prefix).
        changes_path = (config.strip_prefix or config.rewrite is not None) and self.prefix != "/"
        prefix = b"x-forwarded-prefix: %s\r\n" % self.prefix.encode()
        # Rendered header lines this route adds to every upstream request.
        self.extra_lines = prefix if changes_path else b""


class GatewayState:
    """Everything a connection needs, in one object it holds a reference to."""

    def __init__(self, config: GatewayConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.loop = loop
        settings = config.gateway
        self.name = settings.name
        self.version = __version__
        self.limits = settings.limits
        tracing = config.tracing
        self.trace_sampler = (
            TraceSampler(tracing.sample_ratio) if tracing.otlp_endpoint is not None else None
        )
        self.via = b"1.1 " + settings.name.encode()
        self.started_at = time.time()
        self.started_monotonic = loop.time()
        self.draining = False
        self.connections: set[ClientConnection] = set()
        # Request metrics of this process (observability/recorder.py).
        self.recorder = make_recorder(config, time.monotonic)
        self.redis_health = RedisHealth(config.redis) if config.redis is not None else None
        self.health_checkers: list[HealthChecker] = []
        self._plugin_start: asyncio.Task[None] | None = None

        self.host_names: dict[bytes, str] = {}  # Host header -> bare lower-case name
        self.services = {
            name: ServiceRuntime(name, service, loop) for name, service in config.services.items()
        }
        # Breaker transitions and target changes, shared with other workers/nodes.
        self.events = EventHub(self.services)
        self.redis_events: RedisEvents | None = None
        self.routes: list[RouteRuntime] = []
        specs: list[RouteSpec[RouteRuntime]] = []
        for order, route in enumerate(config.routes):
            runtime = RouteRuntime(route, self.services[route.service], build_chain(config, route))
            self.routes.append(runtime)
            specs.append(
                RouteSpec(runtime, route.match.path, route.match.hosts, route.match.methods, order)
            )
        self.router: Router[RouteRuntime] = Router(specs)
        # The response cache of this config (None when no route caches):
        # ``state.cache.snapshot()`` gives its counters (cache/runtime.py).
        self.cache: CacheRuntime | None = None
        if any(route.cache is not None for route in config.routes):
            self.cache = cache_runtime_for(config)
            self.events.handlers[CACHE_EVENT] = self.cache.apply_event
            self.cache.publish = self.events.publish
        # Decision counters for metrics: state.rate_limiter.snapshot() (ratelimit/service.py).
        self.rate_limiter: RateLimiter | None = limiter_for(config)
        if not self.rate_limiter.enabled:
            self.rate_limiter = None
        # Local replies that match no route still get the global plugins'
        # response headers (CORS on a 404, security headers on a 400).
        self.default_chain = build_chain(config, None)
        networks = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies]
        self.is_trusted = lru_cache(maxsize=4096)(
            lambda ip: _in_networks(ip, networks) if networks else False
        )

    def pools(self) -> list[TargetPool]:
        return [target.pool for service in self.services.values() for target in service.targets]

    def plugins(self) -> list[Plugin]:
        """Every distinct plugin instance of every route chain."""
        seen: dict[int, Plugin] = {}
        for chain in [self.default_chain, *(route.chain for route in self.routes)]:
            for plugin in chain.plugins:
                seen.setdefault(id(plugin), plugin)
        return list(seen.values())

    def start_background(self) -> None:
        """Start health checks, state sync and plugins (needs the running loop)."""
        self._plugin_start = self.loop.create_task(self._start_plugins())
        if self.config.redis is not None:
            self.redis_events = RedisEvents(self.events, self.config.redis)
            self.redis_events.start()
        if self.redis_health is not None:
            self.redis_health.start()
        writer = logs.current()
        if writer is not None:
            writer.attach(self.loop)  # render log batches on this loop (logs/writer.py)
        for service in self.services.values():
            active = service.config.health_check.active
            if active is not None:
                checker = HealthChecker(service, active)
                checker.start()
                self.health_checkers.append(checker)

    async def _start_plugins(self) -> None:
        for plugin in self.plugins():
            try:
                await plugin.start()
            except Exception:
                log.exception("plugin %s failed to start", plugin.name)

    async def stop_background(self) -> None:
        if self._plugin_start is not None and not self._plugin_start.done():
            self._plugin_start.cancel()
        for plugin in self.plugins():
            try:
                await plugin.close()
            except Exception:
                log.exception("plugin %s failed to close", plugin.name)
        if self.redis_events is not None:
            await self.redis_events.stop()
            self.redis_events = None
        if self.redis_health is not None:
            await self.redis_health.stop()
        writer = logs.current()
        if writer is not None:
            writer.detach()
        for checker in self.health_checkers:
            await checker.stop()
        self.health_checkers.clear()

    def close(self) -> None:
        for service in self.services.values():
            service.close()


def _in_networks(ip: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


def _fallback_response(config: FallbackConfig) -> Response:
    headers = [(b"content-type", config.content_type.encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in config.headers.items()]
    return Response(config.status, headers, config.body.encode())
