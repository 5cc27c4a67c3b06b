"""What the admin API may ask of the process it runs in (the supervisor).

The routes depend on this protocol, not on the supervisor, so later
endpoints (breaker trip, target weights, cache purge) only need
``broadcast`` and tests can hand in a stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from propylon.config.models import GatewayConfig


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    # reloaded: every worker runs the new config; invalid: the file did not
    # validate, nothing changed; failed: a new worker did not start.
    result: Literal["reloaded", "invalid", "failed"]
    detail: str
    errors: list[str] = field(default_factory=list)
    config_hash: str | None = None


class ClusterControl(Protocol):
    config: GatewayConfig  # the config the gateway serves now (after the last reload)

    async def status(self) -> dict[str, Any]:
        """Supervisor and per-worker figures, freshly asked from the workers."""
        ...

    async def reload(self) -> ReloadOutcome:
        """Validate the config file, then replace the workers one at a time."""
        ...

    def request_stop(self, reason: str) -> None:
        """Start a graceful stop; returns at once."""
        ...

    async def broadcast(self, message: dict[str, Any], within: float = 2.0) -> list[dict[str, Any]]:
        """Send a command to every serving worker; their replies (missing ones left out)."""
        ...
