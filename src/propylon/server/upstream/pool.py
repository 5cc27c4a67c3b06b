"""A keep-alive connection pool for one upstream target.

Deliberately small (see STYLE.md on aiohttp's connector): a LIFO stack of
idle connections, a cap on how many stay idle, and expiry of idle ones by the
gateway's periodic sweep. LIFO keeps the hottest sockets in use and lets the
cold ones age out. New connections are opened on demand; there is no waiter
queue, because the client side already bounds concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from propylon.server.upstream.connection import UpstreamConnection

if TYPE_CHECKING:
    from collections.abc import Callable


class TargetPool:
    __slots__ = (
        "_idle",
        "_loop",
        "address",
        "closed",
        "host",
        "host_header",
        "idle_timeout",
        "in_flight",
        "max_idle",
        "opened",
        "port",
    )

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_idle: int,
        idle_timeout: float,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.host = host
        self.port = port
        self.address = f"{host}:{port}"
        bracketed = f"[{host}]" if ":" in host else host
        self.host_header = (bracketed if port == 80 else f"{bracketed}:{port}").encode()
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self._loop = loop
        self._idle: list[UpstreamConnection] = []
        self.in_flight = 0
        self.opened = 0  # connections ever opened: tests count reuse with it
        self.closed = False

    def take_idle(self) -> UpstreamConnection | None:
        """Pop a live idle connection, discarding ones the peer has closed."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
        return None

    def connect(
        self, done: Callable[[asyncio.Task[UpstreamConnection]], None]
    ) -> asyncio.Task[UpstreamConnection]:
        task = self._loop.create_task(self._open())
        task.add_done_callback(done)
        return task

    async def _open(self) -> UpstreamConnection:
        _, protocol = await self._loop.create_connection(
            lambda: UpstreamConnection(self), self.host, self.port
        )
        self.opened += 1
        return protocol

    def release(self, conn: UpstreamConnection) -> None:
        """Take a connection back after a complete exchange, or close it."""
        if self.closed or len(self._idle) >= self.max_idle or not conn.usable():
            conn.close()
            return
        conn.idle_since = self._loop.time()
        self._idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        """Drop a connection that closed while idle."""
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)

    def sweep(self, now: float) -> None:
        """Close connections idle longer than ``idle_timeout`` (oldest first)."""
        idle = self._idle
        expired = 0
        for conn in idle:
            if now - conn.idle_since < self.idle_timeout:
                break
            expired += 1
        if expired:
            for conn in idle[:expired]:
                conn.close()
            del idle[:expired]

    def idle_count(self) -> int:
        return len(self._idle)

    def close(self) -> None:
        self.closed = True
        for conn in self._idle:
            conn.close()
        self._idle.clear()
