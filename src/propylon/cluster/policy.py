"""When to restart a worker that died, and when to stop trying.

As PM2 does: a worker that dies younger than ``min_uptime`` had an unstable
start; each unstable exit doubles the restart delay (from 100 ms, capped) and
more than ``max_restarts`` of them in a row means the worker cannot run, so
the supervisor gives up instead of looping forever. A worker that lived
longer than ``min_uptime`` resets both.
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST_DELAY = 0.1
MAX_DELAY = 15.0  # PM2's cap for exponential restart backoff


@dataclass(frozen=True, slots=True)
class Decision:
    restart: bool
    delay: float
    unstable: int  # unstable exits in a row, this one included


class RestartPolicy:
    def __init__(self, max_restarts: int, min_uptime: float) -> None:
        self.max_restarts = max_restarts
        self.min_uptime = min_uptime
        self.unstable = 0

    def on_exit(self, uptime: float) -> Decision:
        """A worker died after ``uptime`` seconds: restart it, and after how long?"""
        if uptime >= self.min_uptime:
            self.unstable = 0
            return Decision(restart=True, delay=FIRST_DELAY, unstable=0)
        self.unstable += 1
        if self.unstable > self.max_restarts:
            return Decision(restart=False, delay=0.0, unstable=self.unstable)
        delay = min(MAX_DELAY, FIRST_DELAY * 2 ** (self.unstable - 1))
        return Decision(restart=True, delay=delay, unstable=self.unstable)
