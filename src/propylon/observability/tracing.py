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
    __slots__ = ("line", "parent_id", "sampled", "span_id", "trace_id", "upstream_id")

    def __init__(
        self,
        trace_id: bytes,
        parent_id: bytes | None,
        span_id: bytes,
        upstream_id: bytes,
        sampled: bool,
    ) -> None:
        self.trace_id = trace_id
        self.parent_id = parent_id  # the caller's span, None for a new trace
        self.span_id = span_id  # the gateway's server span
        self.upstream_id = upstream_id  # the span the upstream sees as its parent
        self.sampled = sampled
        self.line = b"traceparent: 00-%s-%s-%s\r\n" % (
            trace_id,
            upstream_id,
            b"01" if sampled else b"00",
        )


def _is_hex(value: bytes) -> bool:
    try:
        int(value, 16)
    except ValueError:
        return False
    return value.isalnum()  # int() also takes "+", "_" and spaces


def parse(value: bytes | None) -> tuple[bytes, bytes, bool] | None:
    """(trace id, parent id, sampled) of a valid ``traceparent``, else None."""
    if value is None or len(value) < 55:
        return None
    parts = value.strip().lower().split(b"-")
    if len(parts) < 4:
        return None
    version, trace_id, parent_id, flags = parts[:4]
    if len(version) != 2 or version == b"ff" or (version == b"00" and len(parts) != 4):
        return None
    if len(trace_id) != 32 or len(parent_id) != 16 or len(flags) != 2:
        return None
    if not (_is_hex(version) and _is_hex(trace_id) and _is_hex(parent_id) and _is_hex(flags)):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id, parent_id, bool(int(flags, 16) & 1)


# Ids need to be unique, not secret: a seeded Mersenne Twister is far
# cheaper per request than a getrandom() syscall.
_bits = random.Random(int.from_bytes(os.urandom(16), "big")).getrandbits


def _new_span_id() -> bytes:
    return b"%016x" % (_bits(64) or 1)


def _new_trace_id() -> bytes:
    return b"%032x" % (_bits(128) or 1)


def begin(incoming: bytes | None, tracer: Tracer | None) -> TraceContext:
    """The trace context of a request about to be forwarded."""
    parsed = parse(incoming)
    if parsed is not None:
        trace_id, parent_id, sampled = parsed
        parent: bytes | None = parent_id
    else:
        trace_id, parent = _new_trace_id(), None
        sampled = tracer.sample(trace_id) if tracer is not None else True
    span_id = _new_span_id()
    exported = tracer is not None and sampled
    upstream_id = _new_span_id() if exported else span_id
    return TraceContext(trace_id, parent, span_id, upstream_id, sampled)


def make_tracer(config: TracingConfig) -> Tracer | None:
    if config.otlp_endpoint is None:
        return None
    from propylon.observability.otlp import OtlpTracer  # the SDK only when exporting

    return OtlpTracer(config)
