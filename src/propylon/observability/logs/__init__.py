"""Structured logs: access.log, error.log and combined.log (or stdout), as JSON lines.

``configure(config, worker)`` once per process, before the gateway starts:
it starts the writer thread and routes the stdlib ``logging`` records of
the whole process through it (the stderr output stays as it was).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

from propylon.observability.logs.writer import LogWriter, QueueingHandler

if TYPE_CHECKING:
    from propylon.config.models import GatewayConfig

__all__ = ["LogWriter", "configure", "current", "secret_values", "shutdown"]

_CURRENT: list[LogWriter] = []
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def current() -> LogWriter | None:
    return _CURRENT[-1] if _CURRENT else None


def secret_values(config: BaseModel) -> list[str]:
    """Every SecretStr in the config, and passwords in Redis URLs."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, str) and value.startswith(("redis://", "rediss://")):
            password = urlsplit(value).password
            if password:
                found.append(password)

    walk(config)
    return found


def configure(config: GatewayConfig, worker: int | None = None) -> LogWriter | None:
    """Start this process's writer when ``logging.directory`` or ``stdout`` is set."""
    settings = config.logging
    shutdown()
    if settings.directory is None and not settings.stdout:
        return None
    writer = LogWriter(settings, secret_values(config), worker)
    _CURRENT.append(writer)
    level = _LEVELS.get(settings.level, logging.ERROR)
    root = logging.getLogger()
    if not root.handlers:  # what logging's last resort did: warnings on stderr
        fallback = logging.StreamHandler()
        fallback.setLevel(logging.WARNING)
        root.addHandler(fallback)
    for handler in root.handlers:
        if handler.level == logging.NOTSET:
            handler.setLevel(logging.INFO)  # stderr stays as it was
    root.addHandler(QueueingHandler(writer, level))
    root.setLevel(min(level, logging.INFO))
    return writer


def shutdown() -> None:
    """Flush and stop the writer (and take its handler off the root logger)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, QueueingHandler):
            root.removeHandler(handler)
    while _CURRENT:
        _CURRENT.pop().close()
