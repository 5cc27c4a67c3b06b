"""The supervisor's handle on one worker process: spawn, ready, stats, stop, exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

from propylon.cluster.channel import Channel, ChannelClosed, Message
from propylon.config.models import GatewayConfig

log = logging.getLogger("propylon.supervisor")

WorkerState = Literal["loading", "spare", "starting", "ready", "draining", "exited"]


class WorkerStartError(Exception):
    """A worker exited, or did not get ready in time, before it served."""


class WorkerProcess:
    """One ``propylon.cluster.worker`` process; ``on_exit`` is called once it has exited.

    It starts ``loading`` (importing its modules), then waits as a ``spare``
    until ``assign`` gives it a slot and a config.
    """

    def __init__(self, on_exit: Callable[[WorkerProcess], None]) -> None:
        self.slot = 0  # 0 while a spare
        self.generation = 0  # which config it runs (counts reloads)
        self.state: WorkerState = "loading"
        self.pid = 0
        self.returncode: int | None = None
        self.started = time.monotonic()
        self.ready_at: float | None = None
        self.requests = 0
        self.rss: int | None = None
        self.request_limit: int | None = None
        self.final_metrics: Message | None = None  # sent by a worker that drained
        self._on_exit = on_exit
        # Set by the pool: where state events this worker publishes go.
        self.on_event: Callable[[WorkerProcess, Message], None] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._channel: Channel | None = None
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._exited = asyncio.Event()

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started

    @property
    def standing_by(self) -> bool:
        """A spare whose imports are done: it serves a few ms after ``assign``."""
        return self.state == "spare"

    async def spawn(self, listener: socket.socket) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "propylon.cluster.worker",
                str(listener.fileno()),
                str(theirs.fileno()),
                # Inheriting the listening socket (not SO_REUSEPORT) keeps the
                # accept queue alive while workers come and go.
                pass_fds=(listener.fileno(), theirs.fileno()),
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self.pid = self._process.pid
        self._channel = await Channel.open(ours)
        self._channel.serve(self._handle)
        asyncio.get_running_loop().create_task(self._wait())

    def assign(self, slot: int, generation: int, config: GatewayConfig) -> None:
        """Make this spare worker ``slot``, serving ``config``."""
        if self._channel is None or self._channel.closed:
            raise WorkerStartError("it is not running")
        self.slot, self.generation = slot, generation
        self.state = "starting"
        self.started = time.monotonic()
        self._channel.send({"type": "config", "config": config, "slot": slot})

    def notify(self, message: Message) -> None:
        """Send without waiting for a reply (a state event, for instance)."""
        if self._channel is not None and not self._channel.closed:
            self._channel.send(message)

    async def _handle(self, message: Message) -> Message | None:
        if message.get("type") == "event":
            if self.on_event is not None:
                self.on_event(self, message)
            return None
        if message.get("type") == "metrics_final":
            self.final_metrics = message.get("snapshot")
            return None
        if message.get("type") == "standby" and self.state == "loading":
            self.state = "spare"
        elif message.get("type") == "ready" and not self._ready.done():
            self.state = "ready"
            self.ready_at = time.monotonic()
            self._ready.set_result(None)
        return None

    async def _wait(self) -> None:
        assert self._process is not None
        self.returncode = await self._process.wait()
        self.state = "exited"
        if not self._ready.done():
            self._ready.set_exception(WorkerStartError(f"it exited ({describe_exit(self)})"))
            self._ready.exception()  # retrieved: nobody may be waiting any more
        if self._channel is not None:
            await self._channel.close()
        self._exited.set()
        self._on_exit(self)

    async def wait_ready(self, within: float) -> None:
        try:
            async with asyncio.timeout(within):
                await asyncio.shield(self._ready)
        except TimeoutError:
            self.kill()
            raise WorkerStartError(f"it was not ready after {within:g}s") from None

    async def wait_exit(self, within: float | None = None) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._exited.wait()
        return self._exited.is_set()

    async def request(self, message: Message, within: float = 2.0) -> Message | None:
        """Ask the worker; None when it is gone or does not answer in time."""
        if self._channel is None or self.state == "exited":
            return None
        try:
            return await self._channel.request(message, within)
        except (ChannelClosed, TimeoutError):
            return None

    async def refresh(self, within: float = 1.0) -> None:
        stats = await self.request({"type": "stats"}, within)
        if stats is not None and "error" not in stats:
            self.requests = int(stats["requests"])
            self.rss = int(stats["rss"])

    def stop(self, graceful_timeout: float | None = None) -> None:
        """Drain: stop accepting, finish in-flight requests, exit."""
        if self.state == "exited":
            return
        self.state = "draining"
        sent = False
        if self._channel is not None and not self._channel.closed:
            with contextlib.suppress(ChannelClosed, OSError):
                self._channel.send({"type": "stop", "graceful_timeout": graceful_timeout})
                sent = True
        if not sent:
            self.send_signal(signal.SIGTERM)  # drains too

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def send_signal(self, signum: int) -> None:
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signum)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.slot,
            "pid": self.pid,
            "state": self.state,
            "uptime": round(self.uptime, 3),
            "rss": self.rss,
            "requests": self.requests,
            "generation": self.generation,
        }


def describe_exit(worker: WorkerProcess) -> str:
    code = worker.returncode
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
