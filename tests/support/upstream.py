"""A real HTTP upstream (aiohttp) with endpoints tests can steer.

Endpoints:
  /echo...            JSON: method, path (as received), query, headers, body length
  /bytes?n=N&chunked=1  N bytes of b"x" (Content-Length, or chunked)
  /upload             consumes the body, answers its length and sha256
  /slow?delay=S       answers after S seconds (records when it was cancelled)
  /status/CODE        answers CODE with an empty body (or a small one)
  /ws                 WebSocket echo
Every request is recorded (method, path, headers, body length, peer port), so
tests can count requests and upstream connections.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    body_length: int
    peer_port: int


@dataclass
class Upstream:
    runner: web.AppRunner | None = None
    port: int = 0
    requests: list[Seen] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """How many distinct TCP connections carried the recorded requests."""
        return len({seen.peer_port for seen in self.requests})

    async def start(self) -> None:
        app = web.Application(client_max_size=2**40)
        app.router.add_route("*", "/ws", self._ws)
        app.router.add_route("*", "/bytes", self._bytes)
        app.router.add_route("*", "/upload", self._upload)
        app.router.add_route("*", "/slow", self._slow)
        app.router.add_route("*", "/status/{code}", self._status)
        app.router.add_route("*", "/{tail:.*}", self._echo)
        self.runner = web.AppRunner(
            app, access_log=None, handle_signals=False, handler_cancellation=True
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        assert server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _record(self, request: web.Request, body_length: int) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(
            Seen(
                method=request.method,
                path=request.raw_path.split("?", 1)[0],
                query=request.query_string,
                headers={k.lower(): v for k, v in request.headers.items()},
                raw_headers=[(k.lower(), v) for k, v in request.headers.items()],
                body_length=body_length,
                peer_port=peer[1] if peer else 0,
            )
        )

    async def _echo(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        await self._record(request, len(body))
        return web.json_response(
            {
                "method": request.method,
                "path": request.raw_path.split("?", 1)[0],
                "query": request.query_string,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body_length": len(body),
            }
        )

    async def _bytes(self, request: web.Request) -> web.StreamResponse:
        await self._record(request, 0)
        total = int(request.query.get("n", "0"))
        response = web.StreamResponse()
        response.content_type = "application/octet-stream"
        if request.query.get("chunked"):
            response.enable_chunked_encoding()
        else:
            response.content_length = total
        await response.prepare(request)
        block = b"x" * 65536
        sent = 0
        while sent < total:
            piece = block[: min(len(block), total - sent)]
            await response.write(piece)
            sent += len(piece)
        await response.write_eof()
        return response

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        digest = hashlib.sha256()
        length = 0
        async for chunk in request.content.iter_chunked(65536):
            digest.update(chunk)
            length += len(chunk)
        await self._record(request, length)
        return web.json_response({"length": length, "sha256": digest.hexdigest()})

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        await self._record(request, 0)
        delay = float(request.query.get("delay", "5"))
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self.cancelled.append(request.path_qs)
            raise
        return web.json_response({"slept": delay})

    async def _status(self, request: web.Request) -> web.StreamResponse:
        await self._record(request, 0)
        code = int(request.match_info["code"])
        if code in (204, 304):
            return web.Response(status=code)
        return web.Response(status=code, text=f"status {code}")

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        await self._record(request, 0)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str("echo:" + message.data)
            elif message.type == WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        return ws
