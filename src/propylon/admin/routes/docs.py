"""``GET /api-docs`` (Swagger UI, served offline from the swagger-ui-py
package's files) and ``GET /api-docs.json`` (OpenAPI 3.1, admin/openapi.py).

These need no token: they describe the API and hold nothing secret, and a
browser cannot send a bearer token to load a page (auth.py lets them pass).
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files

from aiohttp import web

from propylon.admin.openapi import build_spec

routes = web.RouteTableDef()

# The Swagger UI files the page loads; nothing else of the package is served.
_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>propylon admin API</title>
  <link rel="stylesheet" href="/api-docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/api-docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/api-docs/assets/swagger-ui-bundle.js"></script>
  <script src="/api-docs/assets/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/api-docs.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
    });
  </script>
</body>
</html>
"""


@routes.get("/api-docs")
async def page(request: web.Request) -> web.Response:
    return web.Response(text=_PAGE, content_type="text/html")


@routes.get("/api-docs.json")
async def spec(request: web.Request) -> web.Response:
    return web.Response(body=_spec_bytes(), content_type="application/json")


@routes.get("/api-docs/assets/{name}")
async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = _ASSETS.get(name)
    if content_type is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=_asset_bytes(name),
        content_type=content_type,
        headers={"Cache-Control": "public, max-age=86400"},
    )


@cache
def _spec_bytes() -> bytes:
    return json.dumps(build_spec(), indent=2).encode()


@cache
def _asset_bytes(name: str) -> bytes:
    return files("swagger_ui").joinpath("static", name).read_bytes()
