"""`propylon ratelimit show|reset KEY`: inspect and reset rate limit keys.

With Redis (the shared backend) the command talks to Redis directly. The
memory backend lives inside the running gateway, so the command asks its
admin API (``DELETE /admin/rate-limits/{key}``): the supervisor asks every
worker, a single process answers itself.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, NoReturn
from urllib.parse import quote

import click

from propylon.cli.options import config_option, load_or_exit

_KEY_HELP = (
    "KEY is NAME:SUBJECT as the limiter buckets it (global:203.0.113.7, user:alice, "
    "tier.free:acme, failed_login:ip:10.0.0.1); NAME alone means every key of that limit."
)


@click.group("ratelimit", help=f"Show or reset rate limit keys. {_KEY_HELP}")
def ratelimit_group() -> None:
    pass


@ratelimit_group.command("show")
@click.argument("key")
@config_option("Config file of the gateway.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
def show_command(key: str, config_file: str, as_json: bool) -> None:
    """Show how much of its limit KEY has used."""
    result = _run("usage", key, config_file)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(
        f"{result['key']}: {result['remaining']} of {result['capacity']} left "
        f"(policy {result['policy']}, full again in {result['reset']} s, {result['backend']})"
    )
    for worker in result.get("workers", [])[1:]:
        click.echo(f"  another worker: {worker['remaining']} of {worker['capacity']} left")


@ratelimit_group.command("reset")
@click.argument("key")
@config_option("Config file of the gateway.")
def reset_command(key: str, config_file: str) -> None:
    """Forget KEY (or every key of a limit), so its limit starts afresh."""
    result = _run("reset", key, config_file)
    click.echo(f"reset {result['key']}: {result['deleted']} key(s) deleted")


def _run(op: str, key: str, config_file: str) -> dict[str, Any]:
    config = load_or_exit(config_file)
    from propylon.ratelimit import ops
    from propylon.ratelimit.service import RateLimiter

    limiter = RateLimiter(config)
    if not limiter.enabled:
        _fail(f"{config_file} configures no rate limits")
    try:
        ops.normalise(limiter, key)
    except ops.UnknownLimit as exc:
        _fail(str(exc))
    if limiter.redis is not None:
        return asyncio.run(_on_redis(limiter, op, key))
    return _via_admin(config_file, op, key)


async def _on_redis(limiter: Any, op: str, key: str) -> dict[str, Any]:
    from propylon.ratelimit import ops
    from propylon.state.redis import RedisReplyError, RedisUnavailable

    try:
        operation = ops.reset if op == "reset" else ops.usage
        try:
            result: dict[str, Any] = await operation(limiter, key)
        except ops.UnknownLimit as exc:
            _fail(str(exc))
        except (RedisUnavailable, RedisReplyError) as exc:
            _fail(f"Redis failed: {exc}")
        return result
    finally:
        await limiter.close()


def _via_admin(config_file: str, op: str, key: str) -> dict[str, Any]:
    from propylon.admin.client import AdminUnavailable, admin_target, call

    try:
        target = admin_target(config_file, None, None)
        method = "DELETE" if op == "reset" else "GET"
        reply = call(target, method, "/admin/rate-limits/" + quote(key, safe=""))
    except (AdminUnavailable, ValueError) as exc:
        _fail(
            "this gateway keeps its rate limits in memory inside the running gateway, "
            f"reached through its admin API, and that failed: {exc}. Is the gateway "
            "running with this config (admin.listen)? To share limits between nodes and "
            "manage them without it, configure redis"
        )
    if not reply.ok:
        _fail(str(reply.body.get("detail") or f"the admin API answered {reply.status}"))
    return reply.body


def _fail(message: str) -> NoReturn:
    click.echo(f"propylon: {message}", err=True)
    sys.exit(1)
