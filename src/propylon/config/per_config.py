"""One shared run-time object per loaded config.

Chains are built per route with only the config at hand (plugins/registry.py),
yet all routes of a config must share one token verifier, one rate limiter,
one cache, one span exporter. ``PerConfig(factory)`` finds that object by the
config's identity and makes it on first use. A few recent configs are kept:
after a reload the old config's requests may still be finishing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from propylon.config.models import GatewayConfig

T = TypeVar("T")
KEEP = 4


class PerConfig(Generic[T]):
    __slots__ = ("_factory", "_known")

    def __init__(self, factory: Callable[[GatewayConfig], T]) -> None:
        self._factory = factory
        self._known: list[tuple[GatewayConfig, T]] = []

    def __call__(self, config: GatewayConfig) -> T:
        for known, value in self._known:
            if known is config:
                return value
        value = self._factory(config)
        self._known.append((config, value))
        del self._known[:-KEEP]
        return value
