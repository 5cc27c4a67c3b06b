"""W3C trace context to the upstream, always; with ``tracing.otlp_endpoint``, a
server and an upstream span per request arrive at a real OTLP/HTTP receiver."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.support.gateway import simple_config, wait_until
from tests.support.otlp import OtlpReceiver

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$")


@pytest.fixture
def receiver(bg) -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    bg.run(server.start())
    yield server
    bg.run(server.stop())


def _sent_upstream(upstream) -> re.Match[str]:
    match = TRACEPARENT.match(upstream.requests[-1].headers["traceparent"])
    assert match is not None
    return match


def test_an_incoming_trace_is_continued_with_the_gateways_span(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    headers = {"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "vendor=opaque"}
    assert httpx.get(gw.url + "/x", headers=headers).status_code == 200
    match = _sent_upstream(upstream)
    assert match.group(1) == TRACE
    assert match.group(2) != PARENT  # the gateway's span is the upstream's parent
    assert match.group(3) == "01"
    assert upstream.requests[-1].headers["tracestate"] == "vendor=opaque"
    # Exactly one traceparent goes upstream.
    assert [k for k, _ in upstream.requests[-1].raw_headers].count("traceparent") == 1


@pytest.mark.parametrize(
    "incoming",
    [None, "garbage", f"ff-{TRACE}-{PARENT}-01", f"00-{'0' * 32}-{PARENT}-01", f"00-{TRACE}-xyz"],
)
def test_a_missing_or_invalid_traceparent_starts_a_new_trace(gateway, upstream, incoming) -> None:
    gw = gateway(simple_config(upstream.url))
    headers = {"traceparent": incoming} if incoming is not None else {}
    assert httpx.get(gw.url + "/x", headers=headers).status_code == 200
    first = _sent_upstream(upstream).group(1)
    assert httpx.get(gw.url + "/x", headers=headers).status_code == 200
    second = _sent_upstream(upstream).group(1)
    assert first not in (TRACE, "0" * 32)
    assert first != second  # a new trace per request


def test_spans_arrive_at_the_otlp_receiver_with_the_right_parents(
    gateway, upstream, receiver
) -> None:
    tracing = {"otlp_endpoint": receiver.endpoint, "service_name": "gw-under-test"}
    gw = gateway(simple_config(upstream.url, tracing=tracing))
    headers = {"traceparent": f"00-{TRACE}-{PARENT}-01"}
    assert httpx.get(gw.url + "/items/1", headers=headers).status_code == 200
    sent = _sent_upstream(upstream)
    assert httpx.get(gw.url + "/items/2").status_code == 200  # a new trace: a root span
    new_trace = _sent_upstream(upstream).group(1)
    assert wait_until(lambda: len(receiver.spans) == 4, 10)
    spans = {(s.trace_id, s.kind): s for s in receiver.spans}
    server, client = spans[(TRACE, 2)], spans[(TRACE, 3)]
    assert server.parent_span_id == PARENT
    assert client.parent_span_id == server.span_id
    assert client.span_id == sent.group(2)  # the upstream's parent is the upstream span
    assert server.name == "GET all"
    assert server.attributes["http.response.status_code"] == 200
    assert server.service_name == "gw-under-test"
    root = spans[(new_trace, 2)]
    assert root.parent_span_id == ""
    assert spans[(new_trace, 3)].parent_span_id == root.span_id


def test_sample_ratio_zero_exports_nothing_and_says_so_upstream(
    gateway, upstream, receiver
) -> None:
    tracing = {"otlp_endpoint": receiver.endpoint, "sample_ratio": 0.0}
    gw = gateway(simple_config(upstream.url, tracing=tracing))
    assert httpx.get(gw.url + "/x").status_code == 200
    assert _sent_upstream(upstream).group(3) == "00"
    # A caller's sampled trace is still followed.
    headers = {"traceparent": f"00-{TRACE}-{PARENT}-01"}
    assert httpx.get(gw.url + "/x", headers=headers).status_code == 200
    assert wait_until(lambda: len(receiver.spans) == 2, 10)
    assert {s.trace_id for s in receiver.spans} == {TRACE}
