"""The keys JWT signatures are checked with: an HMAC secret, PEM public keys
and a JWKS URL.

Keys are typed by family and an algorithm only ever meets keys of its own
family: an HS token is checked with the configured secret and nothing else,
which is what defeats "algorithm confusion" (an HS256 token signed with the
RSA public key as its HMAC secret).

JWKS: fetched with aiohttp (never blocking the loop), kept in memory,
refreshed in the background once ``jwks_refresh`` has passed, and fetched
again at once (at most once per ``jwks_cooldown``, concurrent callers share
one fetch) when a token names a ``kid`` not seen yet, which is how rotated-in
keys work immediately. While the endpoint fails, the keys at hand stay in
use. When a refresh drops a key, tokens it signed must stop working, so
listeners (the verified-token cache) are told to forget.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import (
    Algorithm,
    ECAlgorithm,
    OKPAlgorithm,
    RSAAlgorithm,
    get_default_algorithms,
)

from propylon.config.auth import MIN_RSA_BITS, JwtConfig, key_fits, load_public_key

log = logging.getLogger("propylon.auth")

MAX_JWKS_BYTES = 512 * 1024
_HMAC = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_FROM_JWK: dict[str, Callable[[Any], Any]] = {
    "RSA": RSAAlgorithm.from_jwk,
    "EC": ECAlgorithm.from_jwk,
    "OKP": OKPAlgorithm.from_jwk,
}


class JwksError(Exception):
    """The JWKS document could not be fetched or read (logged, never raised out)."""


@dataclass(frozen=True, slots=True)
class Jwk:
    kid: str | None
    alg: str | None
    key: Any  # a cryptography public key

    @property
    def fingerprint(self) -> tuple[str | None, bytes]:
        return self.kid, self.key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


class JwtKeys:
    def __init__(self, config: JwtConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._secret = config.secret.get_secret_value().encode() if config.secret else None
        self._static = [load_public_key(pem) for pem in config.public_keys]
        self._verifiers: dict[str, Algorithm] = get_default_algorithms()
        self.jwks: JwksSource | None = None
        if config.jwks_url is not None:
            self.jwks = JwksSource(
                config.jwks_url,
                allowed=frozenset(config.algorithms),
                refresh=config.jwks_refresh,
                cooldown=config.jwks_cooldown,
                timeout=config.jwks_timeout,
                clock=clock,
            )

    def poke(self) -> None:
        """Start a background JWKS refresh if one is due (cached tokens never
        reach ``verify``, so the cache path calls this now and then)."""
        if self.jwks is not None:
            self.jwks.poke()

    def on_removed(self, listener: Callable[[], None]) -> None:
        if self.jwks is not None:
            self.jwks.listeners.append(listener)

    async def verify(
        self, alg: str, kid: str | None, signing_input: bytes, signature: bytes
    ) -> bool:
        """Whether any key of ``alg``'s family signed ``signing_input``."""
        digest = _HMAC.get(alg)
        if digest is not None:
            if self._secret is None:
                return False
            expected = hmac.new(self._secret, signing_input, digest).digest()
            return hmac.compare_digest(expected, signature)
        verifier = self._verifiers[alg]
        for key in self._static:
            if key_fits(key, alg) and _checks(verifier, signing_input, key, signature):
                return True
        if self.jwks is not None:
            for key in await self.jwks.keys_for(kid, alg):
                if _checks(verifier, signing_input, key, signature):
                    return True
        return False


def _checks(verifier: Algorithm, message: bytes, key: Any, signature: bytes) -> bool:
    try:
        return bool(verifier.verify(message, key, signature))
    except Exception:  # a malformed signature is a wrong one, whatever the library raises
        return False


class JwksSource:
    def __init__(
        self,
        url: str,
        *,
        allowed: frozenset[str],
        refresh: float,
        cooldown: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        parts = urlsplit(url)
        # For logs: no credentials or query that might carry one.
        self._where = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
        self._allowed = allowed
        self._refresh = refresh
        self._cooldown = cooldown
        self._timeout = timeout
        self._clock = clock
        self._keys: tuple[Jwk, ...] = ()
        self._by_kid: dict[str, tuple[Jwk, ...]] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.listeners: list[Callable[[], None]] = []
        self.fetches = 0  # attempts, for tests and metrics

    async def keys_for(self, kid: str | None, alg: str) -> list[Any]:
        """Keys that may have signed a token with this ``kid`` and ``alg``."""
        now = self._clock()
        if self._fetched_at is None or (kid is not None and kid not in self._by_kid):
            # These keys cannot answer: wait for a fetch, if one may run now.
            task = self._fetch(now)
            if task is not None:
                # shield: a client hanging up must not cancel everyone's fetch.
                await asyncio.shield(task)
        elif now - self._fetched_at >= self._refresh:
            self._fetch(now)  # in the background; this request uses the keys at hand
        if kid is None:
            candidates = self._keys
        else:
            candidates = self._by_kid.get(kid) or tuple(k for k in self._keys if k.kid is None)
        return [k.key for k in candidates if k.alg in (None, alg) and key_fits(k.key, alg)]

    def poke(self) -> None:
        now = self._clock()
        if self._fetched_at is not None and now - self._fetched_at >= self._refresh:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to refresh on
                self._fetch(now)

    def _fetch(self, now: float) -> asyncio.Task[None] | None:
        loop = asyncio.get_running_loop()
        task = self._task
        if task is not None and not task.done() and task.get_loop() is loop:
            return task
        if self._attempted_at is not None and now - self._attempted_at < self._cooldown:
            return None
        self._attempted_at = now
        self._task = loop.create_task(self.refresh())
        return self._task

    async def refresh(self) -> None:
        """Fetch the document and swap the keys in; on failure keep the old ones."""
        self.fetches += 1
        try:
            keys = parse_jwks(await self._download(), self._allowed)
        except Exception as exc:  # whatever went wrong, the keys at hand stay usable
            log.warning(
                "JWKS fetch from %s failed (%s); keeping %d keys",
                self._where,
                _describe(exc),
                len(self._keys),
            )
            return
        if not keys:
            log.warning(
                "JWKS at %s has no usable keys; keeping %d keys", self._where, len(self._keys)
            )
            return
        removed = {k.fingerprint for k in self._keys} - {k.fingerprint for k in keys}
        self._keys = tuple(keys)
        by_kid: dict[str, tuple[Jwk, ...]] = {}
        for key in keys:
            if key.kid is not None:
                by_kid[key.kid] = (*by_kid.get(key.kid, ()), key)
        self._by_kid = by_kid
        self._fetched_at = self._clock()
        if removed:
            log.info("JWKS at %s dropped %d keys", self._where, len(removed))
            for listener in self.listeners:
                listener()

    async def _download(self) -> object:
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(self._url, headers={"Accept": "application/json"}) as response,
        ):
            if response.status != 200:
                raise JwksError(f"HTTP {response.status}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(65536):
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksError("the document is too large")
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise JwksError("the document is not JSON") from None


def parse_jwks(document: object, allowed: frozenset[str]) -> list[Jwk]:
    """The usable signing keys of a JWK set; others are skipped, not fatal."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError("not a JWK set (no 'keys' list)")
    usable: list[Jwk] = []
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        # Symmetric keys never come from a URL, and a private key there is a
        # leak we refuse to take part in.
        if "d" in entry or entry.get("kty") not in _FROM_JWK:
            continue
        alg, kid = entry.get("alg"), entry.get("kid")
        if alg is not None and alg not in allowed:
            continue
        try:
            key = _FROM_JWK[entry["kty"]](entry)
        except Exception:  # PyJWT raises several kinds for a malformed JWK
            continue
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            continue
        if not any(key_fits(key, a) for a in ([alg] if alg else allowed)):
            continue
        usable.append(Jwk(kid if isinstance(kid, str) else None, alg, key))
    return usable


def _describe(exc: BaseException) -> str:
    # Exception texts can quote URLs (and their query strings): name the kind only.
    if isinstance(exc, JwksError):
        return str(exc)
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"
    return type(exc).__name__
