"""``GET /admin/services[/{name}]``, ``PATCH /admin/services/{name}/targets/{id}``
(weight, drain: blue-green and canary without a restart) and
``POST /admin/services/{name}/breaker`` (trip, reset).

Every worker is asked (server/operations.py); the answer merges their views:
in-flight counts add up, a target is healthy when every worker finds it so,
and a breaker shows its most severe state with each worker's state beside.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from propylon.admin.problems import problem
from propylon.admin.routes.keys import CONTROL

routes = web.RouteTableDef()

_SEVERITY = {"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2}


@routes.get("/admin/services")
async def list_services(request: web.Request) -> web.Response:
    replies = await _ask(request, {"type": "services"})
    if isinstance(replies, web.Response):
        return replies
    views = [reply["services"] for reply in replies]
    merged = [merge_service([view[i] for view in views]) for i in range(len(views[0]))]
    return web.json_response({"services": merged, "workers": len(replies)})


@routes.get("/admin/services/{name}")
async def show_service(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    replies = await _ask(request, {"type": "services"})
    if isinstance(replies, web.Response):
        return replies
    found = [s for reply in replies for s in reply["services"] if s["name"] == name]
    if not found:
        return problem(request, 404, f"no service named {name!r}")
    return web.json_response({**merge_service(found), "workers": len(replies)})


@routes.patch("/admin/services/{name}/targets/{target}")
async def change_target(request: web.Request) -> web.Response:
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    unknown = sorted(set(body) - {"weight", "drain"})
    if unknown:
        return problem(request, 422, f"unknown field(s) {', '.join(unknown)}: use weight, drain")
    if not body:
        return problem(request, 422, "send weight (0-1000) and/or drain (true/false)")
    weight, drain = body.get("weight"), body.get("drain")
    if weight is not None and (
        isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 1000
    ):
        return problem(request, 422, "weight must be a whole number from 0 to 1000")
    if drain is not None and not isinstance(drain, bool):
        return problem(request, 422, "drain must be true or false")
    message = {
        "type": "set_target",
        "service": request.match_info["name"],
        "target": request.match_info["target"],
        "weight": weight,
        "drain": drain,
    }
    return await _changed(request, message)


@routes.post("/admin/services/{name}/breaker")
async def breaker(request: web.Request) -> web.Response:
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    action = body.get("action")
    if action not in ("trip", "reset") or set(body) - {"action", "reason"}:
        return problem(request, 422, 'send {"action": "trip"} or {"action": "reset"}')
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        return problem(request, 422, "reason must be a string")
    message = {
        "type": "breaker",
        "service": request.match_info["name"],
        "action": action,
        "reason": reason,
    }
    return await _changed(request, message)


async def _changed(request: web.Request, message: dict[str, Any]) -> web.Response:
    replies = await _ask(request, message)
    if isinstance(replies, web.Response):
        return replies
    return web.json_response(
        {**merge_service([reply["service"] for reply in replies]), "workers": len(replies)}
    )


async def _ask(
    request: web.Request, message: dict[str, Any]
) -> list[dict[str, Any]] | web.Response:
    replies = await request.app[CONTROL].broadcast(message)
    if not replies:
        return problem(request, 503, "no worker answered; is the gateway starting or stopping?")
    for reply in replies:
        failure = reply.get("problem")
        if failure is not None:
            return problem(request, int(failure["status"]), str(failure["detail"]))
        if "error" in reply:
            return problem(request, 500, f"a worker failed: {reply['error']}")
    return replies


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return problem(request, 400, "the body must be a JSON object")
    if not isinstance(body, dict):
        return problem(request, 400, "the body must be a JSON object")
    return body


def merge_service(views: list[dict[str, Any]]) -> dict[str, Any]:
    """One service as every worker sees it, merged into one view."""
    first = views[0]
    breakers = [view["circuit_breaker"] for view in views]
    worst = max(breakers, key=lambda b: _SEVERITY.get(str(b["state"]), 0))
    targets = []
    for index, target in enumerate(first["targets"]):
        seen = [view["targets"][index] for view in views]
        targets.append(
            {
                **target,
                "healthy": all(t["healthy"] for t in seen),
                "ejected": any(t["ejected"] for t in seen),
                "available": any(t["available"] for t in seen),
                "in_flight": sum(int(t["in_flight"]) for t in seen),
            }
        )
    return {
        **first,
        "in_flight": sum(int(view["in_flight"]) for view in views),
        "targets": targets,
        "circuit_breaker": {
            **worst,
            "total": sum(int(b["total"]) for b in breakers),
            "total_failures": sum(int(b["total_failures"]) for b in breakers),
            "workers": [b["state"] for b in breakers],
        },
    }
