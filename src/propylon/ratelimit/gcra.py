"""GCRA (the generic cell rate algorithm), in integer microseconds.

A limit of ``count`` per ``window`` with a ``burst`` is a leaky bucket seen
through one number per key, the *theoretical arrival time* (TAT):

- the emission interval ``T = ceil(window / count)`` is the sustained
  spacing between requests, and ``capacity = burst * T`` is how far the TAT
  may run ahead of the clock;
- a request at ``now`` (cost 1) moves the TAT to ``max(TAT, now) + T``; it is
  allowed iff the new TAT is at most ``now + capacity``, and then stored;
  a rejected request changes nothing.

So a fresh key admits ``burst`` requests at once, then one per ``T``; in any
span of ``d`` seconds at most ``burst + floor(d / T)`` requests pass. With the
default ``burst = count`` that is the familiar "count per window" with the
whole quota usable at once and refilled smoothly (no window-edge doubling of
a fixed window, and no per-request log of a sliding one).

Only integer additions and comparisons happen here and in the Redis script
(redis_script.py), so Python ints and Lua doubles (exact below 2**53; epoch
microseconds are about 2**51) reach the same decisions. Everything derived
(remaining, reset, retry-after) is computed afterwards by ``describe``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MICROS = 1_000_000


@dataclass(slots=True)
class Policy:
    """One limit, precomputed at config load. The counters are bumped in place."""

    name: str  # in 429 bodies, headers and metrics; never the key
    count: int
    window: float  # seconds
    burst: int
    interval: int = 0  # T, microseconds
    capacity: int = 0  # burst * T, microseconds
    header_policy: bytes = b""  # this limit's item of RateLimit-Policy
    script_args: tuple[bytes, bytes] = (b"", b"")  # interval and capacity for the Lua script
    take_args: list[bytes] = field(default_factory=list)  # the whole ARGV of a one-limit call
    allowed: int = 0
    rejected: int = 0
    local: Policy | None = field(default=None, repr=False)  # the per-node fallback

    def __post_init__(self) -> None:
        if self.count < 1 or self.burst < 1 or self.window <= 0:
            raise ValueError("a limit needs count >= 1, burst >= 1 and a window > 0")
        window_us = round(self.window * MICROS)
        self.interval = max(1, -(-window_us // self.count))
        self.capacity = self.burst * self.interval
        self.script_args = (b"%d" % self.interval, b"%d" % self.capacity)
        self.take_args = [b"", b"1", *self.script_args]  # Redis' clock, mode ALL
        policy = b"%d;w=%d" % (self.count, max(1, round(self.window)))
        if self.burst != self.count:
            policy += b";burst=%d" % self.burst
        self.header_policy = policy

    def scaled(self, nodes: int) -> Policy:
        """The same limit divided among ``nodes`` nodes (at least 1 each)."""
        return Policy(
            name=self.name,
            count=max(1, self.count // nodes),
            window=self.window,
            burst=max(1, self.burst // nodes),
        )


def admit(tat: int | None, now: int, interval: int, capacity: int) -> tuple[bool, int]:
    """One request of cost 1: (allowed, the key's TAT after it; unchanged if not)."""
    base = now if tat is None or tat < now else tat
    new_tat = base + interval
    if new_tat - now > capacity:
        return False, base
    return True, new_tat


@dataclass(slots=True)
class Verdict:
    """What one limit says about one request, for headers and replies."""

    policy: Policy
    allowed: bool
    remaining: int
    reset: int  # seconds until the bucket is full again (RateLimit-Reset)
    retry_after: int  # seconds until one request would pass; 0 when allowed


def describe(policy: Policy, allowed: bool, ahead: int) -> Verdict:
    """Derive the client-facing numbers from ``ahead = TAT - now`` (microseconds).

    For an allowed request ``ahead`` includes it; for a rejected one it is the
    TAT the request would have added to.
    """
    interval, capacity = policy.interval, policy.capacity
    if ahead < 0:
        ahead = 0
    remaining = (capacity - ahead) // interval
    if remaining < 0:
        remaining = 0
    reset = -(-ahead // MICROS)
    if allowed:
        return Verdict(policy, True, remaining, reset, 0)
    wait = ahead + interval - capacity
    return Verdict(policy, False, 0, reset, max(1, -(-wait // MICROS)))
