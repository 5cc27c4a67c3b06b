"""Identity: JWT and API key authentication, consumers, RBAC.

    tokens.py     JWT parsing, claims, the verified-token cache
    keysets.py    HMAC secret, PEM keys, JWKS fetching
    apikeys.py    key generation and hashing, the Redis key store
    principal.py  the cached form of a verified caller
    rbac.py       the role hierarchy
    events.py     the authentication-failure hook
    runtime.py    what all routes of a config share

The plugin that uses them is propylon.plugins.auth.
"""

from propylon.auth.apikeys import (
    KeyStoreUnavailable,
    RedisKeyStore,
    generate_key,
    hash_key,
)
from propylon.auth.events import AuthFailure, FailureHook, auth_failures
from propylon.auth.principal import KeyRecord, Principal
from propylon.auth.rbac import RoleHierarchy
from propylon.auth.tokens import TokenRejected, TokenVerifier

__all__ = [
    "AuthFailure",
    "FailureHook",
    "KeyRecord",
    "KeyStoreUnavailable",
    "Principal",
    "RedisKeyStore",
    "RoleHierarchy",
    "TokenRejected",
    "TokenVerifier",
    "auth_failures",
    "generate_key",
    "hash_key",
]
