"""W3C Trace Context through the gateway, and spans exported over OTLP/HTTP
to a real receiver on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from propylon.observability.tracecontext import parse_traceparent
from tests.support.gateway import InProcessGateway, route, simple_config, wait_until
from tests.support.loop import BackgroundLoop
from tests.support.otlp import OtlpReceiver
from tests.support.upstream import Upstream

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
SERVER, CLIENT = 2, 3  # OTLP SpanKind values


@pytest.fixture
def receiver(bg: BackgroundLoop) -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    bg.run(server.start())
    yield server
    bg.run(server.stop())


def sent_upstream(upstream: Upstream) -> tuple[bytes, bytes, int]:
    parsed = parse_traceparent(upstream.requests[-1].headers["traceparent"].encode())
    assert parsed is not None
    return parsed


def test_the_callers_trace_goes_on_with_the_gateway_as_parent(
    gateway: Callable[[dict[str, Any]], InProcessGateway], upstream: Upstream
) -> None:
    gw = gateway(simple_config(upstream.url))
    incoming = f"00-{TRACE}-{PARENT}-01"
    response = httpx.get(
        gw.url + "/x", headers={"traceparent": incoming, "tracestate": "vendor=abc,other=1"}
    )
    assert response.status_code == 200
    trace_id, parent_id, flags = sent_upstream(upstream)
    assert trace_id.decode() == TRACE
    assert parent_id.decode() != PARENT
    assert flags == 1
    assert upstream.requests[-1].headers["tracestate"] == "vendor=abc,other=1"
    assert sum(1 for name, _ in upstream.requests[-1].raw_headers if name == "traceparent") <= 1


def test_a_request_without_a_trace_starts_one(
    gateway: Callable[[dict[str, Any]], InProcessGateway], upstream: Upstream
) -> None:
    gw = gateway(simple_config(upstream.url))
    seen = set()
    for _ in range(3):
        response = httpx.get(gw.url + "/x")
        trace_id, _parent, flags = sent_upstream(upstream)
        seen.add(trace_id)
        assert flags == 0  # nothing records it: not sampled
        # One id to grep for in logs and traces alike.
        assert trace_id.decode() == response.headers["x-request-id"]
    assert len(seen) == 3
    response = httpx.get(gw.url + "/x", headers={"x-request-id": "client-chosen-id"})
    assert response.headers["x-request-id"] == "client-chosen-id"
    assert len(sent_upstream(upstream)[0]) == 32  # a trace id of its own


@pytest.mark.parametrize(
    "headers",
    [
        [("traceparent", f"00-{TRACE}-{'0' * 16}-01")],
        [("traceparent", "garbage"), ("tracestate", "vendor=abc")],
        [("traceparent", f"00-{TRACE}-{PARENT}-01"), ("traceparent", f"00-{TRACE}-{PARENT}-00")],
    ],
)
def test_an_invalid_or_repeated_traceparent_restarts_the_trace(
    gateway: Callable[[dict[str, Any]], InProcessGateway],
    upstream: Upstream,
    headers: list[tuple[str, str]],
) -> None:
    gw = gateway(simple_config(upstream.url))
    assert httpx.get(gw.url + "/x", headers=headers).status_code == 200
    trace_id, _parent, _flags = sent_upstream(upstream)
    assert trace_id.decode() != TRACE
    assert "tracestate" not in upstream.requests[-1].headers


def test_spans_reach_the_collector_with_the_ids_on_the_wire(
    bg: BackgroundLoop,
    gateway: Callable[[dict[str, Any]], InProcessGateway],
    upstream: Upstream,
    receiver: OtlpReceiver,
) -> None:
    config = simple_config(
        upstream.url,
        gateway={"name": "edge"},
        tracing={"otlp_endpoint": receiver.endpoint, "headers": {"x-collector-key": "k1"}},
    )
    gw = gateway(config)
    response = httpx.get(gw.url + "/orders/7", headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
    assert response.status_code == 200
    _trace, announced_parent, _flags = sent_upstream(upstream)
    assert wait_until(lambda: len(receiver.spans) >= 2, timeout=10)

    server = next(span for span in receiver.spans if span.kind == SERVER)
    client = next(span for span in receiver.spans if span.kind == CLIENT)
    assert server.trace_id == client.trace_id == TRACE
    assert server.parent_span_id == PARENT  # under the caller's span
    assert client.parent_span_id == server.span_id  # the upstream call inside it
    assert client.span_id == announced_parent.decode()  # what the upstream was told
    assert server.service_name == "edge"
    assert server.name == "GET all"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["url.path"] == "/orders/7"
    assert client.attributes["propylon.service"] == "up"
    assert receiver.headers[0].get("x-collector-key") == "k1"


def test_a_local_reply_is_a_server_span_alone(
    gateway: Callable[[dict[str, Any]], InProcessGateway],
    upstream: Upstream,
    receiver: OtlpReceiver,
) -> None:
    config = simple_config(upstream.url, tracing={"otlp_endpoint": receiver.endpoint})
    config["routes"] = [route("api", "/api")]
    gw = gateway(config)
    assert httpx.get(gw.url + "/nowhere").status_code == 404
    assert wait_until(lambda: len(receiver.spans) >= 1, timeout=10)
    assert [span.kind for span in receiver.spans] == [SERVER]
    assert receiver.spans[0].attributes["http.response.status_code"] == 404
    assert upstream.requests == []


def test_ratio_sampling_follows_the_parent(
    gateway: Callable[[dict[str, Any]], InProcessGateway],
    upstream: Upstream,
    receiver: OtlpReceiver,
) -> None:
    config = simple_config(
        upstream.url, tracing={"otlp_endpoint": receiver.endpoint, "sample_ratio": 0.0}
    )
    gw = gateway(config)
    for _ in range(20):
        httpx.get(gw.url + "/new-trace")
    httpx.get(gw.url + "/sampled", headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
    assert sent_upstream(upstream)[2] == 1
    assert wait_until(lambda: len(receiver.spans) >= 2, timeout=10)
    gw.stop()  # flushes the exporter: anything else would have arrived by now
    assert {span.trace_id for span in receiver.spans} == {TRACE}


def test_an_unreachable_collector_costs_the_client_nothing(
    gateway: Callable[[dict[str, Any]], InProcessGateway], upstream: Upstream
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    config = simple_config(
        upstream.url,
        tracing={"otlp_endpoint": f"http://127.0.0.1:{dead}/v1/traces", "timeout": "1s"},
    )
    gw = gateway(config)
    with httpx.Client() as client:
        statuses = [client.get(gw.url + f"/{i}").status_code for i in range(50)]
    assert statuses == [200] * 50


def test_a_collector_url_must_be_http() -> None:
    from pydantic import ValidationError

    from propylon.config.models import GatewayConfig

    with pytest.raises(ValidationError, match="OTLP/HTTP"):
        GatewayConfig.model_validate({"tracing": {"otlp_endpoint": "grpc://collector:4317"}})
