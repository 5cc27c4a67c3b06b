"""WebSocket through the gateway: the Upgrade is forwarded, a 101 turns the
client connection into a raw tunnel, and anything but a 101 stays plain HTTP.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.gateway import simple_config, wait_until
from tests.support.raw import parse_responses, read_request_head


def _ws_connect(url: str):
    return connect(
        url.replace("http://", "ws://"),
        proxy=None,
        open_timeout=5,
        close_timeout=2,
        compression=None,
        max_size=None,
    )


def _tunnel_torn_down(gw) -> bool:
    pool = gw.state.services["up"].pools[0]
    return not gw.state.connections and pool.in_flight == 0


def test_websocket_echo_through_the_gateway(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    with _ws_connect(gw.url + "/ws") as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "echo:hello"
        ws.send(b"\x00\x01\xfe\xff")
        assert ws.recv(timeout=5) == b"\x00\x01\xfe\xff"
        # Many both ways without waiting for each echo, text and binary mixed.
        for index in range(50):
            ws.send(f"text {index}" if index % 2 else b"bin %d" % index)
        for index in range(50):
            expected = f"echo:text {index}" if index % 2 else b"bin %d" % index
            assert ws.recv(timeout=5) == expected
        large = os.urandom(2 * 1024 * 1024)
        ws.send(large)
        assert ws.recv(timeout=10) == large
        ws.close()
    assert ws.close_code == 1000

    seen = upstream.requests[0]
    assert seen.path == "/ws"
    assert seen.headers["upgrade"].lower() == "websocket"
    assert "upgrade" in seen.headers["connection"].lower()
    assert seen.headers["sec-websocket-key"]
    assert seen.headers["sec-websocket-version"] == "13"
    assert seen.headers["x-request-id"]
    assert wait_until(lambda: _tunnel_torn_down(gw), timeout=2.0)


def test_active_tunnel_outlives_the_http_timeouts(gateway, upstream) -> None:
    """read/total bound an HTTP exchange; a busy WebSocket is not one."""
    config = simple_config(upstream.url)
    config["services"]["up"]["timeouts"] = {"read": "500ms", "total": "500ms"}
    gw = gateway(config)
    with _ws_connect(gw.url + "/ws") as ws:
        until = time.monotonic() + 1.5
        sent = 0
        while time.monotonic() < until:
            ws.send(f"tick {sent}")
            assert ws.recv(timeout=5) == f"echo:tick {sent}"
            sent += 1
            time.sleep(0.2)
        ws.close()
    assert ws.close_code == 1000
    assert sent >= 6


def test_client_dropping_the_tunnel_releases_the_upstream(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    with _ws_connect(gw.url + "/ws") as ws:
        ws.send("ping")
        assert ws.recv(timeout=5) == "echo:ping"
        assert len(gw.state.connections) == 1
        ws.close_socket()  # no close frame: the TCP connection just goes away
    assert wait_until(lambda: _tunnel_torn_down(gw), timeout=2.0)
    assert gw.state.services["up"].pools[0].idle_count() == 0


def test_upgrade_answered_without_101_stays_a_plain_response(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    request = (
        b"GET /plain HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(request)
        data = bytearray()
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):  # ends only when the gateway closes
                data += chunk
        closed_after = time.monotonic() - started
    [(status, headers, body)] = parse_responses(bytes(data))
    assert status == 200
    assert headers["connection"].lower() == "close"
    assert "upgrade" not in headers
    assert headers["content-type"].startswith("application/json")
    assert b'"path":"/plain"' in body.replace(b" ", b"")
    assert closed_after < 2.0
    assert upstream.requests[0].headers["upgrade"].lower() == "websocket"


def test_websocket_client_sees_the_non_101_status(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    with pytest.raises(InvalidStatus) as caught, _ws_connect(gw.url + "/status/403"):
        pass
    assert caught.value.response.status_code == 403
    assert wait_until(lambda: not gw.state.connections, timeout=2.0)


def test_upstream_ending_the_tunnel_delivers_everything_then_closes(gateway, scripted) -> None:
    """After a 101 the bytes are opaque: all of them arrive, then the close."""
    size = 8 * 1024 * 1024

    async def switch_send_and_hang_up(reader, writer) -> None:
        await read_request_head(reader)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: raw\r\n\r\n"
        )
        for _ in range(size // 65536):
            writer.write(b"t" * 65536)
            await writer.drain()

    gw = gateway(simple_config(scripted(switch_send_and_hang_up).url))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", gw.port))
        sock.sendall(
            b"GET /tunnel HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: raw\r\n\r\n"
        )
        time.sleep(0.5)  # let the gateway hit backpressure before reading
        data = bytearray()
        while chunk := sock.recv(1024 * 1024):
            data += chunk
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    assert len(rest) == size
    assert rest.count(b"t") == size
    assert wait_until(lambda: _tunnel_torn_down(gw), timeout=2.0)
