"""Active health checks: probe every target of a service on an interval.

A target becomes unhealthy after ``unhealthy`` consecutive failed probes
(wrong status, timeout, connection error) and healthy again after
``healthy`` consecutive passes. An unhealthy target gets no traffic. Probes
are plain HTTP/1.1 requests on a fresh connection (``Connection: close``), so
they test what a new request would meet, not a pooled socket.

Probes run in every worker process (each worker must know which targets are
healthy, and probing is cheap): a backend sees one probe per target per
interval per worker, e.g. 2 per 5 s with two workers. The first probe of
each worker is spread over the interval so workers do not probe in step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from propylon.config.upstream import ActiveHealthConfig
    from propylon.server.upstream.service import ServiceRuntime
    from propylon.server.upstream.target import Target

log = logging.getLogger("propylon.health")


class HealthChecker:
    def __init__(self, service: ServiceRuntime, config: ActiveHealthConfig) -> None:
        self.service = service
        self.config = config
        self._passes: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._request = (
            f"{config.method} {config.path} HTTP/1.1\r\n"
            "Host: {host}\r\nUser-Agent: propylon-health-check\r\n"
            "Connection: close\r\n\r\n"
        )

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        await asyncio.sleep(random.uniform(0, self.config.interval))
        while True:
            await asyncio.gather(*(self.check(target) for target in self.service.targets))
            await asyncio.sleep(self.config.interval)

    async def check(self, target: Target) -> bool:
        """Probe one target once and update its verdict; return whether it passed."""
        passed, reason = await self._probe(target)
        if passed:
            self._failures[target.id] = 0
            count = self._passes[target.id] = self._passes.get(target.id, 0) + 1
            if not target.healthy and count >= self.config.healthy:
                target.healthy = True
                log.warning("target %s/%s is healthy again", self.service.name, target.id)
        else:
            self._passes[target.id] = 0
            count = self._failures[target.id] = self._failures.get(target.id, 0) + 1
            if target.healthy and count >= self.config.unhealthy:
                target.healthy = False
                log.warning(
                    "target %s/%s is unhealthy after %d failed checks: %s",
                    self.service.name,
                    target.id,
                    count,
                    reason,
                )
        return passed

    async def _probe(self, target: Target) -> tuple[bool, str]:
        pool = target.pool
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.config.timeout):
                reader, writer = await asyncio.open_connection(pool.host, pool.port)
                request = self._request.replace("{host}", pool.host_header.decode())
                writer.write(request.encode())
                status_line = await reader.readline()
        except TimeoutError:
            return False, f"no answer within {self.config.timeout:g}s"
        except OSError as exc:
            return False, f"connection failed: {exc.strerror or exc}"
        finally:
            if writer is not None:
                writer.close()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            return False, "not an HTTP response"
        status = int(parts[1])
        if status not in self.config.expected_statuses:
            return False, f"status {status}"
        return True, ""
