"""W3C trace context (``traceparent``), always propagated to the upstream.

A valid incoming ``traceparent`` keeps its trace id and sampled flag; a
missing or malformed one starts a new trace. The upstream request carries
the gateway's own span id as its parent (the upstream span's when spans are
exported, see otlp.py). ``tracestate`` passes through unchanged, as the
W3C spec allows for a participant that adds no entry of its own.

Cost when tracing is off: parsing one header and two random ids per
forwarded request; the OpenTelemetry SDK is never imported.
"""

from __future__ import annotations

import os
import random
import re
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from propylon.config.observability import TracingConfig
    from propylon.server.exchange_base import ExchangeBase

_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16


class Tracer(Protocol):
    def sample(self, trace_id: bytes) -> bool: ...

    def finish(self, exchange: ExchangeBase, now: float) -> None: ...

    def close(self) -> None: ...


class TraceContext:
    """One request's place in a trace; ``line`` is the header sent upstream.

    The trace id and the upstream's parent id are read from ``line`` when
    needed, so the common case (no export) builds one bytes object.
    """

    __slots__ = ("line", "parent_id", "sampled", "server_id")

    def __init__(
        self, line: bytes, parent_id: bytes | None, server_id: bytes | None, sampled: bool
    ) -> None:
        self.line = line  # b"traceparent: 00-<trace>-<span>-<flags>\r\n"
        self.parent_id = parent_id  # the caller's span, None for a new trace
        self.server_id = server_id  # the gateway's server span when exported, else None
        self.sampled = sampled

    @property
    def trace_id(self) -> bytes:
        return self.line[16:48]

    @property
    def upstream_id(self) -> bytes:
        """The span the upstream sees as its parent."""
        return self.line[49:65]

    @property
    def span_id(self) -> bytes:
        """The gateway's server span (the same as upstream_id without export)."""
        return self.server_id if self.server_id is not None else self.upstream_id


_VALID = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


def parse(value: bytes | None) -> tuple[bytes, bytes, bool] | None:
    """(trace id, parent id, sampled) of a valid ``traceparent``, else None."""
    if value is None:
        return None
    match = _VALID.fullmatch(value.strip().lower())
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest is not None):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id, parent_id, bool(int(flags, 16) & 1)


# Ids need to be unique, not secret: a seeded Mersenne Twister is far
# cheaper per request than a getrandom() syscall.
_bits = random.Random(int.from_bytes(os.urandom(16), "big")).getrandbits


def begin(incoming: bytes | None, tracer: Tracer | None) -> TraceContext:
    """The trace context of a request about to be forwarded."""
    if incoming is None and tracer is None:  # the common case, kept short
        line = b"traceparent: 00-%032x-%016x-01\r\n" % (_bits(128) or 1, _bits(64) or 1)
        return TraceContext(line, None, None, True)
    parsed = parse(incoming)
    if parsed is not None:
        trace_id, parent_id, sampled = parsed
        parent: bytes | None = parent_id
    else:
        trace_id, parent = b"%032x" % (_bits(128) or 1), None
        sampled = tracer.sample(trace_id) if tracer is not None else True
    exported = tracer is not None and sampled
    server_id = b"%016x" % (_bits(64) or 1) if exported else None
    line = b"traceparent: 00-%s-%016x-%s\r\n" % (
        trace_id,
        _bits(64) or 1,
        b"01" if sampled else b"00",
    )
    return TraceContext(line, parent, server_id, sampled)


def make_tracer(config: TracingConfig) -> Tracer | None:
    if config.otlp_endpoint is None:
        return None
    from propylon.observability.otlp import OtlpTracer  # the SDK only when exporting

    return OtlpTracer(config)
