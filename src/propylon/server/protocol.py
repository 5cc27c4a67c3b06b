"""The client side: one asyncio Protocol per client connection.

It parses requests with httptools (llhttp, strict: conflicting or duplicate
Content-Length, Transfer-Encoding with Content-Length, bad chunk sizes, bad
request lines and obsolete line folding are all parse errors here), enforces
the header size and time limits, keeps pipelined requests in order (reading
pauses while a request waits its turn), and hands each request to an
Exchange. After a 101 it becomes a raw tunnel to the upstream.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from propylon.server.exchange import DONE, Exchange
from propylon.server.exchange_base import ExchangeBase
from propylon.server.headers import untrusted_forwarding
from propylon.server.http import Header, client_problem_bytes

if TYPE_CHECKING:
    from propylon.server.state import GatewayState
    from propylon.server.upstream.connection import UpstreamConnection

# Connection-scoped header tokens that are only about this hop anyway.
_NOT_FIELD_TOKENS = frozenset({b"close", b"keep-alive", b"upgrade", b""})


class _Reject(Exception):
    """Raised from a parser callback: answer ``status`` and close."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


_HEAD_TOO_LARGE = "the request headers are too large"


# How long an idle keep-alive connection stays open once a drain starts (see drain()).
DRAIN_IDLE_GRACE = 0.25


class ClientConnection(asyncio.Protocol):
    PAUSE_PIPELINE = 1
    PAUSE_UPSTREAM = 2
    PAUSE_BUFFER = 4

    __slots__ = (
        "_codings",
        "_deadline",
        "_head_size",
        "_headers",
        "_host_count",
        "_parsing",
        "_paused",
        "_pending_error",
        "_raw_head",
        "_start",
        "_tunnel",
        "_upgrade_rest",
        "_url",
        "client_ip",
        "closed",
        "connection_tokens",
        "current",
        "forwarded",
        "in_head",
        "parser",
        "peer_ip",
        "queue",
        "state",
        "transport",
        "trusted_peer",
        "upgrade_requested",
    )

    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.closed = False
        self.peer_ip = ""
        self.client_ip = ""
        self.trusted_peer = False
        self.forwarded = b""
        self.current: Exchange | None = None
        self.queue: deque[Exchange] = deque()
        self.in_head = False
        self.upgrade_requested = False
        self.connection_tokens: frozenset[bytes] = frozenset()
        self._parsing: Exchange | None = None
        self._url = b""
        self._headers: list[Header] = []
        self._head_size = 0
        self._raw_head = 0
        self._host_count = 0
        self._codings: list[bytes] = []
        self._paused = 0
        self._tunnel: UpstreamConnection | None = None
        self._upgrade_rest = b""
        self._deadline = 0.0
        self._start: Exchange | None = None
        self._pending_error: tuple[int, str] | None = None

    # -- asyncio callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer_ip = self.client_ip = peer[0] if isinstance(peer, tuple) else ""
        self.trusted_peer = self.state.is_trusted(self.peer_ip)
        self.forwarded = untrusted_forwarding(self.peer_ip)
        self.state.connections.add(self)
        self._deadline = self.state.loop.time() + self.state.limits.header_timeout

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel.write(data)
            return
        if self.closed or self._pending_error is not None:
            return
        if self.upgrade_requested:
            self._upgrade_rest += data  # until the upstream answers the upgrade
            return
        # Counted before parsing, reset when a head completes: so the read that
        # starts a request counts too, and a never-ending header line cannot
        # pile up inside the parser.
        self._raw_head += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgrade_rest = data[upgrade.args[0] :]
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if not isinstance(cause, _Reject):
                raise
            self._protocol_error(cause.status, cause.detail)
            return
        except httptools.HttpParserError as exc:
            self._protocol_error(400, _parser_message(exc))
            return
        else:
            if self.in_head and self._raw_head > self.state.limits.max_header_bytes:
                self._protocol_error(431, _HEAD_TOO_LARGE)
                return
        # Requests start, and body bytes move upstream, only once the whole
        # read has parsed cleanly: nothing malformed is ever forwarded.
        starting = self._start
        if starting is not None:
            self._start = None
            if starting.phase != DONE:  # it may have been answered already (413)
                starting.start()
        current = self.current
        if current is not None:
            current.flush_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.connections.discard(self)
        if self.current is not None:
            self.current.abort()
        for waiting in self.queue:
            waiting.abort()
        self.queue.clear()
        if self._tunnel is not None:
            self._tunnel.close()
            self._tunnel = None

    def pause_writing(self) -> None:
        if self._tunnel is not None:
            self._tunnel.pause_reading()
        elif self.current is not None:
            self.current.pause_upstream()

    def resume_writing(self) -> None:
        if self._tunnel is not None:
            self._tunnel.resume_reading()
        elif self.current is not None:
            self.current.resume_upstream()

    # -- httptools callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_head = True
        self._url = b""
        self._headers = []
        self._head_size = 0
        self._host_count = 0
        self._codings = []
        self.connection_tokens = frozenset()
        if self.current is None:
            self._deadline = self.state.loop.time() + self.state.limits.header_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > self.state.limits.max_header_bytes:
            raise _Reject(431, _HEAD_TOO_LARGE)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self.state.limits.max_header_bytes:
            raise _Reject(431, _HEAD_TOO_LARGE)
        lname = name.lower()
        if lname == b"host":
            self._host_count += 1
        elif lname == b"transfer-encoding":
            self._codings.append(value)
        elif lname == b"connection":
            tokens = {t.strip().lower() for t in value.split(b",")} - _NOT_FIELD_TOKENS
            if tokens:
                self.connection_tokens = self.connection_tokens | tokens
        self._headers.append((lname, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        self._raw_head = 0
        parser = self.parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise _Reject(505, f"HTTP/{version} is not supported; use HTTP/1.1")
        minor = 1 if version == "1.1" else 0
        if self._host_count > 1 or (minor == 1 and self._host_count == 0):
            raise _Reject(400, "a request must carry exactly one Host header")
        if self._codings:
            _check_codings(self._codings, minor)
        self.upgrade_requested = parser.should_upgrade()
        exchange = Exchange(
            self, parser.get_method(), self._url, self._headers, minor, parser.should_keep_alive()
        )
        self._parsing = exchange
        if self.current is None:
            self.current = exchange
            self._start = exchange
        else:
            self.queue.append(exchange)
            self.pause_reading(self.PAUSE_PIPELINE)

    def on_body(self, body: bytes) -> None:
        exchange = self._parsing
        if exchange is not None and exchange.phase != DONE:
            exchange.on_request_body(body)

    def on_message_complete(self) -> None:
        exchange = self._parsing
        self._parsing = None
        if exchange is not None and exchange.phase != DONE:
            exchange.on_request_end()

    # -- used by exchanges ----------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def pause_reading(self, reason: int) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self._paused |= reason

    def resume_reading(self, reason: int) -> None:
        if not self._paused & reason:
            return
        self._paused &= ~reason
        if not self._paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def exchange_done(self, exchange: ExchangeBase, keep_alive: bool) -> None:
        if exchange is not self.current:
            return
        self.current = None
        # Pauses on behalf of this exchange's upstream end with it: its
        # resume_writing may never come once it is detached.
        self.resume_reading(self.PAUSE_UPSTREAM | self.PAUSE_BUFFER)
        if not keep_alive or self.state.draining:
            self.close()  # anything the client sent after this is ignored
            return
        if self._pending_error is not None:
            if self.queue:
                self._start_next()
                return
            self.write(client_problem_bytes(*self._pending_error))
            self.close()
            return
        if self.queue:
            self._start_next()
            return
        self.resume_reading(self.PAUSE_PIPELINE)
        self._deadline = self.state.loop.time() + self.state.limits.idle_timeout

    def _start_next(self) -> None:
        following = self.queue.popleft()
        self.current = following
        if not self.queue and self._pending_error is None:
            self.resume_reading(self.PAUSE_PIPELINE)
        following.start()

    def start_tunnel(self, upstream: UpstreamConnection) -> None:
        self._tunnel = upstream
        rest, self._upgrade_rest = self._upgrade_rest, b""
        if rest:
            upstream.write(rest)
        self._paused = 0
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def check_timeouts(self, now: float) -> None:
        """Called by the gateway's periodic sweep."""
        if self.closed or self._tunnel is not None:
            return
        current = self.current
        if current is not None:
            current.check_timeouts(now)
        elif now >= self._deadline:
            if self.in_head:
                self._protocol_error(408, "the request headers did not arrive in time")
            else:
                self.close()  # idle keep-alive connection

    def drain(self) -> None:
        """Graceful stop: close an idle connection soon, a busy one after its response.

        Closing an idle keep-alive connection at once races the client: a
        request it sends at that instant is lost (the connection drops
        without an answer). So an idle connection is given DRAIN_IDLE_GRACE:
        a client that keeps it busy sends its next request within
        milliseconds, which is answered with Connection: close (the gateway
        is draining) and the client reconnects elsewhere; one still idle
        after the grace is closed by the sweep. A request already waiting
        unread in the socket keeps the connection open too.
        """
        if self.current is None and not self.in_head and not self._unread_bytes():
            grace = self.state.loop.time() + DRAIN_IDLE_GRACE
            self._deadline = min(self._deadline, grace)

    def _unread_bytes(self) -> bool:
        transport = self.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            return False
        try:
            with socket.fromfd(sock.fileno(), sock.family, sock.type) as peek:
                return bool(peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except OSError:  # BlockingIOError: nothing waiting; others: closing anyway
            return False

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()
            self.state.connections.discard(self)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _protocol_error(self, status: int, detail: str) -> None:
        """Answer a request that could not be parsed, in order, then close."""
        current = self.current
        starting, self._start = self._start, None
        if current is not None and current.phase != DONE:
            if self._parsing is current:
                # The current request's own body was malformed: never forward it.
                if current.status:
                    self.abort()
                else:
                    current.fail_request(status, detail)
                return
            # A later request is broken: answer the earlier ones first, then
            # this error, and read nothing more meanwhile.
            self._pending_error = (status, detail)
            self.pause_reading(self.PAUSE_PIPELINE)
            if starting is not None:
                starting.start()
            return
        self.write(client_problem_bytes(status, detail))
        self.close()


def _check_codings(values: list[bytes], minor: int) -> None:
    """RFC 9112 6.1: only ``chunked`` is understood, and never from HTTP/1.0."""
    if minor == 0:
        raise _Reject(400, "Transfer-Encoding is not allowed in HTTP/1.0 requests")
    codings = [c.strip().lower() for value in values for c in value.split(b",")]
    if codings[-1] != b"chunked":
        # 6.3: without a final chunked the body length cannot be known.
        raise _Reject(400, "Transfer-Encoding must end with chunked")
    if codings != [b"chunked"]:
        raise _Reject(501, "only the chunked transfer coding is supported")


def _parser_message(exc: Exception) -> str:
    text = str(exc).strip() or "malformed request"
    # llhttp's reasons are short and safe ("Invalid header value char"); keep
    # them readable for whoever debugs a client, without echoing input.
    return f"malformed request: {text[:120]}"
