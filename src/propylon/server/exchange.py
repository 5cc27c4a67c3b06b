"""One request/response exchange: routing, and the upstream side with retries.

Everything is callback-driven: the client connection feeds request events
in, the upstream connection feeds response events in (this class is its
``ResponseSink``), and the exchange writes to the other side. An exchange
makes one or more *attempts*: each picks a target, takes a ticket from the
service's circuit breaker, and ends with one outcome recorded for the
breaker and the target's passive health. A failed attempt is retried on
another target while nothing was sent to the client yet, the method is
retryable, the body can be replayed and the retry budget allows it.
"""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import TYPE_CHECKING

from propylon.errors import UpstreamConnectError, UpstreamError, UpstreamTimeout
from propylon.observability.tracecontext import start_trace
from propylon.server import builtin
from propylon.server.eager import run_eagerly
from propylon.server.exchange_base import (
    CONNECTING,
    DONE,
    PLUGINS,
    RESPONDING,
    ROUTING,
    TUNNEL,
    WAITING,
    ExchangeBase,
    log,
)
from propylon.server.headers import client_head, trusted_forwarding, upstream_head
from propylon.server.http import Header, problem
from propylon.server.pathnorm import InvalidPath, normalize_path, split_target
from propylon.server.router import host_without_port, rewrite_path
from propylon.server.upstream.breaker import REJECTED

if TYPE_CHECKING:
    from propylon.server.upstream.connection import UpstreamConnection
    from propylon.server.upstream.pool import TargetPool
    from propylon.server.upstream.service import ServiceRuntime
    from propylon.server.upstream.target import Target

__all__ = ["DONE", "Exchange"]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
# Upstream answers that a plugin's stale response may replace (stale-if-error).
_STALE_STATUSES = frozenset({500, 502, 503, 504})
# What went wrong with an attempt, for retries, the breaker and passive health.
CONNECT_ERROR, TIMEOUT, RESET, TOTAL_TIMEOUT = "connect_error", "timeout", "reset", "total"


class Exchange(ExchangeBase):
    __slots__ = ()

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
            # Most chains finish without waiting (a cache hit, a cached token):
            # run them now, and only the ones that suspend become a task.
            run_eagerly(self._run_plugins(), self.conn.state.loop)
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

    # -- forwarding -----------------------------------------------------------------

    def _forward(self) -> None:
        route = self.route
        assert route is not None
        service = route.service
        ticket = service.breaker.allow()
        if ticket == REJECTED:
            self._unavailable(
                f"the circuit breaker of service {service.name} is open",
                service.breaker.retry_after(),
            )
            return
        target = service.pick(self)
        if target is None:
            service.breaker.release(ticket)
            self._unavailable(f"no target of service {service.name} is available", 1)
            return
        self._ticket = ticket
        service.in_flight += 1
        self._counted = True
        state = self.conn.state
        total = service.config.timeouts.total
        self._deadline_total = state.loop.time() + total if total else 0.0
        # RFC 9110 10.1.1: only HTTP/1.1 clients may be sent a 100.
        continue_wanted = self.expect_continue and self.http_minor == 1
        if continue_wanted and not self.req_done and not self.bytes_in:
            self.conn.write(_CONTINUE)
        path = rewrite_path(self.path, route.prefix, route.strip_prefix, route.rewrite)
        target_bytes = path.encode() + b"?" + self.query if self.query else path.encode()
        incoming, sampler = self.traceparent, state.trace_sampler
        if incoming is None and sampler is None and self._own_request_id:
            # The common case, nearly free: a new trace that nothing records,
            # whose id is the request id (unique, evenly spread; http.py) and
            # whose span id is that id's counter half.
            rid = self.trace_id = self.request_id
            trace_line = b"".join((b"traceparent: 00-", rid, b"-", rid[16:], b"-00\r\n"))
        else:
            trace = self.trace = start_trace(incoming, sampler)
            self.trace_id = trace.trace_id
            if trace.parent_id is None and incoming is not None:
                self.remove_request_header(b"tracestate")  # it belonged to a broken trace
            if trace.server_span_id is not None:  # recorded: the upstream span starts now
                trace.upstream_started = state.loop.time()
            trace_line = trace.traceparent_line()
        tail = route.extra_lines + self._upstream_extra + trace_line
        if self.req_chunked:
            tail += b"transfer-encoding: chunked\r\n"
        elif self.req_length is not None:
            tail += b"content-length: %d\r\n" % self.req_length
        if self.upgrade is not None:
            tail += b"connection: upgrade\r\nupgrade: %s\r\n" % self.upgrade
        self._request_line = b"%s %s HTTP/1.1\r\n" % (self.raw_method, target_bytes)
        self._head_rest = upstream_head(
            self.headers,
            self.conn.connection_tokens,
            self._forwarded,
            self.request_id,
            state.via,
            tail,
        )
        self._attempt(target)

    def _attempt(self, target: Target) -> None:
        route = self.route
        assert route is not None
        self._target = target
        self._outcome_done = False
        self._attempts = 0
        pool = target.pool
        self._pool = pool
        preserve = route.service.config.preserve_host and self.host
        host = self.host if preserve else pool.host_header
        self._head = self._request_line + b"host: " + host + b"\r\n" + self._head_rest
        self._attempt_started = monotonic()  # precise; same clock as loop.time()
        self._connect(pool, fresh=False)

    def _unavailable(self, detail: str, retry_after: int) -> None:
        if self.stale is not None and self.serve_stale():
            return
        route = self.route
        fallback = route.fallback if route is not None else None
        if fallback is not None:
            self.reply(fallback)
            return
        self.reply(
            problem(
                503,
                detail,
                self.request_id,
                kind="service-unavailable",
                headers=[(b"retry-after", b"%d" % retry_after)],
            )
        )

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
        if self._tries and self._replay:
            data += b"".join(self._replay)  # a retry: the body sent before
        if self._buffer:
            body = b"".join(self._buffer)
            self.keep_for_replay(body)
            data += body
            self._buffer.clear()
            self._buffered = 0
            self.conn.resume_reading(self.conn.PAUSE_BUFFER)
        conn.send(self, data, head_only=self.raw_method == b"HEAD")

    def check_timeouts(self, now: float) -> None:
        """Called by the gateway's periodic sweep."""
        phase = self.phase
        route = self.route
        if route is None or phase < CONNECTING or phase >= TUNNEL:
            return
        timeouts = route.service.config.timeouts
        if self._deadline_total and now >= self._deadline_total:
            self._upstream_failed(
                UpstreamTimeout("the upstream exchange took too long"), TOTAL_TIMEOUT
            )
        elif phase == CONNECTING:
            if now - self._activity >= timeouts.connect:
                self._upstream_failed(UpstreamTimeout("connecting to the upstream timed out"))
        elif (
            phase in (WAITING, RESPONDING)
            and not self._upstream_paused
            and now - self._activity >= timeouts.read
        ):
            self._upstream_failed(UpstreamTimeout("the upstream stopped answering"))

    # -- outcomes and retries ------------------------------------------------------------

    def _record(self, failure: str | None, status: int = 0) -> None:
        """The outcome of the current attempt, once, for the target's passive health."""
        if self._outcome_done or self.route is None:
            return
        self._outcome_done = True
        self._last_failure = (failure, status)
        service = self.route.service
        target = self._target
        if target is None:
            return
        if failure is not None or status in service.passive_statuses:
            now = self.conn.state.loop.time()
            eject = service.may_eject(target, failure == CONNECT_ERROR)
            target.record_failure(now, may_eject=eject)
        else:
            target.record_success()

    def _record_breaker(self, failure: str | None, status: int = 0) -> None:
        """The outcome of the whole request, once, for the service's breaker.

        Attempts that a retry made good are not failures of the service: a
        dead target among live ones is passive health's business, and must
        not open the breaker for everyone.
        """
        if self._breaker_done or self.route is None:
            return
        self._breaker_done = True
        service = self.route.service
        broken = (
            (failure == CONNECT_ERROR and service.breaker_connect)
            or (failure in (TIMEOUT, TOTAL_TIMEOUT) and service.breaker_timeout)
            or (failure == RESET and (service.breaker_connect or service.breaker_5xx))
            or (status >= 500 and service.breaker_5xx)
            or status in service.breaker_statuses
        )
        slow_after = service.config.circuit_breaker.slow_call_duration
        slow = slow_after is not None and self.conn.state.loop.time() - self.started >= slow_after
        service.breaker.record(self._ticket, broken, slow)

    def _may_retry(self, service: ServiceRuntime, failure: str | None) -> bool:
        retries = service.retries
        if self.status or self._tries >= retries.attempts or self.upgrade is not None:
            return False
        if self.raw_method not in service.retry_methods:
            return False
        # A connection reset counts as a connection failure for retries.
        condition = CONNECT_ERROR if failure == RESET else failure
        if condition is not None and condition not in retries.on:
            return False
        if not self.req_done or self._replay is None or self.phase == DONE:
            return False
        # The budget keeps retries from multiplying an outage on the backends;
        # a connect error reached no backend, so its retry is not charged.
        if failure != CONNECT_ERROR and not self._retrying and not service.retry_allowed():
            return False
        # A timeout or a reset is retried only on another target: the same one
        # may already have the request, and would likely fail the same way.
        if failure in (TIMEOUT, RESET):
            return self._target is not None and service.has_other_target(self._target)
        return True

    def _retry_later(self, service: ServiceRuntime, failure: str | None) -> None:
        self._tries += 1
        if failure != CONNECT_ERROR and not self._retrying:
            self._retrying = True
            service.retries_in_flight += 1
        self.phase = CONNECTING  # waiting to retry; the total deadline still applies
        self._activity = float("inf")
        delay = service.backoff(self._tries)
        self._retry_handle = self.conn.state.loop.call_later(delay, self._retry)

    def _retry(self) -> None:
        self._retry_handle = None
        route = self.route
        if route is None or self.phase == DONE:
            return
        service = route.service
        # The request keeps the breaker ticket it was admitted with.
        target = service.pick(self, exclude=self._target)
        if target is None:
            self._record_breaker(*self._last_failure)
            self._unavailable(f"no target of service {service.name} is available", 1)
            return
        log.info("retry %d of %s %s on %s", self._tries, self.method, self.path, target.id)
        self._attempt(target)

    def _upstream_failed(self, error: UpstreamError, failure: str | None = None) -> None:
        if failure is None:
            if isinstance(error, UpstreamTimeout):
                failure = TIMEOUT
            elif isinstance(error, UpstreamConnectError):
                failure = CONNECT_ERROR
            else:
                failure = RESET
        self._drop_upstream()
        if self.status:
            self.conn.abort()  # cannot take back the bytes sent: truncate
            return
        self._record(failure)
        route = self.route
        if (
            route is not None
            and failure != TOTAL_TIMEOUT
            and self._may_retry(route.service, failure)
        ):
            self._retry_later(route.service, failure)
            return
        self._record_breaker(failure)
        if self.stale is not None and self.serve_stale():
            return
        if isinstance(error, UpstreamTimeout):
            self.reply(problem(504, str(error), self.request_id, kind="upstream-timeout"))
        elif isinstance(error, UpstreamConnectError):
            self.reply(problem(502, str(error), self.request_id, kind="upstream-unavailable"))
        else:
            self.reply(problem(502, str(error), self.request_id, kind="upstream-error"))

    # -- ResponseSink -------------------------------------------------------------------

    def on_response_head(
        self,
        status: int,
        reason: bytes,
        headers: list[Header],
        length: int | None,
        chunked: bool,
        keep_alive: bool,
    ) -> None:
        route = self.route
        assert route is not None
        service = route.service
        self._record(None, status)
        if status in service.retry_statuses and self._may_retry(service, None):
            # Drop this answer: nothing of it reached the client yet.
            self._drop_upstream()
            self._retry_later(service, None)
            return
        self._record_breaker(None, status)
        if status in _STALE_STATUSES and self.stale is not None and self.serve_stale():
            return
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
        if self.body_observer is not None:
            self.body_observer.on_body(data)
        size = len(data)
        self.bytes_out += size
        if self._chunked_out:
            self._out.append(b"%x\r\n%s\r\n" % (size, data))
        else:
            self._out.append(data)
        self._activity = self.conn.state.loop.time()

    def on_response_end(self) -> None:
        if self.phase == TUNNEL:
            self._upstream = None
            self.conn.abort()
            return
        if self._chunked_out:
            self._out.append(b"0\r\n\r\n")
        if self.body_observer is not None:
            self.body_observer.on_end()
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
            and self.raw_method in _IDEMPOTENT
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
