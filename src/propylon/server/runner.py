"""Run the gateway: one process, or a supervisor with N workers.

One process (``propylon run`` without ``--workers`` and without
``gateway.workers``) serves until SIGTERM/SIGINT, then drains and exits 0;
it runs the admin API in-process (metrics, health, monitoring) but has no
reload. With workers, the
supervisor in propylon.cluster runs them (see docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import uvloop

from propylon.config.models import GatewayConfig, parse_listen
from propylon.observability import logs
from propylon.server.gateway import Gateway

if TYPE_CHECKING:
    from propylon.admin.app import AdminServer


def run(
    config: GatewayConfig,
    listen: str | None = None,
    config_path: Path | None = None,
    config_hash: str | None = None,
) -> int:
    if not _start_logs(config, None):
        return 1
    try:
        return uvloop.run(_serve(config, listen, config_path, config_hash))
    finally:
        logs.shutdown()


def run_cluster(
    config_path: Path, config: GatewayConfig, config_hash: str, workers: int, listen: str | None
) -> int:
    from propylon.cluster.supervisor import Supervisor

    logging.basicConfig(format="propylon: %(message)s", level=logging.INFO, stream=sys.stderr)
    if not _start_logs(config, 0):
        return 1
    supervisor = Supervisor(
        config_path, config, config_hash, workers=workers, listen=listen or config.gateway.listen
    )
    try:
        code: int = uvloop.run(supervisor.run())
    finally:
        logs.shutdown()
    return code


def _start_logs(config: GatewayConfig, worker: int | None) -> bool:
    try:
        logs.configure(config, worker)
    except OSError as exc:
        where = config.logging.directory
        print(f"propylon: cannot write logs to {where}: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


async def _serve(
    config: GatewayConfig,
    listen: str | None,
    config_path: Path | None = None,
    config_hash: str | None = None,
) -> int:
    host, port = parse_listen(listen or config.gateway.listen)
    gateway = Gateway(config)
    try:
        await gateway.start(host, port)
    except OSError as exc:
        print(f"propylon: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    admin = await _start_admin(gateway, stop, config_path, config_hash)
    if admin is False:
        await gateway.stop()
        return 1
    # The first line is the one scripts parse; the admin API is up by then.
    print(
        f"propylon {gateway.state.version} listening on http://{host}:{gateway.port} "
        f"({len(config.routes)} routes, {len(config.services)} services); pid {os.getpid()}",
        flush=True,
    )
    if admin is not None:
        auth = "bearer token" if config.admin.token else "no token, loopback only"
        print(f"propylon admin API on {admin.url} ({auth})", flush=True)
    loop = asyncio.get_running_loop()

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
    if admin is not None:
        await admin.close()
    return 0


async def _start_admin(
    gateway: Gateway, stop: asyncio.Event, config_path: Path | None, config_hash: str | None
) -> AdminServer | Literal[False] | None:
    """The admin API in this process; False when an explicitly configured one
    cannot listen (a default one that cannot is only a warning)."""
    config = gateway.config
    if not config.admin.enabled:
        return None
    from propylon.admin.app import AdminServer
    from propylon.admin.local import LocalControl

    def on_stop(reason: str) -> None:
        print(f"propylon: {reason}: draining", file=sys.stderr, flush=True)
        stop.set()

    control = LocalControl(gateway, on_stop, config_path=config_path, config_hash=config_hash)
    try:
        admin = await AdminServer.start(config.admin, control)
    except OSError as exc:
        if "admin" in config.model_fields_set:
            print(
                f"propylon: cannot start the admin API on {config.admin.listen}: {exc}",
                file=sys.stderr,
                flush=True,
            )
            return False
        print(
            f"propylon: admin API not started ({config.admin.listen}: {exc.strerror})",
            file=sys.stderr,
            flush=True,
        )
        return None
    return admin
