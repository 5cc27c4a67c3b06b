"""An append-only log file that rotates by size and by day, safely across processes.

Every worker (and the supervisor) appends whole lines to the same files
with O_APPEND, so lines never interleave. Rotation is decided on the file
as it is on disk (its size, the day of its last write), under an flock on a
``.lock`` file beside it: whichever process sees the need first renames it;
the others notice that the path now names another inode and reopen.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path


def _utc_day(timestamp: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(timestamp))


class LogFile:
    def __init__(
        self,
        path: Path,
        *,
        max_size: int | None,
        daily: bool,
        keep: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_size = max_size
        self.daily = daily
        self.keep = keep
        self.clock = clock
        self.rotations = 0
        self._fd = -1
        self._inode = -1
        self._open()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self._inode = os.fstat(fd).st_ino

    def write(self, data: bytes) -> None:
        """Append ``data`` (whole lines), rotating first when it is time."""
        self._check()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def _due(self, size: int, mtime: float) -> bool:
        if size == 0:
            return False
        if self.max_size is not None and size >= self.max_size:
            return True
        return self.daily and _utc_day(mtime) != _utc_day(self.clock())

    def _check(self) -> None:
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            self._open()  # moved away by another process (or an operator)
            return
        if on_disk.st_ino != self._inode:
            self._open()
            return
        if self._due(on_disk.st_size, on_disk.st_mtime):
            self._rotate()

    def _rotate(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = os.stat(self.path)
                if current.st_ino == self._inode and self._due(current.st_size, current.st_mtime):
                    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(self.clock()))
                    target = self._free_name(stamp)
                    os.rename(self.path, target)
                    self.rotations += 1
                    self._prune()
            except FileNotFoundError:
                pass
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        self._open()

    def _free_name(self, stamp: str) -> Path:
        candidate = self.path.with_name(f"{self.path.name}.{stamp}")
        serial = 1
        while candidate.exists():
            candidate = self.path.with_name(f"{self.path.name}.{stamp}.{serial}")
            serial += 1
        return candidate

    def rotated(self) -> list[Path]:
        """The rotated files of this log, oldest first."""
        prefix = self.path.name + "."
        found = [
            p
            for p in self.path.parent.iterdir()
            if p.name.startswith(prefix) and not p.name.endswith(".lock")
        ]
        return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))

    def _prune(self) -> None:
        old = self.rotated()
        for path in old[: max(0, len(old) - self.keep)]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
