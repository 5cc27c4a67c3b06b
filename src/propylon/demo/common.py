"""Pieces every demo service shares: JSON replies, errors, /health and /echo.

Backend errors are plain JSON (``{"error": ...}``) on purpose, unlike the
gateway's ``application/problem+json``: a newcomer can tell at a glance
whether a 404 came from the gateway (no route) or from a service (no record).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from propylon import __version__

SERVICE_NAME = web.AppKey("service_name", str)
STARTED_AT = web.AppKey("started_at", float)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ModelT = TypeVar("ModelT", bound=BaseModel)


def _dumps(value: Any) -> str:
    # Indented, with a final newline: people read these replies in a terminal.
    return json.dumps(value, indent=2) + "\n"


def request_id(request: web.Request) -> str | None:
    """The id the gateway assigned; None when the service is called directly."""
    return request.headers.get("X-Request-ID")


def reply(
    request: web.Request,
    data: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A JSON reply that carries the request id, so users can follow one request."""
    body = {**data, "request_id": request_id(request)}
    return web.json_response(body, status=status, headers=headers, dumps=_dumps)


def error(
    request: web.Request,
    status: int,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    service = request.app[SERVICE_NAME]
    data = {"error": message, "status": status, "service": service, **extra}
    return reply(request, data, status=status, headers=headers)


class BadRequest(Exception):
    """A handler's way to answer 400 with details without building the reply itself."""

    def __init__(self, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's plain-text 404/405 and our BadRequest into JSON replies."""
    try:
        return await handler(request)
    except BadRequest as exc:
        if exc.details:
            return error(request, 400, exc.message, details=exc.details)
        return error(request, 400, exc.message)
    except ConnectionError:
        # The peer is gone (the gateway aborted an over-limit upload, or a
        # download when a client left or the drain timed out): nobody reads
        # this reply (499, as nginx logs it), and a traceback would only alarm.
        return web.Response(status=499)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # Keep only the headers that mean something to a client (Allow on 405).
        kept = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate")}
        return error(request, exc.status, exc.reason, headers=kept)


async def parse_body(request: web.Request, model: type[ModelT]) -> ModelT:
    """Validate a JSON body against ``model``; raise BadRequest listing each problem."""
    raw = await request.read()
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        details = [
            {
                "field": ".".join(str(part) for part in issue["loc"]) or "<body>",
                "problem": issue["msg"],
            }
            for issue in exc.errors(include_url=False)
        ]
        raise BadRequest(f"invalid {model.__name__.removesuffix('In').lower()}", details) from None


def query_number(request: web.Request, name: str, default: float, low: float, high: float) -> float:
    """A numeric query parameter clamped to [low, high]; BadRequest when not a number."""
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"?{name}= must be a number, got {text!r}") from None
    if value != value:  # NaN would slip through min/max
        raise BadRequest(f"?{name}= must be a number, got {text!r}")
    return min(max(value, low), high)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def health(request: web.Request) -> web.Response:
    # Same shape as the gateway's own /health, so both read alike.
    return reply(
        request,
        {
            "status": "healthy",
            "service": request.app[SERVICE_NAME],
            "version": __version__,
            "uptime": round(time.monotonic() - request.app[STARTED_AT], 3),
            "timestamp": now_iso(),
            "dependencies": {},
        },
    )


async def echo(request: web.Request) -> web.Response:
    """What arrived here: shows X-Forwarded-*, Via, X-Request-ID and the rewritten path."""
    # Counted chunk by chunk, not read(): aiohttp caps read() at 1 MiB, and
    # echo is where users try uploads of the size the gateway lets through.
    body_bytes = 0
    async for chunk in request.content.iter_any():
        body_bytes += len(chunk)
    headers: dict[str, str] = {}
    for key, value in request.headers.items():
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    query: dict[str, str | list[str]] = {}
    for key in request.query:
        values = request.query.getall(key)
        query[key] = values[0] if len(values) == 1 else values
    return reply(
        request,
        {
            "service": request.app[SERVICE_NAME],
            "method": request.method,
            "path": request.path,
            "query_string": request.query_string,
            "query": query,
            "headers": headers,
            "client": request.remote,
            "body_bytes": body_bytes,
        },
    )


def make_app(name: str) -> web.Application:
    """An app with the JSON error middleware, GET /health and ANY /echo."""
    app = web.Application(middlewares=[json_errors])
    app[SERVICE_NAME] = name
    app[STARTED_AT] = time.monotonic()
    app.router.add_get("/health", health)
    app.router.add_route("*", "/echo", echo)
    return app
