"""What clients see when the upstream fails, and what the gateway does upstream.

Failures before any response byte went out become problem+json answers
(502 upstream failed, 504 upstream timeout); failures after that can only cut
the client connection, so a truncated body is never mistaken for a whole one.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import threading
import time

import httpx
import pytest

from tests.support.faults import cancel_handlers_on_disconnect, closed_port, unaccepting_listener
from tests.support.gateway import service, simple_config, wait_until
from tests.support.raw import read_request_head

PROBLEM = "application/problem+json"
_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


def _with_service(url: str, **settings: object) -> dict[str, object]:
    config = simple_config(url)
    config["services"] = {"up": service(url, **settings)}
    return config


def _assert_problem(response: httpx.Response, status: int, kind: str) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail", "request_id"}
    assert body["status"] == status
    assert kind in body["type"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    return body


def _curl_exit(url: str) -> int:
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "5", "-o", "/dev/null", url],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return result.returncode


def _read_until_cut(url: str) -> tuple[int, bytes, Exception | None, float]:
    """GET ``url`` and read the body: (status, body read, error, seconds)."""
    received = bytearray()
    status = 0
    error: Exception | None = None
    started = time.monotonic()
    try:
        with httpx.stream("GET", url, timeout=5) as response:
            status = response.status_code
            for chunk in response.iter_raw():
                received += chunk
    except httpx.TransportError as exc:
        error = exc
    return status, bytes(received), error, time.monotonic() - started


# A cut response: h11 notices the missing bytes, or the socket is reset.
TRUNCATED = (httpx.RemoteProtocolError, httpx.ReadError)


# curl: 18 = transfer closed with outstanding data; 56 = receive failure (reset)
CURL_TRUNCATED = {18, 56}


# -- failures before the response starts --------------------------------------


def test_connect_refused_is_a_quick_502(gateway) -> None:
    gw = gateway(simple_config(f"http://127.0.0.1:{closed_port()}"))
    started = time.monotonic()
    response = httpx.get(gw.url + "/anything", timeout=5)
    elapsed = time.monotonic() - started
    body = _assert_problem(response, 502, "upstream")
    assert str(body["detail"]).startswith("cannot connect")
    assert elapsed < 1.0


def test_read_timeout_is_504_and_cancels_the_upstream_request(gateway, upstream) -> None:
    cancel_handlers_on_disconnect(upstream)
    gw = gateway(_with_service(upstream.url, timeouts={"read": "500ms"}))
    started = time.monotonic()
    response = httpx.get(gw.url + "/slow?delay=5", timeout=5)
    elapsed = time.monotonic() - started
    _assert_problem(response, 504, "upstream-timeout")
    assert 0.45 <= elapsed <= 1.5
    # The gateway closed its upstream connection, so aiohttp cancelled the handler.
    assert wait_until(lambda: upstream.cancelled == ["/slow?delay=5"], timeout=1.0)


def test_connect_timeout_is_504(gateway) -> None:
    with unaccepting_listener() as port:
        gw = gateway(_with_service(f"http://127.0.0.1:{port}", timeouts={"connect": "300ms"}))
        started = time.monotonic()
        response = httpx.get(gw.url + "/x", timeout=5)
        elapsed = time.monotonic() - started
    _assert_problem(response, 504, "upstream-timeout")
    assert 0.3 <= elapsed <= 1.5


def test_upstream_closing_without_an_answer_is_502(gateway, scripted) -> None:
    async def hang_up(reader, writer) -> None:
        await read_request_head(reader)

    up = scripted(hang_up)
    gw = gateway(simple_config(up.url))
    started = time.monotonic()
    response = httpx.get(gw.url + "/x", timeout=5)
    _assert_problem(response, 502, "upstream")
    assert time.monotonic() - started < 1.0
    assert up.connections == 1  # a fresh connection failing is not retried


def test_upstream_garbage_is_502(gateway, scripted) -> None:
    async def garbage(reader, writer) -> None:
        await read_request_head(reader)
        writer.write(b"HELLO\r\n\r\n")
        await writer.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader.read(), 5)

    up = scripted(garbage)
    gw = gateway(simple_config(up.url))
    response = httpx.get(gw.url + "/x", timeout=5)
    _assert_problem(response, 502, "upstream")
    assert b"HELLO" not in response.content


# -- failures after the response started: the client must see a truncation -----


def test_total_timeout_cuts_a_trickling_response(gateway, scripted) -> None:
    upstream_gone = threading.Event()

    async def trickle(reader, writer) -> None:
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        try:
            for _ in range(100):  # 10 s at most
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.1)
        except ConnectionError:
            upstream_gone.set()
            raise

    up = scripted(trickle)
    gw = gateway(_with_service(up.url, timeouts={"total": "700ms"}))
    status, body, error, elapsed = _read_until_cut(gw.url + "/x")
    assert status == 200
    assert isinstance(error, TRUNCATED), error
    assert 0.6 <= elapsed <= 1.5
    assert 0 < len(body) < 1000000
    assert upstream_gone.wait(2.0), "the gateway kept the upstream connection open"


def test_read_timeout_mid_body_cuts_the_client(gateway, scripted) -> None:
    upstream_gone = threading.Event()

    async def stalls(reader, writer) -> None:
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"s" * 1000)
        await writer.drain()
        with contextlib.suppress(TimeoutError):
            if await asyncio.wait_for(reader.read(), 5) == b"":
                upstream_gone.set()

    gw = gateway(_with_service(scripted(stalls).url, timeouts={"read": "500ms"}))
    status, body, error, elapsed = _read_until_cut(gw.url + "/x")
    assert status == 200
    assert isinstance(error, TRUNCATED), error
    assert body == b"s" * 1000
    assert 0.45 <= elapsed <= 1.5
    assert upstream_gone.wait(1.0), "the gateway kept the stalled upstream connection"


def _dies_mid_body(chunked: bool):
    async def handler(reader, writer) -> None:
        await read_request_head(reader)
        if chunked:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(b"3e8\r\n" + b"y" * 1000 + b"\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"y" * 1000)
        await writer.drain()
        # Returning closes the connection in the middle of the body.

    return handler


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_upstream_dying_mid_body_truncates_for_httpx(gateway, scripted, chunked) -> None:
    gw = gateway(simple_config(scripted(_dies_mid_body(chunked)).url))
    status, body, error, _ = _read_until_cut(gw.url + "/x")
    assert status == 200
    assert isinstance(error, TRUNCATED), error
    assert body == b"y" * 1000


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_upstream_dying_mid_body_truncates_for_curl(gateway, scripted, chunked) -> None:
    gw = gateway(simple_config(scripted(_dies_mid_body(chunked)).url))
    assert _curl_exit(gw.url + "/x") in CURL_TRUNCATED


def test_upstream_dying_mid_chunked_body_sends_no_last_chunk(gateway, scripted) -> None:
    gw = gateway(simple_config(scripted(_dies_mid_body(chunked=True)).url))
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: test\r\n\r\n")
        data = bytearray()
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.lower().startswith(b"http/1.1 200")
    assert b"transfer-encoding: chunked" in head.lower()
    assert not body.endswith(b"0\r\n\r\n")


# -- stale pooled connections -----------------------------------------------------


def test_pooled_connection_closed_after_response_is_not_used(gateway, scripted) -> None:
    async def one_then_close(reader, writer) -> None:
        await read_request_head(reader)
        writer.write(_OK)  # keep-alive by default, then close at once
        await writer.drain()

    up = scripted(one_then_close)
    gw = gateway(simple_config(up.url))
    with httpx.Client(timeout=5) as client:
        for index in range(5):
            response = client.get(gw.url + f"/n{index}")
            assert response.status_code == 200, response.text
            assert response.text == "ok"
            time.sleep(0.05)
    assert up.connections == 5


async def _answers_first_request_only(reader, writer) -> None:
    """Answer one request per connection; hang up when the next one arrives.

    This is the pooled-connection race made deterministic: the upstream
    drops a keep-alive connection just as the gateway reuses it.
    """
    await read_request_head(reader)
    writer.write(_OK)
    await writer.drain()
    await read_request_head(reader)


def test_stale_pooled_connection_is_retried_for_get(gateway, scripted) -> None:
    up = scripted(_answers_first_request_only)
    gw = gateway(simple_config(up.url))
    with httpx.Client(timeout=5) as client:
        assert client.get(gw.url + "/first").status_code == 200
        assert gw.state.services["up"].pools[0].idle_count() == 1
        response = client.get(gw.url + "/second")
    assert response.status_code == 200, response.text
    assert response.text == "ok"
    assert up.connections == 2
    assert up.received_bytes.count(b"GET /second ") == 2  # dropped once, retried once


def test_stale_pooled_connection_is_not_retried_for_post(gateway, scripted) -> None:
    up = scripted(_answers_first_request_only)
    gw = gateway(simple_config(up.url))
    with httpx.Client(timeout=5) as client:
        assert client.get(gw.url + "/first").status_code == 200
        assert gw.state.services["up"].pools[0].idle_count() == 1
        response = client.post(gw.url + "/submit", content=b"payload=1")
    _assert_problem(response, 502, "upstream")
    time.sleep(0.2)  # a retry would have connected again by now
    assert up.received_bytes.count(b"POST /submit ") <= 1
    assert up.connections == 1


# -- cancellation and the pool ------------------------------------------------------


def test_client_disconnect_cancels_the_upstream_request(gateway, upstream) -> None:
    cancel_handlers_on_disconnect(upstream)
    gw = gateway(simple_config(upstream.url))
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(b"GET /slow?delay=5 HTTP/1.1\r\nHost: test\r\n\r\n")
        assert wait_until(lambda: len(upstream.requests) == 1, timeout=1.0)
        time.sleep(0.3)
    closed = time.monotonic()
    assert wait_until(lambda: upstream.cancelled == ["/slow?delay=5"], timeout=1.0)
    assert time.monotonic() - closed < 1.0


def test_pool_keeps_idle_connections_and_expires_them(gateway, upstream) -> None:
    gw = gateway(_with_service(upstream.url, pool={"idle_timeout": "300ms"}))
    pool = gw.state.services["up"].pools[0]
    with httpx.Client(timeout=5) as client:
        for index in range(5):
            assert client.get(gw.url + f"/seq{index}").status_code == 200
    assert pool.idle_count() == 1
    assert pool.opened == 1
    assert upstream.connections == 1

    # Three at once need three connections; all of them go back to the pool.
    results: list[int] = []

    def fetch() -> None:
        results.append(httpx.get(gw.url + "/slow?delay=0.3", timeout=5).status_code)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    released = time.monotonic()
    assert results == [200, 200, 200]
    assert pool.idle_count() == 3
    assert pool.opened == 3

    assert wait_until(lambda: pool.idle_count() == 0, timeout=2.0)
    expired_after = time.monotonic() - released
    assert 0.25 <= expired_after <= 1.5
    assert httpx.get(gw.url + "/again", timeout=5).status_code == 200
    assert pool.opened == 4  # the expired connections were really closed
