"""The latency sketch: quantiles within its relative error, merging = recording together."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from propylon.observability import sketch

durations = st.lists(st.floats(min_value=2e-6, max_value=500.0), min_size=1, max_size=300)


def _record(values: list[float]) -> dict[int, int]:
    buckets = sketch.new_buckets()
    for value in values:
        buckets[sketch.index_of(value)] += 1
    return sketch.sparse(buckets)


def _exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


@given(durations, st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 1.0]))
def test_a_quantile_is_within_the_relative_error_of_the_exact_one(values, q) -> None:
    (estimate,) = sketch.quantiles(_record(values), [q])
    exact = _exact(values, q)
    assert estimate is not None
    assert abs(estimate - exact) <= exact * sketch.RELATIVE_ERROR * 1.0001


@given(durations, durations)
def test_merged_sketches_equal_one_sketch_of_both(first, second) -> None:
    merged = _record(first)
    sketch.merge(merged, _record(second))
    assert merged == _record(first + second)
    assert sketch.subtract(merged, _record(first)) == _record(second)


def test_an_empty_sketch_has_no_quantiles() -> None:
    assert sketch.quantiles({}, [0.5, 0.99]) == [None, None]


def test_values_out_of_range_land_in_the_end_buckets() -> None:
    assert sketch.index_of(0.0) == 0
    assert sketch.index_of(1e6) == sketch.SIZE - 1
