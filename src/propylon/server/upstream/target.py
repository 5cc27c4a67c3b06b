"""One upstream target at run time: its pool, weight and health.

Health has two independent verdicts. ``healthy`` comes from active checks
(health.py); ``ejected`` from passive outlier detection here: after
``consecutive_failures`` failed exchanges a target is ejected for
``ejection_time``, doubled on each repeated ejection up to
``max_ejection_time``. Once that time has passed, exactly one request probes
it: success brings it back, failure ejects it again for longer. So a target
always recovers by itself, also without active checks.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from propylon.config.upstream import PassiveHealthConfig, TargetConfig
    from propylon.server.upstream.pool import TargetPool

log = logging.getLogger("propylon.upstream")


class Target:
    __slots__ = (
        "_failures",
        "_probing",
        "config_weight",
        "current",
        "draining",
        "ejected_until",
        "ejections",
        "healthy",
        "id",
        "passive",
        "pool",
        "service",
        "tags",
        "url",
        "weight",
    )

    def __init__(
        self,
        service: str,
        config: TargetConfig,
        pool: TargetPool,
        passive: PassiveHealthConfig | None,
    ) -> None:
        self.service = service
        self.id = config.target_id
        self.url = config.url
        self.tags = tuple(config.tags)
        self.pool = pool
        self.config_weight = config.weight
        self.weight = config.weight
        self.draining = False
        self.healthy = True  # active checks' verdict
        self.passive = passive
        self.ejected_until = 0.0  # loop time; 0 = not ejected
        self.ejections = 0  # consecutive ejections, for the growing ejection time
        self.current = 0  # smooth weighted round robin state
        self._failures = 0
        self._probing = False

    @property
    def in_flight(self) -> int:
        return self.pool.in_flight

    @property
    def ejected(self) -> bool:
        return self.ejected_until > 0.0

    def available(self, now: float) -> bool:
        if self.weight <= 0 or self.draining or not self.healthy:
            return False
        if self.ejected_until:
            # Past its ejection time a target admits one probe at a time.
            return now >= self.ejected_until and not self._probing
        return True

    def picked(self) -> None:
        """A request was sent here; if it was ejected, this is the probe."""
        if self.ejected_until:
            self._probing = True

    def release_probe(self) -> None:
        """The probe request ended without an outcome: let another one try."""
        self._probing = False

    def record_success(self) -> None:
        self._failures = 0
        if self.ejected_until:
            log.info("target %s/%s is back after its probe succeeded", self.service, self.id)
            self.ejected_until = 0.0
            self.ejections = 0
            self._probing = False

    def record_failure(self, now: float, *, may_eject: bool) -> bool:
        """Count a failed exchange; return True when this ejects the target."""
        passive = self.passive
        if passive is None:
            return False
        self._failures += 1
        if self.ejected_until and self._probing:
            self._probing = False
            self._eject(now, passive, "its probe failed")
            return True
        if not self.ejected_until and self._failures >= passive.consecutive_failures and may_eject:
            self._eject(now, passive, f"{self._failures} consecutive failures")
            return True
        return False

    def _eject(self, now: float, passive: PassiveHealthConfig, reason: str) -> None:
        self.ejections += 1
        duration = min(
            passive.ejection_time * (2 ** (self.ejections - 1)), passive.max_ejection_time
        )
        self.ejected_until = now + duration
        self._failures = 0
        log.warning("target %s/%s ejected for %.3gs: %s", self.service, self.id, duration, reason)

    def snapshot(self, now: float) -> dict[str, object]:
        return {
            "id": self.id,
            "url": self.url,
            "tags": list(self.tags),
            "weight": self.weight,
            "draining": self.draining,
            "healthy": self.healthy,
            "ejected": self.ejected,
            "available": self.available(now),
            "in_flight": self.in_flight,
        }
