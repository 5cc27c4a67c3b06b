"""``GET /``: a live dashboard (RPS, latency, errors, targets, breakers).

One self-contained page: no framework and nothing fetched from elsewhere,
so it works on a host without internet access. The page holds no data and
needs no token to load; its requests to the admin API send the token the
operator types in, kept in the browser tab's sessionStorage only.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from aiohttp import web

routes = web.RouteTableDef()


@routes.get("/")
async def dashboard(request: web.Request) -> web.Response:
    return web.Response(
        body=_page(),
        content_type="text/html",
        headers={
            "Cache-Control": "no-cache",
            # Only this page's own scripts, and requests to this listener.
            "Content-Security-Policy": (
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
            ),
        },
    )


@cache
def _page() -> bytes:
    return files("propylon.admin").joinpath("static", "dashboard.html").read_bytes()
