"""The state of one request/response exchange, and how it ends.

An Exchange (exchange.py) is created when a request's headers are parsed
and lives until the last response byte is written or either side fails. It
is also the ``RequestContext`` plugins see. This base holds its state, the
request-body plumbing and the ways it ends (a local reply, the client going
away, the last byte); exchange.py adds routing and the upstream side.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic
from typing import TYPE_CHECKING

from propylon.server.headers import client_head
from propylon.server.http import Header, Response, new_request_id, problem, valid_request_id

if TYPE_CHECKING:
    from collections.abc import Callable

    from propylon.observability.tracecontext import TraceContext
    from propylon.plugins.base import BodyObserver, Identity, PluginChain
    from propylon.server.protocol import ClientConnection
    from propylon.server.state import RouteRuntime
    from propylon.server.upstream.connection import UpstreamConnection
    from propylon.server.upstream.pool import TargetPool
    from propylon.server.upstream.target import Target

log = logging.getLogger("propylon.proxy")

ROUTING, PLUGINS, CONNECTING, WAITING, RESPONDING, TUNNEL, DONE = range(7)
BUFFER_LIMIT = 256 * 1024  # request bytes held while no upstream is attached


class ExchangeBase:
    __slots__ = (
        "_activity",
        "_attempt_started",
        "_attempts",
        "_breaker_done",
        "_buffer",
        "_buffered",
        "_chain",
        "_chunked_out",
        "_connect_task",
        "_counted",
        "_deadline_total",
        "_forwarded",
        "_head",
        "_head_rest",
        "_head_sent",
        "_keep_alive",
        "_last_failure",
        "_out",
        "_outcome_done",
        "_own_request_id",
        "_pool",
        "_replay",
        "_replay_size",
        "_request_line",
        "_retry_handle",
        "_retrying",
        "_target",
        "_ticket",
        "_tries",
        "_upstream",
        "_upstream_extra",
        "_upstream_paused",
        "body_observer",
        "bytes_in",
        "bytes_out",
        "client_ip",
        "conn",
        "expect_continue",
        "headers",
        "host",
        "http_minor",
        "identity",
        "log_notes",
        "method",
        "path",
        "phase",
        "query",
        "raw_method",
        "req_chunked",
        "req_done",
        "req_length",
        "request_id",
        "route",
        "route_name",
        "stale",
        "started",
        "status",
        "target",
        "trace",
        "trace_id",
        "traceparent",
        "upgrade",
    )

    def __init__(
        self,
        conn: ClientConnection,
        method: bytes,
        target: bytes,
        headers: list[Header],
        http_minor: int,
        keep_alive: bool,
    ) -> None:
        self.conn = conn
        self.raw_method = method
        self.method = method.decode("ascii")
        self.target = target
        self.headers = headers
        self.http_minor = http_minor
        self._keep_alive = keep_alive
        # The loop's clock, but read now: loop.time() is the start of this loop
        # turn at millisecond resolution under uvloop, too coarse for latency metrics.
        self.started = monotonic()
        self.status = 0
        self.route: RouteRuntime | None = None
        self.route_name = ""
        self.path = ""
        self.query = b""
        self.bytes_in = 0
        self.bytes_out = 0
        self.upgrade: bytes | None = None
        self.expect_continue = False
        self.req_length: int | None = None
        self.req_chunked = False
        request_id = host = traceparent = None
        for name, value in headers:
            if name == b"x-request-id":
                request_id = value
            elif name == b"host":
                host = value
            elif name == b"content-length":
                self.req_length = int(value)
            elif name == b"transfer-encoding":
                self.req_chunked = True  # llhttp rejects any other final coding
            elif name == b"expect":
                self.expect_continue = value.lower() == b"100-continue"
            elif name == b"traceparent":
                # Two of them: which trace is it? Neither (W3C 3.2: restart).
                traceparent = value if traceparent is None else b"-"
        if request_id is not None and valid_request_id(request_id):
            self.request_id = request_id
            self._own_request_id = False
        else:
            self.request_id = new_request_id()
            self._own_request_id = True  # 32 hex digits: fit to be a trace id
        self.host = host or b""
        self.client_ip = conn.client_ip
        self.req_done = not self.req_chunked and not self.req_length
        self._chain: PluginChain = conn.state.default_chain
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._out: list[bytes] = []
        self._chunked_out = False
        self._head = b""
        self._pool: TargetPool | None = None
        self._upstream: UpstreamConnection | None = None
        self._upstream_paused = False
        self._connect_task: asyncio.Task[UpstreamConnection] | None = None
        self._attempts = 0
        self._activity = 0.0
        self._deadline_total = 0.0
        self._head_sent = False
        self._forwarded = b""
        self._upstream_extra = b""
        self.identity: Identity | None = None
        self.body_observer: BodyObserver | None = None  # set by a plugin (a cache)
        self.log_notes: dict[str, object] | None = None  # plugins' outcomes, for the log
        self.stale: Callable[[], Response | None] | None = None  # stale-if-error
        self.traceparent = traceparent
        # Set when the request goes upstream: its trace id always, the whole
        # context when the caller sent one or spans are exported.
        self.trace_id = b""
        self.trace: TraceContext | None = None
        self.phase = ROUTING
        # Upstream attempts: the target, the breaker ticket, retries, replay.
        self._target: Target | None = None
        self._ticket = 0
        self._tries = 0
        self._retrying = False
        self._counted = False
        self._outcome_done = False  # of the current attempt, for the target
        self._breaker_done = False  # of the request, for the service's breaker
        self._last_failure: tuple[str | None, int] = (None, 0)
        self._attempt_started = 0.0
        self._request_line = b""
        self._head_rest = b""
        self._replay: list[bytes] | None = []
        self._replay_size = 0
        self._retry_handle: asyncio.TimerHandle | None = None

    # -- RequestContext -------------------------------------------------------

    def request_header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def remove_request_header(self, name: bytes) -> None:
        self.headers = [header for header in self.headers if header[0] != name]

    def note(self, name: str, value: object) -> None:
        notes = self.log_notes
        if notes is None:
            self.log_notes = {name: value}
        else:
            notes[name] = value

    def loop_time(self) -> float:
        return self.conn.state.loop.time()

    def upstream_target(self) -> Target | None:
        return self._target

    def add_upstream_header(self, name: bytes, value: bytes) -> None:
        if b"\r" in value or b"\n" in value:
            raise ValueError("a header value must not contain CR or LF")
        self._upstream_extra += b"%s: %s\r\n" % (name, value)

    # -- request side ---------------------------------------------------------

    def on_request_body(self, data: bytes) -> None:
        size = len(data)
        self.bytes_in += size
        if self.bytes_in > self.conn.state.limits.max_body:
            self._body_too_large()
            return
        self._buffer.append(b"%x\r\n%s\r\n" % (size, data) if self.req_chunked else data)
        self._buffered += size

    def on_request_end(self) -> None:
        self.req_done = True
        if self.req_chunked:
            self._buffer.append(b"0\r\n\r\n")

    def flush_request(self) -> None:
        """Move the body bytes of the last client read upstream (or hold them)."""
        if not self._buffer:
            return
        upstream = self._upstream
        if upstream is not None and self._head_sent:
            data = self._buffer[0] if len(self._buffer) == 1 else b"".join(self._buffer)
            upstream.write(data)
            self.keep_for_replay(data)
            self._buffer.clear()
            self._buffered = 0
            self._activity = self.conn.state.loop.time()
        elif self._buffered > BUFFER_LIMIT:
            self.conn.pause_reading(self.conn.PAUSE_BUFFER)

    def keep_for_replay(self, data: bytes) -> None:
        """Keep request body bytes sent upstream, so a retry can send them again."""
        replay = self._replay
        if replay is None or not data:
            return
        self._replay_size += len(data)
        route = self.route
        if route is not None and self._replay_size <= route.service.retries.max_body:
            replay.append(data)
        else:
            self._replay = None  # too large to keep: this request is not retried

    def fail_request(self, status: int, detail: str) -> None:
        """The client's request turned out malformed midway: never forward it."""
        self._drop_upstream()
        self._buffer.clear()
        self.reply(problem(status, detail, self.request_id), close=True)

    def _body_too_large(self) -> None:
        detail = f"the body exceeds {self.conn.state.limits.max_body} bytes"
        if self.status:
            self.conn.abort()
            return
        self._drop_upstream()
        self.reply(problem(413, detail, self.request_id), close=True)

    # -- shared with the upstream side ----------------------------------------------

    def flush(self) -> None:
        out = self._out
        if out:
            self.conn.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def pause_client_reading(self) -> None:
        self.conn.pause_reading(self.conn.PAUSE_UPSTREAM)

    def resume_client_reading(self) -> None:
        self.conn.resume_reading(self.conn.PAUSE_UPSTREAM)

    # -- client write backpressure ------------------------------------------------

    def pause_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream.pause_reading()
            self._upstream_paused = True

    def resume_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream.resume_reading()
            self._upstream_paused = False
            self._activity = self.conn.state.loop.time()

    # -- ending -------------------------------------------------------------------

    def reply(self, response: Response, *, close: bool = False) -> None:
        """Answer locally (a gateway-made response)."""
        if self.status:
            self.conn.abort()  # part of another response is out already
            return
        self.status = response.status
        headers = list(response.headers)
        headers.append((b"x-request-id", self.request_id))
        if response.status not in (204, 304):  # RFC 9110 8.6: no length on these
            headers.append((b"content-length", b"%d" % len(response.body)))
        self._chain.run_response(self, response.status, headers)
        if (
            close
            or not self._keep_alive
            or not self.req_done
            or self.conn.state.draining
            or self.conn.upgrade_requested
        ):
            self._keep_alive = False
            headers.append((b"connection", b"close"))
        elif self.http_minor == 0:
            headers.append((b"connection", b"keep-alive"))
        body = b"" if self.raw_method == b"HEAD" else response.body
        self.bytes_out += len(body)
        self.conn.write(client_head(response.status, b"", headers) + body)
        self._finish()

    def serve_stale(self) -> bool:
        """Answer with a plugin's stale response instead of a 5xx, if it has one."""
        stale = self.stale
        if stale is None or self.status:
            return False
        self.stale = None
        response = stale()
        if response is None:
            return False
        self._drop_upstream()
        self.reply(response)
        return True

    def _drop_upstream(self) -> None:
        task = self._connect_task
        if task is not None:
            self._connect_task = None
            task.cancel()
        upstream = self._upstream
        if upstream is not None:
            self._upstream = None
            upstream.detach(reusable=False)

    def settle(self) -> None:
        """Give back what this exchange holds in its service: the retry budget,
        a breaker probe slot or an ejected target's probe, a pending retry."""
        if self._retry_handle is not None:
            self._retry_handle.cancel()
            self._retry_handle = None
        route = self.route
        if route is None or not self._counted:
            return
        self._counted = False
        service = route.service
        service.in_flight -= 1
        if self._retrying:
            self._retrying = False
            service.retries_in_flight -= 1
        if not self._breaker_done:
            self._breaker_done = True
            service.breaker.release(self._ticket)
        if not self._outcome_done:
            self._outcome_done = True
            if self._target is not None:
                self._target.release_probe()

    def abort(self) -> None:
        """The client went away: stop everything this exchange started."""
        if self.phase == DONE:
            return
        self._drop_upstream()
        self.settle()
        if not self.status:
            self.status = 499  # nginx's code for "client closed the request"
        self.phase = DONE
        self.conn.state.recorder.finish(self)
        self._chain.run_log(self)

    def _finish(self) -> None:
        self.settle()
        self.phase = DONE
        self.conn.state.recorder.finish(self)
        self._chain.run_log(self)
        self.conn.exchange_done(self, self._keep_alive and self.req_done)
