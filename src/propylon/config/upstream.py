"""Config models of a service: targets, balancing, health, retries, breaker."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from propylon.config.units import parse_duration, parse_size

Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
Status = Annotated[int, Field(ge=100, le=599)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetConfig(Strict):
    url: str
    weight: int = Field(default=1, ge=0, le=1000)
    id: str | None = None  # defaults to HOST:PORT; the admin API names targets by it
    tags: list[str] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{value!r} must be an http://HOST[:PORT] URL")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{value!r} must not carry a path, query or fragment")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"{value!r}: {exc}") from None
        return value

    @property
    def address(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or 80}"

    @property
    def target_id(self) -> str:
        return self.id or self.address


class TimeoutsConfig(Strict):
    connect: Duration = 5.0
    read: Duration = 30.0
    total: Duration = 60.0


class PoolConfig(Strict):
    max_idle: int = Field(default=64, ge=0, le=10_000)
    idle_timeout: Duration = 60.0


class HashConfig(Strict):
    """What ``balance: hash`` hashes on."""

    on: Literal["ip", "header", "cookie"] = "ip"
    name: str | None = None  # header or cookie name

    @model_validator(mode="after")
    def _name_needed(self) -> HashConfig:
        if self.on != "ip" and not self.name:
            raise ValueError(f"hash on {self.on} needs a name")
        return self


class ActiveHealthConfig(Strict):
    path: str = "/health"
    method: Literal["GET", "HEAD"] = "GET"
    interval: Duration = 5.0
    timeout: Duration = 2.0
    expected_statuses: list[Status] = Field(default_factory=lambda: list(range(200, 400)))
    healthy: int = Field(default=2, ge=1, le=100)  # consecutive passes to return
    unhealthy: int = Field(default=3, ge=1, le=100)  # consecutive failures to leave

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"health check path {value!r} must start with '/'")
        return value


class PassiveHealthConfig(Strict):
    consecutive_failures: int = Field(default=5, ge=1, le=1000)
    statuses: list[Status] = Field(default_factory=lambda: [500, 502, 503, 504])
    ejection_time: Duration = 30.0  # doubles on each repeated ejection ...
    max_ejection_time: Duration = 300.0  # ... up to this


class HealthCheckConfig(Strict):
    active: ActiveHealthConfig | None = None
    passive: PassiveHealthConfig | None = PassiveHealthConfig()


RetryCondition = Literal["connect_error", "timeout"]
_RETRY_ON: tuple[RetryCondition, ...] = ("connect_error", "timeout")


class RetryConfig(Strict):
    attempts: int = Field(default=2, ge=0, le=10)  # retries after the first try
    methods: list[str] = Field(default_factory=lambda: ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"])
    on: list[RetryCondition] = Field(default_factory=lambda: list(_RETRY_ON))
    statuses: list[Status] = Field(default_factory=lambda: [502, 503, 504])
    backoff: Duration = 0.025  # first wait; doubles, with full jitter
    max_backoff: Duration = 0.25
    budget: float = Field(default=0.2, ge=0.0, le=1.0)  # of requests in flight
    min_concurrent: int = Field(default=3, ge=0)  # retries always allowed in flight
    max_body: Size = 64 * 1024  # larger request bodies are not kept for replay

    @field_validator("methods")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [method.upper() for method in value]


FailureKind = Literal["connect_error", "timeout", "5xx"]
_FAILURE_ON: tuple[FailureKind, ...] = ("connect_error", "timeout", "5xx")


class CircuitBreakerConfig(Strict):
    enabled: bool = True
    failure_threshold: int = Field(default=5, ge=1)  # consecutive failures
    failure_rate: float = Field(default=0.5, gt=0.0, le=1.0)
    volume_threshold: int = Field(default=10, ge=1)
    window: Duration = 60.0  # rolling window of the failure rate
    slow_call_duration: Duration | None = None  # a slower call counts as slow
    slow_call_rate: float = Field(default=1.0, gt=0.0, le=1.0)
    open_for: Duration = 30.0
    half_open_max_calls: int = Field(default=1, ge=1)
    success_threshold: int = Field(default=2, ge=1)
    failure_on: list[FailureKind] = Field(default_factory=lambda: list(_FAILURE_ON))
    failure_statuses: list[Status] = Field(default_factory=list)  # e.g. [429]


class ServiceConfig(Strict):
    targets: list[TargetConfig] = Field(min_length=1)
    balance: Literal["round_robin", "least_conn", "random", "hash"] = "round_robin"
    hash: HashConfig = HashConfig()
    timeouts: TimeoutsConfig = TimeoutsConfig()
    pool: PoolConfig = PoolConfig()
    preserve_host: bool = False
    health_check: HealthCheckConfig = HealthCheckConfig()
    retries: RetryConfig = RetryConfig()
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    # /health/ready fails while a required service has no available target.
    required: bool = True

    @model_validator(mode="after")
    def _unique_target_ids(self) -> ServiceConfig:
        seen: set[str] = set()
        for target in self.targets:
            if target.target_id in seen:
                raise ValueError(f"two targets are named {target.target_id!r}: give them ids")
            seen.add(target.target_id)
        return self


class FallbackConfig(Strict):
    """A static answer while the service's breaker is open or no target is up."""

    status: Status = 503
    content_type: str = "application/json"
    body: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
