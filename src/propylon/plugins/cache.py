"""The cache plugin: serves stored responses, stores new ones, invalidates on writes.

Priority 500: after authentication (1000, so the consumer is known) and rate
limiting (900, so hits are counted against limits), before nothing else.

Per request: a GET or HEAD on a cached route is keyed (cache/keys.py) and
looked up. A fresh entry is answered locally (HEAD from the GET entry, with
``Age``). Otherwise the request goes upstream with a ``_Pending`` attached as
the exchange's body observer: it decides in the response phase whether the
answer may be stored (cache/rules.py), collects the body up to
``max_object_size`` and stores it at the end. An expired entry still within
``stale_ttl`` is offered to the exchange as its stale-if-error response.
A successful write (POST, PUT, PATCH, DELETE) evicts the written resource
and its collection.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, ClassVar, Protocol, cast

from propylon.cache.entry import Entry
from propylon.cache.keys import build_key, normalize_host, normalize_query, printable
from propylon.cache.patterns import expand
from propylon.cache.rules import (
    NOT_MODIFIED_FIELDS,
    RequestRules,
    not_modified,
    response_ttl,
)
from propylon.config.cache import RouteCache
from propylon.plugins.base import Plugin, RequestContext
from propylon.server.http import Header, Response

if TYPE_CHECKING:
    from propylon.cache.runtime import CacheRuntime
    from propylon.cache.stats import RouteStats
    from propylon.config.models import GatewayConfig, RouteConfig

log = logging.getLogger("propylon.cache")

_NOT_MODIFIED_KEEP = NOT_MODIFIED_FIELDS | {b"age", b"x-cache-key"}
_KEY_MEMO = 4096  # request parts -> key, per route
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HIT, MISS, BYPASS, STALE = b"HIT", b"MISS", b"BYPASS", b"STALE"
# Fields that belong to one response, not to the stored entry.
_NOT_STORED = frozenset(
    {
        b"x-request-id",
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"age",
        b"x-cache",
        b"x-cache-key",
    }
)


class _Peer(Protocol):
    trusted_peer: bool


class CacheContext(RequestContext, Protocol):
    conn: _Peer


class _Hit:
    """The body observer of a request answered from the cache (nothing to observe)."""

    __slots__ = ()

    def on_body(self, data: bytes) -> None:
        return None

    def on_end(self) -> None:
        return None


_HIT = _Hit()


class _Pending:
    """One miss on its way upstream: decides, collects and stores its answer."""

    __slots__ = (
        "body",
        "done",
        "headers",
        "key",
        "leader",
        "outcome",
        "plugin",
        "size",
        "stale_entry",
        "status",
        "storable",
        "stored_at",
        "ttl",
    )

    def __init__(self, plugin: CachePlugin, key: str, storable: bool, leader: bool) -> None:
        self.plugin = plugin
        self.key = key
        self.storable = storable
        self.leader = leader
        self.outcome = MISS
        self.stale_entry: Entry | None = None
        self.body: list[bytes] | None = None  # None: not collecting
        self.size = 0
        self.status = 0
        self.headers: list[Header] = []
        self.ttl = 0.0
        self.stored_at = 0.0
        self.done = False

    def begin(self, status: int, headers: list[Header], ttl: float) -> None:
        self.status = status
        self.ttl = ttl
        self.stored_at = time.time()
        kept: list[Header] = []
        for name, value in headers:
            if name == b"age" and value.isdigit():
                self.stored_at -= int(value)  # it was that old when it arrived
            elif name not in _NOT_STORED:
                kept.append((name, value))
        self.headers = kept
        self.body = []

    def on_body(self, data: bytes) -> None:
        body = self.body
        if body is None:
            return
        self.size += len(data)
        if self.size > self.plugin.max_object_size:
            self.body = None  # too large: keep streaming, stop collecting
            self.finish(None)
            return
        body.append(data)

    def on_end(self) -> None:
        body = self.body
        if body is None or self.done:
            return
        self.body = None
        settings = self.plugin.settings
        fresh_until = self.stored_at + self.ttl
        entry = Entry(
            self.status,
            self.headers,
            b"".join(body),
            self.stored_at,
            fresh_until,
            fresh_until + settings.stale_ttl,
        )
        self.plugin.runtime.put(self.key, entry)
        self.plugin.stats.stores += 1
        self.finish(entry)

    def finish(self, entry: Entry | None) -> None:
        if self.done:
            return
        self.done = True
        if self.leader:
            self.plugin.runtime.flights.land(self.key, entry)

    def serve_stale(self) -> Response | None:
        """The exchange's stale-if-error callback."""
        entry = self.stale_entry
        if entry is None:
            return None
        now = time.time()
        if now >= entry.stale_until:
            return None
        self.outcome = STALE
        stats = self.plugin.stats
        stats.misses -= 1  # it was counted as a miss when it went upstream
        stats.stale += 1
        self.finish(None)
        return self.plugin.entry_response(entry, now, self.key)


class CachePlugin(Plugin):
    name: ClassVar[str] = "cache"
    priority: ClassVar[int] = 500
    config_model = RouteCache

    def __init__(self, settings: RouteCache, runtime: CacheRuntime, route: str) -> None:
        self.settings = settings
        self.runtime = runtime
        self.route = route
        self.stats: RouteStats = runtime.stats.route(route)
        self.methods = frozenset(settings.methods)
        self.statuses = frozenset(settings.statuses)
        self.max_object_size = settings.max_object_size
        self.vary_headers = tuple(name.encode() for name in settings.vary_headers)
        self.vary_names = frozenset(self.vary_headers)
        self.query_allow = None if settings.vary_query == "all" else frozenset(settings.vary_query)
        self.debug = runtime.settings.debug
        self.memory = runtime.memory
        self._keys: dict[tuple[object, ...], str] = {}

    async def start(self) -> None:
        await self.runtime.start()

    async def close(self) -> None:
        await self.runtime.close()

    # -- request ----------------------------------------------------------------------

    async def on_request(self, ctx: RequestContext) -> Response | None:
        method = ctx.method
        if method not in self.methods:
            if method not in _WRITES:
                self.stats.bypass += 1
            return None
        cache_control = pragma = authorization = None
        vary = self.vary_headers
        vary_values: list[bytes] = [b""] * len(vary) if vary else []
        for name, value in ctx.headers:
            if name == b"cache-control":
                cache_control = value if cache_control is None else cache_control + b"," + value
            elif name == b"pragma":
                pragma = value
            elif name == b"authorization":
                authorization = value
            if vary and name in self.vary_names:
                index = vary.index(name)
                vary_values[index] = (
                    vary_values[index] + b"," + value if vary_values[index] else value
                )
        cacheable, consumer = self._consumer(ctx, authorization is not None)
        if not cacheable:
            self.stats.bypass += 1
            return None
        rules = (
            RequestRules(cache_control, pragma)
            if cache_control is not None or pragma is not None
            else None
        )
        if rules is not None and rules.no_store:
            self.stats.bypass += 1
            return None
        key = self._key(cast(CacheContext, ctx), vary_values, consumer)
        refresh = rules is not None and rules.refresh
        stale: Entry | None = None
        if not refresh:
            now = time.time()
            memory = self.memory
            if memory is not None:
                entry = memory.get(key, now)  # no coroutine: hits stay cheap
            else:
                try:
                    entry = await self._lookup_redis(key, now)
                except _Unavailable:
                    self.stats.bypass += 1
                    return None
            if entry is not None:
                if now < entry.fresh_until:
                    return self._hit(ctx, entry, now, key)
                stale = entry
            flights = self.runtime.flights
            if flights.in_flight(key):
                self.stats.collapsed += 1
                entry = await flights.follow(key)
                if entry is not None:
                    return self._hit(ctx, entry, time.time(), key)
        get = method == "GET"
        leader = get and not refresh and self.runtime.flights.lead(key)
        pending = _Pending(self, key, get, leader)
        pending.stale_entry = stale
        ctx.body_observer = pending
        if stale is not None and self.settings.stale_ttl:
            ctx.stale = pending.serve_stale
        self.stats.misses += 1
        return None

    def _consumer(self, ctx: RequestContext, authorization: bool) -> tuple[bool, str | None]:
        """(whether the answer may be cached, the consumer part of its key)."""
        identity = ctx.identity
        if identity is None:
            # Credentials the gateway did not check go to the upstream, which
            # may answer per caller: never share that answer.
            return not authorization, None
        who = identity.consumer_id or identity.user_id
        if not self.settings.per_consumer or who is None:
            return False, None
        return True, f"{identity.method}:{who}"

    def _key(self, ctx: CacheContext, vary_values: list[bytes], consumer: str | None) -> str:
        if ctx.conn.trusted_peer:
            return self._build_key(ctx, vary_values, consumer)
        # The same request parts give the same key: remember the recent ones
        # (normalising the query is most of a hit's key cost).
        memo = (ctx.host, ctx.path, ctx.query, consumer, *vary_values)
        key = self._keys.get(memo)
        if key is None:
            if len(self._keys) >= _KEY_MEMO:
                self._keys.clear()
            key = self._keys[memo] = self._build_key(ctx, vary_values, consumer)
        return key

    def _build_key(self, ctx: CacheContext, vary_values: list[bytes], consumer: str | None) -> str:
        host = normalize_host(ctx.host)
        if ctx.conn.trusted_peer:
            # A trusted proxy's X-Forwarded-Host/-Proto reach the upstream,
            # which may build links from them: they are part of the key then.
            forwarded_host = ctx.request_header(b"x-forwarded-host")
            proto = ctx.request_header(b"x-forwarded-proto")
            if forwarded_host is not None:
                host = normalize_host(forwarded_host)
            if proto is not None:
                host = f"{proto.decode('latin-1').lower()}://{host}"
        query = normalize_query(ctx.query, self.query_allow)
        vary = [value.decode("latin-1").strip() for value in vary_values]
        return build_key(self.route, host, ctx.path, query, vary, consumer)

    async def _lookup_redis(self, key: str, now: float) -> Entry | None:
        redis = self.runtime.redis
        assert redis is not None
        entry, ok = await redis.get(key, now)
        if not ok:
            raise _Unavailable
        return entry

    def _hit(self, ctx: RequestContext, entry: Entry, now: float, key: str) -> Response:
        self.stats.hits += 1
        ctx.body_observer = _HIT
        response = self.entry_response(entry, now, key)
        if_none_match = ctx.request_header(b"if-none-match")
        if_modified_since = ctx.request_header(b"if-modified-since")
        if (
            (if_none_match is not None or if_modified_since is not None)
            and entry.status == 200
            and not_modified(if_none_match, if_modified_since, entry.headers)
        ):
            kept = [h for h in response.headers if h[0] in _NOT_MODIFIED_KEEP]
            return Response(304, kept)
        return response

    def entry_response(self, entry: Entry, now: float, key: str) -> Response:
        headers = [*entry.headers, (b"age", b"%d" % max(0, int(now - entry.stored_at)))]
        if self.debug:
            headers.append((b"x-cache-key", printable(key).encode("latin-1")))
        return Response(entry.status, headers, entry.body)

    # -- response -------------------------------------------------------------------------

    def on_response(self, ctx: RequestContext, status: int, headers: list[Header]) -> None:
        observer = ctx.body_observer
        if observer is _HIT:
            headers.append((b"x-cache", HIT))
            ctx.note("cache", "HIT")
            return
        if not isinstance(observer, _Pending) or observer.plugin is not self:
            if ctx.method in _WRITES and 200 <= status < 300:
                self._invalidate(ctx.path)
            headers.append((b"x-cache", BYPASS))
            ctx.note("cache", "BYPASS")
            return
        if self.debug:
            headers.append((b"x-cache-key", printable(observer.key).encode("latin-1")))
        if observer.outcome is STALE:
            headers.append((b"x-cache", STALE))
            ctx.note("cache", "STALE")
            return
        headers.append((b"x-cache", MISS))
        ctx.note("cache", "MISS")
        if observer.storable and status in self.statuses:
            ttl = response_ttl(headers, self.settings.ttl, self.vary_names)
            if ttl > 0:
                observer.begin(status, headers, ttl)
                return
        observer.finish(None)

    def on_log(self, ctx: RequestContext) -> None:
        observer = ctx.body_observer
        if isinstance(observer, _Pending) and not observer.done:
            observer.finish(None)  # failed midway: let any followers go upstream

    def _invalidate(self, path: str) -> None:
        patterns = [expand(pattern, path) for pattern in self.settings.invalidate]
        self.stats.invalidations += 1
        self.runtime.invalidate(patterns)


class _Unavailable(Exception):
    """The Redis store cannot answer: the request bypasses the cache."""


def cache_plugins(config: GatewayConfig, route: RouteConfig | None) -> list[Plugin]:
    """The cache plugin of a route with a ``cache:`` key (none otherwise)."""
    if route is None or route.cache is None:
        return []
    from propylon.cache.runtime import cache_runtime_for

    return [CachePlugin(route.cache, cache_runtime_for(config), route.name)]
