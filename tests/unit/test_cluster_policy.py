"""Restart backoff and giving up (the PM2 rules: 100 ms doubling, max_restarts, min_uptime)."""

from __future__ import annotations

from propylon.cluster.policy import MAX_DELAY, RestartPolicy


def test_unstable_exits_double_the_delay_from_100ms() -> None:
    policy = RestartPolicy(max_restarts=10, min_uptime=10.0)
    delays = [policy.on_exit(uptime=0.5).delay for _ in range(5)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6]


def test_the_delay_is_capped() -> None:
    policy = RestartPolicy(max_restarts=100, min_uptime=10.0)
    delays = [policy.on_exit(uptime=0.0).delay for _ in range(20)]
    assert max(delays) == MAX_DELAY
    assert delays[-1] == MAX_DELAY


def test_more_than_max_restarts_unstable_exits_give_up() -> None:
    policy = RestartPolicy(max_restarts=3, min_uptime=10.0)
    decisions = [policy.on_exit(uptime=1.0) for _ in range(4)]
    assert [d.restart for d in decisions] == [True, True, True, False]
    assert decisions[-1].unstable == 4


def test_a_worker_that_lived_past_min_uptime_resets_the_count() -> None:
    policy = RestartPolicy(max_restarts=2, min_uptime=10.0)
    policy.on_exit(uptime=1.0)
    policy.on_exit(uptime=1.0)
    stable = policy.on_exit(uptime=60.0)
    assert (stable.restart, stable.delay, stable.unstable) == (True, 0.1, 0)
    again = [policy.on_exit(uptime=1.0) for _ in range(3)]
    assert [d.restart for d in again] == [True, True, False]


def test_max_restarts_zero_gives_up_at_the_first_unstable_exit() -> None:
    policy = RestartPolicy(max_restarts=0, min_uptime=10.0)
    assert policy.on_exit(uptime=0.1).restart is False
