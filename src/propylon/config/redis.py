"""The shared Redis that workers and nodes use for state (absent = in-memory)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from propylon.config.units import parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]


class RedisConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "propylon:"  # every key and channel propylon uses starts with it
    timeout: Duration = 0.25  # per command; Redis trouble must never stall requests
    pool_size: int = Field(default=4, ge=1, le=64)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"{value!r} must be a redis://, rediss:// or unix:// URL")
        return value
