"""TokenVerifier against tokens minted by PyJWT: every algorithm family,
every claim rule, the verified-token cache."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from propylon.auth.keysets import JwtKeys
from propylon.auth.principal import Principal, PrincipalFactory
from propylon.auth.tokens import TokenRejected, TokenVerifier
from propylon.config.auth import AuthConfig, JwtConfig
from tests.support.jwks import (
    LONG_SECRET,
    SECRET,
    b64url,
    ec_key,
    ed_key,
    key_for,
    mint,
    public_pem,
    rsa_key,
)
from tests.support.jwks import claims as default_claims

ALL_ALGORITHMS = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
]  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def make_verifier(
    algorithms: list[str] | None = None,
    clock: Clock | None = None,
    auth: dict[str, Any] | None = None,
    **settings: Any,
) -> TokenVerifier:
    algorithms = algorithms or ["HS256"]
    jwt_settings: dict[str, Any] = {
        "algorithms": algorithms,
        "issuer": "https://auth.test",
        "audience": "propylon",
    }
    if any(a.startswith("HS") for a in algorithms):
        jwt_settings["secret"] = LONG_SECRET if algorithms != ["HS256"] else SECRET
    jwt_settings.update(settings)
    config = JwtConfig.model_validate(jwt_settings)
    factory = PrincipalFactory(AuthConfig.model_validate(auth or {}), [])
    return TokenVerifier(config, JwtKeys(config), factory, clock=clock or time.time)


def verify(verifier: TokenVerifier, token: str | bytes) -> Principal:
    raw = token.encode() if isinstance(token, str) else token
    return asyncio.run(verifier.verify(raw))


def rejected(verifier: TokenVerifier, token: str | bytes) -> str:
    with pytest.raises(TokenRejected) as info:
        verify(verifier, token)
    return info.value.reason


def signed_hs256(header: dict[str, Any], payload: bytes, secret: str = SECRET) -> str:
    import hashlib
    import hmac

    head = b64url(json.dumps(header).encode()) + "." + b64url(payload)
    signature = hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest()
    return head + "." + b64url(signature)


# -- every algorithm family ----------------------------------------------------------------


@pytest.mark.parametrize("alg", ALL_ALGORITHMS)
def test_each_algorithm_verifies_a_token_minted_by_pyjwt(alg: str) -> None:
    pems = [] if alg.startswith("HS") else [public_pem(key_for(alg))]
    verifier = make_verifier([alg], public_keys=pems)
    principal = verify(verifier, mint(alg, roles=["agent"]))
    assert principal.identity.user_id == "alice"
    assert principal.identity.roles == ("agent",)
    assert principal.identity.method == "jwt"


def test_ed448_keys_verify_eddsa() -> None:
    key = ed_key("Ed448")
    verifier = make_verifier(["EdDSA"], public_keys=[public_pem(key)])
    assert verify(verifier, mint("EdDSA", key)).identity.user_id == "alice"


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA"])
def test_a_token_signed_by_another_key_of_the_family_is_rejected(alg: str) -> None:
    verifier = make_verifier([alg], public_keys=[public_pem(key_for(alg))])
    assert rejected(verifier, mint(alg, key_for(alg, name="other"))) == (
        "bad signature or unknown key"
    )


def test_an_es256_key_never_checks_an_es384_token() -> None:
    verifier = make_verifier(
        ["ES256", "ES384"], public_keys=[public_pem(ec_key("ES256"))]
    )  # fmt: skip
    assert rejected(verifier, mint("ES384", ec_key("ES384"))) == "bad signature or unknown key"


def test_an_algorithm_outside_the_list_is_rejected_even_with_the_right_key() -> None:
    verifier = make_verifier(["RS256"], public_keys=[public_pem(rsa_key())])
    assert rejected(verifier, mint("PS256", rsa_key())) == "the algorithm is not allowed"


def test_an_embedded_jwk_header_is_ignored() -> None:
    from tests.support.jwks import jwk_of

    attacker = rsa_key("attacker")
    verifier = make_verifier(["RS256"], public_keys=[public_pem(rsa_key())])
    token = mint("RS256", attacker, headers={"jwk": jwk_of(attacker)})
    assert rejected(verifier, token) == "bad signature or unknown key"


# -- claims --------------------------------------------------------------------------------


def test_expiry_honours_the_leeway() -> None:
    clock = Clock()
    verifier = make_verifier(clock=clock, leeway="30s")
    token = mint(exp=int(clock.now) - 10)
    assert verify(verifier, token).identity.user_id == "alice"
    clock.now += 25
    assert verifier.cached(token.encode()) is None  # the cache stops at exp + leeway
    assert rejected(verifier, token) == "expired"


def test_nbf_and_iat_in_the_future_are_rejected_beyond_the_leeway() -> None:
    clock = Clock()
    verifier = make_verifier(clock=clock, leeway="10s")
    assert rejected(verifier, mint(nbf=int(clock.now) + 60)) == "not valid yet (nbf)"
    assert rejected(verifier, mint(iat=int(clock.now) + 60)) == "issued in the future (iat)"
    assert verify(verifier, mint(nbf=int(clock.now) + 5)).identity.user_id == "alice"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": None}, "wrong issuer"),
        ({"iss": ["https://auth.test"]}, "wrong issuer"),
        ({"aud": None}, "wrong audience"),
        ({"aud": ["other", "another"]}, "wrong audience"),
        ({"exp": None}, "the required claim exp is missing"),
        ({"exp": "tomorrow"}, "exp is not a number"),
        ({"exp": True}, "exp is not a number"),
        ({"exp": float("inf")}, "the payload is not JSON"),
        ({"exp": float("nan")}, "the payload is not JSON"),
        ({"sub": 42}, "the subject is not a string"),
        ({"roles": ["a,b"]}, "a role has spaces, commas or control characters"),
        ({"roles": [1]}, "the roles claim is not a string or a list of strings"),
        ({"scope": 7}, "scope is not a string or a list of strings"),
    ],
)
def test_bad_claims_are_rejected(claims: dict[str, Any], reason: str) -> None:
    # Signed by hand: PyJWT refuses to mint some of these.
    token = signed_hs256({"alg": "HS256"}, json.dumps(default_claims(**claims)).encode())
    assert rejected(make_verifier(), token) == reason


def test_an_audience_list_needs_one_match() -> None:
    verifier = make_verifier(audience=["propylon", "billing"])
    assert verify(verifier, mint(aud=["other", "billing"])).identity.user_id == "alice"


def test_a_token_with_an_audience_is_rejected_when_none_is_configured() -> None:
    verifier = make_verifier(audience=None)
    assert rejected(verifier, mint()) == "the token names an audience but none is configured"
    assert verify(verifier, mint(aud=None)).identity.user_id == "alice"


def test_required_claims_are_configurable() -> None:
    verifier = make_verifier(required_claims=["exp", "jti"])
    assert rejected(verifier, mint()) == "the required claim jti is missing"
    assert verify(verifier, mint(jti="1")).identity.user_id == "alice"


def test_roles_come_from_a_dotted_claim_path_and_scopes_from_scope_and_scp() -> None:
    verifier = make_verifier(roles_claim="realm_access.roles")
    token = mint(realm_access={"roles": ["manager"]}, scope="tickets:read crm:read", scp=["x"])
    identity = verify(verifier, token).identity
    assert identity.roles == ("manager",)
    assert identity.scopes == {"tickets:read", "crm:read", "x"}


def test_roles_from_the_hierarchy_are_in_the_effective_roles() -> None:
    auth = {"roles": {"admin": ["manager"], "manager": ["agent"]}}
    principal = verify(make_verifier(auth=auth), mint(roles=["admin"]))
    assert principal.identity.roles == ("admin",)
    assert principal.effective_roles == {"admin", "manager", "agent"}


def test_a_subject_can_name_a_consumer() -> None:
    from propylon.config.auth import ConsumerConfig

    config = JwtConfig(secret=SECRET, algorithms=["HS256"], consumer_claim="sub")  # type: ignore[arg-type]
    consumer = ConsumerConfig(id="alice", tier="premium", roles=["agent"])
    factory = PrincipalFactory(AuthConfig(), [consumer])
    verifier = TokenVerifier(config, JwtKeys(config), factory)
    identity = verify(verifier, mint(aud=None, iss=None, roles=["user"])).identity
    assert (identity.consumer_id, identity.tier, identity.roles) == (
        "alice",
        "premium",
        ("user", "agent"),
    )


# -- structure -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "abc",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",
        "eyJhbGciOiJIUzI1NiJ9..sig",
        "eyJhbGciOiJIUzI1NiJ9.e30.",
        "eyJhbGciOiJIUzI1NiJ9.e30=.c2ln",
        "eyJhbGciOiJIUzI1NiJ9.e3+0.c2ln",
        "e.e30.c2ln",
    ],
)
def test_malformed_structure_is_rejected(token: str) -> None:
    assert rejected(make_verifier(), token)


def test_a_header_that_is_not_an_object_is_rejected() -> None:
    token = b64url(b'["HS256"]') + "." + b64url(b"{}") + "." + b64url(b"x")
    assert rejected(make_verifier(), token) == "the header is not a JSON object"


def test_critical_extensions_are_rejected() -> None:
    token = mint(headers={"crit": ["exp"], "exp": 1})
    assert rejected(make_verifier(), token) == "critical header extensions are not supported"


def test_a_payload_that_is_not_an_object_is_rejected_after_the_signature() -> None:
    token = signed_hs256({"alg": "HS256"}, b"[1, 2]")
    assert rejected(make_verifier(), token) == "the payload is not a JSON object"


# -- the cache -----------------------------------------------------------------------------


def test_a_repeat_token_is_served_from_the_cache() -> None:
    verifier = make_verifier()
    token = mint()
    first = verify(verifier, token)
    assert verifier.cached(token.encode()) is first
    assert verify(verifier, token) is first


def test_the_cache_is_bounded_oldest_first() -> None:
    verifier = make_verifier(cache_size=2)
    tokens = [mint(jti=str(n)).encode() for n in range(3)]
    for token in tokens:
        verify(verifier, token)
    assert verifier.cached(tokens[0]) is None
    assert verifier.cached(tokens[1]) is not None
    assert verifier.cached(tokens[2]) is not None


def test_cache_size_zero_turns_the_cache_off() -> None:
    verifier = make_verifier(cache_size=0)
    token = mint()
    verify(verifier, token)
    assert verifier.cached(token.encode()) is None


def test_a_rejected_token_is_not_cached() -> None:
    verifier = make_verifier()
    token = mint(iss="https://evil.test")
    rejected(verifier, token)
    assert verifier.cached(token.encode()) is None
