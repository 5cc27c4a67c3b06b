"""Application keys shared by the route modules."""

from __future__ import annotations

from aiohttp import web

from propylon.admin.control import ClusterControl
from propylon.observability.hub import ObservabilityHub

CONTROL = web.AppKey("control", ClusterControl)
OBSERVABILITY = web.AppKey("observability", ObservabilityHub)
