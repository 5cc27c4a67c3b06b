"""Config models for rate limiting: the top-level ``rate_limits:`` section and
the per-route ``rate_limit:`` key. Semantics in docs/rate-limits.md.

A limit is written as a rate (``100/15m``) or as a mapping with ``rate``,
``burst`` (how many may arrive at once; default the rate's count) and ``by``
(what one bucket is per: ``ip``, ``user``, ``consumer``, ``route``,
``header:NAME``, or several of them for a combined key).

This module must not import models.py (which imports it).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from propylon.config.units import Rate, parse_rate

if TYPE_CHECKING:
    from propylon.config.models import GatewayConfig

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_FIELD_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
KEY_PARTS = ("ip", "user", "consumer", "route")
_RESERVED = frozenset({"global", "user", "failed_login"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _rate(value: object) -> object:
    return value if isinstance(value, Rate) else parse_rate(value)  # type: ignore[arg-type]


RateValue = Annotated[Rate, BeforeValidator(_rate)]


def _check_part(part: str) -> str:
    if part in KEY_PARTS:
        return part
    kind, sep, name = part.partition(":")
    if kind == "header" and sep and _FIELD_RE.match(name):
        return f"header:{name.lower()}"
    raise ValueError(
        f"unknown key part {part!r}: expected ip, user, consumer, route or header:NAME"
    )


class LimitSpec(_Strict):
    rate: RateValue
    burst: int | None = Field(default=None, ge=1, le=10_000_000)
    by: list[str] = Field(default_factory=lambda: ["ip"], min_length=1)
    name: str | None = None  # shown in 429 bodies and metrics; default from where it is set

    @field_validator("rate")
    @classmethod
    def _count(cls, value: Rate) -> Rate:
        if value.limit < 1:
            raise ValueError("a rate limit needs a count of at least 1")
        return value

    @field_validator("by", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("by")
    @classmethod
    def _parts(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(_check_part(part) for part in value))

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME_RE.match(value):
            raise ValueError(f"limit name {value!r} must be 1-64 letters, digits, '_.:-'")
        return value


def _spec(value: object) -> object:
    # `100/15m` is short for `{rate: 100/15m}`.
    return {"rate": value} if isinstance(value, str) else value


Limit = Annotated[LimitSpec, BeforeValidator(_spec)]


def _by(default: str, rate: str) -> LimitSpec:
    return LimitSpec(rate=parse_rate(rate), by=[default])


def _default_tiers() -> dict[str, LimitSpec | Literal[False]]:
    return {
        "free": _by("consumer", "100/h"),
        "standard": _by("consumer", "1000/h"),
        "premium": _by("consumer", "10000/h"),
    }


def _username(value: object) -> object:
    if value is None or (isinstance(value, str) and _FIELD_RE.match(value)):
        return value
    raise ValueError(f"{value!r} is not a header name")


LoginKey = Literal["ip", "username"]


class FailedLoginConfig(_Strict):
    """Counts authentication failures only; checked before auth runs."""

    rate: RateValue = Field(default_factory=lambda: parse_rate("5/15m"))
    by: list[LoginKey] = Field(default_factory=lambda: list[LoginKey](["ip"]), min_length=1)
    username_header: Annotated[str | None, BeforeValidator(_username)] = None
    # Routes whose upstream answers logins: their 401/403 count as failures.
    # Routes with the gateway's own auth always count its 401s.
    routes: list[str] = Field(default_factory=list)
    gateway_auth: bool = True  # also guard every route with auth: jwt / api_key

    @model_validator(mode="after")
    def _username_source(self) -> FailedLoginConfig:
        if "username" in self.by and self.username_header is None:
            raise ValueError("by: username needs username_header (where the login name is)")
        return self


class RateLimitsConfig(_Strict):
    backend: Literal["auto", "memory", "redis"] = "auto"  # auto: redis when configured
    on_redis_error: Literal["local", "allow", "deny"] = "local"
    expected_nodes: int = Field(default=1, ge=1, le=10_000)  # divides limits in `local`
    bypass_roles: list[str] = Field(default_factory=lambda: ["admin"])
    headers: bool = True  # RateLimit-* on every response of a limited route
    global_: Limit | Literal[False] = Field(
        default_factory=lambda: _by("ip", "100/15m"), alias="global"
    )
    per_user: Limit | Literal[False] = Field(default_factory=lambda: _by("user", "1000/15m"))
    tiers: dict[str, Limit | Literal[False]] = Field(default_factory=_default_tiers)
    failed_login: FailedLoginConfig | Literal[False] = Field(default_factory=FailedLoginConfig)
    max_keys: int = Field(default=1_000_000, ge=1000)  # memory backend, per process

    @field_validator("tiers", mode="before")
    @classmethod
    def _tier_defaults(cls, value: object) -> object:
        # A tier's limit is per consumer unless it says otherwise.
        if not isinstance(value, dict):
            return value
        out: dict[object, object] = {}
        for tier, spec in value.items():
            spec = _spec(spec)
            if isinstance(spec, dict) and "by" not in spec:
                spec = {**spec, "by": ["consumer"]}
            out[tier] = spec
        return out

    @field_validator("per_user", mode="before")
    @classmethod
    def _user_default(cls, value: object) -> object:
        spec = _spec(value)
        if isinstance(spec, dict) and "by" not in spec:
            spec = {**spec, "by": ["user"]}
        return spec


def _route_limits(value: object) -> object:
    if value is None or value is False:
        return value
    return value if isinstance(value, list) else [value]


RouteRateLimit = Annotated[list[Limit] | Literal[False] | None, BeforeValidator(_route_limits)]


def check_rate_limits(config: GatewayConfig) -> None:
    """Rules across sections; raises ValidationError at the failing key."""
    limits = config.rate_limits
    problems: list[tuple[tuple[str | int, ...], str]] = []
    route_names = {route.name for route in config.routes}
    named: dict[str, tuple[LimitSpec, str]] = {}
    for index, route in enumerate(config.routes):
        for i, spec in enumerate(route.rate_limit or []):
            if spec.name is None:
                continue
            where = ("routes", index, "rate_limit", i, "name")
            if spec.name in _RESERVED or spec.name.startswith(("tier.", "route.")):
                problems.append((where, f"{spec.name!r} is the name of a built-in limit"))
                continue
            earlier = named.setdefault(spec.name, (spec, route.name))
            same = (earlier[0].rate, earlier[0].burst) == (spec.rate, spec.burst)
            if not same:
                problems.append(
                    (where, f"limit {spec.name!r} is defined differently on route {earlier[1]!r}")
                )
    if limits is not None:
        # The default tiers apply to those of auth.tiers that exist; tiers
        # written out must exist.
        explicit = limits.tiers if "tiers" in limits.model_fields_set else {}
        for tier in explicit:
            if tier not in config.auth.tiers:
                known = ", ".join(config.auth.tiers)
                problems.append(
                    (("rate_limits", "tiers", tier), f"unknown tier {tier!r} (auth.tiers: {known})")
                )
        if limits.backend == "redis" and config.redis is None:
            problems.append((("rate_limits", "backend"), "redis needs a redis section"))
        failed = limits.failed_login
        if failed is not False:
            for i, name in enumerate(failed.routes):
                if name not in route_names:
                    problems.append(
                        (("rate_limits", "failed_login", "routes", i), f"no route named {name!r}")
                    )
    if problems:
        raise ValidationError.from_exception_data(
            "GatewayConfig",
            [
                InitErrorDetails(
                    type=PydanticCustomError("rate_limits", "{problem}", {"problem": problem}),
                    loc=loc,
                    input=None,
                )
                for loc, problem in problems
            ],
        )
