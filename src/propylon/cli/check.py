"""`propylon check` validates a config; `propylon init` writes a starting one."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from propylon.cli.options import config_option
from propylon.config import ConfigError, load_config
from propylon.errors import ConfigIssue

DEFAULT_CONFIG = "gateway.yaml"
# Written file name -> template name inside propylon/config/templates. The
# template is not a dotfile so that no packaging tool skips it.
_INIT_FILES = {"gateway.yaml": "gateway.yaml", ".env.example": "env.example"}


@click.command("check")
@config_option("Config file to validate.")
def check_command(config_file: str) -> None:
    """Validate a config file and report every problem in it.

    Variables for ${VAR} references come from the environment and from a
    .env file next to the config. Each problem is printed to stderr as
    FILE:LINE: key.path: problem, and the exit status is 1. A valid file
    prints a one-line summary and exits 0.

    \b
    Examples:
      propylon check
      propylon check -c deploy/gateway.yaml
    """
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        for issue in exc.issues:
            click.echo(_format_issue(issue), err=True)
        raise SystemExit(1) from None
    services, routes = len(config.services), len(config.routes)
    click.echo(f"{config_file}: OK ({_count(services, 'service')}, {_count(routes, 'route')})")


@click.command("init")
@click.argument(
    "directory",
    default=".",
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option("--force", is_flag=True, help="Overwrite gateway.yaml and .env.example if present.")
def init_command(directory: Path, force: bool) -> None:
    """Write a commented gateway.yaml and a .env.example into DIRECTORY.

    The config shows every section with working defaults and passes
    `propylon check` as written. Existing files are left alone unless
    --force is given.

    \b
    Examples:
      propylon init
      propylon init deploy/ --force
    """
    targets = {directory / name: template for name, template in _INIT_FILES.items()}
    existing = [str(path) for path in targets if path.exists()]
    if existing and not force:
        raise click.ClickException(
            f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: "
            "nothing written (use --force to overwrite)"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path, template in targets.items():
            path.write_text(_template(template), encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write to {directory}: {exc.strerror or exc}") from None
    config = directory / "gateway.yaml"
    shown = "" if directory == Path() else f"{directory}/"
    click.echo(f"Wrote {config} and {directory / '.env.example'}.\n")
    click.echo("Next steps:")
    click.echo(f"  1. cp {shown}.env.example {shown}.env, then set your upstream URLs in it")
    click.echo(f"  2. edit the services and routes in {config}")
    click.echo(f"  3. propylon check -c {config}")
    click.echo(f"  4. propylon run -c {config}")


def _template(name: str) -> str:
    return (resources.files("propylon.config") / "templates" / name).read_text(encoding="utf-8")


def _format_issue(issue: ConfigIssue) -> str:
    # A problem with the file as a whole (missing, unreadable) has no line
    # and no key: "gateway.yaml: no such file" reads better than "<root>".
    if issue.line is None and not issue.path:
        return f"{issue.file}: {issue.problem}"
    return str(issue)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
