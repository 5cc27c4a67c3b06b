"""Durations, sizes and rates: the examples the docs promise, and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from propylon.config.units import Rate, format_duration, parse_duration, parse_rate, parse_size

DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
SIZE_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
# Inputs close to the grammar find more edge cases than arbitrary text.
UNIT_ALPHABET = "0123456789./ \tmsdhkbgKBMGx-+e"
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.text(alphabet=UNIT_ALPHABET),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5s", 1.5),
        ("30", 30.0),
        (" 2m ", 120.0),
        ("0s", 0.0),
    ],
)
def test_duration_examples(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_duration_accepts_numbers_as_seconds() -> None:
    assert parse_duration(3) == 3.0
    assert parse_duration(0.25) == 0.25


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "ms",
        "10x",
        "10 parsecs",
        "-1s",
        "1e3s",
        "1,5s",
        "1.s",
        "\u0663s",
        True,
        None,
        [1],
        -1,
        10**400,
    ],
)
def test_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("16KB", 16 * 1024),
        ("10MB", 10 * 1024 * 1024),
        ("1GB", 1024**3),
        ("512", 512),
        ("512b", 512),
        ("1.5KB", 1536),
        ("16kb", 16 * 1024),
        (" 2 MB ", 2 * 1024 * 1024),
    ],
)
def test_size_examples(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "bad", ["", "KB", "10TB", "-1", "1e3", "ten", "\u0661KB", True, None, 1.5, [1], "1" * 5000]
)
def test_size_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("100/15m", Rate(100, 900.0)),
        ("10/s", Rate(10, 1.0)),
        ("1000/h", Rate(1000, 3600.0)),
        ("5/500ms", Rate(5, 0.5)),
        ("3 / 2d", Rate(3, 172800.0)),
    ],
)
def test_rate_examples(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("bad", ["", "100", "100/", "100/15", "/s", "1.5/s", "-1/s", "1/0s", 10])
def test_rate_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.5, "500ms"), (90, "90s"), (900, "15m"), (3600, "1h"), (1e-5, "0.00001s")],
)
def test_format_duration_examples(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.floats(min_value=0, max_value=1e15, allow_nan=False, allow_infinity=False))
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(sorted(DURATION_UNITS)))
def test_duration_with_unit_is_count_times_unit(count: int, unit: str) -> None:
    seconds = parse_duration(f"{count}{unit}")
    assert seconds == count * DURATION_UNITS[unit]
    assert parse_duration(format_duration(seconds)) == seconds


@given(
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=10**9),
    st.sampled_from(sorted(DURATION_UNITS)),
)
def test_duration_is_monotonic_in_the_count(a: int, b: int, unit: str) -> None:
    low, high = sorted((a, b))
    assert parse_duration(f"{low}{unit}") <= parse_duration(f"{high}{unit}")


def test_duration_units_are_ordered() -> None:
    assert [parse_duration(f"1{u}") for u in ("ms", "s", "m", "h", "d")] == sorted(
        DURATION_UNITS.values()
    )


@given(
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=0, max_value=10**12),
    st.sampled_from(sorted(SIZE_UNITS)),
)
def test_size_is_exact_and_monotonic(a: int, b: int, unit: str) -> None:
    low, high = sorted((a, b))
    assert parse_size(f"{low}{unit}") == low * SIZE_UNITS[unit]
    assert parse_size(f"{low}{unit}") <= parse_size(f"{high}{unit}")


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=1, max_value=10**6))
def test_rate_round_trips_through_str(limit: int, window: int) -> None:
    rate = parse_rate(f"{limit}/{window}s")
    assert rate == Rate(limit, float(window))
    assert parse_rate(str(rate)) == rate


@given(st.integers(min_value=1, max_value=1000), st.sampled_from(sorted(DURATION_UNITS)))
def test_rate_window_grows_with_its_count(count: int, unit: str) -> None:
    assert parse_rate(f"1/{count}{unit}").window <= parse_rate(f"1/{count + 1}{unit}").window


@given(ANY_VALUE)
def test_duration_never_fails_otherwise(value: object) -> None:
    try:
        seconds = parse_duration(value)  # type: ignore[arg-type]
    except ValueError:
        return
    assert math.isfinite(seconds)
    assert seconds >= 0


@given(ANY_VALUE)
def test_size_never_fails_otherwise(value: object) -> None:
    try:
        size = parse_size(value)  # type: ignore[arg-type]
    except ValueError:
        return
    assert isinstance(size, int)
    assert size >= 0


@given(ANY_VALUE)
def test_rate_never_fails_otherwise(value: object) -> None:
    try:
        rate = parse_rate(value)  # type: ignore[arg-type]
    except ValueError:
        return
    assert rate.limit >= 0
    assert 0 < rate.window < math.inf
