"""Run the demo: services on free loopback ports, the gateway in front, one loop.

Everything lives in one process and one uvloop event loop, so a newcomer has
one thing to start and one Ctrl-C to stop it.
"""

from __future__ import annotations

import asyncio
import errno
import signal
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

import uvloop
from aiohttp import web
from rich.console import Console

from propylon.config.models import GatewayConfig
from propylon.demo.banner import ROUTES, print_banner
from propylon.demo.credentials import DemoCredentials
from propylon.demo.services import SERVICE_FACTORIES
from propylon.errors import PropylonError
from propylon.server.gateway import Gateway

SERVICE_HOST = "127.0.0.1"
GRACEFUL_TIMEOUT = 5.0
# Short on purpose: GET /api/tickets/slow?delay=3 then shows the gateway's 504.
TICKETS_READ_TIMEOUT = "1s"
# A service's in-flight requests (a 30 s /slow called directly) must not hold
# up Ctrl-C: the gateway has already drained by the time services stop.
SERVICE_SHUTDOWN_TIMEOUT = 1.0


class DemoError(PropylonError):
    """The demo cannot start (the gateway port is taken, say); the message says why."""


async def start_service(stack: AsyncExitStack, app: web.Application) -> str:
    """Serve ``app`` on a free loopback port; return its base URL."""
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SERVICE_SHUTDOWN_TIMEOUT
    )
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, SERVICE_HOST, 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}"


def _listen(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def build_config(
    services: Mapping[str, str],
    *,
    host: str,
    port: int,
    credentials: DemoCredentials | None = None,
) -> GatewayConfig:
    """The gateway config for the demo, validated like a YAML file would be."""
    credentials = credentials or DemoCredentials()

    def service(name: str, **extra: Any) -> dict[str, Any]:
        return {"targets": [{"url": services[name]}], **extra}

    def route(name: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "match": {"path": ROUTES[name], **extra},
            "service": name,
            "strip_prefix": True,
        }

    return GatewayConfig.model_validate(
        {
            "gateway": {
                "name": "propylon-demo",
                "listen": _listen(host, port),
                "graceful_timeout": GRACEFUL_TIMEOUT,
            },
            "services": {
                "auth": service("auth"),
                "crm": service("crm"),
                "tickets": service("tickets", timeouts={"read": TICKETS_READ_TIMEOUT}),
            },
            "routes": [
                # Only what the auth service serves, so DELETE shows the gateway's 405.
                route("auth", methods=["GET", "HEAD", "POST", "OPTIONS"]),
                route("crm"),
                route("tickets"),
                # The CRM again, for admins only: a JWT or an API key with role admin.
                {
                    "name": "admin",
                    "match": {"path": ROUTES["admin"]},
                    "service": "crm",
                    "strip_prefix": True,
                    "auth": ["jwt", "api_key"],
                    "roles": ["admin"],
                },
            ],
            "cors": {},
            "security_headers": {},
            **credentials.config(),
        }
    )


def _url(host: str, port: int) -> str:
    # A wildcard bind is reachable on loopback; print a URL that can be pasted.
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


async def _start_gateway(config: GatewayConfig, host: str, port: int) -> Gateway:
    gateway = Gateway(config)
    try:
        await gateway.start(host=host, port=port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise DemoError(
                f"port {port} on {host} is already in use (another propylon demo?). "
                f"Try `propylon demo --port 0` for any free port, or --port {port + 1}."
            ) from None
        raise DemoError(f"cannot listen on {_listen(host, port)}: {exc.strerror or exc}") from None
    return gateway


async def run_demo(host: str, port: int, console: Console) -> None:
    """Start everything, print the banner, serve until SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stopping = False

    def on_signal() -> None:
        nonlocal stopping
        if stopping:
            console.print(f"still stopping (at most {GRACEFUL_TIMEOUT:g}s)...")
            return
        stopping = True
        stop.set()

    # Handlers go in before anything starts: a signal between start and
    # print must still mean a clean stop, not a KeyboardInterrupt traceback.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        async with AsyncExitStack() as stack:
            urls = {
                name: await start_service(stack, make()) for name, make in SERVICE_FACTORIES.items()
            }
            credentials = DemoCredentials()
            config = build_config(urls, host=host, port=port, credentials=credentials)
            gateway = await _start_gateway(config, host, port)
            try:
                print_banner(
                    console,
                    _url(host, gateway.port),
                    urls,
                    {"tickets": TICKETS_READ_TIMEOUT},
                    credentials,
                )
                sys.stdout.flush()
                await stop.wait()
                console.print("stopping: draining the gateway, then the services...")
            finally:
                await gateway.stop(graceful_timeout=GRACEFUL_TIMEOUT)
        console.print("stopped")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        sys.stdout.flush()


def run(host: str, port: int, console: Console | None = None) -> None:
    """Blocking entry point for the CLI: one uvloop loop for the demo's lifetime."""
    console = console or Console()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run_demo(host, port, console))
