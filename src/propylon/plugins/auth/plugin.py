"""The auth plugin: authenticate (JWT, API key), authorise (roles, scopes),
and tell the upstream who is calling.

Priority 1000: after cors (2000, preflights carry no credentials), before
anything that keys on the caller (rate limits by tier). RBAC is part of this
plugin rather than a separate one: it needs the principal just established,
and every extra plugin in a chain is one more await per request.

Replies: 401 problem+json with ``WWW-Authenticate`` (RFC 6750: no error code
when credentials are missing, ``invalid_token`` when they fail, whatever the
real reason, which is only logged); 403 for a missing role, or with
``error="insufficient_scope"`` for a missing scope; 503 when only an
unreachable key store could tell whether an API key is valid.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import parse_qsl

from propylon.auth.apikeys import KeyStoreUnavailable
from propylon.auth.events import AuthFailure, auth_failures
from propylon.auth.tokens import TokenRejected
from propylon.config.auth import AuthConfig, RouteAuthConfig
from propylon.plugins.base import Plugin, RequestContext
from propylon.server.http import Header, Response, problem

if TYPE_CHECKING:
    from propylon.auth.principal import Principal
    from propylon.auth.runtime import IdentityRuntime
    from propylon.config.models import RouteConfig

log = logging.getLogger("propylon.auth")


class AuthPlugin(Plugin):
    name: ClassVar[str] = "auth"
    priority: ClassVar[int] = 1000
    config_model = RouteAuthConfig

    def __init__(
        self,
        runtime: IdentityRuntime,
        auth: AuthConfig,
        route: RouteConfig,
        custom_headers: tuple[bytes, ...] = (),
    ) -> None:
        methods = route.auth.methods
        self._runtime = runtime
        self._tokens = runtime.tokens if "jwt" in methods else None
        self._keys = runtime.api_keys if "api_key" in methods else None
        self._key_header = auth.api_keys.header.lower().encode()
        self._token_name = b"authorization" if self._tokens is not None else None
        self._key_name = self._key_header if self._keys is not None else None
        self._key_param = auth.api_keys.query_param
        self._optional = route.auth.optional
        self._forward = route.forward_credentials
        self._roles = frozenset(route.roles)
        self._scopes = frozenset(route.scopes)
        self._custom_headers = custom_headers
        realm = auth.realm
        bearer = f'Bearer realm="{realm}"'
        api_key = f'ApiKey realm="{realm}", header="{auth.api_keys.header}"'
        self._challenges: dict[str | None, list[Header]] = {}
        plain = [s for s, on in ((bearer, self._tokens), (api_key, self._keys)) if on]
        self._challenges[None] = [(b"www-authenticate", s.encode()) for s in plain]
        self._bad_request = [(b"www-authenticate", f'{plain[0]}, error="invalid_request"'.encode())]
        invalid = {
            "jwt": bearer + ', error="invalid_token", '
            'error_description="The access token is invalid or has expired"',
            "api_key": api_key
            + ', error="invalid_key", error_description="The API key is invalid"',
        }
        for method, challenge in invalid.items():
            others = [s for s in plain if not challenge.startswith(s)]
            self._challenges[method] = [
                (b"www-authenticate", s.encode()) for s in (challenge, *others)
            ]
        scopes = " ".join(sorted(self._scopes))
        self._scope_challenge = [
            (
                b"www-authenticate",
                f'{bearer}, error="insufficient_scope", scope="{scopes}"'.encode(),
            )
        ]

    async def start(self) -> None:
        await self._runtime.start()

    async def close(self) -> None:
        await self._runtime.aclose()

    async def on_request(self, ctx: RequestContext) -> Response | None:
        if self._custom_headers:
            for name in self._custom_headers:
                ctx.remove_request_header(name)
        authorization: bytes | None = None
        api_key: bytes | None = None
        repeated = False
        # One pass over the headers, names compared with locals: this loop
        # runs on every request of the route.
        token_name, key_name = self._token_name, self._key_name
        for name, value in ctx.headers:
            if name == token_name:
                repeated = repeated or authorization is not None
                authorization = value
            elif name == key_name:
                repeated = repeated or api_key is not None
                api_key = value
        if repeated:
            # Two credentials of one kind: which one would the upstream read?
            return self._fail(ctx, "invalid", None, "a credential header is repeated", 400)

        principal: Principal | None = None
        failed: tuple[str, str] | None = None
        if self._tokens is not None and authorization is not None:
            scheme, _, token = authorization.partition(b" ")
            if scheme.lower() == b"bearer":
                token = token.strip()
                principal = self._tokens.cached(token)
                if principal is None:
                    try:
                        principal = await self._tokens.verify(token)
                    except TokenRejected as exc:
                        failed = ("jwt", exc.reason)
        if principal is None and self._keys is not None:
            if api_key is None and self._key_param is not None:
                api_key = _query_value(ctx.query, self._key_param)
            if api_key is not None:
                principal = self._keys.cached(api_key)
                try:
                    if principal is None and self._keys.has_store:
                        principal = await self._keys.find(api_key)
                except KeyStoreUnavailable:
                    return problem(
                        503,
                        "API keys cannot be checked right now",
                        ctx.request_id,
                        kind="key-store-unavailable",
                        headers=[(b"retry-after", b"1")],
                    )
                if principal is None:
                    failed = ("api_key", "unknown API key")

        if principal is None:
            if failed is not None:
                return self._fail(ctx, "invalid", failed[0], failed[1])
            if self._optional and not self._roles and not self._scopes:
                self._strip_credentials(ctx)
                return None
            return self._fail(ctx, "missing", None, "no credentials")

        if self._roles and self._roles.isdisjoint(principal.effective_roles):
            return problem(
                403, "your roles do not allow this request", ctx.request_id, kind="forbidden"
            )
        if self._scopes and not self._scopes <= principal.identity.scopes:
            return problem(
                403,
                "the token lacks a scope this request needs",
                ctx.request_id,
                kind="insufficient-scope",
                headers=self._scope_challenge,
            )
        ctx.identity = principal.identity
        for name, value in principal.upstream_headers:
            ctx.add_upstream_header(name, value)
        if not self._forward:
            self._strip_credentials(ctx)
        return None

    def _strip_credentials(self, ctx: RequestContext) -> None:
        if self._forward:
            return
        if self._tokens is not None:
            ctx.remove_request_header(b"authorization")
        if self._keys is not None:
            ctx.remove_request_header(self._key_header)

    def _fail(
        self,
        ctx: RequestContext,
        kind: str,
        method: str | None,
        reason: str,
        status: int = 401,
    ) -> Response:
        request_id = ctx.request_id.decode("ascii", "replace")
        log.info(
            "authentication failed: route=%s client=%s request_id=%s credential=%s reason=%s",
            ctx.route_name,
            ctx.client_ip,
            request_id,
            method or "none",
            reason,
        )
        auth_failures.publish(
            AuthFailure(
                route=ctx.route_name,
                client_ip=ctx.client_ip,
                request_id=request_id,
                kind="missing" if kind == "missing" else "invalid",
                method=method,
                reason=reason,
            )
        )
        if status == 400:
            return problem(
                400, "send one credential of each kind", ctx.request_id, headers=self._bad_request
            )
        if kind == "missing":
            detail, slug = "this request needs credentials", "authentication-required"
        else:
            detail, slug = "the credentials are invalid", "invalid-credentials"
        return problem(401, detail, ctx.request_id, kind=slug, headers=self._challenges[method])


def _query_value(query: bytes, name: str) -> bytes | None:
    if not query:
        return None
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=False):
        if key == name:
            return value.encode("latin-1")
    return None
