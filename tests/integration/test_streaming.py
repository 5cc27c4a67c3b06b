"""Large bodies stream through the gateway with flat memory, both directions.

The gateway runs as a real ``propylon run`` child so its RSS can be sampled
while gigabytes pass through it: a proxy that buffered instead of applying
backpressure would grow by the size of the body.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.faults import narrow_send_buffer
from tests.support.gateway import service, simple_config, wait_until
from tests.support.raw import read_request_head
from tests.support.rss import MB, RssSampler

GB = 1024 * MB
# Sizes are module constants so a slow CI box can lower them in one place.
DOWNLOAD_BYTES = 1 * GB
CHUNKED_DOWNLOAD_BYTES = 1 * GB
UPLOAD_BYTES = 1 * GB
CHUNKED_UPLOAD_BYTES = 256 * MB
SLOW_READ_BYTES = 64 * MB
# What the gateway may grow by while a body many times this size passes.
RSS_SLACK = 64 * MB
SLOW_READ_RSS_SLACK = 16 * MB

_BLOCK = bytes(range(256)) * 1024  # 256 KiB, not all one byte value


def _config(upstream_url: str) -> dict[str, object]:
    return simple_config(upstream_url, gateway={"limits": {"max_body": "4GB"}})


def _patterned(total: int, digest: hashlib._Hash) -> Iterator[bytes]:
    """Yield ``total`` bytes in 256 KiB blocks, hashing what is yielded."""
    sent = 0
    while sent < total:
        piece = _BLOCK[: min(len(_BLOCK), total - sent)]
        digest.update(piece)
        sent += len(piece)
        yield piece


@pytest.mark.slow
@pytest.mark.parametrize(
    ("chunked", "size"),
    [(False, DOWNLOAD_BYTES), (True, CHUNKED_DOWNLOAD_BYTES)],
    ids=["content-length", "chunked"],
)
def test_download_streams_with_flat_memory(gateway_process, upstream, chunked, size) -> None:
    gw = gateway_process(_config(upstream.url))
    query = f"/bytes?n={size}" + ("&chunked=1" if chunked else "")
    received = 0
    foreign = 0
    started = time.monotonic()
    with (
        RssSampler(gw.pid) as rss,
        httpx.Client(timeout=30) as client,
        client.stream("GET", gw.url + query) as response,
    ):
        assert response.status_code == 200
        if chunked:
            assert response.headers["transfer-encoding"] == "chunked"
            assert "content-length" not in response.headers
        else:
            assert response.headers["content-length"] == str(size)
        for chunk in response.iter_raw(1024 * 1024):
            received += len(chunk)
            foreign += len(chunk) - chunk.count(b"x")
    elapsed = time.monotonic() - started
    print(
        f"download {'chunked' if chunked else 'content-length'} {size / MB:.0f} MB "
        f"in {elapsed:.1f}s ({size / MB / elapsed:.0f} MB/s); {rss.summary()}"
    )
    assert received == size
    assert foreign == 0
    assert rss.growth < RSS_SLACK, rss.summary()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("chunked", "size"),
    [(False, UPLOAD_BYTES), (True, CHUNKED_UPLOAD_BYTES)],
    ids=["content-length", "chunked"],
)
def test_upload_streams_with_flat_memory(gateway_process, upstream, chunked, size) -> None:
    gw = gateway_process(_config(upstream.url))
    digest = hashlib.sha256()
    headers = {} if chunked else {"content-length": str(size)}
    started = time.monotonic()
    with RssSampler(gw.pid) as rss, httpx.Client(timeout=30) as client:
        response = client.post(
            gw.url + "/upload", content=_patterned(size, digest), headers=headers
        )
    elapsed = time.monotonic() - started
    print(
        f"upload {'chunked' if chunked else 'content-length'} {size / MB:.0f} MB "
        f"in {elapsed:.1f}s ({size / MB / elapsed:.0f} MB/s); {rss.summary()}"
    )
    assert response.status_code == 200
    assert response.json() == {"length": size, "sha256": digest.hexdigest()}
    seen = upstream.requests[-1].headers
    if chunked:
        assert seen.get("transfer-encoding") == "chunked"
        assert "content-length" not in seen
    else:
        assert seen.get("content-length") == str(size)
        assert "transfer-encoding" not in seen
    assert rss.growth < RSS_SLACK, rss.summary()


def test_slow_reader_holds_the_upstream_back(gateway_process, upstream) -> None:
    """A client that reads slowly must not make the gateway buffer the body."""
    gw = gateway_process(_config(upstream.url))
    request = f"GET /bytes?n={SLOW_READ_BYTES} HTTP/1.1\r\nHost: test\r\n\r\n".encode()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", gw.port))
        with RssSampler(gw.pid) as rss:
            sock.sendall(request)
            received = bytearray()
            # Two seconds at about 1 MB/s: the upstream could send the whole
            # body in a fraction of that, so only backpressure keeps it back.
            slow_until = time.monotonic() + 2.0
            while time.monotonic() < slow_until:
                received += sock.recv(16 * 1024)
                time.sleep(0.015)
            slow_phase = rss.peak - rss.start
            slow_bytes = len(received)
        head_end = received.index(b"\r\n\r\n") + 4
        head = bytes(received[:head_end]).lower()
        assert head.startswith(b"http/1.1 200")
        assert b"content-length: %d\r\n" % SLOW_READ_BYTES in head
        body = len(received) - head_end
        deadline = time.monotonic() + 30
        while body < SLOW_READ_BYTES and time.monotonic() < deadline:
            chunk = sock.recv(1024 * 1024)
            if not chunk:
                break
            body += len(chunk)
    print(
        f"slow reader: {slow_bytes / MB:.1f} MB read in the slow phase, "
        f"rss growth then {slow_phase / MB:.1f} MB; {rss.summary()}"
    )
    assert slow_bytes < SLOW_READ_BYTES // 4  # the slow phase really was slow
    assert slow_phase < SLOW_READ_RSS_SLACK, rss.summary()
    assert body == SLOW_READ_BYTES


# -- backpressure bookkeeping on a keep-alive gateway (in-process) --------------


def _with_service(url: str, **settings: object) -> dict[str, object]:
    config = simple_config(url, gateway={"limits": {"idle_timeout": "3s"}})
    config["services"] = {"up": service(url, **settings)}
    return config


def _recv_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read one Content-Length response: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the body"
        body += chunk
    return head, body


def test_slow_reader_is_not_a_read_timeout(gateway, upstream) -> None:
    """A paused upstream (the client is slow) is not an upstream that stopped."""
    gw = gateway(_with_service(upstream.url, timeouts={"read": "500ms"}))
    size = 16 * MB  # well past what loopback socket buffers hold
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(f"GET /bytes?n={size} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        time.sleep(1.5)  # three read timeouts long, reading nothing
        head, body = _recv_response(sock)
    assert head.startswith(b"HTTP/1.1 200")
    assert len(body) == size


def test_close_delimited_upstream_body_is_rechunked_complete(gateway, scripted) -> None:
    size = 3 * MB

    async def close_delimited(reader, writer) -> None:
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
        for _ in range(size // 65536):
            writer.write(b"c" * 65536)
            await writer.drain()

    gw = gateway(simple_config(scripted(close_delimited).url))
    with httpx.stream("GET", gw.url + "/x", timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        body = response.read()
    assert body == b"c" * size


async def _keep_alive_upstream(reader, writer) -> None:
    """/big answers 100 KB in one write, anything else a tiny body."""
    while True:
        head = await read_request_head(reader)
        body = b"b" * 100_000 if head.startswith(b"GET /big ") else b"ok"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()


def test_response_ending_under_backpressure_leaves_the_pool_usable(gateway, scripted) -> None:
    up = scripted(_keep_alive_upstream)
    gw = gateway(_with_service(up.url, timeouts={"read": "1s"}))
    pool = gw.state.services["up"].pools[0]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.settimeout(5)
        slow.connect(("127.0.0.1", gw.port))
        assert wait_until(lambda: len(gw.state.connections) == 1, timeout=2.0)
        [client_side] = gw.state.connections
        narrow_send_buffer(client_side.transport)
        # The whole response arrives in one upstream read and ends there, but
        # most of it cannot be written to the slow client yet.
        slow.sendall(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n")
        assert wait_until(lambda: pool.idle_count() == 1 and pool.in_flight == 0, timeout=2.0)
        started = time.monotonic()
        following = httpx.get(gw.url + "/small", timeout=5)  # reuses that connection
        elapsed = time.monotonic() - started
        head, body = _recv_response(slow)
    assert head.startswith(b"HTTP/1.1 200")
    assert body == b"b" * 100_000
    assert (following.status_code, following.text) == (200, "ok")
    assert elapsed < 0.5
    assert up.connections == 1


def test_early_upstream_answer_to_an_upload_leaves_the_client_readable(
    gateway, scripted, bg
) -> None:
    size = 120_000

    async def answers_before_reading_the_body(reader, writer) -> None:
        while True:
            head = await read_request_head(reader)
            # Answer at once (an early 401 or 413, say), keeping the connection.
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            if head.startswith(b"POST "):
                await asyncio.sleep(0.3)
                await reader.readexactly(size)  # then drain the body, as Node does

    up = scripted(answers_before_reading_the_body)
    gw = gateway(_with_service(up.url))
    pool = gw.state.services["up"].pools[0]
    assert httpx.get(gw.url + "/warm", timeout=5).status_code == 200

    async def narrow_pooled() -> None:
        conn = pool.take_idle()
        assert conn is not None
        narrow_send_buffer(conn.transport)
        pool.release(conn)

    bg.run(narrow_pooled())
    with socket.create_connection(("127.0.0.1", gw.port), timeout=2) as sock:
        head = b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n" % size
        sock.sendall(head + b"u" * size)
        first, _ = _recv_response(sock)
        assert first.startswith(b"HTTP/1.1 200")
        if len(gw.state.connections) != 1:
            # The gateway had not read the whole body when the answer came, so
            # it rightly closed: the situation under test did not arise.
            pytest.skip("the answer overtook the upload; nothing to check")
        # The same keep-alive connection must go on serving.
        sock.sendall(b"GET /next HTTP/1.1\r\nHost: test\r\n\r\n")
        try:
            second, body = _recv_response(sock)
        except TimeoutError:
            pytest.fail("the gateway never read the next request on this connection")
    assert second.startswith(b"HTTP/1.1 200")
    assert body == b"ok"
