"""A circuit breaker per service: CLOSED -> OPEN -> HALF_OPEN -> CLOSED.

CLOSED counts outcomes, one per client request (retries inside a request
are the target's business, see target.py). It opens on ``failure_threshold`` consecutive
failures, or when, over the rolling ``window``, at least ``volume_threshold``
calls were made and the failure rate (or, with ``slow_call_duration``, the
slow-call rate) reached its threshold. OPEN rejects every call for
``open_for``; the first call after that turns it HALF_OPEN, which admits at
most ``half_open_max_calls`` concurrent probes: ``success_threshold``
successes close it, one failure opens it again. With ``enabled: false`` it
never opens by itself, but an operator's ``trip()`` still holds.

The rolling window is ten buckets, so recording an outcome is O(1). Every
transition is logged and handed to observers (metrics, health, the
cross-worker and cross-node sync).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from propylon.config.upstream import CircuitBreakerConfig

log = logging.getLogger("propylon.breaker")

CLOSED, OPEN, HALF_OPEN = "CLOSED", "OPEN", "HALF_OPEN"
STATE_NUMBERS = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}  # as the metrics export them

REJECTED, ADMITTED, PROBE = 0, 1, 2  # what allow() answers
_BUCKETS = 10


@dataclass(frozen=True, slots=True)
class Transition:
    service: str
    from_state: str
    to_state: str
    reason: str
    at: float  # epoch seconds
    failures: int
    successes: int
    remote: bool = False  # applied from another worker or node


Observer = Callable[[Transition], None]


class CircuitBreaker:
    def __init__(
        self,
        service: str,
        config: CircuitBreakerConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.config = config
        self.enabled = config.enabled
        self._clock = clock
        self.state = CLOSED
        self.opened_at = 0.0  # clock time
        self.last_transition = time.time()
        self.total = 0
        self.total_failures = 0
        self._consecutive = 0
        self._probes = 0
        self._probe_successes = 0
        self._bucket_length = max(config.window / _BUCKETS, 0.001)
        self._bucket_index = 0
        self._calls = [0] * _BUCKETS
        self._failures = [0] * _BUCKETS
        self._slow = [0] * _BUCKETS
        self._window_calls = self._window_failures = self._window_slow = 0  # bucket sums
        self._observers: list[Observer] = []

    def add_observer(self, observer: Observer) -> None:
        self._observers.append(observer)

    # -- the request path ------------------------------------------------------

    def allow(self) -> int:
        """REJECTED, ADMITTED or PROBE (a HALF_OPEN probe, to be recorded)."""
        if self.state == CLOSED:
            return ADMITTED
        if self.state == OPEN:
            if self._clock() - self.opened_at < self.config.open_for:
                return REJECTED
            self._move(HALF_OPEN, f"open for {self.config.open_for:g}s")
        if self._probes >= self.config.half_open_max_calls:
            return REJECTED
        self._probes += 1
        return PROBE

    def retry_after(self) -> int:
        """Seconds until an OPEN breaker lets a probe through (at least 1)."""
        left = self.config.open_for - (self._clock() - self.opened_at)
        return max(1, math.ceil(left))

    def record(self, ticket: int, failure: bool, slow: bool = False) -> None:
        """The outcome of a call that allow() admitted with ``ticket``."""
        self.total += 1
        if failure:
            self.total_failures += 1
        if ticket == PROBE:
            self._probes = max(0, self._probes - 1)
            if self.state != HALF_OPEN:
                return
            if failure:
                self._move(OPEN, "a half-open probe failed")
                return
            self._probe_successes += 1
            if self._probe_successes >= self.config.success_threshold:
                self._move(CLOSED, f"{self._probe_successes} probes succeeded")
            return
        if self.state != CLOSED or not self.enabled:
            return  # admitted before the breaker opened, or only manual trips
        index = self._rotate()
        self._calls[index] += 1
        self._window_calls += 1
        if slow:
            self._slow[index] += 1
            self._window_slow += 1
        if failure:
            self._failures[index] += 1
            self._window_failures += 1
            self._consecutive += 1
            if self._consecutive >= self.config.failure_threshold:
                self._move(OPEN, f"{self._consecutive} consecutive failures")
                return
        else:
            self._consecutive = 0
        # The rate is checked after successes too: the call that reaches the
        # volume threshold may be a success with the rate already too high.
        calls = self._window_calls
        if calls >= self.config.volume_threshold and self._window_failures:
            rate = self._window_failures / calls
            if rate >= self.config.failure_rate:
                self._move(OPEN, f"failure rate {rate:.0%} over {calls} calls")
                return
        self._check_slow_rate()

    def release(self, ticket: int) -> None:
        """An admitted call ended without an outcome (the client went away)."""
        if ticket == PROBE:
            self._probes = max(0, self._probes - 1)

    def _check_slow_rate(self) -> None:
        if self.config.slow_call_duration is None or not self._window_slow:
            return
        calls = self._window_calls
        if calls >= self.config.volume_threshold:
            rate = self._window_slow / calls
            if rate >= self.config.slow_call_rate:
                self._move(OPEN, f"slow-call rate {rate:.0%} over {calls} calls")

    def _rotate(self) -> int:
        index = int(self._clock() / self._bucket_length)
        if index != self._bucket_index:
            stale = min(index - self._bucket_index, _BUCKETS)
            for step in range(1, stale + 1):
                slot = (self._bucket_index + step) % _BUCKETS
                self._window_calls -= self._calls[slot]
                self._window_failures -= self._failures[slot]
                self._window_slow -= self._slow[slot]
                self._calls[slot] = self._failures[slot] = self._slow[slot] = 0
            self._bucket_index = index
        return index % _BUCKETS

    # -- control ----------------------------------------------------------------

    def trip(self, reason: str = "tripped by an operator") -> None:
        self._move(OPEN, reason)

    def reset(self, reason: str = "reset by an operator") -> None:
        self._move(CLOSED, reason)

    def apply_remote(self, state: str, reason: str) -> None:
        """Take a transition another worker or node made, without re-publishing."""
        if state in STATE_NUMBERS and state != self.state:
            self._move(state, reason, remote=True)

    def _move(self, to_state: str, reason: str, *, remote: bool = False) -> None:
        if to_state == self.state:
            return
        from_state = self.state
        self.state = to_state
        self.last_transition = time.time()
        failures = self._window_failures
        successes = self._window_calls - failures
        if to_state == OPEN:
            self.opened_at = self._clock()
        self._probes = 0
        self._probe_successes = 0
        if to_state == CLOSED:
            self._consecutive = 0
            self._calls = [0] * _BUCKETS
            self._failures = [0] * _BUCKETS
            self._slow = [0] * _BUCKETS
            self._window_calls = self._window_failures = self._window_slow = 0
        log.warning(
            "circuit breaker of %s: %s -> %s (%s; %d failures, %d successes in window)",
            self.service,
            from_state,
            to_state,
            reason,
            failures,
            successes,
        )
        transition = Transition(
            self.service,
            from_state,
            to_state,
            reason,
            self.last_transition,
            failures,
            successes,
            remote,
        )
        for observer in self._observers:
            try:
                observer(transition)
            except Exception:
                log.exception("breaker observer failed")

    def snapshot(self) -> dict[str, object]:
        calls = self._window_calls
        failures = self._window_failures
        return {
            "state": self.state,
            "failures": failures,
            "successes": calls - failures,
            "total": self.total,
            "total_failures": self.total_failures,
            "success_rate": round(1 - self.total_failures / self.total, 4) if self.total else 1.0,
            "last_transition": self.last_transition,
            "opened_at": (self.last_transition if self.state != CLOSED else None),
        }
