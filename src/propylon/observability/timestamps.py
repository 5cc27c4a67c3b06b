"""ISO 8601 UTC timestamps with milliseconds, as every propylon document shows them."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_second = -1
_prefix = ""


def iso_fast(timestamp: float) -> str:
    """``iso`` for many timestamps in a row (the log writer): the date part is
    formatted once per second. Not thread-safe; one writer thread uses it."""
    global _second, _prefix
    second = int(timestamp)
    if second != _second:
        _prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = second
    return f"{_prefix}.{int((timestamp - second) * 1000):03d}Z"
