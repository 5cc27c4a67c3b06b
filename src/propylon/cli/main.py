"""The ``propylon`` command: one click group, one module per verb group."""

from __future__ import annotations

import click

from propylon import __version__
from propylon.cli.cache import cache_group
from propylon.cli.check import check_command, init_command
from propylon.cli.demo import demo_command
from propylon.cli.identity import keys_group, token_command
from propylon.cli.loadtest import loadtest_command
from propylon.cli.ops import logs_command, reload_command, status_command, stop_command
from propylon.cli.ratelimit import ratelimit_group
from propylon.cli.run import run_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="propylon")
def cli() -> None:
    """propylon: a fast, declarative API gateway.

    One YAML file describes services, routes and policies; `propylon run`
    serves it. Start with `propylon demo` or `propylon init`.
    """


cli.add_command(run_command)
cli.add_command(check_command)
cli.add_command(init_command)
cli.add_command(demo_command)
cli.add_command(token_command)
cli.add_command(keys_group)
cli.add_command(status_command)
cli.add_command(reload_command)
cli.add_command(stop_command)
cli.add_command(logs_command)
cli.add_command(cache_group)
cli.add_command(ratelimit_group)
cli.add_command(loadtest_command)


def main() -> None:
    cli()
