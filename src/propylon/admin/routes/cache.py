"""``POST /admin/cache/purge``: drop cached responses by path pattern or route.

Body: ``{"pattern": "/api/tickets*"}``, ``{"route": "tickets"}`` or both
(``*`` in a pattern matches any characters; patterns match paths, so every
query variant goes). Every worker purges its own memory store, or, with the
Redis backend, the shared entries; the answer sums what was removed.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from propylon.admin.problems import problem
from propylon.admin.routes.keys import CONTROL

routes = web.RouteTableDef()


@routes.post("/admin/cache/purge")
async def purge(request: web.Request) -> web.Response:
    try:
        body: Any = await request.json()
    except ValueError:
        return problem(request, 400, "the body must be a JSON object")
    if not isinstance(body, dict):
        return problem(request, 400, "the body must be a JSON object")
    if set(body) - {"pattern", "route"}:
        return problem(request, 422, 'the body takes "pattern" and/or "route"')
    pattern, route = body.get("pattern"), body.get("route")
    for name, value in (("pattern", pattern), ("route", route)):
        if value is not None and (not isinstance(value, str) or not value):
            return problem(request, 422, f'"{name}" must be a non-empty string')
    if pattern is None and route is None:
        return problem(request, 422, 'give a "pattern", a "route" or both')
    if pattern is not None and not pattern.startswith(("/", "*")):
        return problem(request, 422, 'a "pattern" is a path: it starts with "/" or "*"')
    replies = await request.app[CONTROL].broadcast(
        {"type": "cache_purge", "pattern": pattern, "route": route}
    )
    if not replies:
        return problem(request, 503, "no worker answered")
    counts = [int(reply.get("purged", 0)) for reply in replies]
    if any(count < 0 for count in counts):
        return problem(request, 503, "Redis is unavailable: nothing was purged")
    return web.json_response({"result": "purged", "purged": sum(counts), "workers": len(replies)})
