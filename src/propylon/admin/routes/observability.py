"""``GET /metrics``, ``GET /health/detailed`` and ``/admin/monitoring/*``."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from propylon.admin.routes.keys import CONTROL, OBSERVABILITY
from propylon.observability import monitoring, sketch
from propylon.observability.exposition import CONTENT_TYPE, render

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    hub = request.app[OBSERVABILITY]
    started = time.perf_counter()
    view = await hub.aggregator.collect()
    body = render(view, list(hub.config().metrics.buckets))
    hub.last_scrape_ms = (time.perf_counter() - started) * 1000
    response = web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/health/detailed")
async def health_detailed(request: web.Request) -> web.Response:
    hub = request.app[OBSERVABILITY]
    status = await request.app[CONTROL].status()
    view = await hub.aggregator.collect()
    document = monitoring.detailed(view, status)
    document["last_scrape_ms"] = hub.last_scrape_ms
    return web.json_response(document, headers={"Cache-Control": "no-store"})


async def _merged(request: web.Request) -> tuple[Any, Any, float, sketch.Layout]:
    """What the stats and performance documents are computed from."""
    hub = request.app[OBSERVABILITY]
    view = await hub.aggregator.collect()
    counters = hub.aggregator.monitoring(view)
    return view, counters, hub.since, sketch.layout(hub.config().metrics.buckets)


@routes.get("/admin/monitoring/stats")
async def stats(request: web.Request) -> web.Response:
    return web.json_response(monitoring.stats(*await _merged(request)))


@routes.get("/admin/monitoring/errors")
async def errors(request: web.Request) -> web.Response:
    hub = request.app[OBSERVABILITY]
    view = await hub.aggregator.collect()
    return web.json_response(monitoring.errors(view, hub.config().metrics.errors_kept))


@routes.get("/admin/monitoring/performance")
async def performance(request: web.Request) -> web.Response:
    return web.json_response(monitoring.performance(*await _merged(request)))


@routes.post("/admin/monitoring/reset")
async def reset(request: web.Request) -> web.Response:
    hub = request.app[OBSERVABILITY]
    await hub.aggregator.reset()
    hub.reset_at = time.time()
    return web.json_response({"result": "reset", "at": monitoring.iso(hub.reset_at)})
