"""The gateway's own endpoints on the data-plane port: /health, /health/live,
/health/ready. They are answered before routing, so no route, plugin or
limit can shadow or block them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from propylon.server.http import Response, json_response, problem

if TYPE_CHECKING:
    from propylon.server.exchange import Exchange
    from propylon.server.state import GatewayState

HEALTH_PATHS = frozenset({"/health", "/health/live", "/health/ready"})
_NO_STORE = [(b"cache-control", b"no-store")]


def health_reply(state: GatewayState, exchange: Exchange) -> Response | None:
    path = exchange.path
    if path not in HEALTH_PATHS:
        return None
    if exchange.method not in ("GET", "HEAD"):
        return problem(
            405,
            f"{exchange.method} is not allowed here; allowed: GET, HEAD",
            exchange.request_id,
            headers=[(b"allow", b"GET, HEAD")],
        )
    if path == "/health/live":
        return json_response(200, {"status": "alive"}, _NO_STORE)
    if path == "/health/ready":
        return readiness(state)
    return json_response(200, health_document(state), _NO_STORE)


def health_document(state: GatewayState) -> dict[str, object]:
    return {
        "status": "healthy",
        "service": state.name,
        "version": state.version,
        "uptime": round(time.time() - state.started_at, 3),
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "dependencies": {},
    }


def readiness(state: GatewayState) -> Response:
    """Ready when config is loaded, Redis (if configured) answers and every
    required service has an available target. A service with ``required:
    false`` is reported (``warn``) but never makes the gateway unready."""
    checks: dict[str, dict[str, object]] = {"config": {"status": "pass"}}
    failing = False
    redis = state.redis_health
    if redis is not None:
        if redis.ready:
            checks["redis"] = {"status": "pass", "latency_ms": redis.latency_ms}
        else:
            reason = redis.error or "no answer yet"
            checks["redis"] = {"status": "fail", "reason": reason}
            failing = True
    for name, service in state.services.items():
        required = service.config.required
        if state.draining:
            checks[f"service:{name}"] = {"status": "fail", "reason": "draining"}
            failing = True
        elif service.ready():
            checks[f"service:{name}"] = {"status": "pass"}
        else:
            verdict = "fail" if required else "warn"
            checks[f"service:{name}"] = {"status": verdict, "reason": "no target is available"}
            failing = failing or required
    status = 503 if failing else 200
    body = {"status": "not_ready" if failing else "ready", "checks": checks}
    headers = [*_NO_STORE, (b"retry-after", b"5")] if failing else _NO_STORE
    return json_response(status, body, headers)
