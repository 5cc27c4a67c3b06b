"""Admin endpoints, one module per group; each exports a ``routes`` table.

A handler reaches the supervisor through ``request.app[CONTROL]``. A new
group (services, cache, consumers) is a module here and a line below.
"""

from __future__ import annotations

from aiohttp import web

from propylon.admin.control import ClusterControl
from propylon.admin.routes import (
    cache,
    cluster,
    consumers,
    dashboard,
    docs,
    observability,
    rate_limits,
    services,
)
from propylon.admin.routes.keys import CONTROL

__all__ = ["CONTROL", "ROUTE_TABLES", "ClusterControl"]

ROUTE_TABLES: list[web.RouteTableDef] = [
    cluster.routes,
    services.routes,
    consumers.routes,
    rate_limits.routes,
    docs.routes,
    cache.routes,
    observability.routes,
    dashboard.routes,
]
