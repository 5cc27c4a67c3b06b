"""`propylon demo` (written by the demo work)."""

from __future__ import annotations

import click


@click.command("demo")
def demo_command() -> None:
    """Start demo services and the gateway in front of them."""
    raise click.ClickException("not implemented yet")
