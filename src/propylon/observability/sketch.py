"""A mergeable latency sketch: log-spaced buckets with a bounded relative error.

The idea is DDSketch's (Masson et al., VLDB 2019): bucket ``i`` holds the
values in ``[GAMMA**i, GAMMA**(i+1))`` microseconds, so any quantile read
back is within ``RELATIVE_ERROR`` of a value that was recorded, and two
sketches merge by adding their bucket counts. That is what lets every worker
record on its own, without locks, while the supervisor reports p50/p95/p99
over all of them. Recording is one ``log``, one multiply and one list
increment; the counts travel as a sparse ``{index: count}`` dict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

RELATIVE_ERROR = 0.01
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
SCALE = 1 / math.log(GAMMA)  # multiply a log value by this to get its index
MAX_MICROS = 1e9  # 1000 s; anything slower lands in the last bucket
SIZE = int(math.log(MAX_MICROS) * SCALE) + 2

Sparse = dict[int, int]


def index_of(seconds: float) -> int:
    """The bucket of a duration in seconds (hot path: keep it inlinable)."""
    micros = seconds * 1e6
    if micros <= 1.0:
        return 0
    return min(int(math.log(micros) * SCALE), SIZE - 1)


def new_buckets() -> list[int]:
    return [0] * SIZE


def sparse(buckets: list[int]) -> Sparse:
    return {i: n for i, n in enumerate(buckets) if n}


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


def value_of(index: int) -> float:
    """The representative duration of a bucket, in seconds (relative error bound)."""
    if index == 0:
        return 1e-6
    low = GAMMA**index
    return 2 * low * GAMMA / (1 + GAMMA) / 1e6


def quantiles(counts: Mapping[int, int], qs: Iterable[float]) -> list[float | None]:
    """The durations (seconds) at each quantile in ``qs``; None for an empty sketch."""
    wanted = list(qs)
    total = sum(counts.values())
    if total == 0:
        return [None for _ in wanted]
    ordered = sorted(counts.items())
    results: list[float | None] = []
    for q in wanted:
        rank = q * (total - 1)  # 0-based rank, as numpy's "lower" method
        seen = 0
        chosen = ordered[-1][0]
        for index, count in ordered:
            seen += count
            if seen > rank:
                chosen = index
                break
        results.append(value_of(chosen))
    return results
