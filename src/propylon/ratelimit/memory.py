"""The in-process backend: one dict of TATs, the same decisions as Redis.

Used when no Redis is configured (each worker process limits on its own,
so a node with N workers admits up to N times a limit; run with Redis to
share), and as the per-node fallback while Redis is unreachable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from propylon.ratelimit.gcra import Policy, admit

PEEK, ALL, EACH = 0, 1, 2  # decide without writing; write all or none; write each that passes


def monotonic_us() -> int:
    return time.monotonic_ns() // 1000


class MemoryBackend:
    """TAT per key. Expired keys are swept in amortised O(1) per write."""

    __slots__ = ("_clock", "_max_keys", "_next_sweep", "store")

    def __init__(self, clock: Callable[[], int] = monotonic_us, max_keys: int = 1_000_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._next_sweep = 1024
        self.store: dict[str, int] = {}

    def now(self) -> int:
        return self._clock()

    def decide(
        self,
        policies: Sequence[Policy],
        keys: Sequence[str],
        mode: int = ALL,
        now: int | None = None,
    ) -> tuple[bool, list[bool], list[int]]:
        """Admit one request under every limit: (all passed, each passed, TAT - now each)."""
        if now is None:
            now = self._clock()
        store = self.store
        passed: list[bool] = []
        aheads: list[int] = []
        tats: list[int] = []
        everything = True
        for policy, key in zip(policies, keys, strict=True):
            ok, tat = admit(store.get(key), now, policy.interval, policy.capacity)
            passed.append(ok)
            aheads.append(tat - now)
            tats.append(tat)
            everything = everything and ok
        if mode == ALL and everything:
            for key, tat in zip(keys, tats, strict=True):
                store[key] = tat
        elif mode == EACH:
            for key, tat, ok in zip(keys, tats, passed, strict=True):
                if ok:
                    store[key] = tat
        if len(store) >= self._next_sweep:
            self._sweep(now)
        return everything, passed, aheads

    def take_one(self, policy: Policy, key: str) -> tuple[bool, int]:
        """``decide([policy], [key], ALL)`` for the common single limit: (passed, ahead)."""
        now = self._clock()
        store = self.store
        tat = store.get(key)
        if tat is None or tat < now:
            tat = now
        new_tat = tat + policy.interval
        if new_tat - now > policy.capacity:
            return False, tat - now
        store[key] = new_tat
        if len(store) >= self._next_sweep:
            self._sweep(now)
        return True, new_tat - now

    def ahead(self, key: str) -> int | None:
        """TAT - now of a key (microseconds), None when it is at rest."""
        tat = self.store.get(key)
        if tat is None:
            return None
        ahead = tat - self._clock()
        return ahead if ahead > 0 else None

    def reset(self, key: str) -> int:
        """Forget one key, or every key starting with ``key`` when it ends in ``*``."""
        if key.endswith("*"):
            prefix = key[:-1]
            doomed = [k for k in self.store if k.startswith(prefix)]
        else:
            doomed = [key] if key in self.store else []
        for name in doomed:
            del self.store[name]
        return len(doomed)

    def _sweep(self, now: int) -> None:
        store = self.store
        for key in [k for k, tat in store.items() if tat <= now]:
            del store[key]
        excess = len(store) - self._max_keys
        if excess > 0:  # still over the cap: forget the keys inserted first
            for key in list(store)[:excess]:
                del store[key]
        self._next_sweep = max(1024, 2 * len(store))
