"""The background log writer: a bounded queue, drained by one thread.

The event loop only appends to a deque (no lock, no syscall, no
formatting); a daemon thread wakes every ``flush_interval``, turns what it
finds into lines, redacts them and writes each output in one call. When
the queue is full the entry is dropped and counted (``dropped``, exported
as ``propylon_log_lines_dropped_total``), never waited for.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from propylon.observability.logs.records import (
    Redactor,
    access_entry,
    access_json,
    access_record,
    access_text,
    app_formatter,
)
from propylon.observability.logs.rotation import LogFile

if TYPE_CHECKING:
    from propylon.config.observability import LoggingConfig
    from propylon.server.exchange_base import ExchangeBase

# Records at this level and above also go to error.log.
ERROR_LOG_LEVEL = logging.WARNING


class LogWriter:
    def __init__(self, config: LoggingConfig, secrets: list[str], worker: int | None) -> None:
        self.config = config
        self.worker = worker
        self.text = config.format == "text"
        self.redactor = Redactor([*secrets, *config.redact_values])
        self.formatter = app_formatter(worker, self.text)
        self.dropped = 0
        self.written = 0
        self.write_errors = 0
        self._queue: deque[Any] = deque()
        self._limit = config.queue_size
        self.files: dict[str, LogFile] = {}
        if config.directory is not None:
            rotation = config.rotation
            for name in ("access", "error", "combined"):
                self.files[name] = LogFile(
                    Path(config.directory) / f"{name}.log",
                    max_size=rotation.max_size,
                    daily=rotation.daily,
                    keep=rotation.keep,
                )
        self.stdout = config.stdout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="propylon-log-writer", daemon=True)
        self._thread.start()

    # -- producers (any thread; the loop's path is ``access``) -----------------

    def access(self, now: float, exchange: ExchangeBase) -> None:
        if len(self._queue) < self._limit:
            self._queue.append(access_entry(now, exchange))
        else:
            self.dropped += 1

    def app(self, record: logging.LogRecord) -> None:
        if len(self._queue) < self._limit:
            self._queue.append(record)
        else:
            self.dropped += 1

    @property
    def in_writer_thread(self) -> bool:
        return threading.current_thread() is self._thread

    # -- the thread ---------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.config.flush_interval):
            self.drain()
        self.drain()

    def drain(self) -> None:
        outputs: dict[str, list[bytes]] = {"access": [], "error": [], "combined": []}
        access, error, combined = outputs["access"], outputs["error"], outputs["combined"]
        queue = self._queue
        worker, pid, redact = self.worker or 0, os.getpid(), self.redactor.literal_bytes
        to_wall = time.time() - time.monotonic()  # entries carry monotonic times
        while queue:
            item = queue.popleft()
            try:
                if type(item) is tuple:
                    item = (item[0] + to_wall, *item[1:])
                    if self.text:
                        line = redact(access_text(access_record(item, worker, pid)).encode())
                    else:
                        line = redact(access_json(item, worker, pid))
                    access.append(line)
                else:
                    line = self.redactor.text(self.formatter.format(item)).encode()
                    if item.levelno >= ERROR_LOG_LEVEL:
                        error.append(line)
            except Exception as exc:  # a record that cannot be rendered is reported, once
                line = orjson.dumps({"type": "app", "level": "error", "message": repr(exc)})
            combined.append(line)
        self._write(outputs)

    def _write(self, outputs: dict[str, list[bytes]]) -> None:
        combined = outputs["combined"]
        if not combined:
            return
        try:
            for name, lines in outputs.items():
                log_file = self.files.get(name)
                if lines and log_file is not None:
                    log_file.write(b"\n".join(lines) + b"\n")
            if self.stdout:
                sys.stdout.buffer.write(b"\n".join(combined) + b"\n")
                sys.stdout.flush()
        except (OSError, ValueError):
            self.write_errors += 1
            return
        self.written += len(combined)

    def figures(self) -> dict[str, Any]:
        return {
            "queued": len(self._queue),
            "dropped": self.dropped,
            "written": self.written,
            "write_errors": self.write_errors,
            "rotations": sum(f.rotations for f in self.files.values()),
        }

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and not self.in_writer_thread:
            self._thread.join(5)
        for log_file in self.files.values():
            log_file.close()


class QueueingHandler(logging.Handler):
    """Hands stdlib log records to the writer; never formats or writes in the caller."""

    def __init__(self, writer: LogWriter, level: int) -> None:
        super().__init__(level)
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        if self.writer.in_writer_thread:
            return  # the writer's own trouble must not feed itself
        # Freeze the message now: its arguments may change after this call.
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        self.writer.app(record)
