"""The OpenAPI paths of ``/metrics``, ``/health/detailed`` and ``/admin/monitoring/*``
(admin/routes/observability.py; shapes in docs/observability.md)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_UNAUTHORISED = {
    "401": {
        "description": "missing or wrong bearer token",
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
}


def _json(description: str, properties: dict[str, Schema]) -> Schema:
    schema = {"type": "object", "properties": properties}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _get(summary: str, response: Schema, tag: str = "monitoring") -> dict[str, Schema]:
    return {
        "get": {"tags": [tag], "summary": summary, "responses": {"200": response, **_UNAUTHORISED}}
    }


_LATENCY = {
    name: {"type": ["number", "null"]} for name in ("average", "min", "max", "p50", "p95", "p99")
}

OBSERVABILITY_PATHS: dict[str, dict[str, Schema]] = {
    "/metrics": _get(
        "Prometheus metrics, merged over every worker",
        {
            "description": "Prometheus text format 0.0.4",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        tag="observability",
    ),
    "/health/detailed": _get(
        "Version, pids, uptime, memory, workers, services with targets and breakers, "
        "Redis, cache, config",
        _json(
            "the node's health in detail",
            {
                "status": {"enum": ["healthy", "degraded"]},
                "version": {"type": "string"},
                "pids": {"type": "array", "items": {"type": "integer"}},
                "uptime": {"type": "object"},
                "memory": {"type": "object"},
                "workers": {"type": "array"},
                "services": {"type": "object"},
                "redis": {"type": ["object", "null"]},
                "cache": {"type": "array"},
                "config": {"type": ["object", "null"]},
            },
        ),
        tag="observability",
    ),
    "/admin/monitoring/stats": _get(
        "Requests by method, status code and top routes; response time percentiles",
        _json(
            "since the start or the last reset",
            {
                "uptime": {"type": "object"},
                "requests": {"type": "object"},
                "response_time": {"type": "object", "properties": _LATENCY},
                "circuit_breakers": {"type": "object"},
            },
        ),
    ),
    "/admin/monitoring/errors": _get(
        "The last error responses (status >= 400), newest first",
        _json(
            "timestamp, method, path, status, duration_ms, user_agent, ip, request_id, route",
            {"total": {"type": "integer"}, "errors": {"type": "array"}},
        ),
    ),
    "/admin/monitoring/performance": _get(
        "Throughput, latency, error and success rates, slowest routes",
        _json(
            "since the start or the last reset",
            {
                "throughput": {"type": "object"},
                "latency": {"type": "object"},
                "reliability": {"type": "object"},
                "slowest_routes": {"type": "array"},
            },
        ),
    ),
    "/admin/monitoring/reset": {
        "post": {
            "tags": ["monitoring"],
            "summary": "Start the monitoring documents over (Prometheus counters go on)",
            "responses": {
                "200": _json("reset", {"result": {"const": "reset"}, "at": {"type": "string"}}),
                **_UNAUTHORISED,
            },
        }
    },
}
