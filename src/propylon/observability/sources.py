"""Optional figures from other parts of the gateway (rate limits, cache, Redis).

Each source is a callable that takes the GatewayState and returns a small
dict (or None while the part is not configured). The worker calls them when
it is asked for a snapshot, never on the request path. The shapes are:

- ``rate_limit``: ``{"decisions": {(limit, result): count}, "redis_fallback": count}``
  (``result`` is ``allowed`` or ``rejected``; ``limit`` a configured limit name)
- ``cache``: ``{"routes": {route: {"hit": n, "miss": n, "stale": n, "bypass": n}},
  ...any other keys, shown as they are in /health/detailed}``

The defaults read ``state.rate_limiter.snapshot()`` and ``state.cache.snapshot()``
when those attributes exist and are not None; ``register`` replaces one, so a
part whose snapshot has another shape adapts it in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from propylon.server.state import GatewayState

Source = Callable[["GatewayState"], dict[str, Any] | None]


def _attribute_snapshot(name: str) -> Source:
    def read(state: GatewayState) -> dict[str, Any] | None:
        part = getattr(state, name, None)
        if part is None:
            return None
        snapshot: dict[str, Any] | None = part.snapshot()
        return snapshot

    return read


SOURCES: dict[str, Source] = {
    "rate_limit": _attribute_snapshot("rate_limiter"),
    "cache": _attribute_snapshot("cache"),
}


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
