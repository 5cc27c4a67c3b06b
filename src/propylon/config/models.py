"""The declarative config, as pydantic v2 models.

Every model forbids unknown keys, so a typo is an error with a line number,
never a silently ignored setting. Durations are stored as float seconds and
sizes as int bytes (see units.py).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from propylon.config.auth import (
    AuthConfig,
    ConsumerConfig,
    Role,
    RouteAuth,
    RouteAuthConfig,
    check_identity,
)
from propylon.config.cache import CacheSettings, RouteCache
from propylon.config.cluster import AdminConfig, Workers
from propylon.config.observability import LoggingConfig, MetricsConfig
from propylon.config.ratelimit import RateLimitsConfig, RouteRateLimit, check_rate_limits
from propylon.config.redis import RedisConfig
from propylon.config.tracing import TracingConfig
from propylon.config.units import parse_duration, parse_size
from propylon.config.upstream import FallbackConfig, ServiceConfig

Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]

HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HOST_RE = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:8080`` for IPv6, ``:8080`` for all interfaces)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"invalid listen address {value!r}: expected HOST:PORT")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"invalid port {port}: must be 0-65535")
    host = host.strip("[]") or "0.0.0.0"
    return host, port


def _check_listen(value: object) -> str:
    # A before-validator sees the raw input: `listen: 8080` arrives as an int,
    # and only ValueError becomes a validation error (anything else escapes).
    if not isinstance(value, str):
        raise ValueError("expected HOST:PORT such as 0.0.0.0:8080 or :8080")
    parse_listen(value)
    return value


Listen = Annotated[str, BeforeValidator(_check_listen)]


class LimitsConfig(Strict):
    max_header_bytes: Size = 16 * 1024
    max_body: Size = 10 * 1024 * 1024
    header_timeout: Duration = 10.0
    idle_timeout: Duration = 60.0


class GatewaySettings(Strict):
    name: str = "propylon"
    listen: Listen = "0.0.0.0:8080"
    graceful_timeout: Duration = 10.0
    trusted_proxies: list[str] = Field(default_factory=list)
    limits: LimitsConfig = LimitsConfig()
    # Cluster mode; defaults as in PM2 (docs/operations.md, config/cluster.py).
    workers: Workers | None = None  # None: one process, no supervisor
    max_memory: Size | None = 1024**3
    max_requests: int | None = Field(default=None, ge=1)
    max_restarts: int = Field(default=10, ge=0)
    min_uptime: Duration = 10.0

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
        return value


class MatchConfig(Strict):
    path: str = "/"
    hosts: list[str] = Field(default_factory=list)
    methods: list[str] = Field(default_factory=list)

    @field_validator("path")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"path prefix {value!r} must start with '/'")
        if any(segment in (".", "..") for segment in value.split("/")):
            raise ValueError(f"path prefix {value!r} must not contain dot segments")
        return value.rstrip("/") or "/"

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        hosts = [host.lower() for host in value]
        for host in hosts:
            if not _HOST_RE.match(host):
                raise ValueError(f"{host!r} is not a host name or a *.domain wildcard")
        return hosts

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        methods = [method.upper() for method in value]
        for method in methods:
            if method not in HTTP_METHODS:
                raise ValueError(f"unknown HTTP method {method!r}")
        return methods


class CorsConfig(Strict):
    allow_origins: list[str] = Field(default_factory=lambda: ["*"])
    allow_methods: list[str] = Field(
        default_factory=lambda: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    )
    allow_headers: list[str] = Field(
        default_factory=lambda: ["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"]
    )
    expose_headers: list[str] = Field(default_factory=lambda: ["X-Request-ID"])
    allow_credentials: bool = False
    max_age: Duration = 600.0

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> CorsConfig:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError(
                "allow_credentials cannot be used with allow_origins '*': list the origins"
            )
        return self


class HstsConfig(Strict):
    max_age: Duration = 15_552_000.0
    include_subdomains: bool = True
    preload: bool = False


HeaderValue = str | Literal[False]


class SecurityHeadersConfig(Strict):
    """Defaults follow what helmet sends; ``false`` leaves a header out."""

    content_security_policy: HeaderValue = (
        "default-src 'self';base-uri 'self';font-src 'self' https: data:;"
        "form-action 'self';frame-ancestors 'self';img-src 'self' data:;"
        "object-src 'none';script-src 'self';script-src-attr 'none';"
        "style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests"
    )
    cross_origin_opener_policy: HeaderValue = "same-origin"
    cross_origin_resource_policy: HeaderValue = "same-origin"
    origin_agent_cluster: HeaderValue = "?1"
    referrer_policy: HeaderValue = "no-referrer"
    strict_transport_security: HstsConfig | Literal[False] = HstsConfig()
    x_content_type_options: HeaderValue = "nosniff"
    x_dns_prefetch_control: HeaderValue = "off"
    x_download_options: HeaderValue = "noopen"
    x_frame_options: HeaderValue = "SAMEORIGIN"
    x_permitted_cross_domain_policies: HeaderValue = "none"
    x_xss_protection: HeaderValue = "0"
    hide_server_headers: bool = True


class RoutePlugins(Strict):
    """Per-route plugin settings; ``false`` turns off a globally enabled one."""

    cors: CorsConfig | Literal[False] | None = None
    security_headers: SecurityHeadersConfig | Literal[False] | None = None


class RouteConfig(Strict):
    name: str
    match: MatchConfig = MatchConfig()
    service: str
    strip_prefix: bool = False
    rewrite: str | None = None
    plugins: RoutePlugins = RoutePlugins()
    fallback: FallbackConfig | None = None
    auth: RouteAuth = RouteAuthConfig()  # none | jwt | api_key | a list; see config/auth.py
    roles: list[Role] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)
    forward_credentials: bool = True
    cache: RouteCache | None = None  # see config/cache.py, docs/caching.md
    rate_limit: RouteRateLimit = None  # a limit, a list, or false (no limits here)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(f"route name {value!r} must be 1-64 letters, digits, '_', '.', '-'")
        return value

    @field_validator("rewrite")
    @classmethod
    def _rewrite(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"rewrite {value!r} must start with '/'")
        return value

    @model_validator(mode="after")
    def _one_path_change(self) -> RouteConfig:
        if self.strip_prefix and self.rewrite is not None:
            raise ValueError("use either strip_prefix or rewrite, not both")
        return self


class GatewayConfig(Strict):
    gateway: GatewaySettings = GatewaySettings()
    admin: AdminConfig = AdminConfig()
    redis: RedisConfig | None = None
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    routes: list[RouteConfig] = Field(default_factory=list)
    cors: CorsConfig | None = None
    security_headers: SecurityHeadersConfig | None = None
    auth: AuthConfig = AuthConfig()
    consumers: list[ConsumerConfig] = Field(default_factory=list)
    metrics: MetricsConfig = MetricsConfig()
    logging: LoggingConfig = LoggingConfig()
    cache: CacheSettings | None = None
    rate_limits: RateLimitsConfig | None = None
    tracing: TracingConfig = TracingConfig()

    @field_validator("services")
    @classmethod
    def _service_names(cls, value: dict[str, ServiceConfig]) -> dict[str, ServiceConfig]:
        for name in value:
            if not _NAME_RE.match(name):
                raise ValueError(
                    f"service name {name!r} must be 1-64 letters, digits, '_', '.', '-'"
                )
        return value

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        seen: set[str] = set()
        for route in self.routes:
            if route.name in seen:
                raise ValueError(f"route name {route.name!r} is used twice")
            seen.add(route.name)
            if route.service not in self.services:
                known = ", ".join(sorted(self.services)) or "none defined"
                raise ValueError(
                    f"route {route.name!r} names unknown service {route.service!r} "
                    f"(services: {known})"
                )
        return self

    @model_validator(mode="after")
    def _cache_backend(self) -> GatewayConfig:
        if self.cache is not None and self.cache.backend == "redis" and self.redis is None:
            raise ValueError("cache.backend redis needs a redis: section")
        return self

    @model_validator(mode="after")
    def _identity(self) -> GatewayConfig:
        check_identity(self)  # raises at the failing key, see config/auth.py
        return self

    @model_validator(mode="after")
    def _rate_limits(self) -> GatewayConfig:
        check_rate_limits(self)  # see config/ratelimit.py
        return self
