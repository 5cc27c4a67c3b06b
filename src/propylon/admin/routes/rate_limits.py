"""``DELETE /admin/rate-limits/{key}`` (reset) and ``GET /admin/rate-limits/{key}``
(usage). Keys as in ratelimit/ops.py; ``NAME`` alone means every key of a limit.

The supervisor asks every worker: each clears its memory buckets (the memory
backend and the outage fallback) and, with Redis, the shared key.
"""

from __future__ import annotations

from aiohttp import web

from propylon.admin.problems import problem
from propylon.admin.routes.keys import CONTROL

routes = web.RouteTableDef()


@routes.delete("/admin/rate-limits/{key:.+}")
async def reset(request: web.Request) -> web.Response:
    return await _ask(request, "reset")


@routes.get("/admin/rate-limits/{key:.+}")
async def usage(request: web.Request) -> web.Response:
    return await _ask(request, "usage")


async def _ask(request: web.Request, op: str) -> web.Response:
    key = request.match_info["key"]
    message = {"type": "ratelimit", "op": op, "key": key}
    replies = await request.app[CONTROL].broadcast(message)
    if not replies:
        return problem(request, 503, "no worker answered")
    errors = [r["error"] for r in replies if "error" in r]
    if errors:
        return problem(request, _status(errors[0]), errors[0])
    if op == "reset":
        deleted = sum(int(r["deleted"]) for r in replies)
        first = replies[0]
        return web.json_response(
            {
                "key": first["key"],
                "limit": first["limit"],
                "deleted": deleted,
                "workers": len(replies),
            }
        )
    if replies[0]["backend"] == "redis":
        return web.json_response(replies[0])
    # Memory: each worker has its own buckets.
    return web.json_response({**replies[0], "workers": replies})


def _status(error: str) -> int:
    if error.startswith(("no rate limit", "rate limiting is not")):
        return 404
    return 503 if "backend failed" in error else 400
