"""Optional figures from other parts of the gateway (rate limits, cache, Redis).

Each source is a callable that takes the GatewayState and returns a small
dict (or None while the part is not configured). The worker calls them when
it is asked for a snapshot, never on the request path. The shapes are:

- ``rate_limit``: ``{"decisions": {(limit, result): count}, "redis_fallback": count}``
  (``result`` is ``allowed`` or ``rejected``; ``limit`` a configured limit name)
- ``cache``: ``{"routes": {route: {"hit": n, "miss": n, "stale": n, "bypass": n}},
  ...any other keys, shown as they are in /health/detailed}``

The defaults adapt ``state.rate_limiter.snapshot()`` (ratelimit/service.py)
and ``state.cache.snapshot()`` (cache/runtime.py) when those parts are
configured; ``register`` replaces one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from propylon.server.state import GatewayState

Source = Callable[["GatewayState"], dict[str, Any] | None]


def _rate_limit(state: GatewayState) -> dict[str, Any] | None:
    """``state.rate_limiter.snapshot()`` (ratelimit/service.py) in the shape above."""
    limiter = getattr(state, "rate_limiter", None)
    if limiter is None:
        return None
    raw = limiter.snapshot()
    decisions = {
        (str(name), str(result)): int(count)
        for name, results in raw.get("decisions", {}).items()
        for result, count in results.items()
    }
    return {"decisions": decisions, "redis_fallback": int(raw.get("fallback", 0))}


# Cache counters (cache/stats.py) that are lookup results, by their metric label.
_CACHE_RESULTS = {"hits": "hit", "misses": "miss", "stale": "stale", "bypass": "bypass"}


def _cache(state: GatewayState) -> dict[str, Any] | None:
    """``state.cache.snapshot()`` (cache/runtime.py): lookups by result, the rest as is."""
    cache = getattr(state, "cache", None)
    if cache is None:
        return None
    raw: dict[str, Any] = cache.snapshot()
    routes = {
        route: {label: int(counts.get(name, 0)) for name, label in _CACHE_RESULTS.items()}
        for route, counts in raw.get("routes", {}).items()
    }
    return {**raw, "routes": routes, "counters": raw.get("routes", {})}


SOURCES: dict[str, Source] = {"rate_limit": _rate_limit, "cache": _cache}


def register(name: str, source: Source) -> None:
    SOURCES[name] = source


def collect(state: GatewayState) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, source in SOURCES.items():
        try:
            value = source(state)
        except Exception as exc:  # a broken source must not break /metrics
            value = {"error": f"{type(exc).__name__}: {exc}"}
        if value is not None:
            out[name] = value
    return out
