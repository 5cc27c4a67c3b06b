"""HTTP/1.1 building blocks shared by both sides of the proxy.

Header names are kept as lower-case bytes throughout the data plane, so
comparisons are plain ``==`` and nothing is decoded on the hot path.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass, field
from http import HTTPStatus

Header = tuple[bytes, bytes]

# RFC 9110 section 7.6.1 hop-by-hop fields, plus the Proxy-* family.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)

REASONS: dict[int, bytes] = {s.value: s.phrase.encode() for s in HTTPStatus}
REASONS[413] = b"Content Too Large"  # RFC 9110's name; Python 3.11 has the old one
REASONS[422] = b"Unprocessable Content"
_STATUS_LINES: dict[int, bytes] = {
    code: b"HTTP/1.1 %d %s\r\n" % (code, phrase) for code, phrase in REASONS.items()
}

_REQUEST_ID_RE = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


def status_line(status: int, reason: bytes = b"") -> bytes:
    line = _STATUS_LINES.get(status)
    if line is not None and not reason:
        return line
    return b"HTTP/1.1 %d %s\r\n" % (status, reason or REASONS.get(status, b"Unknown"))


# A random per-process prefix and a counter: unique across processes and
# restarts, and no getrandom() syscall per request (it showed in strace).
_ID_PREFIX = os.urandom(8).hex().encode()
_id_counter = itertools.count(int.from_bytes(os.urandom(4), "big"))


# The counter goes through a multiplicative (Weyl) mix: ids stay unique (odd
# multiplier: a bijection mod 2**64) and their low half is spread evenly, so a
# request id made here doubles as a W3C trace id that ratio samplers can read
# (observability/tracecontext.py).
_MIX = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1


def new_request_id() -> bytes:
    """32 lower-case hex digits: a random per-process half, a mixed counter."""
    return b"%s%016x" % (_ID_PREFIX, (next(_id_counter) * _MIX) & _MASK64 or 1)


def valid_request_id(value: bytes) -> bool:
    """Keep a client's X-Request-ID only if it is short and log-safe."""
    return _REQUEST_ID_RE.match(value) is not None


def render_headers(headers: list[Header]) -> bytes:
    return b"".join([b"%s: %s\r\n" % header for header in headers])


@dataclass(slots=True)
class Response:
    """A response produced by the gateway itself (a "local reply")."""

    status: int
    headers: list[Header] = field(default_factory=list)
    body: bytes = b""


PROBLEM_TITLES: dict[int, str] = {
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

PROBLEM_TYPE_BASE = "https://propylon.dev/problems/"


def problem(
    status: int,
    detail: str,
    request_id: bytes,
    *,
    kind: str | None = None,
    headers: list[Header] | None = None,
) -> Response:
    """An application/problem+json response (RFC 9457) with the request id."""
    title = PROBLEM_TITLES.get(status) or REASONS.get(status, b"Error").decode()
    slug = kind or title.lower().replace(" ", "-")
    body = json.dumps(
        {
            "type": PROBLEM_TYPE_BASE + slug,
            "title": title,
            "status": status,
            "detail": detail,
            "request_id": request_id.decode("ascii", "replace"),
        },
        separators=(",", ":"),
    ).encode()
    out = [(b"content-type", b"application/problem+json")]
    if headers:
        out.extend(headers)
    return Response(status, out, body)


def json_response(status: int, payload: object, headers: list[Header] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    out = [(b"content-type", b"application/json")]
    if headers:
        out.extend(headers)
    return Response(status, out, body)


def client_problem_bytes(status: int, detail: str) -> bytes:
    """A complete closing response for input too broken to become a request."""
    request_id = new_request_id()
    reply = problem(status, detail, request_id)
    headers = [
        *reply.headers,
        (b"x-request-id", request_id),
        (b"content-length", b"%d" % len(reply.body)),
        (b"connection", b"close"),
    ]
    return status_line(status) + render_headers(headers) + b"\r\n" + reply.body
