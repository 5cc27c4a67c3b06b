"""OTLP/HTTP export of request spans through the OpenTelemetry SDK.

Loaded only when ``tracing.otlp_endpoint`` is set, so a gateway without it
imports nothing of the SDK and pays nothing per request.

Per sampled request the gateway records, after the last byte was sent
(the log phase), a SERVER span for the whole exchange and, when it went
upstream, a CLIENT span for the upstream call. Their ids are the ones the
data plane already announced in the ``traceparent`` it sent upstream
(tracecontext.py), handed to the SDK through a preset id generator, so the
upstream's own spans hang under the gateway's CLIENT span. Spans are queued
to the SDK's BatchSpanProcessor, whose thread does the HTTP export: the
event loop never waits on the collector, and a full queue drops spans.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode

from propylon.config.per_config import PerConfig
from propylon.config.tracing import TracingConfig
from propylon.observability.tracecontext import TraceSampler, start_trace
from propylon.plugins.base import Plugin, RequestContext

if TYPE_CHECKING:
    from propylon.config.models import GatewayConfig

__all__ = ["TracingPlugin", "tracing_plugin"]


class _PresetIds(IdGenerator):
    """Hands the SDK the ids the data plane chose (single-threaded: the loop)."""

    def __init__(self) -> None:
        self.trace_id = 0
        self.span_id = 0

    def generate_trace_id(self) -> int:
        return self.trace_id

    def generate_span_id(self) -> int:
        return self.span_id


class TracingPlugin(Plugin):
    name: ClassVar[str] = "tracing"
    priority: ClassVar[int] = -10_000  # its log phase only; order does not matter
    config_model = TracingConfig

    def __init__(self, config: TracingConfig, service_name: str) -> None:
        assert config.otlp_endpoint is not None
        self.sampler = TraceSampler(config.sample_ratio)
        self._ids = _PresetIds()
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": config.service_name or service_name}),
            id_generator=self._ids,
            sampler=ALWAYS_ON,  # the gateway decided already (tracecontext.py)
        )
        exporter = OTLPSpanExporter(
            endpoint=config.otlp_endpoint,
            headers=dict(config.headers),
            timeout=config.timeout,
        )
        self._provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=config.max_queue,
                schedule_delay_millis=500,
            )
        )
        self._tracer = self._provider.get_tracer("propylon")
        self._closed = False

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._provider.shutdown()  # exports what is queued

    def on_log(self, ctx: RequestContext) -> None:
        context = ctx.trace
        if context is None:  # answered by the gateway itself: a trace of its own
            context = ctx.trace = start_trace(ctx.traceparent, self.sampler)
        if not context.sampled or context.server_span_id is None or self._closed:
            return
        loop_now = ctx.loop_time()
        now_ns = time.time_ns()

        def wall(loop_time: float) -> int:
            return now_ns - int((loop_now - loop_time) * 1e9)

        trace_id = int(context.trace_id, 16)
        parent = None
        if context.parent_id is not None:
            remote = SpanContext(
                trace_id,
                int(context.parent_id, 16),
                is_remote=True,
                trace_flags=trace.TraceFlags(1),
            )
            parent = trace.set_span_in_context(NonRecordingSpan(remote))
        ids = self._ids
        ids.trace_id = trace_id
        ids.span_id = int(context.server_span_id, 16)
        status = ctx.status
        route = ctx.route_name or "unmatched"
        server = self._tracer.start_span(
            f"{ctx.method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            start_time=wall(ctx.started),
            attributes={
                "http.request.method": ctx.method,
                "url.path": ctx.path,
                "http.response.status_code": status,
                "client.address": ctx.client_ip,
                "propylon.route": route,
                "propylon.request_id": ctx.request_id.decode("ascii", "replace"),
            },
        )
        if status >= 500:
            server.set_status(Status(StatusCode.ERROR))
        target = ctx.upstream_target()
        if target is not None and context.upstream_started:  # it went upstream
            ids.span_id = int(context.upstream_span_id, 16)
            host, _, port = target.pool.address.rpartition(":")
            client = self._tracer.start_span(
                f"{ctx.method} {target.service}",
                context=trace.set_span_in_context(server),
                kind=SpanKind.CLIENT,
                start_time=wall(context.upstream_started),
                attributes={
                    "http.request.method": ctx.method,
                    "server.address": host,
                    "server.port": int(port) if port.isdigit() else 0,
                    "http.response.status_code": status,
                    "propylon.service": target.service,
                    "propylon.target": target.id,
                },
            )
            if status >= 500:
                client.set_status(Status(StatusCode.ERROR))
            client.end(end_time=now_ns)
        server.end(end_time=now_ns)


def _make(config: GatewayConfig) -> TracingPlugin:
    return TracingPlugin(config.tracing, config.gateway.name)


# The one exporting plugin of a config (shared by every route's chain).
tracing_plugin = PerConfig(_make)
