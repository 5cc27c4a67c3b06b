"""`propylon run`: serve a config, in one process or as a supervised cluster."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import click

from propylon.cli.options import config_option
from propylon.config import ConfigError
from propylon.config.cluster import parse_workers, resolve_workers
from propylon.config.models import parse_listen


def _check_listen(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            parse_listen(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def _check_workers(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> int | Literal["auto"] | None:
    if value is None:
        return None
    try:
        return parse_workers(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("run")
@config_option("Config file to serve.")
@click.option(
    "--listen",
    metavar="HOST:PORT",
    callback=_check_listen,
    help="Address to listen on; overrides gateway.listen.",
)
@click.option(
    "--workers",
    metavar="N|auto",
    callback=_check_workers,
    help="Run a supervisor with N worker processes (auto: one per core); "
    "overrides gateway.workers.",
)
def run_command(
    config_file: str, listen: str | None, workers: int | Literal["auto"] | None
) -> None:
    """Serve the gateway described by a config file.

    Runs in the foreground. SIGTERM or Ctrl-C stops accepting connections,
    lets in-flight requests finish for up to gateway.graceful_timeout, and
    exits 0; a second signal exits at once.

    With --workers (or gateway.workers) a supervisor runs that many worker
    processes on one shared socket, restarts them when they crash or grow
    past gateway.max_memory, reloads on SIGHUP or `propylon reload` without
    dropping requests, and serves the admin API (`propylon status`). Without
    it, one process serves, with the admin API (metrics, health, monitoring)
    in-process and no reload.

    \b
    Examples:
      propylon run -c gateway.yaml --listen 127.0.0.1:8080
      propylon run -c gateway.yaml --workers auto
    """
    from propylon.cluster.source import load_config_file

    try:
        config, digest = load_config_file(config_file)
    except ConfigError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        sys.exit(1)
    from propylon.server import runner  # uvloop only when serving

    count = workers if workers is not None else config.gateway.workers
    if count is None:
        sys.exit(runner.run(config, listen, Path(config_file), digest))
    path = Path(config_file)
    sys.exit(runner.run_cluster(path, config, digest, resolve_workers(count), listen))
