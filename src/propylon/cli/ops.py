"""`propylon status | reload | stop | logs`: operate a running gateway.

The first three ask the supervisor's admin API, found through the same
config file the gateway runs (``-c``); ``logs`` tails log files.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from propylon.admin.client import AdminReply, AdminTarget, AdminUnavailable, admin_target, call
from propylon.cli.options import config_option

_F = TypeVar("_F", bound=Callable[..., Any])
RELOAD_TIMEOUT = 300.0  # a rolling reload of many workers with slow drains takes a while
DEFAULT_LOGS = "logs/*.log"


def _admin_options(function: _F) -> _F:
    function = click.option(
        "--token",
        envvar="PROPYLON_ADMIN_TOKEN",
        metavar="TOKEN",
        help="Admin token; default admin.token from the config.",
    )(function)
    function = click.option(
        "--admin",
        "admin_listen",
        metavar="HOST:PORT",
        help="Admin API address; default admin.listen from the config.",
    )(function)
    return config_option("Config file of the running gateway.")(function)


def _target(config_file: str, admin_listen: str | None, token: str | None) -> AdminTarget:
    try:
        return admin_target(config_file, admin_listen, token)
    except (AdminUnavailable, ValueError) as exc:
        _fail(str(exc))


def _call(target: AdminTarget, method: str, path: str, timeout: float = 10.0) -> AdminReply:
    try:
        return call(target, method, path, timeout)
    except AdminUnavailable as exc:
        _fail(str(exc))


def _fail(message: str, lines: list[str] | None = None) -> NoReturn:
    click.echo(f"propylon: {message}", err=True)
    for line in lines or []:
        click.echo(line, err=True)
    sys.exit(1)


def _refused(reply: AdminReply) -> NoReturn:
    detail = reply.body.get("detail") or f"the admin API answered {reply.status}"
    _fail(str(detail), [str(line) for line in reply.body.get("errors", [])])


@click.command("status")
@_admin_options
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON status.")
def status_command(
    config_file: str, admin_listen: str | None, token: str | None, as_json: bool
) -> None:
    """Show the supervisor and its workers (pid, uptime, memory, requests, restarts)."""
    reply = _call(_target(config_file, admin_listen, token), "GET", "/admin/status")
    if not reply.ok:
        _refused(reply)
    if as_json:
        click.echo(json.dumps(reply.body, indent=2))
        return
    _print_status(reply.body)


def _print_status(body: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    config = body.get("config", {})
    console = Console()
    console.print(
        f"{body.get('name')} {body.get('version')} · supervisor pid {body.get('pid')} · "
        f"up {_duration(body.get('uptime'))} · {body.get('state')} · "
        f"config {str(config.get('sha256', ''))[:12]} (generation {config.get('generation')})",
        highlight=False,
    )
    table = Table()
    for column in ("id", "pid", "state", "uptime", "memory", "requests", "restarts", "config"):
        table.add_column(column, justify="left" if column == "state" else "right")
    for worker in body.get("workers", []):
        state = str(worker.get("state"))
        style = _STATE_STYLES.get(state, "red")
        spare = not worker.get("id")  # a spare has no slot and no config yet
        table.add_row(
            "-" if spare else str(worker.get("id")),
            str(worker.get("pid")),
            f"[{style}]{state}[/]",
            _duration(worker.get("uptime")),
            _size(worker.get("rss")),
            str(worker.get("requests")),
            str(worker.get("restarts")),
            "-" if spare else str(worker.get("generation")),
        )
    console.print(table)


_STATE_STYLES = {
    "ready": "green",
    "starting": "yellow",
    "loading": "yellow",
    "spare": "dim",
    "draining": "cyan",
}


@click.command("reload")
@_admin_options
def reload_command(config_file: str, admin_listen: str | None, token: str | None) -> None:
    """Validate the config file, then replace the workers one at a time.

    An invalid file changes nothing: the gateway keeps serving the previous
    config and this command prints every problem and exits 1.
    """
    target = _target(config_file, admin_listen, token)
    reply = _call(target, "POST", "/admin/reload", timeout=RELOAD_TIMEOUT)
    if not reply.ok:
        _refused(reply)
    digest = str(reply.body.get("config_hash") or "")[:12]
    click.echo(f"propylon: reloaded: {reply.body.get('detail')} (config {digest})")


@click.command("stop")
@_admin_options
@click.option("--wait", is_flag=True, help="Return only once the gateway has exited.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds --wait waits at most.")
def stop_command(
    config_file: str, admin_listen: str | None, token: str | None, wait: bool, timeout: float
) -> None:
    """Stop the gateway gracefully: workers finish in-flight requests, then exit."""
    target = _target(config_file, admin_listen, token)
    reply = _call(target, "POST", "/admin/stop")
    if not reply.ok:
        _refused(reply)
    click.echo("propylon: stopping: the workers are draining")
    if not wait:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            call(target, "GET", "/admin/status", timeout=1.0)
        except AdminUnavailable:
            click.echo("propylon: stopped")
            return
        time.sleep(0.1)
    _fail(f"the gateway is still running after {timeout:g}s")


@click.command("logs")
@click.option(
    "--file",
    "files",
    multiple=True,
    metavar="PATH",
    help=f"A log file to show (repeatable); default ./{DEFAULT_LOGS}.",
)
@click.option("-n", "--lines", default=20, show_default=True, help="Lines to show from each file.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing lines as they are written.")
def logs_command(files: tuple[str, ...], lines: int, follow: bool) -> None:
    """Show the end of the gateway's log files, and follow them with -f.

    propylon writes its own messages to stderr; send them to a file
    (`propylon run ... 2>>logs/propylon.log`) or read them where your service
    manager keeps them (journalctl -u propylon, docker logs).
    """
    paths = [Path(p) for p in files] or [Path(p) for p in sorted(glob.glob(DEFAULT_LOGS))]
    if not paths:
        _fail(f"no log files at ./{DEFAULT_LOGS}; name one with --file")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        _fail(f"no such log file: {', '.join(missing)}")
    positions: dict[Path, tuple[int, int]] = {}
    for path in paths:
        if len(paths) > 1:
            click.echo(f"==> {path} <==")
        with path.open("rb") as handle:
            for line in deque(handle, maxlen=lines):
                click.echo(line.decode("utf-8", "replace"), nl=False)
            positions[path] = (handle.tell(), os.fstat(handle.fileno()).st_ino)
    if follow:
        with contextlib.suppress(KeyboardInterrupt):
            _follow(positions, show_names=len(paths) > 1)


def _follow(positions: dict[Path, tuple[int, int]], show_names: bool) -> None:
    last: Path | None = None
    while True:
        for path, (offset, inode) in list(positions.items()):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # rotated away; the new file appears later
            if stat.st_ino != inode or stat.st_size < offset:
                offset = 0  # rotated or truncated: read the new file from its start
            if stat.st_size == offset:
                positions[path] = (offset, stat.st_ino)
                continue
            with path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
            if show_names and last != path:
                click.echo(f"\n==> {path} <==")
                last = path
            click.echo(data.decode("utf-8", "replace"), nl=False)
            positions[path] = (offset + len(data), stat.st_ino)
        time.sleep(0.2)


def _duration(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {secs}s"


def _size(value: object) -> str:
    if not isinstance(value, int):
        return "-"
    return f"{value / (1024 * 1024):.1f} MB"
