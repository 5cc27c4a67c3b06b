"""`propylon demo`: demo services and the gateway in front of them, in one process."""

from __future__ import annotations

import click


@click.command("demo")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address the gateway listens on (services always use 127.0.0.1).",
)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Gateway port; 0 picks a free one.",
)
def demo_command(host: str, port: int) -> None:
    """Start demo services (auth, crm, tickets) and the gateway in front of them.

    Everything is in memory and on loopback ports; the command prints the
    URLs and curl lines to try, and stops cleanly on Ctrl-C.
    """
    # Imported here so `propylon --help` stays fast and works even when the
    # demo's heavier imports (aiohttp, the server) have a problem.
    from propylon.demo.runner import DemoError, run

    try:
        run(host, port)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
