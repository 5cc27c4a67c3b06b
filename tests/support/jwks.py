"""Keys, tokens and a real JWKS server for auth tests.

Keys are made with ``cryptography`` (cached per process: RSA generation is
slow) and tokens minted with PyJWT, so the gateway is checked against an
independent implementation. JwksServer is an aiohttp app on loopback whose
key set (and health) a test changes while the gateway runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

SECRET = "test-secret-for-propylon-0123456789abcdef"  # 41 bytes: enough for HS256 (32)
LONG_SECRET = SECRET * 2  # 82 bytes: enough for HS512 (64)

_CURVES = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}


@cache
def rsa_key(name: str = "a", bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@cache
def ec_key(alg: str = "ES256", name: str = "a") -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(_CURVES[alg])


@cache
def ed_key(curve: str = "Ed25519", name: str = "a") -> Any:
    if curve == "Ed448":
        return ed448.Ed448PrivateKey.generate()
    return ed25519.Ed25519PrivateKey.generate()


def key_for(alg: str, name: str = "a") -> Any:
    """A private key of the family ``alg`` needs (HS: the shared secret)."""
    if alg.startswith("HS"):
        return LONG_SECRET if alg != "HS256" else SECRET
    if alg[:2] in ("RS", "PS"):
        return rsa_key(name)
    if alg.startswith("ES"):
        return ec_key(alg, name)
    return ed_key("Ed25519", name)


def public_pem(private_key: Any) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def jwk_of(private_key: Any, kid: str | None = None, alg: str | None = None) -> dict[str, Any]:
    public = private_key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        data = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = OKPAlgorithm.to_jwk(public, as_dict=True)
    if kid is not None:
        data["kid"] = kid
    if alg is not None:
        data["alg"] = alg
    data["use"] = "sig"
    return data


def claims(**extra: Any) -> dict[str, Any]:
    """Valid default claims for the test gateways (issuer, audience, 1 h)."""
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "alice",
        "iss": "https://auth.test",
        "aud": "propylon",
        "iat": now,
        "exp": now + 3600,
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def mint(
    alg: str = "HS256",
    key: Any = None,
    kid: str | None = None,
    headers: dict[str, Any] | None = None,
    **extra: Any,
) -> str:
    all_headers = dict(headers or {})
    if kid is not None:
        all_headers["kid"] = kid
    return jwt.encode(
        claims(**extra), key if key is not None else key_for(alg), algorithm=alg,
        headers=all_headers or None,
    )  # fmt: skip


def b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class JwksServer:
    keys: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    hits: int = 0
    port: int = 0
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/jwks.json"

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self._jwks)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port or self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _jwks(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.status != 200:
            return web.Response(status=self.status, text="unavailable")
        return web.json_response({"keys": self.keys})
