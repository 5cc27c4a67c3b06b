"""Run one gateway process until SIGTERM/SIGINT, then drain and exit 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import uvloop

from propylon.config.models import GatewayConfig, parse_listen
from propylon.server.gateway import Gateway


def run(config: GatewayConfig, listen: str | None = None) -> int:
    return uvloop.run(_serve(config, listen))


async def _serve(config: GatewayConfig, listen: str | None) -> int:
    host, port = parse_listen(listen or config.gateway.listen)
    gateway = Gateway(config)
    try:
        await gateway.start(host, port)
    except OSError as exc:
        print(f"propylon: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    print(
        f"propylon {gateway.state.version} listening on http://{host}:{gateway.port} "
        f"({len(config.routes)} routes, {len(config.services)} services); pid {os.getpid()}",
        flush=True,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            print("propylon: second signal, exiting now", file=sys.stderr, flush=True)
            os._exit(1)
        print(
            f"propylon: {signal.Signals(signum).name} received, draining "
            f"(up to {config.gateway.graceful_timeout:g}s)",
            file=sys.stderr,
            flush=True,
        )
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    await stop.wait()
    await gateway.stop()
    return 0
