"""The latency histogram: quantiles within its relative error, exact Prometheus
buckets from the same counts, and merging = recording together."""

from __future__ import annotations

import math
from bisect import bisect_left

from hypothesis import given
from hypothesis import strategies as st

from propylon.config.observability import DEFAULT_BUCKETS
from propylon.observability import sketch

LAYOUT = sketch.layout(DEFAULT_BUCKETS)
durations = st.lists(st.floats(min_value=2e-6, max_value=500.0), min_size=1, max_size=300)


def _record(values: list[float]) -> dict[int, int]:
    counts = LAYOUT.new_counts()
    for value in values:
        counts[LAYOUT.index_of(value)] += 1
    return sketch.sparse(counts)


def _exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


@given(durations, st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 1.0]))
def test_a_quantile_is_within_the_relative_error_of_the_exact_one(values, q) -> None:
    (estimate,) = LAYOUT.quantiles(_record(values), [q])
    exact = _exact(values, q)
    assert estimate is not None
    assert abs(estimate - exact) <= exact * sketch.RELATIVE_ERROR * 1.0001


@given(durations)
def test_prometheus_buckets_are_exact(values) -> None:
    buckets = LAYOUT.prometheus_buckets(_record(values))
    expected = [0] * (len(DEFAULT_BUCKETS) + 1)
    for value in values:  # le semantics: the first bound >= the value
        expected[bisect_left(DEFAULT_BUCKETS, value)] += 1
    assert buckets == expected


@given(durations, durations)
def test_merged_histograms_equal_one_histogram_of_both(first, second) -> None:
    merged = _record(first)
    sketch.merge(merged, _record(second))
    assert merged == _record(first + second)
    assert sketch.subtract(merged, _record(first)) == _record(second)


def test_an_empty_histogram_has_no_quantiles() -> None:
    assert LAYOUT.quantiles({}, [0.5, 0.99]) == [None, None]


def test_values_out_of_range_land_in_the_end_buckets() -> None:
    assert LAYOUT.index_of(0.0) == 0
    assert LAYOUT.index_of(1e6) == LAYOUT.size - 1
    assert LAYOUT.value_of(LAYOUT.size - 1) >= sketch.HIGHEST
