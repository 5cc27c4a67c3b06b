"""Graceful stop of a real ``propylon run`` process.

SIGTERM (or SIGINT) closes the listener at once, closes idle keep-alive
connections, lets in-flight requests finish for up to graceful_timeout, then
cuts what is left and exits 0. A second signal exits immediately.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support.faults import cancel_handlers_on_disconnect
from tests.support.gateway import simple_config, wait_until


@dataclass
class InFlight:
    """A GET running in a thread; keeps its status or the error it raised."""

    url: str
    status: int | None = None
    error: BaseException | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.status = httpx.get(self.url, timeout=15).status_code
        except httpx.HTTPError as exc:
            self.error = exc

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"request to {self.url} still running"


def _config(upstream_url: str, graceful: str) -> dict[str, object]:
    return simple_config(upstream_url, gateway={"graceful_timeout": graceful})


def _is_served(port: int) -> bool:
    """Does a new connection get an answer? False if refused, reset or closed."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n")
            return sock.recv(1024).startswith(b"HTTP/1.1 ")
    except OSError:  # refused, reset, or timed out
        return False


def _wait_exit(gw, timeout: float) -> tuple[int, float]:
    started = time.monotonic()
    code = gw.wait(timeout)
    return code, time.monotonic() - started


def test_sigterm_lets_in_flight_requests_finish(gateway_process, upstream) -> None:
    gw = gateway_process(_config(upstream.url, "5s"))
    requests = [InFlight(gw.url + f"/slow?delay=1&n={index}") for index in range(3)]
    assert wait_until(lambda: len(upstream.requests) == 3, timeout=2.0)
    signaled = time.monotonic()
    gw.signal(signal.SIGTERM)
    assert wait_until(lambda: not _is_served(gw.port), timeout=0.5)
    # Still refusing while the three are in flight (they end about 1 s in).
    assert all(request.status is None for request in requests)
    assert not _is_served(gw.port)
    with pytest.raises(httpx.ConnectError):
        httpx.get(gw.url + "/health", timeout=1)
    for request in requests:
        request.join(5)
    assert [(r.status, r.error) for r in requests] == [(200, None)] * 3
    code, _ = _wait_exit(gw, 5)
    assert code == 0
    assert time.monotonic() - signaled < 5.0


def test_sigterm_cuts_requests_slower_than_graceful_timeout(gateway_process, upstream) -> None:
    cancel_handlers_on_disconnect(upstream)
    gw = gateway_process(_config(upstream.url, "500ms"))
    request = InFlight(gw.url + "/slow?delay=5")
    assert wait_until(lambda: len(upstream.requests) == 1, timeout=2.0)
    gw.signal(signal.SIGTERM)
    code, elapsed = _wait_exit(gw, 5)
    assert code == 0
    assert 0.4 <= elapsed <= 1.5
    request.join(2)
    assert request.status is None
    assert wait_until(lambda: upstream.cancelled == ["/slow?delay=5"], timeout=1.0)
    assert isinstance(request.error, httpx.RemoteProtocolError | httpx.ReadError)
    # The upstream request did not outlive the gateway.
    assert wait_until(lambda: upstream.cancelled == ["/slow?delay=5"], timeout=1.0)


def test_sigint_drains_like_sigterm(gateway_process, upstream) -> None:
    gw = gateway_process(_config(upstream.url, "5s"))
    request = InFlight(gw.url + "/slow?delay=1")
    assert wait_until(lambda: len(upstream.requests) == 1, timeout=2.0)
    gw.signal(signal.SIGINT)
    assert wait_until(lambda: not _is_served(gw.port), timeout=0.5)
    request.join(5)
    assert (request.status, request.error) == (200, None)
    code, _ = _wait_exit(gw, 5)
    assert code == 0


def test_second_sigterm_during_drain_exits_at_once(gateway_process, upstream) -> None:
    cancel_handlers_on_disconnect(upstream)
    gw = gateway_process(_config(upstream.url, "10s"))
    request = InFlight(gw.url + "/slow?delay=5")
    assert wait_until(lambda: len(upstream.requests) == 1, timeout=2.0)
    gw.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert gw.process.poll() is None  # draining, waiting for the slow request
    gw.signal(signal.SIGTERM)
    _, elapsed = _wait_exit(gw, 5)
    assert elapsed < 0.5
    request.join(2)
    assert request.status is None
    assert wait_until(lambda: upstream.cancelled == ["/slow?delay=5"], timeout=1.0)


def test_idle_keep_alive_connections_do_not_delay_the_stop(gateway_process, upstream) -> None:
    gw = gateway_process(_config(upstream.url, "10s"))
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(httpx.Client(timeout=5))
        assert client.get(gw.url + "/pooled").status_code == 200  # now idle, kept alive
        served = stack.enter_context(socket.create_connection(("127.0.0.1", gw.port), timeout=5))
        served.sendall(b"GET /raw HTTP/1.1\r\nHost: test\r\n\r\n")
        assert served.recv(65536).startswith(b"HTTP/1.1 200")
        silent = stack.enter_context(socket.create_connection(("127.0.0.1", gw.port), timeout=5))
        assert wait_until(lambda: len(upstream.requests) == 2, timeout=2.0)
        gw.signal(signal.SIGTERM)
        code, elapsed = _wait_exit(gw, 5)
        assert code == 0
        assert elapsed < 1.0
        for sock in (served, silent):
            sock.settimeout(2)
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(65536) == b""


def test_a_request_not_yet_read_on_an_idle_connection_is_answered_during_a_drain(
    bg, gateway, upstream
) -> None:
    """The keep-alive race of a drain: the client sends on a connection the
    gateway thinks idle, just before the gateway closes idle connections.
    Reading is held back here so the request is certainly still unread in
    the socket when the drain looks; it must be answered, not dropped."""
    import asyncio

    from tests.support.wire import RawClient

    gw = gateway(simple_config(upstream.url))
    with RawClient(gw.port) as client:
        client.send(b"GET /first HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        assert client.read_response().status == 200
        (conn,) = gw.state.connections
        bg.run(asyncio.sleep(0, conn.transport.pause_reading()))
        client.send(b"GET /second HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        time.sleep(0.05)  # in the gateway's socket buffer, unread

        async def drain_then_read() -> None:
            stopping = asyncio.ensure_future(gw.gateway.stop(5.0))
            await asyncio.sleep(0.05)  # the drain has looked at the idle connection
            conn.transport.resume_reading()
            await stopping

        bg.run(drain_then_read())
        second = client.read_response()
        assert second.status == 200
        assert second.header("connection") == "close"
    assert [seen.path for seen in upstream.requests] == ["/first", "/second"]
