"""A raw HTTP/1.x client connection for tests that watch the wire.

``RawClient`` keeps one socket open across requests, so tests can check
keep-alive, pipelining and closing exactly as a client sees them. It frames
responses the way RFC 9112 section 6.3 says a client must: no body after
HEAD, 1xx, 204 and 304; chunked; Content-Length; else read until close.
``curl`` runs the real curl binary.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Any

CURL = "/usr/bin/curl"
_NO_BODY_STATUSES = frozenset({204, 304})


@dataclass
class RawResponse:
    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    chunked: bool

    def header(self, name: str) -> str | None:
        values = self.header_list(name)
        return values[0] if values else None

    def header_list(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self.headers if key == lowered]

    def json(self) -> Any:
        return json.loads(self.body)


class RawClient:
    """One client TCP connection; ``read_response`` returns the next response."""

    def __init__(self, port: int, timeout: float = 3.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self._buffer = b""
        self._eof = False

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_response(self, method: str = "GET") -> RawResponse:
        """The next response (interim 1xx responses included, as they arrive)."""
        head = self._read_until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status_text, *rest = lines[0].split(" ", 2)
        status = int(status_text)
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        response = RawResponse(status, rest[0] if rest else "", version, headers, b"", False)
        if method == "HEAD" or status < 200 or status in _NO_BODY_STATUSES:
            return response
        encoding = response.header("transfer-encoding")
        length = response.header("content-length")
        if encoding is not None and encoding.lower().endswith("chunked"):
            response.chunked = True
            response.body = self._read_chunked()
        elif length is not None:
            response.body = self._read_exactly(int(length))
        else:
            response.body = self._read_to_close()
        return response

    def closed_by_peer(self, wait: float = 1.0) -> bool:
        """True when the server closes the connection (within ``wait``) with
        nothing more to read."""
        if self._buffer:
            return False
        if self._eof:
            return True
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(self.timeout)
        if chunk:
            self._buffer += chunk
            return False
        self._eof = True
        return True

    # -- framing ---------------------------------------------------------------

    def _fill(self) -> None:
        if self._eof:
            raise ConnectionError("the server closed the connection")
        chunk = self.sock.recv(65536)
        if not chunk:
            self._eof = True
            raise ConnectionError("the server closed the connection")
        self._buffer += chunk

    def _read_until(self, separator: bytes) -> bytes:
        while separator not in self._buffer:
            self._fill()
        found, _, self._buffer = self._buffer.partition(separator)
        return found

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        found, self._buffer = self._buffer[:size], self._buffer[size:]
        return found

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self._read_until(b"\r\n").split(b";", 1)[0], 16)
            if size == 0:
                while self._read_until(b"\r\n"):  # trailer fields, then an empty line
                    pass
                return b"".join(parts)
            parts.append(self._read_exactly(size))
            if self._read_exactly(2) != b"\r\n":
                raise ValueError("a chunk did not end with CRLF")

    def _read_to_close(self) -> bytes:
        deadline = time.monotonic() + self.timeout
        while not self._eof and time.monotonic() < deadline:
            try:
                self._fill()
            except ConnectionError:
                break
        found, self._buffer = self._buffer, b""
        return found


def curl(*args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    """Run curl quietly (errors still shown); stdout and stderr as text."""
    return subprocess.run(
        [CURL, "--silent", "--show-error", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
