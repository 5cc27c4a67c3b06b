"""GCRA and the memory backend against a reference model (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from propylon.ratelimit.gcra import MICROS, Policy, describe
from propylon.ratelimit.memory import ALL, EACH, PEEK, MemoryBackend


class LeakyBucket:
    """The continuous-state leaky bucket (ITU-T I.371), GCRA's textbook twin:
    a level of queued work that drains one microsecond per microsecond."""

    def __init__(self, interval: int, capacity: int) -> None:
        self.interval, self.capacity = interval, capacity
        self.level = 0
        self.last: int | None = None

    def offer(self, now: int) -> bool:
        if self.last is not None:
            self.level = max(0, self.level - (now - self.last))
        self.last = now
        if self.level + self.interval > self.capacity:
            return False
        self.level += self.interval
        return True


policies = st.builds(
    lambda count, window, extra: Policy("p", count, window, max(1, count + extra)),
    st.integers(1, 50),
    st.sampled_from([0.5, 1.0, 7.0, 60.0, 900.0, 3600.0]),
    st.integers(-49, 20),
)


def arrivals(policy: Policy) -> st.SearchStrategy[list[int]]:
    # Gaps from simultaneous to a few emission intervals, so buckets both fill and drain.
    gap = st.one_of(st.just(0), st.integers(0, policy.interval * 3))
    return st.lists(gap, min_size=1, max_size=120).map(_cumulative)


def _cumulative(gaps: list[int]) -> list[int]:
    now, out = 1_700_000_000 * MICROS, []
    for gap in gaps:
        now += gap
        out.append(now)
    return out


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_memory_backend_decides_like_the_leaky_bucket(data: st.DataObject) -> None:
    policy = data.draw(policies)
    times = data.draw(arrivals(policy))
    backend, model = MemoryBackend(), LeakyBucket(policy.interval, policy.capacity)
    for now in times:
        allowed, _, _ = backend.decide([policy], ["k"], ALL, now=now)
        assert allowed == model.offer(now)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_no_span_admits_more_than_burst_plus_what_refilled(data: st.DataObject) -> None:
    policy = data.draw(policies)
    times = data.draw(arrivals(policy))
    backend = MemoryBackend()
    admitted = [t for t in times if backend.decide([policy], ["k"], ALL, now=t)[0]]
    # The documented bound: in any span [a, b], at most burst + (b - a) // T requests.
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            span = admitted[j] - start
            assert j - i + 1 <= policy.burst + span // policy.interval


@given(policies)
def test_a_fresh_key_admits_exactly_the_burst_then_one_per_interval(policy: Policy) -> None:
    backend, now = MemoryBackend(), 10**15
    results = [backend.decide([policy], ["k"], ALL, now=now)[0] for _ in range(policy.burst + 1)]
    assert results == [True] * policy.burst + [False]
    assert not backend.decide([policy], ["k"], ALL, now=now + policy.interval - 1)[0]
    assert backend.decide([policy], ["k"], ALL, now=now + policy.interval)[0]


@given(policies, st.integers(0, 60))
def test_remaining_counts_down_and_retry_after_is_when_one_passes(
    policy: Policy, used: int
) -> None:
    backend, now = MemoryBackend(), 10**15
    used = min(used, policy.burst)
    for n in range(used):
        ok, _, aheads = backend.decide([policy], ["k"], ALL, now=now)
        verdict = describe(policy, ok, aheads[0])
        assert verdict.allowed
        assert verdict.remaining == policy.burst - n - 1
    ok, _, aheads = backend.decide([policy], ["k"], PEEK, now=now)
    verdict = describe(policy, ok, aheads[0])
    if used == policy.burst:
        assert not verdict.allowed
        wait = verdict.retry_after * MICROS
        assert backend.decide([policy], ["k"], ALL, now=now + wait)[0]
    else:
        assert verdict.allowed


def test_all_limits_must_pass_and_a_rejection_consumes_none() -> None:
    roomy, tight = Policy("roomy", 10, 60.0, 10), Policy("tight", 1, 60.0, 1)
    backend, now = MemoryBackend(), 10**15
    assert backend.decide([roomy, tight], ["a", "b"], ALL, now=now)[0]
    allowed, passed, _ = backend.decide([roomy, tight], ["a", "b"], ALL, now=now)
    assert (allowed, passed) == (False, [True, False])
    # Only the first request was charged to "roomy": 9 more fit on it alone.
    assert sum(backend.decide([roomy], ["a"], ALL, now=now)[0] for _ in range(12)) == 9


def test_each_mode_charges_the_keys_that_have_room_and_peek_charges_nothing() -> None:
    policy = Policy("p", 2, 60.0, 2)
    backend, now = MemoryBackend(), 10**15
    for _ in range(3):
        assert backend.decide([policy], ["x"], PEEK, now=now)[0]
    backend.decide([policy, policy], ["x", "y"], ALL, now=now)
    backend.decide([policy], ["x"], ALL, now=now)  # x is full now, y has one left
    everything, passed, _ = backend.decide([policy, policy], ["x", "y"], EACH, now=now)
    assert (everything, passed) == (False, [False, True])
    assert not backend.decide([policy], ["y"], PEEK, now=now)[0]


def test_reset_forgets_one_key_or_a_whole_limit() -> None:
    policy = Policy("p", 1, 60.0, 1)
    backend = MemoryBackend()
    for key in ("p:a", "p:b", "q:a"):
        backend.decide([policy], [key])
    assert backend.reset("p:a") == 1
    assert backend.ahead("p:a") is None
    assert backend.ahead("p:b") is not None
    assert backend.reset("p:*") == 1
    assert backend.ahead("q:a") is not None


def test_expired_keys_are_swept_and_the_key_count_is_capped() -> None:
    clock = [0]
    backend = MemoryBackend(clock=lambda: clock[0], max_keys=1000)
    policy = Policy("p", 1, 1.0, 1)
    for n in range(5000):
        clock[0] = n * 10  # every key is long expired by the next sweep but the last few
        backend.decide([policy], [f"k{n}"])
    assert len(backend.store) <= 2048
    clock[0] = 0
    fresh = MemoryBackend(clock=lambda: clock[0], max_keys=1000)
    for n in range(3000):
        fresh.decide([policy], [f"k{n}"])
    assert len(fresh.store) <= 2048


def test_a_limit_needs_a_positive_count_and_window() -> None:
    with pytest.raises(ValueError, match="count >= 1"):
        Policy("p", 0, 1.0, 1)


def test_the_local_fallback_divides_the_limit_among_nodes() -> None:
    policy = Policy("p", 100, 900.0, 100)
    local = policy.scaled(3)
    assert (local.count, local.burst) == (33, 33)
    assert Policy("p", 2, 1.0, 2).scaled(5).count == 1
