"""One keep-alive HTTP/1.1 connection to an upstream target.

It parses responses with httptools and hands every event to the exchange it
currently serves (``ResponseSink``). Completion is acted on only after
``feed_data`` returns, so that releasing the connection to the pool (and a
pipelined request picking it up at once) never happens while the parser is
still running on it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, cast

import httptools

from propylon.errors import UpstreamError, UpstreamProtocolError
from propylon.server.http import HOP_BY_HOP

if TYPE_CHECKING:
    from propylon.server.http import Header
    from propylon.server.upstream.pool import TargetPool


class ResponseSink(Protocol):
    """The side of an exchange that consumes an upstream response."""

    def on_response_head(
        self,
        status: int,
        reason: bytes,
        headers: list[Header],
        length: int | None,
        chunked: bool,
        keep_alive: bool,
    ) -> None: ...
    def on_response_body(self, data: bytes) -> None: ...
    def on_response_end(self) -> None: ...
    def on_upstream_failure(self, error: UpstreamError, *, stale: bool) -> None: ...
    def on_upstream_upgrade(self, rest: bytes) -> None: ...
    def on_tunnel_data(self, data: bytes) -> None: ...
    def flush(self) -> None: ...
    def pause_client_reading(self) -> None: ...
    def resume_client_reading(self) -> None: ...


# Response fields noted by the connection instead of being passed on as is.
_NOTED = HOP_BY_HOP | {b"content-length", b"via", b"x-request-id"}


class _TrailingResponse(Exception):
    pass


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "_chunked",
        "_done",
        "_head_only",
        "_headers",
        "_headers_done",
        "_keep_alive",
        "_length",
        "_parser",
        "_reading_paused",
        "_reason",
        "_tokens",
        "_tunnel",
        "exchange",
        "idle_since",
        "pool",
        "received",
        "response_upgrade",
        "response_via",
        "reused",
        "transport",
    )

    def __init__(self, pool: TargetPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.exchange: ResponseSink | None = None
        self.idle_since = 0.0
        self.reused = False
        self.received = False
        self._parser: httptools.HttpResponseParser | None = None
        self._headers: list[Header] = []
        self._reason = b""
        self._length: int | None = None
        self._chunked = False
        self._head_only = False
        self._headers_done = False
        self._keep_alive = False
        self._done = False
        self._tunnel = False
        self._reading_paused = False
        self._tokens: set[bytes] = set()
        self.response_via = b""  # Via of the upstream response, ", "-terminated
        self.response_upgrade = b""

    # -- driven by the exchange -------------------------------------------

    def usable(self) -> bool:
        transport = self.transport
        return transport is not None and not transport.is_closing() and not self._tunnel

    def send(self, sink: ResponseSink, data: bytes, head_only: bool) -> None:
        """Start an exchange: write the request head (and any body bytes)."""
        self.exchange = sink
        if self._parser is None:
            self._parser = httptools.HttpResponseParser(self)
        self._head_only = head_only
        self._headers_done = False
        self._done = False
        self.received = False
        self.pool.in_flight += 1
        assert self.transport is not None
        self.transport.write(data)

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
            self._reading_paused = True

    def resume_reading(self) -> None:
        if not self._reading_paused:
            return
        self._reading_paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def detach(self, reusable: bool) -> None:
        """The exchange is over with this connection: pool it or close it."""
        if self.exchange is None:
            return
        self.exchange = None
        self.pool.in_flight -= 1
        if reusable and self._done and self._keep_alive:
            self.reused = True
            # It may have been paused for a slow client; idle, it must read
            # again (to notice the upstream closing it, and for the next use).
            self.resume_reading()
            self.pool.release(self)
        else:
            self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio callbacks --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        sink = self.exchange
        if sink is None:
            # Bytes on an idle connection: the peer is confused; never reuse it.
            self.abort()
            return
        if self._tunnel:
            sink.on_tunnel_data(data)
            return
        self.received = True
        parser = self._parser
        assert parser is not None
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            if self._headers_done and parser.get_status_code() == 101:
                self._tunnel = True
                sink.on_upstream_upgrade(data[upgrade.args[0] :])
                return
            self._fail(UpstreamProtocolError("unexpected protocol upgrade from upstream"))
            return
        except httptools.HttpParserError:
            if self.exchange is not sink:
                return
            if self._done:
                self._keep_alive = False
                sink.on_response_end()
                return
            self._fail(UpstreamProtocolError("malformed response from upstream"))
            return
        if self.exchange is not sink:
            return  # the exchange let go of this connection mid-read (a retry)
        if self._done:
            sink.on_response_end()
        else:
            sink.flush()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost decides what it meant

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        sink = self.exchange
        if sink is None:
            self.pool.forget(self)
            return
        if self._tunnel:
            self.exchange = None
            self.pool.in_flight -= 1
            sink.on_response_end()
            return
        if self._headers_done and not self._done and self._length is None and not self._chunked:
            # A response without Content-Length or chunking ends at close.
            self._done = True
            self._keep_alive = False
            sink.on_response_end()
            return
        if self._done:
            return
        stale = self.reused and not self.received
        sink.on_upstream_failure(
            UpstreamProtocolError("upstream closed the connection before the response ended"),
            stale=stale,
        )

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.pause_client_reading()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.resume_client_reading()

    # -- httptools callbacks --------------------------------------------------

    def on_message_begin(self) -> None:
        if self._done:
            # Bytes after a complete response: never parse them as an answer to
            # this request (response injection); the connection is unusable.
            raise _TrailingResponse
        self._headers = []
        self._reason = b""
        self._length = None
        self._chunked = False
        self._tokens = set()
        self.response_via = b""
        self.response_upgrade = b""

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname in _NOTED:
            self._note(lname, value)
        else:
            self._headers.append((lname, value))

    def _note(self, lname: bytes, value: bytes) -> None:
        """Fields the gateway reads or replaces; hop-by-hop ones are dropped."""
        if lname == b"content-length":
            self._length = int(value)
            self._headers.append((lname, value))
        elif lname == b"transfer-encoding":
            self._chunked = value.lower().rstrip().endswith(b"chunked")
        elif lname == b"connection":
            self._tokens.update(t.strip().lower() for t in value.split(b","))
        elif lname == b"via":
            self.response_via += value + b", "
        elif lname == b"upgrade":
            self.response_upgrade = value

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        assert self.exchange is not None
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # Interim responses (100 Continue, 103) are not relayed: the
            # gateway answers Expect itself and waits for the final one.
            return
        self._headers_done = True
        self._keep_alive = parser.should_keep_alive()
        if self._chunked and self._length is not None:
            # Both framings: chunked wins (RFC 9112 6.3) and the length goes.
            self._headers = [h for h in self._headers if h[0] != b"content-length"]
            self._length = None
        if self._tokens:
            self._headers = [h for h in self._headers if h[0] not in self._tokens]
        no_body = self._head_only or status in (204, 304)
        sink = self.exchange
        sink.on_response_head(
            status,
            self._reason,
            self._headers,
            0 if no_body else self._length,
            False if no_body else self._chunked,
            self._keep_alive,
        )
        if self._head_only or self.exchange is not sink:
            # llhttp cannot be told a response answers HEAD; end it here and
            # give the next exchange a fresh parser. Likewise when the exchange
            # dropped this response (to retry elsewhere).
            self._done = True
            self._parser = None

    def on_body(self, body: bytes) -> None:
        sink = self.exchange
        if self._done or sink is None:
            self._keep_alive = False  # a body after HEAD: the stream is off
            return
        sink.on_response_body(body)

    def on_message_complete(self) -> None:
        if self._headers_done:
            self._done = True

    def _fail(self, error: UpstreamError) -> None:
        sink = self.exchange
        if sink is None:
            self.abort()
            return
        self.exchange = None
        self.pool.in_flight -= 1
        self.abort()
        if not self._done:
            sink.on_upstream_failure(error, stale=False)
