"""Application keys shared by the route modules."""

from __future__ import annotations

from aiohttp import web

from propylon.admin.control import ClusterControl

CONTROL = web.AppKey("control", ClusterControl)
