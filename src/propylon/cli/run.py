"""`propylon run`."""

from __future__ import annotations

import click


@click.command("run")
def run_command() -> None:
    """Serve a config."""
    raise click.ClickException("not implemented yet")
