"""`propylon token` mints a development JWT; `propylon keys new` creates an API key.

PyJWT, redis and the auth package are imported inside the commands: every
other `propylon` command would otherwise pay for them at start-up.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from propylon.cli.options import config_option, load_or_exit
from propylon.config.auth import ConsumerConfig
from propylon.config.units import parse_duration

if TYPE_CHECKING:
    from propylon.auth.principal import KeyRecord
    from propylon.config.redis import RedisConfig

DEFAULT_CONFIG = "gateway.yaml"
DEFAULT_TIERS = ("free", "standard", "premium")


def _ttl(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if seconds <= 0:
        raise click.BadParameter("must be longer than 0")
    return seconds


@click.command("token")
@click.option("--sub", required=True, help="Subject: the user id the token speaks for.")
@click.option("--role", "roles", multiple=True, metavar="ROLE", help="A role (repeatable).")
@click.option("--scope", "scopes", multiple=True, metavar="SCOPE", help="A scope (repeatable).")
@click.option("--ttl", default="1h", show_default=True, callback=_ttl, help="Lifetime.")
@config_option("Config whose auth.jwt secret, issuer and audience to use.")
def token_command(
    sub: str, roles: tuple[str, ...], scopes: tuple[str, ...], ttl: float, config_file: str
) -> None:
    """Mint a JWT signed with the configured HS secret (for development).

    The token carries the config's issuer and audience, the roles at the
    configured roles claim and the scopes as a `scope` string, so the
    gateway accepts it as is. It is printed to stdout alone.

    \b
    Example:
      curl -H "Authorization: Bearer $(propylon token --sub alice --role agent)" ...
    """
    import jwt

    settings = load_or_exit(config_file).auth.jwt
    if settings is None or settings.secret is None:
        raise click.ClickException(f"{config_file} has no auth.jwt.secret to sign with")
    algorithm = next(a for a in settings.algorithms if a.startswith("HS"))
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + int(ttl)}
    for name, value in (("iss", settings.issuer), ("aud", settings.audience)):
        if value is not None:
            claims[name] = value if isinstance(value, str) else value[0]
    if roles:
        *parents, leaf = settings.roles_claim.split(".")
        node = claims
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = list(roles)
    if scopes:
        claims["scope"] = " ".join(scopes)
    secret = settings.secret.get_secret_value()
    click.echo(jwt.encode(claims, secret, algorithm=algorithm))


@click.group("keys")
def keys_group() -> None:
    """Manage API keys."""


@keys_group.command("new")
@click.option("--consumer", required=True, help="The consumer id the key belongs to.")
@click.option("--tier", help="The consumer's tier (default: the consumer's or the first tier).")
@click.option("--role", "roles", multiple=True, metavar="ROLE", help="A role (repeatable).")
@click.option(
    "-c",
    "--config",
    "config_file",
    metavar="FILE",
    help=f"Config to read tiers and redis from (default: ./{DEFAULT_CONFIG} if present).",
)
@click.option("--no-store", is_flag=True, help="Print the hash even when Redis is configured.")
def keys_new_command(
    consumer: str,
    tier: str | None,
    roles: tuple[str, ...],
    config_file: str | None,
    no_store: bool,
) -> None:
    """Create an API key; print it once, keep only its hash.

    With a `redis:` section in the config, the hash is stored there and
    every gateway node accepts the key within its negative-cache time.
    Otherwise the hash is printed for the consumer's `keys:` list. The key
    alone goes to stdout (KEY=$(propylon keys new ...) works); notes go to
    stderr.

    \b
    Examples:
      propylon keys new --consumer acme --tier premium
      propylon keys new --consumer acme -c deploy/gateway.yaml --no-store
    """
    from propylon.auth.apikeys import generate_key, hash_key
    from propylon.auth.principal import KeyRecord

    if config_file is None and Path(DEFAULT_CONFIG).is_file():
        config_file = DEFAULT_CONFIG
    config = load_or_exit(config_file) if config_file is not None else None
    tiers = tuple(config.auth.tiers) if config is not None else DEFAULT_TIERS
    try:
        ConsumerConfig(id=consumer, tier=tier, roles=list(roles))
    except ValidationError as exc:
        problem = exc.errors()[0]
        message = str(problem.get("ctx", {}).get("error", problem["msg"]))
        raise click.BadParameter(message, param_hint="--consumer") from None
    if tier is not None and tier not in tiers:
        raise click.BadParameter(
            f"unknown tier {tier!r} (tiers: {', '.join(tiers)})", param_hint="--tier"
        )
    key = generate_key()
    key_hash = hash_key(key)
    redis = config.redis if config is not None and not no_store else None
    if redis is not None:
        _store(redis, key_hash, KeyRecord(consumer, tier, roles))
    click.echo(key)
    if redis is not None:
        click.echo(
            f"Stored the hash in Redis for consumer {consumer!r}. The key is shown only this once.",
            err=True,
        )
        return
    lines = [
        "Add the hash to the consumer in your config (the key is shown only this once):",
        "",
        "consumers:",
        f"  - id: {consumer}",
        *([f"    tier: {tier}"] if tier else []),
        *([f"    roles: [{', '.join(roles)}]"] if roles else []),
        "    keys:",
        f"      - {key_hash}",
    ]
    click.echo("\n".join(lines), err=True)


def _store(redis: RedisConfig, key_hash: str, record: KeyRecord) -> None:
    from redis.exceptions import RedisError

    from propylon.auth.apikeys import RedisKeyStore

    async def store() -> None:
        store = RedisKeyStore(redis)
        try:
            await store.add(key_hash, record)
        finally:
            await store.aclose()

    try:
        asyncio.run(store())
    except (RedisError, OSError) as exc:
        # The URL may hold a password: name the kind of failure only.
        raise click.ClickException(
            f"cannot store the key in Redis ({type(exc).__name__}); nothing was created"
        ) from None
