"""The ``cache:`` settings: the global section and each route's ``cache:`` key.

The global section picks the store (one byte-bounded LRU per worker, or the
shared Redis) and lists paths to warm; a route's key turns caching on for
that route and says what is cached, for how long, keyed by what.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from propylon.config.units import parse_duration, parse_size

Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]

# RFC 9111 4.2.2: statuses that are heuristically cacheable (the 2xx-5xx ones
# a gateway sees; 206 needs range handling, 405/414/501 are rarely useful).
DEFAULT_STATUSES = (200, 203, 204, 300, 301, 404, 410)
CacheMethod = Literal["GET", "HEAD"]
_DEFAULT_METHODS: tuple[CacheMethod, ...] = ("GET", "HEAD")
_HEADER_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CacheSettings(_Strict):
    """The global ``cache:`` section (optional; routes cache in memory without it)."""

    backend: Literal["memory", "redis"] = "memory"
    max_bytes: Size = Field(default=64 * 1024**2, ge=1024)  # per worker, memory backend
    warm: list[str] = Field(default_factory=list)
    debug: bool = False  # send X-Cache-Key
    collapse_wait: Duration = Field(default=5.0, ge=0)  # a miss waits this long for another

    @field_validator("warm")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry.startswith("/"):
                continue
            parts = urlsplit(entry)
            if parts.scheme != "http" or not parts.netloc or parts.fragment:
                raise ValueError(
                    f"warm entry {entry!r} must be a path (/items) or http://HOST/path"
                )
        return value


class RouteCache(_Strict):
    """A route's ``cache:`` key."""

    ttl: Duration = Field(default=300.0, gt=0)
    methods: list[CacheMethod] = Field(default_factory=lambda: list(_DEFAULT_METHODS))
    statuses: list[int] = Field(default_factory=lambda: list(DEFAULT_STATUSES))
    vary_headers: list[str] = Field(default_factory=list)
    vary_query: Literal["all"] | list[str] = "all"
    per_consumer: bool = False
    max_object_size: Size = Field(default=1024**2, ge=0)
    stale_ttl: Duration = Field(default=0.0, ge=0)
    # Path patterns evicted by a successful write on this route; ``{path}`` is
    # the written path, ``{parent}`` its collection, ``*`` any characters.
    invalidate: list[str] = Field(default_factory=lambda: ["{path}", "{path}/*", "{parent}"])

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[CacheMethod]) -> list[CacheMethod]:
        if not value:
            raise ValueError("list at least one of GET, HEAD")
        return value

    @field_validator("statuses")
    @classmethod
    def _statuses(cls, value: list[int]) -> list[int]:
        for status in value:
            if not 200 <= status <= 599:
                raise ValueError(f"status {status} is not a final response status (200-599)")
            if status == 206:
                raise ValueError("206 partial content cannot be cached (no range support)")
        return value

    @field_validator("vary_headers")
    @classmethod
    def _headers(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _HEADER_RE.match(name):
                raise ValueError(f"{name!r} is not a header name")
        return [name.lower() for name in value]

    @field_validator("invalidate")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern.startswith(("/", "{path}", "{parent}")):
                raise ValueError(f"pattern {pattern!r} must start with '/', {{path}} or {{parent}}")
        return value
