"""Options several commands share."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from propylon.config.models import GatewayConfig

DEFAULT_CONFIG = "gateway.yaml"
F = TypeVar("F", bound=Callable[..., Any])


def config_option(help: str) -> Callable[[F], F]:
    """``-c/--config FILE`` (default ./gateway.yaml), passed as ``config_file``."""
    return click.option(
        "-c",
        "--config",
        "config_file",
        default=DEFAULT_CONFIG,
        show_default=True,
        metavar="FILE",
        help=help,
    )


def load_or_exit(config_file: str) -> GatewayConfig:
    """The validated config, or every problem on stderr and exit 1."""
    from propylon.config import ConfigError, load_config

    try:
        return load_config(config_file)
    except ConfigError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        raise SystemExit(1) from None
