"""`propylon run`: serve a config."""

from __future__ import annotations

import sys

import click

from propylon.config import ConfigError, load_config
from propylon.config.models import parse_listen


def _check_listen(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            parse_listen(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


@click.command("run")
@click.option(
    "-c",
    "--config",
    "config_file",
    default="gateway.yaml",
    show_default=True,
    metavar="FILE",
    help="Config file to serve.",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    callback=_check_listen,
    help="Address to listen on; overrides gateway.listen.",
)
def run_command(config_file: str, listen: str | None) -> None:
    """Serve the gateway described by a config file.

    Runs in the foreground. SIGTERM or Ctrl-C stops accepting connections,
    lets in-flight requests finish for up to gateway.graceful_timeout, and
    exits 0; a second signal exits at once.

    \b
    Example:
      propylon run -c gateway.yaml --listen 127.0.0.1:8080
    """
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        sys.exit(1)
    from propylon.server.runner import run  # uvloop only when serving

    sys.exit(run(config, listen))
