"""W3C Trace Context (https://www.w3.org/TR/trace-context/) on the hot path.

Every request that goes upstream carries a ``traceparent``: the caller's
trace id when it sent a valid one, else a new trace. The parent id sent
upstream is always the gateway's own span id, so an upstream's spans hang
under the gateway's. ``tracestate`` is forwarded untouched alongside a valid
``traceparent`` and dropped when the trace restarts (spec 3.3: a vendor that
cannot parse traceparent must not use tracestate).

The sampled flag is the caller's when tracing export is off (we record
nothing, so we do not decide); with export on, a parent's decision is kept
and a new trace is sampled by ratio on its trace id (as OpenTelemetry's
ParentBased(TraceIdRatioBased) does, so every hop agrees on one trace).

Ids come from ``random.getrandbits``: no syscall per request (the request
id generator avoids ``getrandom`` for the same reason).
"""

from __future__ import annotations

import re
from random import getrandbits

__all__ = [
    "NOT_ZERO",
    "TraceContext",
    "TraceSampler",
    "new_span_id",
    "new_trace_id",
    "parse_traceparent",
    "start_trace",
]

_TRACEPARENT_RE = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16
SAMPLED = 0x01


def parse_traceparent(value: bytes) -> tuple[bytes, bytes, int] | None:
    """(trace id, parent id, flags) of a valid ``traceparent``, else None."""
    value = value.strip(b" \t")
    match = _TRACEPARENT_RE.match(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags = match.groups()
    if version == b"ff" or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    if len(value) != 55 and (version == b"00" or value[55:56] != b"-"):
        return None  # version 00 has no more fields; later ones add "-..."
    return trace_id, parent_id, int(flags, 16)


def new_trace_id() -> bytes:
    return new_ids()[0]


def new_span_id() -> bytes:
    return new_ids()[1]


# Bit 64 is the trace id's last bit, bit 0 the span id's: neither may be all
# zeros (W3C 3.2.2.3/4); one forced bit of 128 costs no useful entropy.
NOT_ZERO = (1 << 64) | 1


def new_ids() -> tuple[bytes, bytes]:
    """A trace id and a span id from one draw (the cheapest way measured)."""
    text = (getrandbits(192) | NOT_ZERO).to_bytes(24, "big").hex().encode()
    return text[:32], text[32:]


class TraceSampler:
    """ParentBased(TraceIdRatioBased(ratio)), decided once at the gateway."""

    __slots__ = ("bound",)

    def __init__(self, ratio: float) -> None:
        # OpenTelemetry compares the low 64 bits of the trace id to this bound.
        self.bound = round(ratio * (1 << 64))

    def sample_new(self, trace_id: bytes) -> bool:
        return int(trace_id[16:], 16) < self.bound


class TraceContext:
    """The trace of one request: what the gateway sends upstream and, when
    export is on, the ids its server and upstream spans are recorded with."""

    __slots__ = (
        "flags",
        "parent_id",
        "server_span_id",
        "trace_id",
        "upstream_span_id",
        "upstream_started",
    )

    def __init__(
        self,
        trace_id: bytes,
        parent_id: bytes | None,
        flags: int,
        server_span_id: bytes | None,
        upstream_span_id: bytes,
    ) -> None:
        self.trace_id = trace_id
        self.parent_id = parent_id  # the caller's span, None for a new trace
        self.flags = flags
        self.server_span_id = server_span_id  # None when nothing is recorded
        self.upstream_span_id = upstream_span_id
        self.upstream_started = 0.0  # loop time the upstream call began; 0 = never

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)

    def traceparent_line(self) -> bytes:
        return b"".join(
            (b"traceparent: 00-", self.trace_id, b"-", self.upstream_span_id, _FLAGS[self.flags])
        )


_FLAGS = [b"-%02x\r\n" % flags for flags in range(256)]


def start_trace(incoming: bytes | None, sampler: TraceSampler | None) -> TraceContext:
    """The trace of a request given its ``traceparent`` (None when absent)."""
    parsed = parse_traceparent(incoming) if incoming is not None else None
    if parsed is not None:
        trace_id, parent_id, flags = parsed  # the caller's flags go on unchanged
        span_id = new_ids()[1]
    else:
        (trace_id, span_id), parent_id = new_ids(), None
        flags = SAMPLED if sampler is not None and sampler.sample_new(trace_id) else 0
    if sampler is None:
        return TraceContext(trace_id, parent_id, flags, None, span_id)
    return TraceContext(trace_id, parent_id, flags, new_ids()[1], span_id)
