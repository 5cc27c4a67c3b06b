"""Who a verified credential stands for, ready for the hot path.

A Principal bundles the Identity plugins see with what every request of that
caller needs again: the roles the hierarchy implies and the identity header
lines for the upstream. It is built once per token or key and then cached,
so a repeat caller costs no work beyond a look-up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from propylon.auth.rbac import RoleHierarchy
from propylon.config.auth import AuthConfig, ConsumerConfig
from propylon.errors import PropylonError
from propylon.plugins.base import Identity

Header = tuple[bytes, bytes]

# Identity values go into header lines: controls would split or corrupt
# them, and a comma inside a role would read as two roles.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


class UnusableClaims(PropylonError):
    """A verified token whose claims cannot be turned into an identity."""


@dataclass(frozen=True, slots=True)
class Principal:
    identity: Identity
    effective_roles: frozenset[str]
    upstream_headers: tuple[Header, ...]
    expires_at: float = math.inf  # wall-clock seconds; a cached JWT's exp + leeway


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What an API key stands for, as a store holds it."""

    consumer_id: str
    tier: str | None = None
    roles: tuple[str, ...] = ()


class PrincipalFactory:
    def __init__(self, auth: AuthConfig, consumers: Iterable[ConsumerConfig]) -> None:
        self.hierarchy = RoleHierarchy(auth.roles)
        self.consumers: Mapping[str, ConsumerConfig] = {c.id: c for c in consumers}
        self.tiers = frozenset(auth.tiers)
        self.default_tier = auth.fallback_tier
        names = auth.identity_headers

        def encoded(name: str | bool) -> bytes | None:
            return name.lower().encode() if isinstance(name, str) else None

        self._consumer_header = encoded(names.consumer_id)
        self._user_header = encoded(names.user_id)
        self._roles_header = encoded(names.roles)
        self._method_header = encoded(names.method)

    def for_key(self, record: KeyRecord) -> Principal:
        consumer = self.consumers.get(record.consumer_id)
        roles = _merge(record.roles, consumer.roles if consumer else ())
        tier = record.tier or (consumer.tier if consumer else None)
        if tier not in self.tiers:
            tier = self.default_tier
        identity = Identity(
            method="api_key", consumer_id=record.consumer_id, roles=roles, tier=tier
        )
        return self._principal(identity, math.inf)

    def for_token(
        self,
        subject: str | None,
        roles: tuple[str, ...],
        scopes: frozenset[str],
        consumer_id: str | None,
        claims: dict[str, object],
        expires_at: float,
    ) -> Principal:
        consumer = self.consumers.get(consumer_id) if consumer_id is not None else None
        if consumer is not None:
            roles = _merge(roles, consumer.roles)
        identity = Identity(
            method="jwt",
            consumer_id=consumer.id if consumer else None,
            user_id=subject,
            roles=roles,
            scopes=scopes,
            tier=(consumer.tier if consumer else None) or self.default_tier,
            claims=claims,
        )
        return self._principal(identity, expires_at)

    def _principal(self, identity: Identity, expires_at: float) -> Principal:
        headers: list[Header] = []
        for name, value in (
            (self._consumer_header, identity.consumer_id),
            (self._user_header, identity.user_id),
            (self._roles_header, ",".join(identity.roles) if identity.roles else None),
            (self._method_header, identity.method),
        ):
            if name is not None and value is not None:
                if _UNSAFE.search(value):
                    raise UnusableClaims("an identity value has control characters")
                headers.append((name, value.encode()))
        return Principal(
            identity, self.hierarchy.expand(identity.roles), tuple(headers), expires_at
        )


def _merge(first: Iterable[str], second: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*first, *second)))
