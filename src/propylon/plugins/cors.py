"""CORS: answers preflight requests and decorates responses for allowed origins.

Origins are matched exactly, by ``*``, or by a ``https://*.example.com``
pattern. With credentials, the origin is echoed (never ``*``), as the Fetch
standard requires; ``Vary: Origin`` is set whenever the answer depends on it.
"""

from __future__ import annotations

from typing import ClassVar

from propylon.config.models import CorsConfig
from propylon.plugins.base import Plugin, RequestContext
from propylon.server.http import Header, Response, problem

_VARY = (b"vary", b"Origin")


class CorsPlugin(Plugin):
    name: ClassVar[str] = "cors"
    priority: ClassVar[int] = 2000  # before auth: preflights carry no credentials
    config_model = CorsConfig

    def __init__(self, config: CorsConfig) -> None:
        self.config = config
        self._any_origin = "*" in config.allow_origins
        self._exact = frozenset(o.lower().encode() for o in config.allow_origins if "*" not in o)
        self._patterns = tuple(
            tuple(part.lower().encode() for part in o.split("*", 1))
            for o in config.allow_origins
            if "*" in o and o != "*"
        )
        self._methods = ", ".join(m.upper() for m in config.allow_methods).encode()
        self._echo_headers = "*" in config.allow_headers
        self._headers = ", ".join(config.allow_headers).encode()
        self._expose = ", ".join(config.expose_headers).encode()
        self._max_age = str(int(config.max_age)).encode()
        self._credentials = config.allow_credentials

    def origin_allowed(self, origin: bytes) -> bool:
        lowered = origin.lower()
        if lowered in self._exact:
            return True
        for head, tail in self._patterns:
            if (
                lowered.startswith(head)
                and lowered.endswith(tail)
                and len(lowered) > len(head) + len(tail)
            ):
                return True
        return self._any_origin

    def _allow_origin(self, origin: bytes) -> bytes:
        if self._any_origin and not self._credentials:
            return b"*"
        return origin

    async def on_request(self, ctx: RequestContext) -> Response | None:
        if ctx.method != "OPTIONS":
            return None
        origin = ctx.request_header(b"origin")
        requested = ctx.request_header(b"access-control-request-method")
        if origin is None or requested is None:
            return None  # a plain OPTIONS request: the upstream answers it
        if not self.origin_allowed(origin):
            return problem(
                403, "this origin is not allowed", ctx.request_id, kind="cors-origin-denied"
            )
        headers: list[Header] = [
            (b"access-control-allow-origin", self._allow_origin(origin)),
            (b"access-control-allow-methods", self._methods),
            (b"access-control-max-age", self._max_age),
            _VARY,
        ]
        if self._echo_headers:
            wanted = ctx.request_header(b"access-control-request-headers")
            if wanted:
                headers.append((b"access-control-allow-headers", wanted))
        elif self._headers:
            headers.append((b"access-control-allow-headers", self._headers))
        if self._credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        return Response(204, headers)

    def on_response(self, ctx: RequestContext, status: int, headers: list[Header]) -> None:
        # Whether CORS headers are sent depends on Origin, so every response
        # says so: a shared cache must not serve one origin's answer to another.
        _add_vary_origin(headers)
        origin = ctx.request_header(b"origin")
        if origin is None or not self.origin_allowed(origin):
            return
        if any(name == b"access-control-allow-origin" for name, _ in headers):
            return  # a preflight answer, or the upstream handles CORS itself
        headers.append((b"access-control-allow-origin", self._allow_origin(origin)))
        if self._credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        if self._expose:
            headers.append((b"access-control-expose-headers", self._expose))


def _add_vary_origin(headers: list[Header]) -> None:
    for index, (name, value) in enumerate(headers):
        if name == b"vary":
            tokens = {token.strip().lower() for token in value.split(b",")}
            if b"origin" not in tokens and b"*" not in tokens:
                headers[index] = (name, value + b", Origin")
            return
    headers.append(_VARY)
