"""JWT (JWS compact) verification with a cache of verified tokens.

The parsing is our own, small and strict, so that every rule is visible:
a size cap before anything else; exactly three base64url segments (no
padding, no other characters); a JSON object header whose ``alg`` is in the
configured list (``none`` never is) and that has no ``crit`` extensions; a
``kid`` of plain key-id characters; the signature checked (keysets.py)
before the payload is read; then ``exp`` / ``nbf`` / ``iat`` with leeway,
``iss``, ``aud`` and the required claims. Keys named inside the token
(``jwk``, ``jku``, ``x5u``) are ignored: only configured keys count.

A verified token is cached by its raw bytes until ``exp`` + leeway, so a
repeat token costs one dict look-up and a clock read, not a signature check
(PyJWT's HS256 decode alone is about 100 us here). The cache is bounded
(oldest entries go first) and cleared when a JWKS refresh drops a key.

Every rejection raises TokenRejected with a reason for the log; the client
only ever learns "invalid_token".
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from collections.abc import Callable

from propylon.auth.keysets import JwtKeys
from propylon.auth.principal import Principal, PrincipalFactory, UnusableClaims
from propylon.config.auth import JwtConfig
from propylon.errors import PropylonError

_SEGMENT = re.compile(rb"[A-Za-z0-9_-]+")
# Key ids in the wild: base64 / base64url, hex, UUIDs. Nothing that could
# travel into a path or a query if a key store ever used it that way.
_KID = re.compile(r"[A-Za-z0-9_~+/=-]+(?:\.[A-Za-z0-9_~+/=-]+)*")
_MAX_KID = 256
_ROLE = re.compile(r"[^\x00-\x20\x7f,]{1,128}")


class TokenRejected(PropylonError):
    """The token is not acceptable; ``reason`` is for logs only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")  # json accepts NaN and Infinity by default


def _decode(segment: bytes) -> bytes:
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        raise TokenRejected("malformed base64url")
    try:
        return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise TokenRejected("malformed base64url") from None


def _object(raw: bytes, what: str) -> dict[str, object]:
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise TokenRejected(f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise TokenRejected(f"the {what} is not a JSON object")
    return value


def _number(claims: dict[str, object], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenRejected(f"{name} is not a number")
    return float(value)


def _strings(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise TokenRejected(f"{what} is not a string or a list of strings")


def claim_at(claims: dict[str, object], path: tuple[str, ...]) -> object:
    """The claim at a dotted path such as realm_access.roles, or None."""
    node: object = claims
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


class TokenVerifier:
    def __init__(
        self,
        config: JwtConfig,
        keys: JwtKeys,
        principals: PrincipalFactory,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._principals = principals
        self._clock = clock
        self._allowed = frozenset(config.algorithms)
        self._max_bytes = config.max_token_bytes
        self._leeway = config.leeway
        self._required = tuple(config.required_claims)
        self._issuers = _as_set(config.issuer)
        self._audiences = _as_set(config.audience)
        self._roles_path = tuple(config.roles_claim.split("."))
        self._subject_path = tuple(config.subject_claim.split("."))
        self._consumer_path = (
            tuple(config.consumer_claim.split(".")) if config.consumer_claim else None
        )
        self._cache: dict[bytes, Principal] = {}
        self._cache_size = config.cache_size
        self._generation = 0  # bumped on every clear: a verify racing a key removal is not cached
        # Cached tokens never reach the key set, so the cache path pokes it
        # (one float comparison per hit) to keep JWKS refreshes going.
        self._poke_every = min(1.0, config.jwks_refresh)
        self._poke_at = 0.0 if keys.jwks is not None else math.inf
        keys.on_removed(self.clear)

    def cached(self, token: bytes) -> Principal | None:
        # Probing a dict with attacker-chosen bytes leaks no timing worth
        # having: str/bytes hashes are keyed per process (SipHash), so bytes
        # are only ever compared with an entry of the same 64-bit hash.
        principal = self._cache.get(token)
        if principal is not None:
            now = self._clock()
            if now < principal.expires_at:
                if now >= self._poke_at:
                    self._poke_at = now + self._poke_every
                    self._keys.poke()
                return principal
            del self._cache[token]
        return None

    def clear(self) -> None:
        self._cache.clear()
        self._generation += 1

    async def verify(self, token: bytes) -> Principal:
        """The principal of a valid token; raises TokenRejected otherwise."""
        principal = self.cached(token)
        if principal is not None:
            return principal
        generation = self._generation
        principal = await self._verify(token)
        if self._cache_size and generation == self._generation:
            if len(self._cache) >= self._cache_size:
                del self._cache[next(iter(self._cache))]  # dicts keep insertion order
            self._cache[token] = principal
        return principal

    async def _verify(self, token: bytes) -> Principal:
        if len(token) > self._max_bytes:
            raise TokenRejected("the token is longer than max_token_bytes")
        parts = token.split(b".")
        if len(parts) != 3:
            raise TokenRejected("not a JWS compact token (three segments)")
        header = _object(_decode(parts[0]), "header")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._allowed:
            raise TokenRejected("the algorithm is not allowed")
        if "crit" in header:
            raise TokenRejected("critical header extensions are not supported")
        kid = header.get("kid")
        if kid is not None and (
            not isinstance(kid, str) or len(kid) > _MAX_KID or not _KID.fullmatch(kid)
        ):
            raise TokenRejected("malformed kid")
        signature = _decode(parts[2])
        payload = _decode(parts[1])
        if not await self._keys.verify(alg, kid, parts[0] + b"." + parts[1], signature):
            raise TokenRejected("bad signature or unknown key")
        claims = _object(payload, "payload")
        expires_at = self._check_claims(claims)
        return self._principal(claims, expires_at)

    def _check_claims(self, claims: dict[str, object]) -> float:
        now = self._clock()
        leeway = self._leeway
        for name in self._required:
            if name not in claims:
                raise TokenRejected(f"the required claim {name} is missing")
        exp = _number(claims, "exp")
        if exp is not None and now >= exp + leeway:
            raise TokenRejected("expired")
        nbf = _number(claims, "nbf")
        if nbf is not None and now + leeway < nbf:
            raise TokenRejected("not valid yet (nbf)")
        iat = _number(claims, "iat")
        if iat is not None and now + leeway < iat:
            raise TokenRejected("issued in the future (iat)")
        if self._issuers is not None:
            issuer = claims.get("iss")
            if not isinstance(issuer, str) or issuer not in self._issuers:
                raise TokenRejected("wrong issuer")
        audience = claims.get("aud")
        if audience is not None or self._audiences is not None:
            # RFC 7519 4.1.3: a token for an audience we are not must be rejected.
            if self._audiences is None:
                raise TokenRejected("the token names an audience but none is configured")
            if self._audiences.isdisjoint(_strings(audience, "aud")):
                raise TokenRejected("wrong audience")
        return exp + leeway if exp is not None else math.inf

    def _principal(self, claims: dict[str, object], expires_at: float) -> Principal:
        subject = claim_at(claims, self._subject_path)
        if subject is not None and not isinstance(subject, str):
            raise TokenRejected("the subject is not a string")
        roles = _strings(claim_at(claims, self._roles_path), "the roles claim")
        if not all(_ROLE.fullmatch(role) for role in roles):
            raise TokenRejected("a role has spaces, commas or control characters")
        scopes = frozenset(
            [*_strings(claims.get("scope"), "scope"), *_strings(claims.get("scp"), "scp")]
        )
        consumer = claim_at(claims, self._consumer_path) if self._consumer_path else None
        try:
            return self._principals.for_token(
                subject,
                tuple(dict.fromkeys(roles)),
                scopes,
                consumer if isinstance(consumer, str) else None,
                claims,
                expires_at,
            )
        except UnusableClaims as exc:
            raise TokenRejected(str(exc)) from None


def _as_set(value: str | list[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else value)
