"""`propylon check` and `propylon init` (written by the config work)."""

from __future__ import annotations

import click


@click.command("check")
def check_command() -> None:
    """Validate a config file."""
    raise click.ClickException("not implemented yet")


@click.command("init")
def init_command() -> None:
    """Write a commented gateway.yaml and .env.example."""
    raise click.ClickException("not implemented yet")
