"""Options several commands share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

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
