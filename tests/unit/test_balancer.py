"""The balancing strategies as properties over arbitrary target sets.

Targets are real ``Target`` objects around a stand-in pool (only its
``in_flight`` is read), so availability (weight, drain, health, ejection)
is the production logic.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from propylon.config.upstream import HashConfig, TargetConfig
from propylon.server.upstream.balancer import (
    ConsistentHash,
    LeastConnections,
    PowerOfTwoChoices,
    RoundRobin,
    cookie_value,
    hash_key_function,
    make_balancer,
)
from propylon.server.upstream.target import Target

NOW = 1000.0
weights = st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=6)


def make_targets(weight_list: list[int], loads: list[int] | None = None) -> list[Target]:
    targets = []
    for index, weight in enumerate(weight_list):
        config = TargetConfig(url=f"http://127.0.0.1:{9000 + index}", id=f"t{index}", weight=weight)
        pool = SimpleNamespace(in_flight=loads[index] if loads else 0)
        targets.append(Target("svc", config, pool, None))  # type: ignore[arg-type]
    return targets


def no_key() -> bytes:
    return b""


def picks(balancer: RoundRobin, targets: list[Target], count: int) -> list[str]:
    chosen = []
    for _ in range(count):
        target = balancer.pick(targets, NOW, None, no_key)
        assert target is not None
        chosen.append(target.id)
    return chosen


# -- smooth weighted round robin -------------------------------------------------------


@given(weights, st.integers(min_value=1, max_value=3))
def test_round_robin_gives_each_target_its_weight_in_every_cycle(
    weight_list: list[int], cycles: int
) -> None:
    targets = make_targets(weight_list)
    balancer = RoundRobin()
    total = sum(weight_list)
    for _ in range(cycles):
        counts = Counter(picks(balancer, targets, total))
        assert counts == {f"t{i}": w for i, w in enumerate(weight_list)}


@given(st.lists(st.integers(min_value=0, max_value=5), min_size=2, max_size=6))
def test_round_robin_never_picks_a_weight_zero_target(weight_list: list[int]) -> None:
    targets = make_targets(weight_list)
    balancer = RoundRobin()
    if not any(weight_list):
        assert balancer.pick(targets, NOW, None, no_key) is None
        return
    chosen = set(picks(balancer, targets, 3 * sum(weight_list)))
    assert chosen == {f"t{i}" for i, w in enumerate(weight_list) if w}


@given(st.integers(min_value=2, max_value=30), st.integers(min_value=1, max_value=10))
def test_round_robin_interleaves_instead_of_sending_bursts(heavy: int, light_count: int) -> None:
    # nginx's smooth WRR: with weights heavy/1/1/..., the heavy target's picks
    # are spread into runs of at most ceil(heavy / (lights + 1)), two of which
    # meet at a cycle boundary; a naive WRR sends all `heavy` picks in a row.
    targets = make_targets([heavy] + [1] * light_count)
    sequence = picks(RoundRobin(), targets, 3 * (heavy + light_count))
    longest = run = 0
    for previous, current in zip(["", *sequence], sequence, strict=False):
        run = run + 1 if current == previous == "t0" else int(current == "t0")
        longest = max(longest, run)
    assert longest <= 2 * -(-heavy // (light_count + 1))


def test_round_robin_with_equal_weights_rotates() -> None:
    targets = make_targets([1, 1, 1])
    assert picks(RoundRobin(), targets, 6) == ["t0", "t1", "t2", "t0", "t1", "t2"]


@given(weights.filter(lambda w: len(w) >= 2), st.data())
def test_round_robin_skips_unavailable_targets(weight_list: list[int], data: st.DataObject) -> None:
    targets = make_targets(weight_list)
    down = data.draw(st.integers(min_value=0, max_value=len(targets) - 1))
    how = data.draw(st.sampled_from(["draining", "unhealthy", "ejected"]))
    if how == "draining":
        targets[down].draining = True
    elif how == "unhealthy":
        targets[down].healthy = False
    else:
        targets[down].ejected_until = NOW + 10
    chosen = set(picks(RoundRobin(), targets, 2 * sum(weight_list)))
    assert targets[down].id not in chosen
    assert chosen == {t.id for t in targets} - {targets[down].id}


def test_retry_excludes_the_failed_target_unless_it_is_the_only_one() -> None:
    targets = make_targets([1, 1])
    balancer = RoundRobin()
    for _ in range(10):
        assert balancer.pick(targets, NOW, targets[0], no_key) is targets[1]
    targets[1].draining = True
    assert balancer.pick(targets, NOW, targets[0], no_key) is targets[0]


@pytest.mark.parametrize("kind", ["round_robin", "least_conn", "random", "hash"])
def test_no_available_target_gives_none(kind: str) -> None:
    targets = make_targets([1, 1, 2])
    for target in targets:
        target.healthy = False
    balancer = make_balancer(kind, targets)
    assert balancer.pick(targets, NOW, None, lambda: b"key") is None


def test_an_ejected_target_admits_one_probe_after_its_ejection_time() -> None:
    targets = make_targets([1])
    only = targets[0]
    only.ejected_until = NOW + 1
    balancer = RoundRobin()
    assert balancer.pick(targets, NOW, None, no_key) is None
    probe = balancer.pick(targets, NOW + 1, None, no_key)
    assert probe is only
    only.picked()
    assert balancer.pick(targets, NOW + 1, None, no_key) is None  # one probe at a time


# -- least connections and power of two choices ---------------------------------------


@given(
    st.lists(
        st.tuples(st.integers(min_value=1, max_value=10), st.integers(min_value=0, max_value=50)),
        min_size=1,
        max_size=6,
    )
)
def test_least_conn_picks_a_least_loaded_target_for_its_weight(
    spec: list[tuple[int, int]],
) -> None:
    targets = make_targets([w for w, _ in spec], [load for _, load in spec])
    chosen = LeastConnections().pick(targets, NOW, None, no_key)
    assert chosen is not None
    best = min((t.in_flight + 1) / t.weight for t in targets)
    assert (chosen.in_flight + 1) / chosen.weight == best


def test_least_conn_spreads_ties() -> None:
    targets = make_targets([1, 1, 1])
    balancer = LeastConnections()
    chosen = {balancer.pick(targets, NOW, None, no_key).id for _ in range(6)}  # type: ignore[union-attr]
    assert chosen == {"t0", "t1", "t2"}


@given(
    st.lists(st.integers(min_value=0, max_value=100), min_size=2, max_size=6, unique=True),
    st.integers(min_value=0, max_value=2**32),
)
def test_power_of_two_choices_never_picks_the_most_loaded_target(
    loads: list[int], seed: int
) -> None:

    targets = make_targets([1] * len(loads), loads)
    balancer = PowerOfTwoChoices(random.Random(seed))
    busiest = max(targets, key=lambda t: t.in_flight)
    for _ in range(20):
        assert balancer.pick(targets, NOW, None, no_key) is not busiest


def test_power_of_two_choices_spreads_over_all_targets() -> None:

    targets = make_targets([1, 1, 1, 1])
    balancer = PowerOfTwoChoices(random.Random(7))
    counts = Counter(balancer.pick(targets, NOW, None, no_key).id for _ in range(4000))  # type: ignore[union-attr]
    assert set(counts) == {"t0", "t1", "t2", "t3"}
    assert all(800 <= count <= 1200 for count in counts.values()), counts


# -- consistent hashing ----------------------------------------------------------------

keys = st.lists(st.binary(min_size=1, max_size=16), min_size=50, max_size=300, unique=True)


def owners(balancer: ConsistentHash, targets: list[Target], key_list: list[bytes]) -> list[str]:
    found = []
    for key in key_list:
        target = balancer.pick(targets, NOW, None, lambda key=key: key)
        assert target is not None
        found.append(target.id)
    return found


@settings(max_examples=50 if os.environ.get("CI") else 25, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=5), min_size=2, max_size=8),
    keys,
    st.data(),
)
def test_consistent_hash_moves_only_the_removed_targets_keys(
    weight_list: list[int], key_list: list[bytes], data: st.DataObject
) -> None:
    targets = make_targets(weight_list)
    balancer = ConsistentHash(targets)
    before = owners(balancer, targets, key_list)
    assert before == owners(balancer, targets, key_list)  # sticky
    gone = targets[data.draw(st.integers(min_value=0, max_value=len(targets) - 1))]
    how = data.draw(st.sampled_from(["weight", "draining", "unhealthy", "ejected"]))
    if how == "weight":
        gone.weight = 0
    elif how == "draining":
        gone.draining = True
    elif how == "unhealthy":
        gone.healthy = False
    else:
        gone.ejected_until = NOW + 10
    after = owners(balancer, targets, key_list)
    for old, new in zip(before, after, strict=True):
        if old == gone.id:
            assert new != gone.id
        else:
            assert new == old
    # ... and when it comes back, every key goes home.
    gone.weight, gone.draining, gone.healthy, gone.ejected_until = (
        gone.config_weight,
        False,
        True,
        0,
    )
    assert owners(balancer, targets, key_list) == before


def test_consistent_hash_shares_keys_roughly_by_weight() -> None:
    targets = make_targets([1, 1, 2])
    balancer = ConsistentHash(targets)
    counts = Counter(owners(balancer, targets, [f"user-{n}".encode() for n in range(6000)]))
    assert 0.15 <= counts["t0"] / 6000 <= 0.35, counts
    assert 0.15 <= counts["t1"] / 6000 <= 0.35, counts
    assert 0.35 <= counts["t2"] / 6000 <= 0.65, counts


def test_consistent_hash_retry_goes_to_another_target() -> None:
    targets = make_targets([1, 1, 1])
    balancer = ConsistentHash(targets)
    first = balancer.pick(targets, NOW, None, lambda: b"k")
    again = balancer.pick(targets, NOW, first, lambda: b"k")
    assert again is not None
    assert again is not first


# -- hash keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"session=abc", b"abc"),
        (b"a=1; session=xyz; b=2", b"xyz"),
        (b"a=1;session=xyz", b"xyz"),
        (b"sessionx=1; session=2", b"2"),
        (b"other=1", None),
        (b"", None),
        (None, None),
        (b"session", None),
    ],
)
def test_cookie_value(header: bytes | None, expected: bytes | None) -> None:
    assert cookie_value(header, b"session") == expected


def _ctx(headers: dict[bytes, bytes], ip: str = "10.0.0.1") -> SimpleNamespace:
    return SimpleNamespace(client_ip=ip, request_header=headers.get)


def test_hash_key_functions_read_ip_header_and_cookie_and_fall_back_to_ip() -> None:
    by_ip = hash_key_function(HashConfig(on="ip"))
    by_header = hash_key_function(HashConfig(on="header", name="X-User"))
    by_cookie = hash_key_function(HashConfig(on="cookie", name="session"))
    assert by_ip(_ctx({})) == b"10.0.0.1"
    assert by_header(_ctx({b"x-user": b"42"})) == b"42"
    assert by_header(_ctx({})) == b"10.0.0.1"
    assert by_cookie(_ctx({b"cookie": b"a=1; session=s1"})) == b"s1"
    assert by_cookie(_ctx({b"cookie": b"a=1"})) == b"10.0.0.1"
