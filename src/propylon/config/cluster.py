"""Config for running as a cluster: the ``admin:`` section and ``gateway.workers``.

The other process keys of ``gateway:`` (max_memory, max_requests,
max_restarts, min_uptime) are plain fields in models.py. The restart policy
follows PM2, which the gateways this product replaces ran under: backoff
from 100 ms, give up after 10 restarts of workers younger than 10 s, a
memory ceiling per worker (1 GB here). ``max_requests`` adds up to 10% at
random per worker, so workers started together are not replaced together.

``models.py`` imports this module, so nothing here imports models.py at
module level.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    SecretStr,
    ValidationInfo,
    field_validator,
)

MIN_TOKEN_LENGTH = 16
DEFAULT_ADMIN_LISTEN = "127.0.0.1:9901"


def _listen(value: object) -> str:
    from propylon.config.models import parse_listen  # models.py imports this module

    if not isinstance(value, str):
        raise ValueError("expected HOST:PORT such as 127.0.0.1:9901")
    parse_listen(value)
    return value


def parse_workers(value: object) -> int | Literal["auto"]:
    """``auto`` or a whole number >= 1; raise ValueError on anything else."""
    if value == "auto":
        return "auto"
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("expected a number of worker processes >= 1, or auto (one per core)")
    return value


def resolve_workers(value: int | Literal["auto"]) -> int:
    """``auto`` is the number of cores this process may run on."""
    if value != "auto":
        return value
    try:
        # The affinity mask, not os.cpu_count(): a container limited by a
        # cpuset should not start a worker per host core.
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


Workers = Annotated[int | Literal["auto"], BeforeValidator(parse_workers)]
AdminListen = Annotated[str, BeforeValidator(_listen)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdminConfig(_Section):
    """The admin API in the supervisor (``propylon status|reload|stop`` use it)."""

    enabled: bool = True
    token: SecretStr | None = None
    # After token: its check reads the token.
    listen: AdminListen = DEFAULT_ADMIN_LISTEN

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"must be at least {MIN_TOKEN_LENGTH} characters "
                "(for example the output of `openssl rand -hex 32`)"
            )
        return value

    @field_validator("listen")
    @classmethod
    def _token_off_loopback(cls, value: str, info: ValidationInfo) -> str:
        from propylon.config.models import parse_listen

        if "token" not in info.data:
            return value  # the token itself is invalid: that is the error to fix
        host, _ = parse_listen(value)
        if info.data.get("enabled", True) and info.data["token"] is None and not is_loopback(host):
            # Anyone who can reach the admin API can stop or reload the gateway.
            raise ValueError(
                f"{value!r} is not a loopback address: set admin.token "
                "(for example token: ${PROPYLON_ADMIN_TOKEN}) or listen on 127.0.0.1"
            )
        return value
