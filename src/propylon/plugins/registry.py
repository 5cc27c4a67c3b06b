"""Built-in plugins by name, and the chain of each route.

A plugin is enabled for every route by its top-level section (``cors:``,
``security_headers:``) and per route under ``plugins:``; a route's own
settings replace the global ones, and ``false`` turns a plugin off there.
Identity (auth, RBAC) is configured by the route's own ``auth`` / ``roles``
/ ``scopes`` keys instead; see plugins/auth/.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from propylon.plugins.auth import identity_plugins
from propylon.plugins.base import Plugin, PluginChain
from propylon.plugins.cache import cache_plugins
from propylon.plugins.cors import CorsPlugin
from propylon.plugins.rate_limit import rate_limit_plugins
from propylon.plugins.security_headers import SecurityHeadersPlugin

if TYPE_CHECKING:
    from pydantic import BaseModel

    from propylon.config.models import GatewayConfig, RouteConfig

BUILTIN_PLUGINS: dict[str, type[Plugin]] = {
    CorsPlugin.name: CorsPlugin,
    SecurityHeadersPlugin.name: SecurityHeadersPlugin,
}


def build_chain(config: GatewayConfig, route: RouteConfig | None) -> PluginChain:
    plugins: list[Plugin] = []
    for name, plugin_class in BUILTIN_PLUGINS.items():
        settings: BaseModel | None = getattr(config, name)
        if route is not None:
            override = getattr(route.plugins, name)
            if override is False:
                continue
            if override is not None:
                settings = override
        if settings is not None:
            plugins.append(plugin_class(settings))  # type: ignore[call-arg]
    plugins.extend(identity_plugins(config, route))
    plugins.extend(cache_plugins(config, route))
    plugins.extend(rate_limit_plugins(config, route))
    if config.tracing.otlp_endpoint is not None:
        from propylon.observability.otlp import tracing_plugin  # loads the SDK

        plugins.append(tracing_plugin(config))
    return PluginChain(plugins)
