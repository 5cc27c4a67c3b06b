"""The ``metrics:`` and ``logging:`` sections (docs/observability.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from propylon.config.units import parse_duration, parse_size

Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]

# prometheus_client's defaults: what dashboards and alert rules expect.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DEFAULT_REDACT_HEADERS = (
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "cookie",
    "set-cookie",
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricsConfig(_Section):
    """``/metrics`` and the monitoring endpoints on the admin listener."""

    # false: requests are only counted (for propylon status and max_requests).
    enabled: bool = True
    # Upper bounds (seconds) of the request and upstream duration histograms.
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    # How many recent error responses (status >= 400) each worker keeps.
    errors_kept: int = Field(default=100, ge=1, le=10_000)

    @field_validator("buckets")
    @classmethod
    def _increasing(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("give at least one bucket bound")
        if any(b <= 0 for b in value) or list(value) != sorted(set(value)):
            raise ValueError("bucket bounds must be positive and strictly increasing")
        return value


class RotationConfig(_Section):
    max_size: Size | None = 10 * 1024 * 1024  # rotate a file once it is this large
    daily: bool = True  # and at midnight (UTC)
    keep: int = Field(default=10, ge=1, le=1000)  # rotated files kept per log


class LoggingConfig(_Section):
    """JSON lines: access.log, error.log, combined.log under ``directory``, or stdout."""

    directory: str | None = None  # access.log, error.log, combined.log in it
    stdout: bool = False  # every line on stdout too (containers)
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"
    access: bool = True  # one line per request
    rotation: RotationConfig = RotationConfig()
    # Request headers never written anywhere, and literal values replaced by
    # [REDACTED] in every line (the gateway's own secrets are added to these).
    redact_headers: tuple[str, ...] = DEFAULT_REDACT_HEADERS
    redact_values: tuple[str, ...] = ()
    queue_size: int = Field(default=10_000, ge=100, le=1_000_000)
    flush_interval: Duration = 0.05

    @field_validator("redact_headers")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(name.lower() for name in value)
