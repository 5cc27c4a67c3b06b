"""Run-time changes an operator makes to one worker's services: target
weights and draining (blue-green, canary), breaker trips and resets, and the
view of it all. The admin API broadcasts each to every worker
(admin/routes/services.py); every worker applies it and publishes it as a
state event, so other nodes sharing Redis follow (server/sync.py). The
changes are idempotent, so a worker hearing one twice changes nothing.

Each function answers a dict: the new view, or ``{"problem": {...}}`` with
the status the admin API should answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from propylon.server.state import GatewayState
    from propylon.server.upstream.service import ServiceRuntime

Reply = dict[str, Any]


def _problem(status: int, detail: str) -> Reply:
    return {"problem": {"status": status, "detail": detail}}


def _service(state: GatewayState, name: object) -> ServiceRuntime | Reply:
    service = state.services.get(str(name))
    if service is None:
        known = ", ".join(sorted(state.services)) or "none"
        return _problem(404, f"no service named {name!r} (services: {known})")
    return service


def services_view(state: GatewayState) -> Reply:
    return {"services": [service.snapshot() for service in state.services.values()]}


def change_target(state: GatewayState, message: Reply) -> Reply:
    service = _service(state, message.get("service"))
    if isinstance(service, dict):
        return service
    target_id = str(message.get("target"))
    if not any(target.id == target_id for target in service.targets):
        known = ", ".join(target.id for target in service.targets)
        return _problem(404, f"service {service.name!r} has no target {target_id!r} ({known})")
    if message.get("weight") is not None:
        service.set_weight(target_id, int(message["weight"]))
    if message.get("drain") is not None:
        service.set_draining(target_id, bool(message["drain"]))
    return {"service": service.snapshot()}


def change_breaker(state: GatewayState, message: Reply) -> Reply:
    service = _service(state, message.get("service"))
    if isinstance(service, dict):
        return service
    reason = str(message.get("reason") or "by an operator (admin API)")
    if message.get("action") == "trip":
        service.breaker.trip(f"tripped {reason}")
    else:
        service.breaker.reset(f"reset {reason}")
    return {"service": service.snapshot()}


HANDLERS = {
    "services": lambda state, message: services_view(state),
    "set_target": change_target,
    "breaker": change_breaker,
}


def answer(state: GatewayState, message: Reply) -> Reply | None:
    """The reply to an operations message, or None when it is not one."""
    handler = HANDLERS.get(str(message.get("type")))
    return handler(state, message) if handler is not None else None


async def purge_cache(state: GatewayState, message: Reply) -> Reply:
    """``POST /admin/cache/purge``, sent to every worker (admin/routes/cache.py)."""
    cache = state.cache
    if cache is None:
        return {"purged": 0}
    pattern, route = message.get("pattern"), message.get("route")
    return {"purged": await cache.purge(pattern, route, spread=False)}


async def rate_limit_op(state: GatewayState, message: Reply) -> Reply:
    """``{"type": "ratelimit", "op": "reset"|"usage", "key": ...}`` from the admin API."""
    from propylon.ratelimit import ops

    limiter = state.rate_limiter
    if limiter is None:
        return {"error": "rate limiting is not configured"}
    operation = ops.reset if message.get("op") == "reset" else ops.usage
    try:
        return await operation(limiter, str(message.get("key", "")))
    except ops.UnknownLimit as exc:
        return {"error": str(exc)}
    except Exception as exc:  # Redis trouble: say so, never crash the worker
        return {"error": f"the rate limit backend failed: {type(exc).__name__}"}


ASYNC_HANDLERS = {"cache_purge": purge_cache, "ratelimit": rate_limit_op}


async def answer_async(state: GatewayState, message: Reply) -> Reply | None:
    """The reply to any operations message (those that wait, too), or None.

    The one dispatcher for a worker (cluster/worker.py) and for the admin API
    of a single process (admin/local.py), so both serve the same operations.
    """
    handler = ASYNC_HANDLERS.get(str(message.get("type")))
    if handler is not None:
        return await handler(state, message)
    return answer(state, message)
