"""W3C traceparent parsing, sampling and the trace a request is sent with."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from propylon.observability.tracecontext import (
    TraceSampler,
    parse_traceparent,
    start_trace,
)

TRACE = b"4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = b"00f067aa0ba902b7"
VALID = b"00-" + TRACE + b"-" + SPAN + b"-01"
hex_ids = st.binary(min_size=1).map(lambda b: b.hex().encode())


def test_the_spec_example_parses() -> None:
    assert parse_traceparent(VALID) == (TRACE, SPAN, 1)
    assert parse_traceparent(b" " + VALID + b"\t") == (TRACE, SPAN, 1)  # OWS around it


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"00-" + TRACE + b"-" + SPAN,  # no flags
        b"00-" + TRACE.upper() + b"-" + SPAN + b"-01",  # upper-case hex
        b"00-" + b"0" * 32 + b"-" + SPAN + b"-01",  # all-zero trace id
        b"00-" + TRACE + b"-" + b"0" * 16 + b"-01",  # all-zero parent id
        b"ff-" + TRACE + b"-" + SPAN + b"-01",  # forbidden version
        VALID + b"-extra",  # version 00 has exactly four fields
        b"00-" + TRACE[:-1] + b"-" + SPAN + b"-01",  # short trace id
        b"00-" + TRACE + b"-" + SPAN + b"-0g",
        b"0-" + TRACE + b"-" + SPAN + b"-01",
        b"-",  # the marker for a repeated header
    ],
)
def test_invalid_values_restart_the_trace(value: bytes) -> None:
    assert parse_traceparent(value) is None


def test_a_later_version_is_read_by_its_first_four_fields() -> None:
    assert parse_traceparent(b"cc-" + TRACE + b"-" + SPAN + b"-01-what-the-future") == (
        TRACE,
        SPAN,
        1,
    )
    assert parse_traceparent(b"cc-" + TRACE + b"-" + SPAN + b"-01x") is None


@given(st.binary(max_size=80))
def test_any_bytes_parse_or_are_refused(value: bytes) -> None:
    parsed = parse_traceparent(value)
    if parsed is not None:
        trace_id, parent_id, flags = parsed
        assert (len(trace_id), len(parent_id)) == (32, 16)
        assert 0 <= flags <= 255


@given(st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1), st.integers(0, 255))
def test_what_the_gateway_sends_parses_back(trace_id: int, span_id: int, flags: int) -> None:
    incoming = b"00-%032x-%016x-%02x" % (trace_id, span_id, flags)
    trace = start_trace(incoming, None)
    sent = trace.traceparent_line().removeprefix(b"traceparent: ").rstrip(b"\r\n")
    assert parse_traceparent(sent) == (b"%032x" % trace_id, trace.upstream_span_id, flags)
    assert trace.upstream_span_id != b"%016x" % span_id  # the gateway is the new parent
    assert trace.parent_id == b"%016x" % span_id


def test_a_new_trace_gets_fresh_ids() -> None:
    traces = [start_trace(None, None) for _ in range(200)]
    assert len({t.trace_id for t in traces}) == 200
    assert all(parse_traceparent(t.traceparent_line()[13:-2]) for t in traces)
    assert all(t.parent_id is None and not t.sampled for t in traces)


def test_with_export_off_nothing_is_recorded_and_the_callers_flag_stands() -> None:
    sampled = start_trace(VALID, None)
    assert sampled.sampled
    assert sampled.server_span_id is None
    assert not start_trace(VALID[:-2] + b"00", None).sampled


@given(st.floats(0.0, 1.0))
def test_the_ratio_sampler_matches_opentelemetry(ratio: float) -> None:
    from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased

    theirs = TraceIdRatioBased(ratio)
    ours = TraceSampler(ratio)
    for trace in (start_trace(None, None) for _ in range(50)):
        expected = theirs.should_sample(None, int(trace.trace_id, 16), "x").decision
        assert ours.sample_new(trace.trace_id) == (expected == Decision.RECORD_AND_SAMPLE)


def test_a_parents_decision_is_kept_when_exporting() -> None:
    never = TraceSampler(0.0)
    assert start_trace(VALID, never).sampled  # the caller sampled it
    assert not start_trace(VALID[:-2] + b"00", TraceSampler(1.0)).sampled
    assert start_trace(None, TraceSampler(1.0)).sampled
    assert not start_trace(None, never).sampled
    exporting = start_trace(VALID, never)
    assert exporting.server_span_id is not None
    assert exporting.server_span_id != exporting.upstream_span_id


def test_request_ids_are_unique_trace_ids_with_an_evenly_spread_low_half() -> None:
    from propylon.server.http import new_request_id

    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(parse_traceparent(b"00-" + i + b"-" + i[16:] + b"-00") for i in ids)
    sampler = TraceSampler(0.25)
    share = sum(sampler.sample_new(i) for i in ids) / len(ids)
    assert 0.22 < share < 0.28  # a plain counter would give 0 or 1 here
