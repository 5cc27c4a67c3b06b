"""Identity plugins of a route: ``auth`` (authenticate, authorise, tell the
upstream who is calling; see plugin.py) and, on routes without auth, a filter
for renamed identity headers.

The auth machinery (PyJWT, cryptography, redis, aiohttp client) is imported
only when some route asks for authentication, so gateways and workers that
use none do not pay for it at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from propylon.config.auth import AuthConfig
from propylon.plugins.base import Plugin, RequestContext

if TYPE_CHECKING:
    from propylon.config.models import GatewayConfig, RouteConfig
    from propylon.server.http import Response

# The names the data plane always strips from client requests (server/headers.py).
_STRIPPED_BY_PROXY = frozenset({b"x-consumer-id", b"x-user-id", b"x-user-roles", b"x-auth-method"})


def identity_plugins(config: GatewayConfig, route: RouteConfig | None) -> list[Plugin]:
    """The identity plugins of one route (none for the no-route chain)."""
    if route is None:
        return []
    custom = _custom_header_names(config.auth)
    if route.auth.required:
        from propylon.auth.runtime import runtime_for
        from propylon.plugins.auth.plugin import AuthPlugin

        return [AuthPlugin(runtime_for(config), config.auth, route, custom)]
    if custom:
        return [IdentityHeaderFilter(custom)]
    return []


def _custom_header_names(auth: AuthConfig) -> tuple[bytes, ...]:
    names = auth.identity_headers.model_dump().values()
    lowered = (name.lower().encode() for name in names if isinstance(name, str))
    return tuple(name for name in lowered if name not in _STRIPPED_BY_PROXY)


class IdentityHeaderFilter(Plugin):
    """Drops client-sent copies of renamed identity headers on routes without auth."""

    name: ClassVar[str] = "identity-headers"
    priority: ClassVar[int] = 1001
    config_model = AuthConfig

    def __init__(self, names: tuple[bytes, ...]) -> None:
        self.names = names

    async def on_request(self, ctx: RequestContext) -> Response | None:
        for name in self.names:
            ctx.remove_request_header(name)
        return None
