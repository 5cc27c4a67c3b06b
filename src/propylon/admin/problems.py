"""problem+json (RFC 9457) for every error the admin API answers, as on the data plane."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web

from propylon.server.http import PROBLEM_TYPE_BASE, new_request_id, valid_request_id

log = logging.getLogger("propylon.admin")

REQUEST_ID = web.RequestKey("request_id", str)
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(
    request: web.Request,
    status: int,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    title = HTTPStatus(status).phrase
    body = {
        "type": PROBLEM_TYPE_BASE + title.lower().replace(" ", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request.get(REQUEST_ID, ""),
        **extra,
    }
    return web.json_response(
        body, status=status, headers=headers, content_type="application/problem+json"
    )


@web.middleware
async def problems_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Give every request an id, and turn every error into problem+json (never a traceback)."""
    incoming = request.headers.get("X-Request-ID", "").encode("latin-1", "replace")
    request_id = (incoming if valid_request_id(incoming) else new_request_id()).decode()
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = _detail(exc, request)
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        response = problem(request, exc.status, detail, headers=headers)
    except Exception:
        log.exception("admin %s %s failed", request.method, request.path)
        response = problem(request, 500, "the admin API failed; see the gateway's log")
    response.headers["X-Request-ID"] = request_id
    return response


def _detail(exc: web.HTTPException, request: web.Request) -> str:
    if exc.status == 404:
        return f"no admin endpoint at {request.path}"
    if exc.status == 405:
        return f"{request.method} is not allowed on {request.path}"
    return exc.text or HTTPStatus(exc.status).phrase
