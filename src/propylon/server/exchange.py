"""One request/response exchange between a client and an upstream.

An Exchange is created when a request's headers are parsed and lives until
the last response byte is written (or either side fails). It is also the
``RequestContext`` plugins see. Everything is callback-driven: the client
connection feeds request events in, the upstream connection feeds response
events in, and the exchange writes to the other side, pausing reading on one
side when the other cannot keep up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from propylon.errors import UpstreamConnectError, UpstreamError, UpstreamTimeout
from propylon.server import builtin
from propylon.server.headers import client_head, trusted_forwarding, upstream_head
from propylon.server.http import Header, Response, new_request_id, problem, valid_request_id
from propylon.server.pathnorm import InvalidPath, normalize_path, split_target
from propylon.server.router import host_without_port, rewrite_path

if TYPE_CHECKING:
    from propylon.config.upstream import TimeoutsConfig
    from propylon.plugins.base import Identity, PluginChain
    from propylon.server.protocol import ClientConnection
    from propylon.server.state import RouteRuntime
    from propylon.server.upstream.connection import UpstreamConnection
    from propylon.server.upstream.pool import TargetPool

log = logging.getLogger("propylon.proxy")

ROUTING, PLUGINS, CONNECTING, WAITING, RESPONDING, TUNNEL, DONE = range(7)
_BUFFER_LIMIT = 256 * 1024  # request bytes held while no upstream is attached
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_RETRYABLE = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})


class Exchange:
    __slots__ = (
        "_activity",
        "_attempts",
        "_buffer",
        "_buffered",
        "_chain",
        "_chunked_out",
        "_connect_task",
        "_deadline_total",
        "_forwarded",
        "_head",
        "_head_sent",
        "_keep_alive",
        "_out",
        "_pool",
        "_upstream",
        "_upstream_extra",
        "_upstream_paused",
        "bytes_in",
        "bytes_out",
        "client_ip",
        "conn",
        "expect_continue",
        "headers",
        "host",
        "http_minor",
        "identity",
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
        "started",
        "status",
        "target",
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
        self.started = conn.state.loop.time()
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
        request_id = host = None
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
        self.request_id = (
            request_id
            if request_id is not None and valid_request_id(request_id)
            else new_request_id()
        )
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
        self.phase = ROUTING

    # -- RequestContext -------------------------------------------------------

    def request_header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def remove_request_header(self, name: bytes) -> None:
        self.headers = [header for header in self.headers if header[0] != name]

    def add_upstream_header(self, name: bytes, value: bytes) -> None:
        if b"\r" in value or b"\n" in value:
            raise ValueError("a header value must not contain CR or LF")
        self._upstream_extra += b"%s: %s\r\n" % (name, value)

    # -- request side ---------------------------------------------------------

    def start(self) -> None:
        """Route the request and run it; called when it is first in line."""
        if self.phase != ROUTING:
            return
        state = self.conn.state
        target = self.target
        if target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
            # Absolute form (RFC 9112 3.2.2): its authority replaces Host.
            rest = target.split(b"://", 1)[1]
            cut = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=len(rest))
            self.host = rest[:cut]
            target = rest[cut:] or b"/"
            if target.startswith(b"?"):
                target = b"/" + target
        try:
            raw_path, self.query = split_target(target)
            self.path = normalize_path(raw_path)
        except InvalidPath as exc:
            self.reply(problem(400, str(exc), self.request_id), close=True)
            return
        if self.path.startswith("/health"):
            local = builtin.health_reply(state, self)
            if local is not None:
                self.reply(local)
                return
        host = state.host_names.get(self.host)
        if host is None:
            host = host_without_port(self.host.decode("latin-1"))
            if len(state.host_names) < 1024:
                state.host_names[self.host] = host
        route, allowed = state.router.match(host, self.path, self.method)
        if route is None:
            if allowed:
                allow = ", ".join(sorted(allowed)).encode()
                detail = f"{self.method} is not allowed here; allowed: {allow.decode()}"
                self.reply(problem(405, detail, self.request_id, headers=[(b"allow", allow)]))
            else:
                self.reply(problem(404, "no route matches this request", self.request_id))
            return
        self.route = route
        self.route_name = route.name
        conn = self.conn
        if conn.trusted_peer:
            forwarded, forwarded_host, self.client_ip = trusted_forwarding(
                conn.peer_ip, self.headers, state.is_trusted
            )
            self._forwarded = forwarded + b"x-forwarded-host: %s\r\n" % (
                forwarded_host or self.host
            )
        else:
            self._forwarded = conn.forwarded + b"x-forwarded-host: " + self.host + b"\r\n"
        self._chain = route.chain
        limit = state.limits.max_body
        if self.req_length is not None and self.req_length > limit:
            self.reply(problem(413, f"the body exceeds {limit} bytes", self.request_id), close=True)
            return
        if self.conn.upgrade_requested:
            self.upgrade = self.request_header(b"upgrade")
        if self._chain.request_phase:
            self.phase = PLUGINS
            self.conn.state.loop.create_task(self._run_plugins())
        else:
            self._forward()

    async def _run_plugins(self) -> None:
        if self.phase != PLUGINS:
            return
        try:
            local = await self._chain.run_request(self)
        except Exception:
            log.exception("plugin failed on route %s", self.route_name)
            local = problem(500, "the gateway failed to handle this request", self.request_id)
        if self.phase != PLUGINS:
            return
        if local is not None:
            self.reply(local)
        else:
            self._forward()

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
            upstream.write(self._buffer[0] if len(self._buffer) == 1 else b"".join(self._buffer))
            self._buffer.clear()
            self._buffered = 0
            self._activity = self.conn.state.loop.time()
        elif self._buffered > _BUFFER_LIMIT:
            self.conn.pause_reading(self.conn.PAUSE_BUFFER)

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

    # -- upstream side --------------------------------------------------------

    def _forward(self) -> None:
        route = self.route
        assert route is not None
        service = route.service
        pool = service.pick()
        if pool is None:
            self._fail_local(503, "no target of this service takes traffic", "no-healthy-target")
            return
        self._pool = pool
        state = self.conn.state
        now = state.loop.time()
        total = service.config.timeouts.total
        self._deadline_total = now + total if total else 0.0
        # RFC 9110 10.1.1: only HTTP/1.1 clients may be sent a 100.
        if (
            self.expect_continue
            and self.http_minor == 1
            and not self.req_done
            and not self.bytes_in
        ):
            self.conn.write(_CONTINUE)
        path = rewrite_path(self.path, route.prefix, route.strip_prefix, route.rewrite)
        target = path.encode() + b"?" + self.query if self.query else path.encode()
        host = self.host if service.config.preserve_host and self.host else pool.host_header
        tail = route.extra_lines + self._upstream_extra
        if self.req_chunked:
            tail += b"transfer-encoding: chunked\r\n"
        elif self.req_length is not None:
            tail += b"content-length: %d\r\n" % self.req_length
        if self.upgrade is not None:
            tail += b"connection: upgrade\r\nupgrade: %s\r\n" % self.upgrade
        self._head = upstream_head(
            self.raw_method,
            target,
            self.headers,
            self.conn.connection_tokens,
            host,
            self._forwarded,
            self.request_id,
            state.via,
            tail,
        )
        self._connect(pool, fresh=False)

    def _connect(self, pool: TargetPool, *, fresh: bool) -> None:
        self._attempts += 1
        conn = None if fresh else pool.take_idle()
        if conn is not None:
            self._send(conn)
            return
        self.phase = CONNECTING
        self._activity = self.conn.state.loop.time()
        self._connect_task = pool.connect(self._on_connected)

    def _on_connected(self, task: asyncio.Task[UpstreamConnection]) -> None:
        self._connect_task = None
        if task.cancelled():
            return
        error = task.exception()
        if self.phase != CONNECTING:
            if error is None:
                task.result().close()
            return
        if error is not None:
            assert self._pool is not None
            log.info("connect to %s failed: %s", self._pool.address, error)
            self._upstream_failed(UpstreamConnectError(f"cannot connect to {self._pool.address}"))
            return
        self._send(task.result())

    def _send(self, conn: UpstreamConnection) -> None:
        self._upstream = conn
        self.phase = WAITING
        self._activity = self.conn.state.loop.time()
        data = self._head
        self._head_sent = True
        if self._buffer:
            data += b"".join(self._buffer)
            self._buffer.clear()
            self._buffered = 0
            self.conn.resume_reading(self.conn.PAUSE_BUFFER)
        conn.send(self, data, head_only=self.raw_method == b"HEAD")

    def _timeouts(self) -> TimeoutsConfig:
        assert self.route is not None
        return self.route.service.config.timeouts

    def check_timeouts(self, now: float) -> None:
        """Called by the gateway's periodic sweep."""
        phase = self.phase
        if phase == CONNECTING:
            if now - self._activity >= self._timeouts().connect:
                self._upstream_failed(UpstreamTimeout("connecting to the upstream timed out"))
                return
        elif (
            phase in (WAITING, RESPONDING)
            and not self._upstream_paused
            and now - self._activity >= self._timeouts().read
        ):
            self._upstream_failed(UpstreamTimeout("the upstream stopped answering"))
            return
        if self._deadline_total and now >= self._deadline_total and CONNECTING <= phase < TUNNEL:
            self._upstream_failed(UpstreamTimeout("the upstream exchange took too long"))

    # -- ResponseSink -----------------------------------------------------------

    def on_response_head(
        self,
        status: int,
        reason: bytes,
        headers: list[Header],
        length: int | None,
        chunked: bool,
        keep_alive: bool,
    ) -> None:
        self.status = status
        self.phase = RESPONDING
        state = self.conn.state
        self._activity = state.loop.time()
        upstream = self._upstream
        assert upstream is not None
        out = headers  # already without hop-by-hop fields (see UpstreamConnection)
        out.append((b"x-request-id", self.request_id))
        out.append((b"via", upstream.response_via + state.via))
        if status == 101:
            upgrade = upstream.response_upgrade or self.upgrade or b""
            out += [(b"connection", b"upgrade"), (b"upgrade", upgrade)]
            self._out.append(client_head(status, reason, out))
            return
        if length is None:  # chunked, or ends when the upstream closes
            if self.http_minor == 1:
                self._chunked_out = True
            else:
                self._keep_alive = False  # HTTP/1.0: the body ends when we close
        if self._chunked_out:
            out.append((b"transfer-encoding", b"chunked"))
        self._chain.run_response(self, status, out)
        if not self._keep_alive or state.draining or self.upgrade is not None:
            self._keep_alive = False
            out.append((b"connection", b"close"))
        elif self.http_minor == 0:
            out.append((b"connection", b"keep-alive"))
        self._out.append(client_head(status, reason, out))

    def on_response_body(self, data: bytes) -> None:
        size = len(data)
        self.bytes_out += size
        if self._chunked_out:
            self._out.append(b"%x\r\n%s\r\n" % (size, data))
        else:
            self._out.append(data)
        self._activity = self.conn.state.loop.time()

    def flush(self) -> None:
        out = self._out
        if out:
            self.conn.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def on_response_end(self) -> None:
        if self.phase == TUNNEL:
            self._upstream = None
            self.conn.abort()
            return
        if self._chunked_out:
            self._out.append(b"0\r\n\r\n")
        self.flush()
        upstream = self._upstream
        self._upstream = None
        if upstream is not None:
            upstream.detach(reusable=self.req_done)
        self._finish()

    def on_upstream_failure(self, error: UpstreamError, *, stale: bool) -> None:
        upstream = self._upstream
        self._upstream = None
        if upstream is not None:
            upstream.detach(reusable=False)
        if self.phase == DONE:
            return
        if (
            stale
            and self._attempts < 2
            and self.req_length in (None, 0)
            and not self.req_chunked
            and self.raw_method in _RETRYABLE
            and self._pool is not None
        ):
            # A pooled connection the upstream had closed: retry once, fresh.
            self._connect(self._pool, fresh=True)
            return
        self._upstream_failed(error)

    def on_upstream_upgrade(self, rest: bytes) -> None:
        self.phase = TUNNEL
        self.flush()
        upstream = self._upstream
        assert upstream is not None
        self.conn.start_tunnel(upstream)
        if rest:
            self.conn.write(rest)

    def on_tunnel_data(self, data: bytes) -> None:
        self.conn.write(data)

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

    def _fail_local(self, status: int, detail: str, kind: str) -> None:
        extra = [(b"retry-after", b"1")] if status == 503 else None
        self.reply(problem(status, detail, self.request_id, kind=kind, headers=extra))

    def _upstream_failed(self, error: UpstreamError) -> None:
        self._drop_upstream()
        if self.status:
            self.conn.abort()  # cannot take back the bytes sent: truncate
            return
        if isinstance(error, UpstreamTimeout):
            self.reply(problem(504, str(error), self.request_id, kind="upstream-timeout"))
        elif isinstance(error, UpstreamConnectError):
            self.reply(problem(502, str(error), self.request_id, kind="upstream-unavailable"))
        else:
            self.reply(problem(502, str(error), self.request_id, kind="upstream-error"))

    def _drop_upstream(self) -> None:
        task = self._connect_task
        if task is not None:
            self._connect_task = None
            task.cancel()
        upstream = self._upstream
        if upstream is not None:
            self._upstream = None
            upstream.detach(reusable=False)

    def abort(self) -> None:
        """The client went away: stop everything this exchange started."""
        if self.phase == DONE:
            return
        self._drop_upstream()
        if not self.status:
            self.status = 499  # nginx's code for "client closed the request"
        self.phase = DONE
        self._chain.run_log(self)

    def _finish(self) -> None:
        self.phase = DONE
        self._chain.run_log(self)
        self.conn.exchange_done(self, self._keep_alive and self.req_done)
