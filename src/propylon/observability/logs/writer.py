"""The log writer: a bounded queue of lines, written by a thread.

On the request path the event loop formats the access line (about 2 us,
bytes formatting, no dict) and appends the bytes to a deque: no lock, no
syscall. Every ``flush_interval`` the queued lines (and the gateway's own
log records, rendered then) are joined per file and a daemon thread
writes them, so the loop never waits for the disk. When the queue is full
the line is dropped and counted (``dropped``, exported as
``propylon_log_lines_dropped_total``), never waited for.

Why format on the loop: queueing the exchange (or a tuple of its fields)
for a thread to format kept thousands of objects alive for the garbage
collector to walk, and a second thread doing Python work fights the event
loop for the GIL, which uvloop gives up around every callback; both cost
more than the formatting. So once the gateway runs (``attach(loop)``) the
batch is joined in a loop callback and the thread only writes, which
releases the GIL; before that (and in a process without a loop) the thread
renders the batch itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path
from queue import Empty, SimpleQueue
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
        self.render_errors = 0
        self.written = 0
        self._worker = worker or 0
        self._pid = os.getpid()
        self._redact = self.redactor.literal_bytes
        self._to_wall = time.time() - time.monotonic()  # access entries carry monotonic times
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
        self._rendered: SimpleQueue[dict[str, list[bytes]] | None] = SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._thread = threading.Thread(target=self._run, name="propylon-log-writer", daemon=True)
        self._thread.start()

    # -- rendering on the event loop ---------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Render on ``loop`` from now on (call it from the loop's thread)."""
        self._loop = loop
        self._schedule()

    def _schedule(self) -> None:
        assert self._loop is not None
        self._tick = self._loop.call_later(self.config.flush_interval, self._render_on_loop)

    def _render_on_loop(self) -> None:
        outputs = self.render()
        if outputs["combined"]:
            self._rendered.put(outputs)
        self._schedule()

    def detach(self) -> None:
        """Back to rendering in the thread (the loop is about to stop)."""
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        if self._loop is not None:
            self._loop = None
            outputs = self.render()
            if outputs["combined"]:
                self._rendered.put(outputs)

    # -- producers (any thread; the loop's path is ``access``) -----------------

    def access(self, now: float, exchange: ExchangeBase) -> None:
        """Format the access line now and queue its bytes: a queue of bytes
        holds nothing the garbage collector must walk, and the exchange is
        freed at once (both cost more than formatting when entries waited)."""
        if len(self._queue) >= self._limit:
            self.dropped += 1
            return
        try:
            entry = access_entry(now + self._to_wall, exchange)
            if self.text:
                line = access_text(access_record(entry, self._worker, self._pid)).encode()
            else:
                line = access_json(entry, self._worker, self._pid)
        except Exception:
            self.render_errors += 1
            return
        self._queue.append(self._redact(line))

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
        interval = self.config.flush_interval
        while not self._stop.is_set():
            try:
                outputs = self._rendered.get(timeout=interval)
            except Empty:
                outputs = None
            if outputs is not None:
                self._write(outputs)
            elif self._loop is None:
                self.drain()
        while not self._rendered.empty():
            outputs = self._rendered.get()
            if outputs is not None:
                self._write(outputs)
        self.drain()

    def drain(self) -> None:
        """Render and write what is queued, in the calling thread."""
        self._write(self.render())

    def render(self) -> dict[str, list[bytes]]:
        outputs: dict[str, list[bytes]] = {"access": [], "error": [], "combined": []}
        access, error, combined = outputs["access"], outputs["error"], outputs["combined"]
        queue = self._queue
        self._to_wall = time.time() - time.monotonic()  # follows clock adjustments
        while queue:
            item = queue.popleft()
            try:
                if type(item) is bytes:
                    access.append(item)
                    line = item
                else:
                    line = self.redactor.text(self.formatter.format(item)).encode()
                    if item.levelno >= ERROR_LOG_LEVEL:
                        error.append(line)
            except Exception as exc:  # a record that cannot be rendered is reported, once
                line = orjson.dumps({"type": "app", "level": "error", "message": repr(exc)})
            combined.append(line)
        return outputs

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
            "render_errors": self.render_errors,
            "write_errors": self.write_errors,
            "rotations": sum(f.rotations for f in self.files.values()),
        }

    def close(self) -> None:
        self._stop.set()
        self._rendered.put(None)  # wake the thread
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
