"""Parsing of the config's human units: durations, sizes and rates.

Durations: ``500ms``, ``10s``, ``15m``, ``1h``, ``1d``, or a bare number of
seconds. Sizes: ``512``, ``16KB``, ``10MB``, ``1GB`` (binary multiples: 1KB =
1024 bytes, as nginx reads ``16k``). Rates: ``100/15m``, ``10/s``, ``1000/h``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$", re.IGNORECASE)
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d)\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` events per ``window`` seconds."""

    limit: int
    window: float

    def __str__(self) -> str:
        return f"{self.limit}/{format_duration(self.window)}"


def parse_duration(value: str | int | float) -> float:
    """Return the duration in seconds; raise ValueError on anything else."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 500ms, 10s, 15m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(value)
        if match is None:
            raise ValueError(
                f"invalid duration {value!r}: expected a number with a unit "
                "(ms, s, m, h, d) such as 500ms, 10s, 15m or 1h"
            )
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"invalid duration {value!r}: must be a finite number >= 0")
    return seconds


def parse_size(value: str | int) -> int:
    """Return the size in bytes; raise ValueError on anything else."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 512, 16KB or 10MB")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match is None:
            raise ValueError(
                f"invalid size {value!r}: expected a number with an optional unit "
                "(B, KB, MB, GB) such as 16KB or 10MB"
            )
        size = int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()])
    else:
        raise ValueError("expected a size such as 512, 16KB or 10MB")
    if size < 0:
        raise ValueError(f"invalid size {value!r}: must be >= 0")
    return size


def parse_rate(value: str) -> Rate:
    """Parse ``N/window`` (window a duration; a bare unit means one of it)."""
    if not isinstance(value, str):
        raise ValueError("expected a rate such as 100/15m or 10/s")
    match = _RATE_RE.match(value)
    if match is None:
        raise ValueError(
            f"invalid rate {value!r}: expected COUNT/WINDOW such as 100/15m, 10/s or 1000/h"
        )
    limit = int(match.group(1))
    window = float(match.group(2) or 1) * _DURATION_UNITS[match.group(3)]
    if window <= 0:
        raise ValueError(f"invalid rate {value!r}: the window must be longer than 0")
    return Rate(limit=limit, window=window)


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of a duration, for messages and round trips."""
    if seconds == 0:
        return "0s"
    for unit in ("d", "h", "m", "s"):
        count = seconds / _DURATION_UNITS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    millis = seconds * 1000
    if millis == int(millis):
        return f"{int(millis)}ms"
    return f"{seconds}s"
