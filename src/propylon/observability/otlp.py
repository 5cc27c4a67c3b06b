"""Export one server span and one upstream span per sampled request over
OTLP/HTTP, through the OpenTelemetry SDK (``pip install propylon[tracing]``).

Spans are created when the exchange has ended, with the ids the upstream
was already sent (tracing.py), so they carry the real start and end times
and nothing is held open while the request runs. The SDK's batch
processor sends them from its own thread.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from propylon import __version__

if TYPE_CHECKING:
    from propylon.config.observability import TracingConfig
    from propylon.server.exchange_base import ExchangeBase

_TRACE_ID_LIMIT = (1 << 64) - 1


class _ChosenIds(IdGenerator):
    """Hands the SDK the ids the gateway already put on the wire."""

    def __init__(self) -> None:
        self.trace_id: int | None = None
        self.span_id: int | None = None
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        chosen, self.span_id = self.span_id, None
        return chosen if chosen is not None else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        chosen, self.trace_id = self.trace_id, None
        return chosen if chosen is not None else self._random.generate_trace_id()


class OtlpTracer:
    def __init__(self, config: TracingConfig) -> None:
        assert config.otlp_endpoint is not None
        self.ids = _ChosenIds()
        self.bound = round(config.sample_ratio * (_TRACE_ID_LIMIT + 1))
        self.provider = TracerProvider(
            resource=Resource.create(
                {"service.name": config.service_name, "service.version": __version__}
            ),
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
            id_generator=self.ids,
        )
        exporter = OTLPSpanExporter(endpoint=config.otlp_endpoint, headers=dict(config.headers))
        self.provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
        self.tracer = self.provider.get_tracer("propylon", __version__)

    def sample(self, trace_id: bytes) -> bool:
        """TraceIdRatioBased's own rule, so the flag sent upstream matches the SDK's choice."""
        return (int(trace_id, 16) & _TRACE_ID_LIMIT) < self.bound

    def finish(self, ex: ExchangeBase, now: float) -> None:
        ctx = ex.trace
        if ctx is None or not ctx.sampled:
            return
        to_wall = time.time_ns() - int(now * 1e9)  # monotonic seconds -> epoch ns
        started = to_wall + int(ex.started * 1e9)
        ended = to_wall + int(now * 1e9)
        parent: Any = None
        if ctx.parent_id is not None:
            remote = SpanContext(
                int(ctx.trace_id, 16),
                int(ctx.parent_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            parent = trace.set_span_in_context(NonRecordingSpan(remote))
        self.ids.trace_id = int(ctx.trace_id, 16)
        self.ids.span_id = int(ctx.span_id, 16)
        route = ex.route
        server = self.tracer.start_span(
            f"{ex.method} {ex.route_name or ex.path}",
            context=parent,
            kind=SpanKind.SERVER,
            start_time=started,
            attributes={
                "http.request.method": ex.method,
                "url.path": ex.path,
                "http.route": ex.route_name,
                "http.response.status_code": ex.status,
                "client.address": ex.client_ip,
                "propylon.request_id": ex.request_id.decode("latin-1"),
            },
        )
        attempt = ex._attempt_started
        target = ex._target
        if attempt and route is not None and ctx.server_id is not None:
            self.ids.span_id = int(ctx.upstream_id, 16)
            upstream = self.tracer.start_span(
                f"{ex.method} {route.service.name}",
                context=trace.set_span_in_context(server),
                kind=SpanKind.CLIENT,
                start_time=to_wall + int(attempt * 1e9),
                attributes={
                    "http.request.method": ex.method,
                    "http.response.status_code": ex.status,
                    "propylon.service": route.service.name,
                    "server.address": target.id if target is not None else "",
                },
            )
            if ex.status >= 500:
                upstream.set_status(Status(StatusCode.ERROR))
            upstream.end(end_time=ended)
        if ex.status >= 500:
            server.set_status(Status(StatusCode.ERROR))
        server.end(end_time=ended)

    def close(self) -> None:
        self.provider.shutdown()  # exports what is pending (blocks: run off the loop)
