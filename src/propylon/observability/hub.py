"""What the admin API's observability endpoints need: the aggregator and the config."""

from __future__ import annotations

import time
from collections.abc import Callable

from propylon.config.models import GatewayConfig
from propylon.observability.merge import Aggregator, Ask


class ObservabilityHub:
    def __init__(self, ask: Ask, config: Callable[[], GatewayConfig]) -> None:
        self.aggregator = Aggregator(ask)
        self.config = config
        self.started_at = time.time()
        self.reset_at: float | None = None
        self.last_scrape_ms: float | None = None

    @property
    def since(self) -> float:
        """Where the monitoring view starts: the last reset, else the start."""
        return self.reset_at if self.reset_at is not None else self.started_at
