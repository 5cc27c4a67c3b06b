"""What one gateway process reports when the supervisor (or the in-process
admin API) asks: its counters, its view of services, targets and breakers,
the optional sources, and process figures. Plain data, so it pickles over
the worker channel as it is.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from typing import TYPE_CHECKING, Any

from propylon.observability import logs, sources

if TYPE_CHECKING:
    from propylon.server.state import GatewayState

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# Message types a gateway process answers (cluster/channel.py).
METRICS, METRICS_RESET = "metrics", "metrics_reset"


def process_figures() -> dict[str, Any]:
    times = os.times()
    figures: dict[str, Any] = {
        "pid": os.getpid(),
        "cpu_seconds": times.user + times.system,
        "rss_bytes": rss_bytes(),
        "open_fds": _open_fds(),
        "start_time": _start_time(),
    }
    return figures


def rss_bytes() -> int:
    """This process's resident memory now (peak on systems without /proc)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _open_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _start_time() -> float | None:
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as system:
            boot = next(float(line.split()[1]) for line in system if line.startswith(b"btime"))
        return boot + int(fields[19]) / _CLOCK_TICKS
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def gateway_snapshot(state: GatewayState, worker: int = 0) -> dict[str, Any]:
    redis = state.redis_health.snapshot() if state.redis_health is not None else None
    return {
        "worker": worker,
        "taken_at": time.time(),
        "started_at": state.started_at,
        "metrics": state.recorder.snapshot(),
        "connections": len(state.connections),
        "services": {name: service.snapshot() for name, service in state.services.items()},
        "required": [name for name, s in state.services.items() if s.config.required],
        "sources": sources.collect(state),
        "redis": redis,
        "logs": writer.figures() if (writer := logs.current()) is not None else None,
        "process": process_figures(),
    }


async def answer(
    state: GatewayState, message: dict[str, Any], worker: int = 0
) -> dict[str, Any] | None:
    """The observability messages of the worker channel; None for other types."""
    kind = message.get("type")
    if kind == METRICS:
        return gateway_snapshot(state, worker)
    if kind == METRICS_RESET:
        state.recorder.reset_view()
        return {"reset": True}
    return None
