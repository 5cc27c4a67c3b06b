"""The ``tracing:`` section: OTLP/HTTP export of one server span and one
upstream span per request. W3C ``traceparent`` propagation needs no config:
it always happens (see observability/tracecontext.py)."""

from __future__ import annotations

import importlib.util
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from propylon.config.units import parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]


class TracingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # e.g. http://otel-collector:4318/v1/traces; absent = no export, no SDK loaded
    otlp_endpoint: str | None = None
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)  # for new traces only
    service_name: str | None = None  # default: gateway.name
    headers: dict[str, str] = Field(default_factory=dict)  # e.g. a collector's API key
    timeout: Duration = 10.0  # per export batch
    max_queue: int = Field(default=2048, ge=1)  # spans held for export; more are dropped

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must be an http:// or https:// URL (OTLP/HTTP)")
        return value

    @field_validator("otlp_endpoint")
    @classmethod
    def _sdk_installed(cls, value: str | None) -> str | None:
        if value is None:
            return value
        needed = ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")
        try:
            missing = any(importlib.util.find_spec(name) is None for name in needed)
        except ModuleNotFoundError:  # a parent package is missing
            missing = True
        if missing:
            raise ValueError(
                "OTLP export needs the OpenTelemetry SDK: pip install 'propylon[tracing]'"
            )
        return value
