"""Run the gateway: one process, or a supervisor with N workers.

One process (``propylon run`` without ``--workers`` and without
``gateway.workers``) serves until SIGTERM/SIGINT, then drains and exits 0;
there is no admin API and no reload in this mode. With workers, the
supervisor in propylon.cluster runs them (see docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import uvloop

from propylon.config.models import GatewayConfig, parse_listen
from propylon.server.gateway import Gateway


def run(config: GatewayConfig, listen: str | None = None) -> int:
    return uvloop.run(_serve(config, listen))


def run_cluster(
    config_path: Path, config: GatewayConfig, config_hash: str, workers: int, listen: str | None
) -> int:
    from propylon.cluster.supervisor import Supervisor

    logging.basicConfig(format="propylon: %(message)s", level=logging.INFO, stream=sys.stderr)
    supervisor = Supervisor(
        config_path, config, config_hash, workers=workers, listen=listen or config.gateway.listen
    )
    code: int = uvloop.run(supervisor.run())
    return code


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

    def on_hangup() -> None:
        # SIGHUP's default action would kill the gateway: say what to do instead.
        print(
            "propylon: SIGHUP ignored: reloading needs the supervisor (propylon run --workers N)",
            file=sys.stderr,
            flush=True,
        )

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    await stop.wait()
    await gateway.stop()
    return 0
