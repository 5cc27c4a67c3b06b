"""A mergeable latency histogram: fine log-spaced buckets with a bounded relative error.

The idea is DDSketch's (Masson et al., VLDB 2019): consecutive bucket
bounds grow by a factor ``GAMMA``, so any quantile read back is within
``RELATIVE_ERROR`` of a value that was recorded, and histograms from many
workers merge by adding their bucket counts. That is what lets every worker
record on its own, without locks, while the supervisor reports p50/p95/p99
over all of them.

The Prometheus bucket bounds (``metrics.buckets``) are inserted among the
fine bounds, so the Prometheus histogram is exact and derived from the
same counts: recording a duration is one ``bisect`` on a tuple and one list
increment. A bucket ``i`` counts the durations ``d`` with
``bounds[i-1] < d <= bounds[i]`` (Prometheus's ``le``); the last one is +Inf.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence

RELATIVE_ERROR = 0.01
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
LOWEST = 1e-6  # seconds; faster is "at most a microsecond"
HIGHEST = 1000.0  # slower lands in the +Inf bucket

Sparse = dict[int, int]


class Layout:
    """The fine bucket bounds for one set of Prometheus bounds."""

    def __init__(self, prometheus: Sequence[float]) -> None:
        steps = int(math.log(HIGHEST / LOWEST) / math.log(GAMMA)) + 1
        fine = {LOWEST * GAMMA**k for k in range(steps + 1)}
        self.prometheus = tuple(float(b) for b in prometheus)
        self.bounds = tuple(sorted(fine | set(self.prometheus)))
        self.size = len(self.bounds) + 1  # + the +Inf bucket
        # Where each Prometheus bound sits among the fine ones.
        self._positions = [self.bounds.index(b) for b in self.prometheus]

    def new_counts(self) -> list[int]:
        return [0] * self.size

    def index_of(self, seconds: float) -> int:
        return bisect_left(self.bounds, seconds)

    def prometheus_buckets(self, counts: Mapping[int, int]) -> list[int]:
        """Per Prometheus bucket (not cumulative), the +Inf one last."""
        out = [0] * (len(self.prometheus) + 1)
        positions = self._positions
        for index, count in counts.items():
            slot = len(positions)
            for j, position in enumerate(positions):
                if index <= position:
                    slot = j
                    break
            out[slot] += count
        return out

    def value_of(self, index: int) -> float:
        """A representative duration of a bucket (seconds), within the relative error."""
        bounds = self.bounds
        if index <= 0:
            return bounds[0]
        if index >= len(bounds):
            return bounds[-1]
        low, high = bounds[index - 1], bounds[index]
        return 2 * low * high / (low + high)

    def quantiles(self, counts: Mapping[int, int], qs: Iterable[float]) -> list[float | None]:
        """The durations (seconds) at each quantile in ``qs``; None for no data."""
        wanted = list(qs)
        total = sum(counts.values())
        if total == 0:
            return [None for _ in wanted]
        ordered = sorted(counts.items())
        results: list[float | None] = []
        for q in wanted:
            rank = q * (total - 1)  # 0-based rank, numpy's "lower" method
            seen = 0
            chosen = ordered[-1][0]
            for index, count in ordered:
                seen += count
                if seen > rank:
                    chosen = index
                    break
            results.append(self.value_of(chosen))
        return results


_LAYOUTS: dict[tuple[float, ...], Layout] = {}


def layout(prometheus: Sequence[float]) -> Layout:
    key = tuple(float(b) for b in prometheus)
    found = _LAYOUTS.get(key)
    if found is None:
        found = _LAYOUTS[key] = Layout(key)
    return found


def sparse(counts: list[int]) -> Sparse:
    return {i: n for i, n in enumerate(counts) if n}


def merge(into: Sparse, other: Mapping[int, int]) -> None:
    for index, count in other.items():
        into[index] = into.get(index, 0) + count


def subtract(total: Mapping[int, int], base: Mapping[int, int]) -> Sparse:
    out: Sparse = {}
    for index, count in total.items():
        left = count - base.get(index, 0)
        if left > 0:
            out[index] = left
    return out
