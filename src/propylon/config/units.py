"""Parsing of the config's human units: durations, sizes and rates.

Durations: ``500ms``, ``10s``, ``15m``, ``1h``, ``1d``, or a bare number of
seconds. Sizes: ``512``, ``16KB``, ``10MB``, ``1GB`` (binary multiples: 1KB =
1024 bytes, as nginx reads ``16k``). Rates: ``100/15m``, ``10/s``, ``1000/h``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}

# ASCII only: a bare \d would also accept digits of other scripts.
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.ASCII)
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$", re.IGNORECASE | re.ASCII)
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d)\s*$", re.ASCII)


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` events per ``window`` seconds."""

    limit: int
    window: float

    def __str__(self) -> str:
        return f"{self.limit}/{format_duration(self.window)}"


def parse_duration(value: str | int | float) -> float:
    """Return the duration in seconds; raise ValueError on anything else."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("expected a duration such as 500ms, 10s, 15m or 1h")
    try:
        if isinstance(value, str):
            match = _DURATION_RE.match(value)
            if match is None:
                raise ValueError(
                    f"invalid duration {value!r}: expected a number with a unit "
                    "(ms, s, m, h, d) such as 500ms, 10s, 15m or 1h"
                )
            seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
        else:
            seconds = float(value)
    except OverflowError:  # an int beyond float range: pydantic only maps ValueError
        seconds = math.inf
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"invalid duration {_short(value)}: must be a finite number >= 0")
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
        # Exact arithmetic: a float would overflow on long digit strings and
        # round large byte counts.
        try:
            number = Fraction(match.group(1))
        except ValueError:  # more digits than int() accepts
            raise ValueError(f"invalid size {_short(value)}: too large") from None
        size = int(number * _SIZE_UNITS[(match.group(2) or "").lower()])
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
    if not 0 < window < math.inf:
        raise ValueError(
            f"invalid rate {_short(value)}: the window must be a finite duration longer than 0"
        )
    return Rate(limit=limit, window=window)


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of a duration, for messages and round trips.

    A unit is used only when parsing the result gives back exactly ``seconds``.
    """
    if seconds == 0:
        return "0s"
    if not math.isfinite(seconds):
        return f"{seconds}s"
    for unit in ("d", "h", "m", "s", "ms"):
        factor = _DURATION_UNITS[unit]
        count = round(seconds / factor)
        if count >= 1 and float(count) * factor == seconds:
            return f"{count}{unit}"
    # Plain decimal notation: repr() would say 1e-05, which the parser rejects.
    return f"{Decimal(repr(seconds)):f}s"


def _short(value: object) -> str:
    """repr() for messages, cut so a huge input does not flood the terminal."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
