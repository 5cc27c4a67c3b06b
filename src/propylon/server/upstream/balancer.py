"""Choosing a target for a request: the ``balance:`` strategies of a service.

Every strategy picks among the targets that are available now (weight > 0,
not draining, healthy, not ejected), optionally excluding the one a retry
just failed on, and returns None when none is available.

- round_robin: smooth weighted round robin (nginx's): over a cycle each
  target gets exactly its weight's share, interleaved rather than in bursts.
- least_conn: fewest requests in flight relative to weight.
- random: power of two choices: two random targets, the less loaded wins.
- hash: consistent hashing on the client address, a header or a cookie. Each
  target owns points on a ring (more for more weight); a key goes to the
  first available target clockwise, so when a target leaves, only the keys it
  owned move.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from propylon.server.upstream.target import Target

if TYPE_CHECKING:
    from propylon.config.upstream import HashConfig

KeyFunction = Callable[[], bytes]
_POINTS_PER_WEIGHT = 40


class Balancer:
    def pick(
        self, targets: Sequence[Target], now: float, exclude: Target | None, key: KeyFunction
    ) -> Target | None:
        raise NotImplementedError


def _candidates(targets: Sequence[Target], now: float, exclude: Target | None) -> list[Target]:
    found = [t for t in targets if t is not exclude and t.available(now)]
    if not found and exclude is not None and exclude.available(now):
        found = [exclude]  # a retry goes back to the same target rather than nowhere
    return found


class RoundRobin(Balancer):
    def pick(
        self, targets: Sequence[Target], now: float, exclude: Target | None, key: KeyFunction
    ) -> Target | None:
        if len(targets) == 1:
            only = targets[0]
            return only if only.available(now) else None
        # One pass, no candidate list: this runs for every request.
        total = 0
        best: Target | None = None
        for target in targets:
            if target is exclude or not target.available(now):
                continue
            target.current += target.weight
            total += target.weight
            if best is None or target.current > best.current:
                best = target
        if best is None:
            return exclude if exclude is not None and exclude.available(now) else None
        best.current -= total
        return best


class LeastConnections(Balancer):
    def __init__(self) -> None:
        self._offset = 0

    def pick(
        self, targets: Sequence[Target], now: float, exclude: Target | None, key: KeyFunction
    ) -> Target | None:
        candidates = _candidates(targets, now, exclude)
        if not candidates:
            return None
        # Rotate the start so that ties do not always go to the first target.
        self._offset = (self._offset + 1) % len(candidates)
        rotated = candidates[self._offset :] + candidates[: self._offset]
        return min(rotated, key=lambda t: (t.in_flight + 1) / t.weight)


class PowerOfTwoChoices(Balancer):
    def __init__(self, rng: random.Random | None = None) -> None:
        self._random = rng or random.Random()

    def pick(
        self, targets: Sequence[Target], now: float, exclude: Target | None, key: KeyFunction
    ) -> Target | None:
        candidates = _candidates(targets, now, exclude)
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        first, second = self._random.sample(candidates, 2)
        load_first = (first.in_flight + 1) / first.weight
        load_second = (second.in_flight + 1) / second.weight
        return first if load_first <= load_second else second


class ConsistentHash(Balancer):
    def __init__(self, targets: Sequence[Target]) -> None:
        points: list[tuple[int, int]] = []
        for index, target in enumerate(targets):
            # Points follow the configured weight, so run-time weight changes
            # (including to 0) never reshuffle the other targets' keys.
            for replica in range(max(1, target.config_weight) * _POINTS_PER_WEIGHT):
                points.append((_hash(f"{target.id}#{replica}".encode()), index))
        points.sort()
        self._hashes = [point for point, _ in points]
        self._owners = [owner for _, owner in points]

    def pick(
        self, targets: Sequence[Target], now: float, exclude: Target | None, key: KeyFunction
    ) -> Target | None:
        if not self._hashes:
            return None
        start = bisect.bisect(self._hashes, _hash(key()))
        count = len(self._owners)
        seen: set[int] = set()
        for step in range(count):
            index = self._owners[(start + step) % count]
            if index in seen:
                continue
            seen.add(index)
            target = targets[index]
            if target is not exclude and target.available(now):
                return target
            if len(seen) == len(targets):
                break
        if exclude is not None and exclude.available(now):
            return exclude
        return None


def _hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def make_balancer(kind: str, targets: Sequence[Target]) -> Balancer:
    if kind == "least_conn":
        return LeastConnections()
    if kind == "random":
        return PowerOfTwoChoices()
    if kind == "hash":
        return ConsistentHash(targets)
    return RoundRobin()


def cookie_value(header: bytes | None, name: bytes) -> bytes | None:
    """The value of cookie ``name`` in a Cookie header, if present."""
    if not header:
        return None
    for part in header.split(b";"):
        key, sep, value = part.strip().partition(b"=")
        if sep and key == name:
            return value
    return None


def hash_key_function(config: HashConfig) -> Callable[[object], bytes]:
    """How to read the hash key off a request context (ip, header or cookie)."""
    name = (config.name or "").lower().encode()

    def by_ip(ctx: object) -> bytes:
        return str(getattr(ctx, "client_ip", "")).encode()

    if config.on == "header":

        def by_header(ctx: object) -> bytes:
            value = ctx.request_header(name)  # type: ignore[attr-defined]
            return value if value is not None else by_ip(ctx)

        return by_header
    if config.on == "cookie":
        cookie_name = (config.name or "").encode()

        def by_cookie(ctx: object) -> bytes:
            header = ctx.request_header(b"cookie")  # type: ignore[attr-defined]
            value = cookie_value(header, cookie_name)
            return value if value is not None else by_ip(ctx)

        return by_cookie
    return by_ip
