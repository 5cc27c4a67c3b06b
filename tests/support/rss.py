"""Sample a process's resident memory in a thread while a test drives traffic.

Flat RSS during a transfer far larger than any buffer is how the streaming
tests see backpressure working: a proxy that buffered would grow by the body.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from types import TracebackType

_VMRSS = re.compile(r"VmRSS:\s+(\d+) kB")
MB = 1024 * 1024


def rss_of(pid: int) -> int | None:
    """Resident set size in bytes, or None once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    match = _VMRSS.search(status)
    return int(match.group(1)) * 1024 if match else None


class RssSampler:
    """``with RssSampler(pid) as rss: ...``; then rss.start / rss.peak / rss.end."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.start = 0
        self.peak = 0
        self.end = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        first = rss_of(self.pid)
        if first is None:
            raise RuntimeError(f"process {self.pid} is not running")
        self.start = self.peak = self.end = first
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._take()

    def _take(self) -> None:
        value = rss_of(self.pid)
        if value is not None:
            self.samples += 1
            self.end = value
            self.peak = max(self.peak, value)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    @property
    def growth(self) -> int:
        return self.peak - self.start

    def summary(self) -> str:
        return (
            f"rss start {self.start / MB:.1f} MB, peak {self.peak / MB:.1f} MB, "
            f"end {self.end / MB:.1f} MB ({self.samples} samples)"
        )
