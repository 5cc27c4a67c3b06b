"""``GET /admin/status``, ``POST /admin/reload``, ``POST /admin/stop``."""

from __future__ import annotations

import asyncio

from aiohttp import web

from propylon.admin.problems import problem
from propylon.admin.routes.keys import CONTROL

routes = web.RouteTableDef()

# Let the 202 reach the client before the supervisor starts shutting down.
_STOP_DELAY = 0.05


@routes.get("/admin/status")
async def status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[CONTROL].status())


@routes.post("/admin/reload")
async def reload(request: web.Request) -> web.Response:
    outcome = await request.app[CONTROL].reload()
    if outcome.result == "reloaded":
        return web.json_response(
            {"result": "reloaded", "detail": outcome.detail, "config_hash": outcome.config_hash}
        )
    if outcome.result == "invalid":
        # 422: the request was fine, the config file it points at is not.
        return problem(request, 422, outcome.detail, errors=outcome.errors)
    return problem(request, 500, outcome.detail, errors=outcome.errors)


@routes.post("/admin/stop")
async def stop(request: web.Request) -> web.Response:
    control = request.app[CONTROL]
    asyncio.get_running_loop().call_later(_STOP_DELAY, control.request_stop, "admin stop")
    return web.json_response({"result": "stopping"}, status=202)
