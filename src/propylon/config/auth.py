"""Config models for identity: ``auth:``, ``consumers:`` and the route-level
``auth`` / ``roles`` / ``scopes`` / ``forward_credentials`` keys.

Cross-section rules (a route's ``auth: jwt`` needs ``auth.jwt``, a consumer's
tier must exist, ...) are checked by ``check_identity`` once every section is
valid; it reports the failing key's own location, as pydantic would.

This module must not import models.py (which imports it), so it has its own
small base class and unit types.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from propylon.config.units import parse_duration, parse_size

if TYPE_CHECKING:
    from propylon.config.models import GatewayConfig

_Duration = Annotated[float, BeforeValidator(parse_duration)]
_Size = Annotated[int, BeforeValidator(parse_size)]

Algorithm = Literal[
    "HS256", "HS384", "HS512",
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512",
    "EdDSA",
]  # fmt: skip
AuthMethod = Literal["none", "jwt", "api_key"]

# RFC 7518 3.2: an HMAC key at least as long as the hash output.
HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
MIN_RSA_BITS = 2048
KEY_HASH_PREFIX = "sha256:"

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$")
_TOKEN_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP field name
_KEY_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_ROLE_RE = re.compile(r"^[^\x00-\x20\x7f,]{1,128}$")  # no controls, spaces or commas
_REALM_RE = re.compile(r"^[\x20-\x7e]{1,64}$")
_CLAIM_PATH_RE = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _field_name(value: str) -> str:
    if not _TOKEN_RE.match(value):
        raise ValueError(f"{value!r} is not a valid header name")
    return value


HeaderName = Annotated[str, BeforeValidator(lambda v: _field_name(v) if isinstance(v, str) else v)]


def load_public_key(pem: str) -> object:
    """A PEM public key as a cryptography key; ValueError with a safe message."""
    if "PRIVATE KEY" in pem:
        raise ValueError("this is a private key: give the public key only")
    try:
        key = load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError):
        raise ValueError("not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise ValueError(f"the RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} needed")
    return key


def key_fits(key: object, algorithm: str) -> bool:
    """Whether a public key can verify ``algorithm`` (HS keys are never objects)."""
    if algorithm[:2] in ("RS", "PS"):
        return isinstance(key, rsa.RSAPublicKey)
    if algorithm[:2] == "ES":
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == EC_CURVES[algorithm]
    if algorithm == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return False


def _check_pem(value: str) -> str:
    load_public_key(value)
    return value


PublicKeyPem = Annotated[str, AfterValidator(_check_pem)]


class JwtConfig(_Strict):
    algorithms: list[Algorithm] = Field(min_length=1)  # first: the key checks read it
    secret: SecretStr | None = None
    public_keys: list[PublicKeyPem] = Field(default_factory=list)
    jwks_url: str | None = None
    issuer: str | list[str] | None = None
    audience: str | list[str] | None = None
    leeway: _Duration = 0.0
    required_claims: list[str] = Field(default_factory=lambda: ["exp"])
    roles_claim: str = "roles"
    subject_claim: str = "sub"
    consumer_claim: str | None = None
    max_token_bytes: _Size = Field(default=8 * 1024, ge=64, le=1024 * 1024)
    cache_size: int = Field(default=10_000, ge=0, le=10_000_000)
    jwks_refresh: _Duration = 300.0
    jwks_cooldown: _Duration = 10.0
    jwks_timeout: _Duration = 5.0

    @field_validator("secret")
    @classmethod
    def _secret_length(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        hmac = [a for a in info.data.get("algorithms", []) if a.startswith("HS")]
        if value is not None and hmac:
            need = max(HMAC_MIN_BYTES[a] for a in hmac)
            if len(value.get_secret_value().encode()) < need:
                raise ValueError(
                    f"must be at least {need} bytes for {', '.join(hmac)} (RFC 7518 3.2)"
                )
        return value

    @field_validator("jwks_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("jwks_url must be an http:// or https:// URL")
        return value

    @field_validator("roles_claim", "subject_claim", "consumer_claim")
    @classmethod
    def _claim_path(cls, value: str | None) -> str | None:
        if value is not None and not _CLAIM_PATH_RE.match(value):
            raise ValueError(f"{value!r} is not a claim name or a dotted path such as a.b")
        return value

    @model_validator(mode="after")
    def _keys_for_algorithms(self) -> JwtConfig:
        algorithms = list(dict.fromkeys(self.algorithms))
        hmac = [a for a in algorithms if a.startswith("HS")]
        others = [a for a in algorithms if not a.startswith("HS")]
        if hmac and self.secret is None:
            raise ValueError(f"{', '.join(hmac)} need a secret")
        if self.secret is not None and not hmac:
            raise ValueError("secret is set but no HS algorithm is allowed")
        if others and not self.public_keys and self.jwks_url is None:
            raise ValueError(f"{', '.join(others)} need public_keys or a jwks_url")
        if (self.public_keys or self.jwks_url) and not others:
            raise ValueError("public keys are set but only HS algorithms are allowed")
        for index, pem in enumerate(self.public_keys):
            if not any(key_fits(load_public_key(pem), a) for a in others):
                raise ValueError(
                    f"public_keys[{index}] suits none of the algorithms {', '.join(others)}"
                )
        return self


class ApiKeysConfig(_Strict):
    """Where keys are read; with a top-level ``redis:``, keys created at run time
    live there, and each node caches what it looked up for ``cache_ttl``
    (``negative_ttl`` for unknown keys)."""

    header: HeaderName = "X-API-Key"
    query_param: str | None = None
    cache_ttl: _Duration = 5.0
    negative_ttl: _Duration = 1.0


class IdentityHeaders(_Strict):
    """Names of the identity headers sent upstream; ``false`` leaves one out."""

    consumer_id: HeaderName | Literal[False] = "X-Consumer-ID"
    user_id: HeaderName | Literal[False] = "X-User-ID"
    roles: HeaderName | Literal[False] = "X-User-Roles"
    method: HeaderName | Literal[False] = "X-Auth-Method"


class TierConfig(_Strict):
    """A tier's settings; its limits arrive with rate limiting."""


def _default_tiers() -> dict[str, TierConfig]:
    return {"free": TierConfig(), "standard": TierConfig(), "premium": TierConfig()}


class AuthConfig(_Strict):
    realm: str = "propylon"
    jwt: JwtConfig | None = None
    api_keys: ApiKeysConfig = ApiKeysConfig()
    roles: dict[str, list[str]] = Field(default_factory=dict)
    tiers: dict[str, TierConfig] = Field(default_factory=_default_tiers, min_length=1)
    default_tier: str | None = None
    identity_headers: IdentityHeaders = IdentityHeaders()

    @field_validator("realm")
    @classmethod
    def _realm(cls, value: str) -> str:
        if not _REALM_RE.match(value) or '"' in value or "\\" in value:
            raise ValueError("realm must be 1-64 printable characters without quotes")
        return value

    @field_validator("roles")
    @classmethod
    def _hierarchy(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for role, included in value.items():
            for name in (role, *included):
                _check_role(name)
        cycle = find_cycle(value)
        if cycle:
            raise ValueError(f"the role hierarchy has a cycle: {' > '.join(cycle)}")
        return value

    @model_validator(mode="after")
    def _tier_default(self) -> AuthConfig:
        if self.default_tier is not None and self.default_tier not in self.tiers:
            raise ValueError(f"default_tier {self.default_tier!r} is not one of the tiers")
        return self

    @property
    def fallback_tier(self) -> str:
        return self.default_tier or next(iter(self.tiers))


def _check_role(name: str) -> str:
    if not _ROLE_RE.match(name):
        raise ValueError(f"role {name!r} must be 1-128 characters without spaces or commas")
    return name


Role = Annotated[str, BeforeValidator(lambda v: _check_role(v) if isinstance(v, str) else v)]


def find_cycle(graph: dict[str, list[str]]) -> list[str]:
    """A cycle in role -> included roles, as a path (first == last), or []."""
    done: set[str] = set()
    for start in graph:
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, index = stack.pop()
            if index == 0:
                if node in on_path:
                    return [*path[path.index(node) :], node]
                if node in done:
                    continue
                path.append(node)
                on_path.add(node)
            children = graph.get(node, [])
            if index < len(children):
                stack.append((node, index + 1))
                stack.append((children[index], 0))
            else:
                done.add(node)
                on_path.discard(path.pop())
    return []


def _key_hash(value: object) -> object:
    if isinstance(value, str) and not _KEY_HASH_RE.match(value):
        raise ValueError(
            "expected sha256:<64 lower-case hex digits>, the hash `propylon keys new` "
            "prints (never the key itself)"
        )
    return value


KeyHash = Annotated[str, BeforeValidator(_key_hash)]


class ConsumerConfig(_Strict):
    id: str
    tier: str | None = None
    roles: list[Role] = Field(default_factory=list)
    keys: list[KeyHash] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError(
                f"consumer id {value!r} must be 1-128 letters, digits, '_', '.', '@', ':', '-'"
            )
        return value


def _no_auth() -> list[AuthMethod]:
    return ["none"]


class RouteAuthConfig(_Strict):
    methods: list[AuthMethod] = Field(default_factory=_no_auth, min_length=1)
    optional: bool = False

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[AuthMethod]) -> list[AuthMethod]:
        value = list(dict.fromkeys(value))
        if "none" in value and len(value) > 1:
            raise ValueError("'none' cannot be combined with other methods")
        return value

    @model_validator(mode="after")
    def _optional(self) -> RouteAuthConfig:
        if self.optional and self.methods == ["none"]:
            raise ValueError("optional needs jwt or api_key among the methods")
        return self

    @property
    def required(self) -> bool:
        return self.methods != ["none"]


def _route_auth(value: object) -> object:
    # `auth: jwt` and `auth: [jwt, api_key]` are short for `auth: {methods: ...}`.
    if isinstance(value, str):
        return {"methods": [value]}
    if isinstance(value, list):
        return {"methods": value}
    if isinstance(value, dict) and isinstance(value.get("methods"), str):
        return {**value, "methods": [value["methods"]]}
    return value


RouteAuth = Annotated[RouteAuthConfig, BeforeValidator(_route_auth)]


def check_identity(config: GatewayConfig) -> None:
    """Rules across auth, consumers and routes; raises ValidationError at the key."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    auth = config.auth
    seen_ids: dict[str, int] = {}
    seen_keys: dict[str, str] = {}
    for index, consumer in enumerate(config.consumers):
        where: tuple[str | int, ...] = ("consumers", index)
        if consumer.id in seen_ids:
            earlier = f"consumers.{seen_ids[consumer.id]}"
            problems.append(
                ((*where, "id"), f"consumer id {consumer.id!r} is already used by {earlier}")
            )
        seen_ids.setdefault(consumer.id, index)
        if consumer.tier is not None and consumer.tier not in auth.tiers:
            known = ", ".join(auth.tiers)
            problems.append(((*where, "tier"), f"unknown tier {consumer.tier!r} (tiers: {known})"))
        for key_index, key in enumerate(consumer.keys):
            owner = seen_keys.setdefault(key, consumer.id)
            if owner != consumer.id or consumer.keys.index(key) != key_index:
                problems.append(
                    ((*where, "keys", key_index), f"this key hash is also listed for {owner!r}")
                )
    any_keys = bool(seen_keys) or config.redis is not None
    for index, route in enumerate(config.routes):
        where = ("routes", index)
        methods = route.auth.methods
        if "jwt" in methods and auth.jwt is None:
            problems.append(((*where, "auth"), "jwt needs an auth.jwt section"))
        if "api_key" in methods and not any_keys:
            problems.append(
                ((*where, "auth"), "api_key needs consumers with keys, or a redis section")
            )
        if (route.roles or route.scopes) and not route.auth.required:
            key = "roles" if route.roles else "scopes"
            problems.append(((*where, key), f"{key} need auth: jwt or api_key on the route"))
        elif route.scopes and "jwt" not in methods:
            problems.append(((*where, "scopes"), "scopes come from JWTs: add jwt to auth"))
    if problems:
        raise ValidationError.from_exception_data(
            "GatewayConfig",
            [
                InitErrorDetails(
                    type=PydanticCustomError("identity", "{problem}", {"problem": problem}),
                    loc=loc,
                    input=None,
                )
                for loc, problem in problems
            ],
        )
