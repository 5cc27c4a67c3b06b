"""The admin API of a single-process gateway (``propylon run`` without workers).

The same routes and token rules as in the supervisor; the "cluster" is this
one process, so broadcasts are answered in-process and there is no reload
(that needs the supervisor's rolling restart).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from propylon import __version__
from propylon.admin.control import ReloadOutcome
from propylon.config.models import GatewayConfig
from propylon.observability import snapshot
from propylon.server import operations
from propylon.server.gateway import Gateway


class LocalControl:
    def __init__(
        self,
        gateway: Gateway,
        on_stop: Callable[[str], None],
        *,
        config_path: Path | None = None,
        config_hash: str | None = None,
    ) -> None:
        self.gateway = gateway
        self.config: GatewayConfig = gateway.config
        self._on_stop = on_stop
        self.config_path = config_path
        self.config_hash = config_hash
        self.started_at = time.time()

    async def status(self) -> dict[str, Any]:
        state = self.gateway.state
        figures = snapshot.process_figures()
        return {
            "name": state.name,
            "version": __version__,
            "pid": os.getpid(),
            "state": "stopping" if state.draining else "running",
            "uptime": round(time.time() - self.started_at, 3),
            "listen": self.gateway.config.gateway.listen,
            "config": {
                "file": str(self.config_path) if self.config_path else None,
                "sha256": self.config_hash,
                "generation": 1,
                "loaded_at": state.started_at,
            },
            "workers": [
                {
                    "id": 0,
                    "pid": os.getpid(),
                    "state": "ready",
                    "uptime": round(time.time() - state.started_at, 3),
                    "rss": figures["rss_bytes"],
                    "requests": state.recorder.requests(),
                    "generation": 1,
                }
            ],
        }

    async def reload(self) -> ReloadOutcome:
        return ReloadOutcome(
            "failed", "reload needs the supervisor: run with --workers N (or gateway.workers)"
        )

    def request_stop(self, reason: str) -> None:
        self._on_stop(reason)

    async def broadcast(self, message: dict[str, Any], within: float = 2.0) -> list[dict[str, Any]]:
        """What a worker would answer (cluster/worker.py), from this process."""
        state = self.gateway.state
        reply = await snapshot.answer(state, message)
        if reply is None:
            reply = await operations.answer_async(state, message)
        return [reply] if reply is not None else []
