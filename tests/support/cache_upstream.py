"""An upstream for cache tests: every answer is numbered, and a request can
ask for the response headers the cache must react to.

``GET /any/path?n=...`` answers JSON ``{"path", "query", "serial", "forwarded_host",
"consumer"}``: ``serial`` counts the upstream's answers for that path, so
two bodies are byte-identical only when one came from the cache. Query
parameters steer the answer (they are part of the cache key, like any):
  cc=VALUE       Cache-Control: VALUE
  cookie=1       Set-Cookie: session=...
  status=N       that status (204 and 304 without a body)
  size=N         a body of N bytes instead of JSON
  chunked=1      a chunked body
  vary=NAME      Vary: NAME
  expires=S      Expires: now + S seconds (negative: in the past)
  age=S          Age: S
  etag=TAG       ETag: TAG and a fixed Last-Modified
  delay=S        answer after S seconds
Writes (POST, PUT, PATCH, DELETE) answer 200 ``{"written": path}``
(``?status=N`` applies to them too). ``hits`` counts GETs per path,
``total`` all requests; ``fail(status)`` makes every answer that status,
and ``delay`` slows every answer down.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections import Counter

from aiohttp import web


class CacheUpstream:
    def __init__(self) -> None:
        self.port = 0
        self.hits: Counter[str] = Counter()
        self.methods: Counter[str] = Counter()
        self.total = 0
        self.failing: int | None = None
        self.delay = 0.0  # every answer waits this long (timeouts)
        self._runner: web.AppRunner | None = None
        self._transports: set[asyncio.BaseTransport] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, status: int | None) -> None:
        self.failing = status

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Really go away: refuse connects and reset the open connections."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for site in list(runner.sites):
            await site.stop()
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()
        await runner.cleanup()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            self._transports.add(request.transport)
        await request.read()
        self.total += 1
        self.methods[request.method] += 1
        query = request.query
        delay = float(query.get("delay", self.delay))
        if delay:
            await asyncio.sleep(delay)
        status = int(query.get("status", "200"))
        if self.failing is not None:
            return web.Response(status=self.failing, text="upstream failing")
        if request.method not in ("GET", "HEAD"):
            return web.json_response({"written": request.path}, status=status)
        self.hits[request.path] += 1
        headers: dict[str, str] = {}
        if "cc" in query:
            headers["Cache-Control"] = query["cc"]
        if "vary" in query:
            headers["Vary"] = query["vary"]
        if "age" in query:
            headers["Age"] = query["age"]
        if "etag" in query:
            headers["ETag"] = query["etag"]
            headers["Last-Modified"] = "Tue, 01 Dec 2026 10:00:00 GMT"
        if "expires" in query:
            headers["Expires"] = email.utils.formatdate(
                time.time() + float(query["expires"]), usegmt=True
            )
        response: web.StreamResponse
        if status in (204, 304):
            response = web.Response(status=status, headers=headers)
        elif "size" in query:
            response = web.Response(status=status, body=b"s" * int(query["size"]), headers=headers)
        else:
            body = {
                "path": request.path,
                "query": request.query_string,
                "serial": self.hits[request.path],
                "forwarded_host": request.headers.get("X-Forwarded-Host"),
                "consumer": request.headers.get("X-Consumer-ID"),
            }
            response = web.Response(
                status=status,
                text=json.dumps(body),
                headers=headers,
                content_type="application/json",
            )
        if "cookie" in query:
            response.set_cookie("session", "s3cr3t")
        if "chunked" in query:
            response.enable_chunked_encoding()
        return response
