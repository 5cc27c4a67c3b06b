"""What all routes of one config share: the token verifier (one cache, one
JWKS fetcher), the API key index and store, the role hierarchy.

Chains are built per route (plugins/registry.py) with only the config at
hand, so the shared runtime is found by config identity. A few recent
configs are kept (a reload builds a new config; the old one's requests may
still be finishing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from propylon.auth.apikeys import ApiKeyAuthenticator, RedisKeyStore
from propylon.auth.keysets import JwtKeys
from propylon.auth.principal import PrincipalFactory
from propylon.auth.tokens import TokenVerifier
from propylon.config.per_config import PerConfig

if TYPE_CHECKING:
    from propylon.config.models import GatewayConfig


class IdentityRuntime:
    def __init__(self, config: GatewayConfig) -> None:
        auth = config.auth
        self._started = self._closed = False
        self.principals = PrincipalFactory(auth, config.consumers)
        self.tokens: TokenVerifier | None = None
        self.jwt_keys: JwtKeys | None = None
        if auth.jwt is not None:
            self.jwt_keys = JwtKeys(auth.jwt)
            self.tokens = TokenVerifier(auth.jwt, self.jwt_keys, self.principals)
        self.key_store = RedisKeyStore(config.redis) if config.redis is not None else None
        self.api_keys = ApiKeyAuthenticator(
            auth.api_keys, config.consumers, self.principals, self.key_store
        )

    async def start(self) -> None:
        """Fetch the JWKS now rather than on the first request."""
        if self._started:
            return
        self._started = True
        if self.jwt_keys is not None:
            self.jwt_keys.poke()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.key_store is not None:
            await self.key_store.aclose()


runtime_for = PerConfig(IdentityRuntime)
