"""Security response headers, the set helmet sends by default.

A header the upstream already set is left alone (it knows its page better,
e.g. a page-specific CSP); every header can be changed or turned off with
``false``. ``hide_server_headers`` removes ``Server`` and ``X-Powered-By``.
"""

from __future__ import annotations

from typing import ClassVar

from propylon.config.models import SecurityHeadersConfig
from propylon.plugins.base import Plugin, RequestContext
from propylon.server.http import Header

_HIDDEN = frozenset({b"server", b"x-powered-by"})


class SecurityHeadersPlugin(Plugin):
    name: ClassVar[str] = "security_headers"
    priority: ClassVar[int] = 100
    config_model = SecurityHeadersConfig

    def __init__(self, config: SecurityHeadersConfig) -> None:
        self.config = config
        pairs: list[Header] = []
        for field_name in SecurityHeadersConfig.model_fields:
            if field_name in ("strict_transport_security", "hide_server_headers"):
                continue
            value = getattr(config, field_name)
            if value is not False:
                pairs.append((field_name.replace("_", "-").encode(), str(value).encode()))
        hsts = config.strict_transport_security
        if hsts is not False:
            value = f"max-age={int(hsts.max_age)}"
            if hsts.include_subdomains:
                value += "; includeSubDomains"
            if hsts.preload:
                value += "; preload"
            pairs.append((b"strict-transport-security", value.encode()))
        self._pairs = tuple(pairs)
        self._hide = config.hide_server_headers

    def on_response(self, ctx: RequestContext, status: int, headers: list[Header]) -> None:
        if self._hide:
            headers[:] = [h for h in headers if h[0] not in _HIDDEN]
        present = {name for name, _ in headers}
        headers.extend(pair for pair in self._pairs if pair[0] not in present)
