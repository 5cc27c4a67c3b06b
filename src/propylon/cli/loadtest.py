"""`propylon loadtest TARGET`: phased load with a live display and a verdict."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from propylon.loadtest.generator import LoadGenerator, Progress
from propylon.loadtest.report import build_report, percentile
from propylon.loadtest.scenarios import BUILTINS, ScenarioError, builtin, load_scenario, scaled


def _target(ctx: click.Context, param: click.Parameter, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter("give the gateway's base URL, like http://127.0.0.1:8080")
    return value.rstrip("/")


@click.command("loadtest")
@click.argument("target", callback=_target)
@click.option(
    "--scenario",
    "-s",
    default="quick",
    show_default=True,
    metavar="NAME|FILE",
    help=f"One of {', '.join(BUILTINS)}, or a scenario YAML file.",
)
@click.option(
    "--path",
    "paths",
    multiple=True,
    metavar="PATH",
    help="API path(s) the built-in scenarios call (default /). Repeatable.",
)
@click.option(
    "--duration-scale",
    type=click.FloatRange(min=0.001),
    default=1.0,
    show_default=True,
    help="Multiply every phase's duration.",
)
@click.option(
    "--rate-scale",
    type=click.FloatRange(min=0.0),
    default=1.0,
    show_default=True,
    help="Multiply every phase's request rate.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def loadtest_command(
    target: str,
    scenario: str,
    paths: tuple[str, ...],
    duration_scale: float,
    rate_scale: float,
    as_json: bool,
) -> None:
    """Drive TARGET with phased load and report throughput and latency.

    Requests arrive at each phase's rate whatever the latency (an open
    model, like Artillery's arrival rates); latency counts from when a
    request was due. Exits 1 when a threshold of the scenario fails
    (p95, p99, error rate, throughput).

    \b
      propylon loadtest http://127.0.0.1:8080
      propylon loadtest http://127.0.0.1:8080 -s spike --path /api/tickets
      propylon loadtest http://127.0.0.1:8080 -s my-scenario.yaml --json
    """
    if scenario in BUILTINS:
        chosen = builtin(scenario, [p if p.startswith("/") else "/" + p for p in paths] or ["/"])
    else:
        path = Path(scenario)
        if not path.exists():
            raise click.BadParameter(
                f"{scenario!r} is neither a built-in ({', '.join(BUILTINS)}) nor a file",
                param_hint="--scenario",
            )
        try:
            chosen = load_scenario(path)
        except ScenarioError as exc:
            click.echo(str(exc), err=True)
            sys.exit(2)
    chosen = scaled(chosen, duration=duration_scale, rate=rate_scale)
    console = Console(stderr=True)
    report = asyncio.run(_run(target, chosen, console))
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_report(Console(), report)
    sys.exit(0 if report["passed"] else 1)


async def _run(target: str, scenario: Any, console: Console) -> dict[str, Any]:
    generator = LoadGenerator(target, scenario)
    console.print(
        f"[bold]propylon loadtest[/] {scenario.name} -> {target}"
        + (f"  ({scenario.description})" if scenario.description else "")
    )
    if console.is_terminal:
        with Live(console=console, refresh_per_second=4, transient=True) as live:
            result = await generator.run(lambda p: live.update(_progress_table(p)))
    else:
        result = await generator.run(lambda p: console.print(_progress_line(p), soft_wrap=True))
    return build_report(result, target)


def _figures(progress: Progress) -> tuple[int, int, float, float]:
    outcomes = progress.outcomes
    recent = sorted(o.latency * 1000 for o in outcomes[-2000:])
    failed = sum(1 for o in outcomes if not o.ok)
    return len(outcomes), failed, percentile(recent, 0.5), percentile(recent, 0.95)


def _progress_line(progress: Progress) -> str:
    done, failed, p50, p95 = _figures(progress)
    return (
        f"{progress.elapsed:6.1f}s/{progress.total_duration:.0f}s  {progress.phase:<10} "
        f"target {progress.target_rate:6.1f}/s  sent {done}  errors {failed}  "
        f"p50 {p50:.1f} ms  p95 {p95:.1f} ms  in flight {progress.in_flight}"
    )


def _progress_table(progress: Progress) -> Table:
    done, failed, p50, p95 = _figures(progress)
    table = Table(title=f"phase {progress.phase_index + 1}: {progress.phase}", show_header=True)
    for column in ("elapsed", "target rate", "done", "errors", "p50 ms", "p95 ms", "in flight"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{progress.elapsed:.0f}/{progress.total_duration:.0f}s",
        f"{progress.target_rate:.1f}/s",
        str(done),
        str(failed),
        f"{p50:.1f}",
        f"{p95:.1f}",
        str(progress.in_flight),
    )
    return table


def _print_report(console: Console, report: dict[str, Any]) -> None:
    table = Table(title=f"{report['scenario']} against {report['target']}")
    for column in ("phase", "requests", "rps", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    for row in [*report["phases"], {"name": "all", **report["overall"]}]:
        latency = row["latency_ms"]
        table.add_row(
            row["name"],
            str(row["requests"]),
            f"{row['rps']:.1f}",
            f"{row['errors']} ({row['error_rate']:.1%})",
            f"{latency['p50']:.1f}",
            f"{latency['p95']:.1f}",
            f"{latency['p99']:.1f}",
            f"{latency['max']:.1f}",
        )
    console.print(table)
    overall = report["overall"]
    console.print(f"statuses: {overall['statuses']}")
    if overall["error_kinds"]:
        console.print(f"errors: {overall['error_kinds']}")
    for check in report["thresholds"]:
        mark = "[green]pass[/]" if check["passed"] else "[red]FAIL[/]"
        console.print(f"{mark}  {check['threshold']}: {check['measured']} (limit {check['limit']})")
