"""Bearer-token check for the admin API (``admin.token``)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from propylon.admin.problems import problem

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REALM = 'Bearer realm="propylon-admin"'
# Pages a browser loads (routes/docs.py, routes/dashboard.py): they hold
# nothing secret, and a browser cannot send a bearer token to load a page.
PUBLIC_PREFIX = "/api-docs"
PUBLIC_PATHS = frozenset({"/"})


def bearer_middleware(token: str | None) -> Middleware:
    """Without a token (allowed on loopback only, see AdminConfig) every request passes."""
    expected = token.encode() if token is not None else None

    @web.middleware
    async def check(request: web.Request, handler: _Handler) -> web.StreamResponse:
        path = request.path
        if expected is None or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIX):
            return await handler(request)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return problem(
                request,
                401,
                "send the admin token as Authorization: Bearer TOKEN",
                headers={"WWW-Authenticate": REALM},
            )
        # Constant time, so response timing does not reveal how much matched.
        if not hmac.compare_digest(given.strip().encode(), expected):
            return problem(
                request,
                401,
                "the admin token is not valid",
                headers={"WWW-Authenticate": REALM + ', error="invalid_token"'},
            )
        return await handler(request)

    return check
