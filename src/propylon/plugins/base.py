"""The plugin contract: a class with a name, a priority and phase hooks.

Phases, in the order a request meets them:

- ``on_request(ctx)``: async; return a Response to answer locally (the chain
  stops and the upstream is never called) or None to continue. Higher
  ``priority`` runs first.
- ``on_response(ctx, status, headers)``: sync; may edit the response headers
  (a list of lower-case ``(name, value)`` byte pairs) before they are sent, for
  upstream responses and local replies alike. Runs in reverse priority order.
  It is synchronous because it runs inside the upstream read callback, where
  waiting would stall the stream; schedule a task for slow work.
- ``on_log(ctx)``: sync; after the last byte was sent. Same reason.

``start()`` and ``close()`` (async) run once per plugin instance when the
gateway starts and stops; shared resources should make them idempotent.

Plugins do their set-up in ``__init__`` (encode header values, compile
patterns) so that the hooks stay small.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

from pydantic import BaseModel

from propylon.server.http import Header, Response

if TYPE_CHECKING:
    from propylon.observability.tracecontext import TraceContext
    from propylon.server.upstream.target import Target


@dataclass(slots=True)
class Identity:
    """Who is calling, as established by an authentication plugin."""

    method: str  # "jwt", "api_key", ...
    consumer_id: str | None = None
    user_id: str | None = None
    roles: tuple[str, ...] = ()
    scopes: frozenset[str] = frozenset()
    tier: str | None = None
    claims: dict[str, object] = field(default_factory=dict)


class BodyObserver(Protocol):
    """Sees an upstream response body as it streams to the client (a cache
    storing it). Called synchronously from the upstream read callback."""

    def on_body(self, data: bytes) -> None: ...

    def on_end(self) -> None:
        """The whole body arrived (not called when the exchange fails)."""


class RequestContext(Protocol):
    """What a plugin may read of a request (and its response, once known).

    ``client_ip`` is the client's address after the trusted-proxy logic.
    ``identity`` is set by an authentication plugin. Header names are
    lower-case bytes. ``started`` is the loop time the request arrived;
    ``traceparent`` is the client's (None when absent); ``trace_id`` the
    trace the request went upstream with (empty when answered locally) and
    ``trace`` its whole context when the caller sent one or spans are
    exported (else None). A plugin may set ``body_observer`` (one per
    exchange) to see the upstream response body, and ``stale``: a callback
    the gateway calls instead of answering 502/503/504 (upstream failed,
    timed out, answered 5xx, breaker open, no target); a Response it
    returns is sent in place of the error.
    """

    request_id: bytes
    method: str
    path: str
    query: bytes
    headers: list[Header]
    client_ip: str
    route_name: str
    status: int
    identity: Identity | None
    host: bytes
    body_observer: BodyObserver | None
    stale: Callable[[], Response | None] | None
    started: float
    traceparent: bytes | None
    trace_id: bytes
    trace: TraceContext | None

    def loop_time(self) -> float: ...

    def note(self, name: str, value: object) -> None:
        """Record this plugin's outcome for the access log (``cache``, ``rate_limit``)."""

    def upstream_target(self) -> Target | None:
        """The target of the last upstream attempt, if any."""

    def request_header(self, name: bytes) -> bytes | None: ...

    def remove_request_header(self, name: bytes) -> None:
        """Do not forward this request header (e.g. Authorization)."""

    def add_upstream_header(self, name: bytes, value: bytes) -> None:
        """Send this header to the upstream (e.g. X-User-ID)."""


class Plugin:
    name: ClassVar[str]
    priority: ClassVar[int]
    config_model: ClassVar[type[BaseModel]]

    async def start(self) -> None:
        """Called once when the gateway starts serving (fetch keys, connect)."""

    async def close(self) -> None:
        """Called once when the gateway stops (close clients)."""

    async def on_request(self, ctx: RequestContext) -> Response | None:
        return None

    def on_response(self, ctx: RequestContext, status: int, headers: list[Header]) -> None:
        return None

    def on_log(self, ctx: RequestContext) -> None:
        return None


class PluginChain:
    """The plugins of one route, ordered once at config load."""

    __slots__ = ("log_phase", "plugins", "request_phase", "response_phase")

    def __init__(self, plugins: list[Plugin]) -> None:
        ordered = sorted(plugins, key=lambda p: -p.priority)
        self.plugins = tuple(ordered)
        self.request_phase = tuple(p for p in ordered if _overrides(p, "on_request"))
        self.response_phase = tuple(p for p in reversed(ordered) if _overrides(p, "on_response"))
        self.log_phase = tuple(p for p in ordered if _overrides(p, "on_log"))

    async def run_request(self, ctx: RequestContext) -> Response | None:
        for plugin in self.request_phase:
            reply = await plugin.on_request(ctx)
            if reply is not None:
                return reply
        return None

    def run_response(self, ctx: RequestContext, status: int, headers: list[Header]) -> None:
        for plugin in self.response_phase:
            plugin.on_response(ctx, status, headers)

    def run_log(self, ctx: RequestContext) -> None:
        for plugin in self.log_phase:
            plugin.on_log(ctx)


EMPTY_CHAIN = PluginChain([])


def _overrides(plugin: Plugin, hook: str) -> bool:
    return getattr(type(plugin), hook) is not getattr(Plugin, hook)
