"""One worker process: ``python -m propylon.cluster.worker LISTEN_FD CHANNEL_FD``.

The supervisor starts it with two inherited file descriptors: the listening
socket (shared by every worker; the kernel hands each new connection to one
of them) and this worker's end of a channel. Once its modules are imported
the worker says ``standby`` and waits: the supervisor keeps one such spare
ready, so replacing a crashed worker costs a config message, not an
interpreter start. The config arrives as a message, exactly as the
supervisor validated it; the worker then serves until told to stop, or until
the channel closes (the supervisor is gone), and drains like the
single-process gateway does.

Signals: SIGINT and SIGHUP are ignored, since a terminal sends them to the
whole process group and the supervisor coordinates stop and reload; SIGTERM
drains this worker (the supervisor then starts another one).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from typing import Any

import uvloop

from propylon.cluster.channel import Channel, Message
from propylon.config.models import GatewayConfig
from propylon.observability import logs, snapshot
from propylon.server import operations
from propylon.server.gateway import Gateway

log = logging.getLogger("propylon.worker")

# Test hook: makes the worker fail during start-up, to test the restart policy.
CRASH_ENV = "PROPYLON_TEST_WORKER_CRASH"
# Between closing the listener and closing idle connections: a connection
# this worker accepted just before may not have sent its first request yet
# (the other workers take every later one). Closing it as idle would lose
# that request; after the pause it is answered, with Connection: close.
DRAIN_SETTLE = 0.1


class Worker:
    def __init__(self, channel: Channel, slot: int) -> None:
        self.channel = channel
        self.slot = slot
        self.gateway: Gateway | None = None
        self.stop_requested = asyncio.Event()
        self.graceful_timeout: float | None = None

    async def handle(self, message: Message) -> Message | None:
        kind = message.get("type")
        if kind == "event":
            if self.gateway is not None:
                self.gateway.state.events.apply(message["event"])
            return None
        if kind == "stats":
            return self.stats()
        if kind in (snapshot.METRICS, snapshot.METRICS_RESET):
            if self.gateway is None:
                return {"error": "not serving yet"}
            return await snapshot.answer(self.gateway.state, message, self.slot)
        if self.gateway is not None:
            reply = await operations.answer_async(self.gateway.state, message)
            if reply is not None:
                return reply
        if kind == "stop":
            self.graceful_timeout = message.get("graceful_timeout")
            self.stop_requested.set()
            return {"stopping": True}
        return None  # unknown: the channel answers with an error

    def stats(self) -> dict[str, Any]:
        gateway = self.gateway
        connections = len(gateway.state.connections) if gateway is not None else 0
        requests = gateway.state.recorder.requests() if gateway is not None else 0
        return {
            "pid": os.getpid(),
            "requests": requests,
            "rss": snapshot.rss_bytes(),
            "connections": connections,
            "draining": self.stop_requested.is_set(),
        }

    async def serve(self, listener: socket.socket, config: GatewayConfig) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop_requested.set)
        _crash_if_asked("start")
        gateway = Gateway(config)
        await gateway.start(sock=listener)
        self.gateway = gateway
        # This worker's breaker transitions and target changes, to the others.
        channel = self.channel
        gateway.state.events.sinks.append(
            lambda event: channel.send({"type": "event", "event": event})
        )
        self.channel.send({"type": "ready", "pid": os.getpid()})
        await self.stop_requested.wait()
        await gateway.stop(self.graceful_timeout, settle=DRAIN_SETTLE)
        # Last words: what this worker counted, so the node's counters keep it.
        if not channel.closed:
            final = snapshot.gateway_snapshot(gateway.state, self.slot)
            channel.send({"type": "metrics_final", "snapshot": final})
        return 0


def _crash_if_asked(stage: str) -> None:
    if os.environ.get(CRASH_ENV) == stage:
        raise RuntimeError(f"{CRASH_ENV}={stage}: failing on purpose")


async def _main(listen_fd: int, channel_fd: int) -> int:
    channel = await Channel.open(socket.socket(fileno=channel_fd))
    channel.send({"type": "standby", "pid": os.getpid()})
    while True:  # a spare: answer stats until the config (or a stop) comes
        first = await channel.receive()
        if first is None or first.get("type") == "stop":
            return 0  # a spare that was never needed
        if first.get("type") == "config":
            break
        if "id" in first:
            spare = {
                "pid": os.getpid(),
                "requests": 0,
                "rss": snapshot.rss_bytes(),
                "connections": 0,
            }
            channel.send({"type": "reply", "reply_to": first["id"], **spare})
    slot = int(first["slot"])
    _log_as(f"worker {slot}")
    logs.configure(first["config"], worker=slot)
    worker = Worker(channel, slot)
    # A closed channel means the supervisor is gone: drain rather than be orphaned.
    channel.serve(worker.handle, on_close=worker.stop_requested.set)
    listener = socket.socket(fileno=listen_fd)
    try:
        return await worker.serve(listener, first["config"])
    finally:
        await channel.close()
        logs.shutdown()


def _log_as(name: str) -> None:
    logging.basicConfig(
        format=f"propylon[{name} pid {os.getpid()}]: %(message)s",
        level=logging.INFO,
        stream=sys.stderr,
        force=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    listen_fd, channel_fd = (int(arg) for arg in args)
    # Ctrl-C and a terminal hang-up reach the whole process group; the
    # supervisor decides what they mean (stop, reload) for every worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _log_as("worker")
    try:
        code: int = uvloop.run(_main(listen_fd, channel_fd))
    except Exception:
        # Start-up failures end up in the operator's log, with the traceback
        # a plugin author needs; the supervisor decides about restarts.
        log.exception("worker failed")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
