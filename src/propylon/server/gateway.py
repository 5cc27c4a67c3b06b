"""The gateway's life cycle in one worker: bind, serve, sweep, drain, stop."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from propylon.config.models import GatewayConfig, parse_listen
from propylon.server.protocol import ClientConnection
from propylon.server.state import GatewayState

# Timeouts are enforced by one periodic sweep over all connections instead
# of a timer per request: per-request cost stays a float store, precision is
# this interval.
SWEEP_INTERVAL = 0.1
_POOL_SWEEP_EVERY = 10  # sweeps


class Gateway:
    def __init__(
        self, config: GatewayConfig, *, connection_class: type[ClientConnection] = ClientConnection
    ) -> None:
        self.config = config
        # A subclass of the client connection may be passed (tests, tools).
        self._connection_class = connection_class
        self._state: GatewayState | None = None
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    @property
    def state(self) -> GatewayState:
        if self._state is None:
            raise RuntimeError("the gateway has not been started")
        return self._state

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the gateway is not listening")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(
        self, host: str | None = None, port: int | None = None, *, sock: socket.socket | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        state = GatewayState(self.config, loop)
        self._state = state
        connection_class = self._connection_class
        if sock is None and host is None and port is None:
            host, port = parse_listen(self.config.gateway.listen)
        if sock is not None:
            self._server = await loop.create_server(
                lambda: connection_class(state), sock=sock, backlog=2048
            )
        else:
            self._server = await loop.create_server(
                lambda: connection_class(state),
                host,
                port if port is not None else 0,
                backlog=2048,
                reuse_address=True,
            )
        self._sweeper = loop.create_task(self._sweep())
        state.start_background()
        if state.cache is not None and state.cache.settings.warm:
            from propylon.cache.warm import warm

            entries = state.cache.settings.warm
            state.cache.warming = loop.create_task(
                warm(loop, lambda: connection_class(state), entries)
            )

    async def _sweep(self) -> None:
        state = self.state
        loop = state.loop
        tick = 0
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = loop.time()
            for conn in list(state.connections):
                conn.check_timeouts(now)
            tick += 1
            if tick % _POOL_SWEEP_EVERY == 0:
                for pool in state.pools():
                    pool.sweep(now)

    async def serve_forever(self) -> None:
        await self._stopped.wait()

    async def stop(self, graceful_timeout: float | None = None, *, settle: float = 0.0) -> None:
        """Stop accepting, let in-flight requests finish (bounded), then close.

        ``settle``: seconds between closing the listener and closing idle
        connections. A cluster worker that drains while the others keep
        serving passes a little, so that a connection accepted just before
        the listener closed gets its first request read and answered (with
        Connection: close) instead of being closed as idle.
        """
        if self._server is None or self._state is None:
            return
        state = self._state
        timeout = (
            self.config.gateway.graceful_timeout if graceful_timeout is None else graceful_timeout
        )
        state.draining = True
        self._server.close()
        if settle:
            await asyncio.sleep(settle)
        for conn in list(state.connections):
            conn.drain()
        deadline = state.loop.time() + timeout
        # Polling is simpler than an event every connection close must signal.
        while state.connections and state.loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        for conn in list(state.connections):
            conn.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await state.stop_background()
        state.close()
        await asyncio.sleep(0)  # let transports run their close callbacks
        self._stopped.set()
