"""``GET|POST /admin/consumers``, ``GET|DELETE /admin/consumers/{id}``,
``GET|POST /admin/consumers/{id}/keys``, ``DELETE /admin/consumers/{id}/keys/{key}``.

Run-time keys live in Redis (auth/directory.py): every node accepts a new
key at once and drops a revoked one when its cache of it expires. The key
itself appears once, in the 201 answer that creates it.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from propylon.admin.problems import problem
from propylon.admin.routes.keys import CONTROL
from propylon.auth.directory import ConsumerDirectory, DirectoryError

routes = web.RouteTableDef()


async def _directory(request: web.Request) -> ConsumerDirectory:
    return ConsumerDirectory(request.app[CONTROL].config)


async def _answer(request: web.Request, action: Any) -> web.Response:
    directory = await _directory(request)
    try:
        status, body = await action(directory)
    except DirectoryError as exc:
        return problem(request, exc.status, str(exc))
    except OSError as exc:  # redis-py connection errors are OSErrors here too
        return problem(request, 503, f"Redis cannot be reached: {type(exc).__name__}")
    finally:
        await directory.aclose()
    return web.json_response(body, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DirectoryError(400, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise DirectoryError(400, "the body must be a JSON object")
    return body


def _key_fields(body: dict[str, Any], allowed: set[str]) -> tuple[str | None, list[str]]:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise DirectoryError(422, f"unknown field(s) {', '.join(unknown)}")
    tier, roles = body.get("tier"), body.get("roles", [])
    if tier is not None and not isinstance(tier, str):
        raise DirectoryError(422, "tier must be a string")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise DirectoryError(422, "roles must be a list of strings")
    return tier, roles


@routes.get("/admin/consumers")
async def list_consumers(request: web.Request) -> web.Response:
    async def action(directory: ConsumerDirectory) -> tuple[int, Any]:
        return 200, {"consumers": await directory.consumers()}

    return await _answer(request, action)


@routes.post("/admin/consumers")
async def create_consumer(request: web.Request) -> web.Response:
    async def action(directory: ConsumerDirectory) -> tuple[int, Any]:
        body = await _body(request)
        consumer_id = body.get("id")
        if not isinstance(consumer_id, str):
            raise DirectoryError(422, 'send {"id": "...", "tier": "...", "roles": [...]}')
        tier, roles = _key_fields(body, {"id", "tier", "roles"})
        key, stored = await directory.new_key(consumer_id, tier, roles)
        return 201, {"consumer": consumer_id, "key": key, **stored.view()}

    return await _answer(request, action)


@routes.get("/admin/consumers/{id}")
async def show_consumer(request: web.Request) -> web.Response:
    async def action(directory: ConsumerDirectory) -> tuple[int, Any]:
        return 200, await directory.consumer(request.match_info["id"])

    return await _answer(request, action)


@routes.delete("/admin/consumers/{id}")
async def delete_consumer(request: web.Request) -> web.Response:
    async def action(directory: ConsumerDirectory) -> tuple[int, Any]:
        revoked = await directory.revoke(request.match_info["id"])
        return 200, {"consumer": request.match_info["id"], "revoked": revoked}

    return await _answer(request, action)


@routes.get("/admin/consumers/{id}/keys")
async def list_keys(request: web.Request) -> web.Response:
    async def action(directory: ConsumerDirectory) -> tuple[int, Any]:
        consumer = await directory.consumer(request.match_info["id"])
        return 200, {"consumer": consumer["id"], "keys": consumer["keys"]}

    return await _answer(request, action)


@routes.post("/admin/consumers/{id}/keys")
async def create_key(request: web.Request) -> web.Response:
    async def action(directory: ConsumerDirectory) -> tuple[int, Any]:
        tier, roles = _key_fields(await _body(request), {"tier", "roles"})
        consumer_id = request.match_info["id"]
        key, stored = await directory.new_key(consumer_id, tier, roles)
        return 201, {"consumer": consumer_id, "key": key, **stored.view()}

    return await _answer(request, action)


@routes.delete("/admin/consumers/{id}/keys/{key}")
async def revoke_key(request: web.Request) -> web.Response:
    async def action(directory: ConsumerDirectory) -> tuple[int, Any]:
        consumer_id = request.match_info["id"]
        revoked = await directory.revoke(consumer_id, request.match_info["key"])
        return 200, {"consumer": consumer_id, "revoked": revoked}

    return await _answer(request, action)
