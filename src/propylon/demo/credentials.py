"""Credentials for the demo's protected route: a fresh secret, a JWT and an API key.

Made anew on every start, so nothing printed by one demo works against
another, and no secret is ever committed.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

ISSUER = AUDIENCE = "propylon-demo"
TOKEN_TTL = 3600


@dataclass(frozen=True)
class DemoCredentials:
    secret: str = field(default_factory=lambda: secrets.token_hex(32))
    api_key: str = field(default_factory=lambda: _new_key())

    def token(self, subject: str = "alice", roles: tuple[str, ...] = ("admin",)) -> str:
        import jwt

        now = int(time.time())
        claims = {
            "sub": subject,
            "roles": list(roles),
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + TOKEN_TTL,
        }
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def config(self) -> dict[str, Any]:
        """The ``auth`` and ``consumers`` sections of the demo config."""
        from propylon.auth.apikeys import hash_key

        return {
            "auth": {
                "jwt": {
                    "secret": self.secret,
                    "algorithms": ["HS256"],
                    "issuer": ISSUER,
                    "audience": AUDIENCE,
                },
                "roles": {"admin": ["agent"], "agent": ["user"]},
            },
            "consumers": [
                {
                    "id": "demo-partner",
                    "tier": "premium",
                    "roles": ["admin"],
                    "keys": [hash_key(self.api_key)],
                }
            ],
        }


def _new_key() -> str:
    from propylon.auth.apikeys import generate_key

    return generate_key()
