"""Upstreams a test can steer while traffic flows, and the load that drives them.

``ControlledUpstream`` is a real aiohttp server on the ``bg`` loop. Its
behaviour for ordinary paths switches at run time (``ok()``, ``fail(503)``,
``fail_next(2)``, ``slow(0.5)``, ``drop()`` closes the connection without an
answer) and a
single request can ask for its own with ``?delay=S`` or ``?status=N``;
``/health`` answers ``health_status`` (``health_failing()`` turns it to 500).
Every answer names the server in ``X-Upstream``, so a client can tell which
target served it. Hits are counted per path (health checks apart), with the
arrival times. ``stop()`` really goes away: the listening socket is closed
and every open connection aborted, so the gateway sees refused connects and
resets, like a crashed process; ``start()`` comes back on the same port.

``Load`` runs GETs from threads until stopped and keeps every outcome, for
"zero failed requests while ..." tests; ``blast`` sends many pipelined GETs
over a few raw keep-alive connections, for distribution tests.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from aiohttp import web

from tests.support.loop import BackgroundLoop
from tests.support.wire import RawClient, RawResponse

T = TypeVar("T")
UPSTREAM_HEADER = "x-upstream"


def on_loop(bg: BackgroundLoop, fn: Callable[..., T], *args: Any) -> T:
    """Call a sync ``fn(*args)`` on the servers' loop and return its result.

    The gateway's state belongs to its loop; the admin API will call into it
    from there too, so tests do the same.
    """

    async def call() -> T:
        return fn(*args)

    return bg.run(call(), timeout=10)


class ControlledUpstream:
    def __init__(self, bg: BackgroundLoop, name: str) -> None:
        self.bg = bg
        self.name = name
        self.port = 0
        self.mode = "ok"  # ok | status | slow | drop
        self.status = 200
        self.delay = 0.0
        self.health_status = 200
        self.health_delay = 0.0
        self.failures_left = 0  # fail_next(): answer 503 (or so) this many more times
        self.failure_status = 503
        self.hits: Counter[str] = Counter()
        self.health_hits = 0
        self.health_methods: Counter[str] = Counter()
        self.arrivals: list[float] = []  # time.monotonic() of each non-health request
        self.methods: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.completed = 0
        self._runner: web.AppRunner | None = None
        self._transports: set[asyncio.BaseTransport] = set()

    # -- identity ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def total(self) -> int:
        """Requests received on ordinary paths (health checks not counted)."""
        return sum(self.hits.values())

    @property
    def running(self) -> bool:
        return self._runner is not None

    def target(self, weight: int = 1, **extra: Any) -> dict[str, Any]:
        """This server as a config target, named by ``name``."""
        return {"url": self.url, "id": self.name, "weight": weight, **extra}

    # -- behaviour ----------------------------------------------------------------

    def ok(self) -> None:
        self.mode = "ok"

    def fail(self, status: int = 503) -> None:
        self.mode, self.status = "status", status

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` ordinary requests with ``status``, then as before."""
        self.failures_left, self.failure_status = count, status

    def slow(self, seconds: float) -> None:
        self.mode, self.delay = "slow", seconds

    def drop(self) -> None:
        """Close each connection on a request, without answering it."""
        self.mode = "drop"

    def health_failing(self, failing: bool = True, status: int = 500) -> None:
        self.health_status = status if failing else 200

    def reset_counts(self) -> None:
        self.hits.clear()
        self.methods.clear()
        self.arrivals.clear()
        self.health_hits = 0
        self.health_methods.clear()
        self.max_in_flight = self.in_flight
        self.completed = 0

    # -- life cycle (call from the test thread) ----------------------------------

    def start(self) -> ControlledUpstream:
        self.bg.run(self._start())
        return self

    def stop(self) -> None:
        self.bg.run(self._stop())

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/health", self._health)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=0,
        )
        await runner.setup()
        # Come back on the same port after a stop: targets are named by it.
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._runner = runner

    async def _stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for site in list(runner.sites):
            await site.stop()  # the listening socket first: connects are refused
        for transport in list(self._transports):
            transport.abort()  # then every connection, idle or busy: resets
        self._transports.clear()
        await runner.cleanup()

    # -- handlers -------------------------------------------------------------------

    def _track(self, request: web.Request) -> None:
        transport = request.transport
        if transport is not None and transport not in self._transports:
            self._transports.add(transport)
            # Forget closed transports so the set does not grow without bound.
            if len(self._transports) > 256:
                self._transports = {t for t in self._transports if not t.is_closing()}

    def _answer(self, status: int, request: web.Request) -> web.Response:
        headers = {UPSTREAM_HEADER: self.name}
        if status in (204, 304):
            return web.Response(status=status, headers=headers)
        if status >= 400:
            return web.Response(status=status, text=f"{self.name} {status}", headers=headers)
        body = {"server": self.name, "path": request.path}
        return web.json_response(body, status=status, headers=headers)

    async def _health(self, request: web.Request) -> web.StreamResponse:
        self._track(request)
        self.health_hits += 1
        self.health_methods[request.method] += 1
        if self.health_delay:
            await asyncio.sleep(self.health_delay)
        return self._answer(self.health_status, request)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self._track(request)
        await request.read()
        self.hits[request.path] += 1
        self.methods[request.method] += 1
        self.arrivals.append(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._respond(request)
        finally:
            self.in_flight -= 1
            self.completed += 1

    async def _respond(self, request: web.Request) -> web.StreamResponse:
        delay = float(request.query.get("delay", "0"))
        if self.mode == "slow":
            delay = max(delay, self.delay)
        if delay:
            await asyncio.sleep(delay)
        if self.mode == "drop":
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError  # aiohttp: nothing more to write
        if "truncate" in request.query:
            return await self._truncated(request)
        if self.failures_left > 0:
            self.failures_left -= 1
            return self._answer(self.failure_status, request)
        status = self.status if self.mode == "status" else 200
        status = int(request.query.get("status", status))
        return self._answer(status, request)

    async def _truncated(self, request: web.Request) -> web.StreamResponse:
        """Promise 1,000 bytes, send the head and 10 of them, then reset."""
        response = web.StreamResponse(headers={UPSTREAM_HEADER: self.name})
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b"x" * 10)
        await asyncio.sleep(0.05)  # let the head and the bytes reach the client
        assert request.transport is not None
        request.transport.abort()
        raise asyncio.CancelledError


class Fleet:
    """The controlled upstreams of one test; all stopped afterwards."""

    def __init__(self, bg: BackgroundLoop) -> None:
        self.bg = bg
        self.started: list[ControlledUpstream] = []

    def __call__(self, name: str) -> ControlledUpstream:
        upstream = ControlledUpstream(self.bg, name).start()
        self.started.append(upstream)
        return upstream

    def close(self) -> None:
        for upstream in self.started:
            upstream.stop()


@pytest.fixture(name="upstreams")
def upstreams_fixture(bg: BackgroundLoop) -> Iterator[Fleet]:
    """Factory: ``upstreams("blue")`` starts a ControlledUpstream named blue."""
    fleet = Fleet(bg)
    yield fleet
    fleet.close()


# -- config -----------------------------------------------------------------------

QUIET_SERVICE: dict[str, Any] = {
    # Off unless a test is about it: each would otherwise act on the others' faults.
    "circuit_breaker": {"enabled": False},
    "health_check": {"passive": None},
    "retries": {"attempts": 0},
}


def one_service(
    targets: list[dict[str, Any]],
    *,
    name: str = "api",
    route: dict[str, Any] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """A gateway config: service ``name`` with ``targets``, one catch-all route."""
    service = {**QUIET_SERVICE, **settings, "targets": targets}
    return {
        "services": {name: service},
        "routes": [{"name": "all", "match": {"path": "/"}, "service": name, **(route or {})}],
    }


# -- load -------------------------------------------------------------------------


@dataclass
class Outcome:
    at: float
    status: int  # 0: the request failed without a response
    upstream: str
    error: str = ""


@dataclass
class Load:
    """GETs from ``threads`` keep-alive clients until ``stop()``."""

    url: str
    path: str = "/load"
    threads: int = 2
    timeout: float = 5.0
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, name=f"load-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=self.timeout + 5)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=self.timeout) as http:
            while not self._stop.is_set():
                try:
                    response = http.get(self.path)
                except httpx.HTTPError as exc:
                    outcome = Outcome(time.monotonic(), 0, "", repr(exc))
                else:
                    served = response.headers.get(UPSTREAM_HEADER, "")
                    detail = "" if response.status_code == 200 else response.text[:300]
                    outcome = Outcome(time.monotonic(), response.status_code, served, detail)
                self.outcomes.append(outcome)

    def wait_requests(self, count: int, timeout: float = 10.0) -> None:
        """Block until ``count`` more requests have completed."""
        goal = len(self.outcomes) + count
        deadline = time.monotonic() + timeout
        while len(self.outcomes) < goal:
            if time.monotonic() > deadline:
                raise TimeoutError(f"load made {len(self.outcomes)} of {goal} requests")
            time.sleep(0.005)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 200]

    def served_by(self, since: float = 0.0) -> Counter[str]:
        return Counter(o.upstream for o in self.outcomes if o.at >= since and o.status == 200)


def pipelined(
    port: int, requests: list[bytes], *, connections: int = 8, batch: int = 50
) -> list[RawResponse]:
    """Send ``requests`` over ``connections`` keep-alive connections in
    parallel, pipelined ``batch`` at a time; the responses in request order."""
    responses: list[RawResponse | None] = [None] * len(requests)
    errors: list[BaseException] = []
    size = -(-len(requests) // connections)

    def run(first: int, last: int) -> None:
        try:
            with RawClient(port, timeout=10) as raw:
                for start in range(first, last, batch):
                    stop = min(start + batch, last)
                    raw.send(b"".join(requests[start:stop]))
                    for index in range(start, stop):
                        responses[index] = raw.read_response()
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    workers = [
        threading.Thread(target=run, args=(first, min(first + size, len(requests))), daemon=True)
        for first in range(0, len(requests), size)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    if errors:
        raise errors[0]
    done = [response for response in responses if response is not None]
    assert len(done) == len(requests), "a connection stalled"
    return done


def get_request(path: str = "/w", *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: gw.test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def blast(port: int, total: int, path: str = "/w", **options: int) -> Counter[int]:
    """``total`` pipelined GETs of ``path``; a count of the statuses."""
    responses = pipelined(port, [get_request(path)] * total, **options)
    return Counter(response.status for response in responses)


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> float | None:
    """Seconds until ``predicate()`` held, or None if it did not within ``timeout``."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(interval)
