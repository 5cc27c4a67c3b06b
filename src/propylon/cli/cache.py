"""`propylon cache purge PATTERN [--route NAME]`: drop cached responses.

With ``cache.backend: redis`` the entries live in Redis and are deleted
there directly (the running gateway need not be reachable). With the memory
backend each worker holds its own entries, so the command asks the running
supervisor's admin API (``POST /admin/cache/purge``), which tells every
worker.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, NoReturn

import click

from propylon.cli.options import config_option, load_or_exit

if TYPE_CHECKING:
    from propylon.config.redis import RedisConfig


@click.group("cache")
def cache_group() -> None:
    """Manage the response cache."""


@cache_group.command("purge")
@click.argument("pattern", required=False)
@click.option("--route", "route", metavar="NAME", help="Only the entries of this route.")
@click.option(
    "--token",
    envvar="PROPYLON_ADMIN_TOKEN",
    metavar="TOKEN",
    help="Admin token (memory backend); default admin.token from the config.",
)
@config_option("Config file of the gateway.")
def purge_command(
    pattern: str | None, route: str | None, token: str | None, config_file: str
) -> None:
    """Drop cached responses whose path matches PATTERN (`*` matches anything).

    Patterns match paths, so every query variant goes: `/api/tickets*`
    drops the list and every ticket. With --route alone, the route's
    whole cache goes.
    """
    if pattern is None and route is None:
        raise click.UsageError("give a PATTERN, a --route or both")
    if pattern is not None and not pattern.startswith(("/", "*")):
        raise click.BadParameter("a pattern is a path: it starts with '/' or '*'")
    config = load_or_exit(config_file)
    if route is not None and all(r.name != route for r in config.routes):
        _fail(f"no route named {route!r} in {config_file}")
    if config.cache is not None and config.cache.backend == "redis":
        assert config.redis is not None
        removed = asyncio.run(_purge_redis(config.redis, pattern, route))
        if removed < 0:
            _fail(f"cannot reach Redis at {config.redis.url}")
    else:
        removed = _purge_through_admin(config_file, token, pattern, route)
    click.echo(f"purged {removed} cached response{'s' if removed != 1 else ''}")


async def _purge_redis(redis: RedisConfig, pattern: str | None, route: str | None) -> int:
    from propylon.cache.redis_store import RedisStore
    from propylon.cache.stats import CacheStats

    store = RedisStore(redis, CacheStats())
    store.start()
    try:
        return await store.delete_matching([pattern or "*"], route)
    finally:
        await store.close()


def _purge_through_admin(
    config_file: str, token: str | None, pattern: str | None, route: str | None
) -> int:
    from propylon.admin.client import AdminUnavailable, admin_target, call

    try:
        target = admin_target(config_file, None, token)
        reply = call(
            target, "POST", "/admin/cache/purge", body={"pattern": pattern, "route": route}
        )
    except (AdminUnavailable, ValueError) as exc:
        _fail(str(exc))
    if not reply.ok:
        _fail(str(reply.body.get("detail") or f"the admin API answered {reply.status}"))
    return int(reply.body.get("purged", 0))


def _fail(message: str) -> NoReturn:
    click.echo(f"propylon: {message}", err=True)
    sys.exit(1)
