"""Helpers for hostile-client tests: a socket that reports how the server
ended the exchange, and a scripted upstream that speaks just enough HTTP/1.1.

``Wire`` answers the three questions malformed-input tests ask: what bytes
came back, did the server close the connection, and how long did it take.
``http_ok`` is a keep-alive upstream handler for ``ScriptedUpstream`` that
reads each request (Content-Length or chunked body) and answers ``200 ok``,
so the same upstream records bytes for "nothing was forwarded" checks and
still serves the "the gateway is not wedged" request afterwards.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass

from tests.support.raw import Handler


@dataclass
class Received:
    data: bytes
    closed: bool  # the server closed (FIN or RST) before the wait ran out
    elapsed: float  # seconds the read took (to the close, or the whole wait)


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    size: int  # bytes it took on the wire


class Wire:
    """One raw client connection to a server under test."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.closed = False

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> bool:
        """Send; False when the server has already closed the connection."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True
            return False
        return True

    def poll(self, wait: float) -> bool:
        """Read whatever arrives within ``wait``; True if anything (or a close) did."""
        if self.closed:
            return True
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            self.closed = True
            return True
        if not chunk:
            self.closed = True
        self.buffer += chunk
        return True

    def read_until_closed(self, wait: float = 5.0) -> Received:
        """Everything until the server closes, or ``wait`` seconds pass."""
        start = time.monotonic()
        deadline = start + wait
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.poll(left)
        data, self.buffer = self.buffer, b""
        return Received(data, self.closed, time.monotonic() - start)

    def read_responses(self, count: int, wait: float = 5.0) -> list[HttpResponse]:
        """The next ``count`` complete Content-Length responses (fewer on close/timeout)."""
        deadline = time.monotonic() + wait
        while True:
            if len(split_responses(self.buffer)[0]) >= count or self.closed:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.poll(left)
        taken = split_responses(self.buffer)[0][:count]
        self.buffer = self.buffer[sum(response.size for response in taken) :]
        return taken


def split_responses(data: bytes) -> tuple[list[HttpResponse], bytes]:
    """Complete Content-Length-framed responses in ``data``, and what is left."""
    responses: list[HttpResponse] = []
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            return responses, data
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(rest) < length:
            return responses, data
        size = len(head) + len(sep) + length
        responses.append(HttpResponse(status, headers, rest[:length], size))
        data = rest[length:]


def http_ok(delay: float = 0.0) -> Handler:
    """A keep-alive upstream: read each request fully, answer ``200`` ``ok``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            fields = head.lower().split(b"\r\n")
            length = 0
            chunked = False
            for field in fields[1:]:
                name, _, value = field.partition(b":")
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding" and value.strip().endswith(b"chunked"):
                    chunked = True
            if chunked:
                await _read_chunked(reader)
            elif length:
                await reader.readexactly(length)
            if delay:
                await asyncio.sleep(delay)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    return handler


async def _read_chunked(reader: asyncio.StreamReader) -> None:
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return
        await reader.readexactly(size + 2)
