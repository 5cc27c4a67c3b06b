"""Keys from a real JWKS server on loopback: rotation while the gateway runs,
the unknown-kid cooldown, stale keys while the endpoint is down."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.support.gateway import route, service, wait_until
from tests.support.jwks import JwksServer, ec_key, ed_key, jwk_of, mint, rsa_key
from tests.support.problems import assert_problem

ASYMMETRIC = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
]


@pytest.fixture
def jwks(bg) -> Iterator[JwksServer]:
    server = JwksServer(keys=[jwk_of(rsa_key("k1"), kid="k1")])
    bg.run(server.start())
    yield server
    bg.run(server.stop())


def jwks_gateway(gateway: Any, upstream: Any, jwks: JwksServer, **jwt: Any) -> Any:
    config = {
        "services": {"up": service(upstream.url)},
        "auth": {
            "jwt": {
                "jwks_url": jwks.url,
                "algorithms": ["RS256"],
                "issuer": "https://auth.test",
                "audience": "propylon",
                "jwks_refresh": "5m",
                "jwks_cooldown": "100ms",
                **jwt,
            }
        },
        "routes": [route("api", "/api", auth="jwt")],
    }
    return gateway(config)


def get(gw: Any, token: str) -> httpx.Response:
    return httpx.get(gw.url + "/api", headers={"Authorization": f"Bearer {token}"})


def rs256(name: str, kid: str | None = None) -> str:
    return mint("RS256", rsa_key(name), kid=kid if kid is not None else name)


def test_rotation_new_keys_work_at_once_and_old_ones_until_they_are_gone(
    gateway, upstream, jwks
) -> None:
    gw = jwks_gateway(gateway, upstream, jwks, jwks_refresh="300ms")
    old, new = rs256("k1"), rs256("k2")
    assert get(gw, old).status_code == 200
    assert jwks.hits == 1

    jwks.keys = [jwk_of(rsa_key("k1"), kid="k1"), jwk_of(rsa_key("k2"), kid="k2")]
    time.sleep(0.15)  # past the unknown-kid cooldown of the first fetch
    assert get(gw, new).status_code == 200  # an unknown kid fetches the set again
    assert jwks.hits == 2
    assert get(gw, old).status_code == 200

    jwks.keys = [jwk_of(rsa_key("k2"), kid="k2")]
    # The background refresh notices on a request after jwks_refresh; the old
    # key's tokens stop working then, cached or not.
    assert wait_until(lambda: get(gw, old).status_code == 401, timeout=5)
    assert_problem(get(gw, old), 401)
    assert get(gw, new).status_code == 200


def test_unknown_kids_fetch_at_most_once_per_cooldown(gateway, upstream, jwks) -> None:
    gw = jwks_gateway(gateway, upstream, jwks, jwks_cooldown="10s")
    assert get(gw, rs256("k1")).status_code == 200
    for _ in range(20):
        assert_problem(get(gw, rs256("k1", kid=uuid.uuid4().hex)), 401)
    assert jwks.hits == 1  # the first fetch was within the cooldown


def test_concurrent_first_requests_share_one_fetch(gateway, upstream, jwks) -> None:
    gw = jwks_gateway(gateway, upstream, jwks)
    token = rs256("k1")
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: get(gw, token).status_code, range(16)))
    assert statuses == [200] * 16
    assert jwks.hits == 1


def test_unknown_kid_while_the_jwks_endpoint_is_down_is_401(gateway, upstream, jwks, bg) -> None:
    gw = jwks_gateway(gateway, upstream, jwks)
    known = rs256("k1")
    assert get(gw, known).status_code == 200
    bg.run(jwks.stop())
    time.sleep(0.15)
    response = get(gw, rs256("k2"))
    assert_problem(response, 401)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert get(gw, known).status_code == 200  # stale keys keep serving


def test_keys_at_hand_keep_serving_while_the_endpoint_fails(gateway, upstream, jwks) -> None:
    gw = jwks_gateway(gateway, upstream, jwks, jwks_refresh="100ms")
    uncached = [rs256("k1", kid="k1") for _ in range(1)]
    assert get(gw, uncached[0]).status_code == 200
    jwks.status = 503
    for n in range(5):
        time.sleep(0.12)  # each request after the refresh interval tries again
        assert get(gw, mint("RS256", rsa_key("k1"), kid="k1", jti=str(n))).status_code == 200
    assert jwks.hits > 1


def test_a_gateway_started_while_the_endpoint_is_down_recovers(gateway, upstream, jwks) -> None:
    jwks.status = 503
    gw = jwks_gateway(gateway, upstream, jwks)
    assert_problem(get(gw, rs256("k1")), 401)
    jwks.status = 200
    assert wait_until(lambda: get(gw, rs256("k1")).status_code == 200, timeout=3)


@pytest.mark.parametrize(
    "kid",
    ["../../../../dev/null", "/etc/passwd/..", "k1' OR '1'='1", "k1; DROP TABLE keys--", 'k1"'],
)
def test_a_kid_with_path_or_sql_characters_is_401_without_a_fetch(
    gateway, upstream, jwks, kid
) -> None:
    gw = jwks_gateway(gateway, upstream, jwks)
    assert get(gw, rs256("k1")).status_code == 200
    time.sleep(0.15)
    assert_problem(get(gw, mint("RS256", rsa_key("k1"), kid=kid)), 401)
    assert jwks.hits == 1
    assert len(upstream.requests) == 1


def test_every_asymmetric_family_verifies_through_jwks(gateway, upstream, jwks) -> None:
    keys = {
        **{alg: rsa_key("k1") for alg in ASYMMETRIC if alg[:2] in ("RS", "PS")},
        **{alg: ec_key(alg) for alg in ("ES256", "ES384", "ES512")},
        "EdDSA": ed_key(),
    }
    jwks.keys = [jwk_of(key, kid=alg, alg=alg) for alg, key in keys.items()]
    gw = jwks_gateway(gateway, upstream, jwks, algorithms=ASYMMETRIC)
    for alg, key in keys.items():
        assert get(gw, mint(alg, key, kid=alg)).status_code == 200, alg
    # A key published for one algorithm does not verify another with the same key.
    assert_problem(get(gw, mint("RS256", rsa_key("k1"), kid="PS256")), 401)


def test_keys_without_kid_verify_tokens_without_kid(gateway, upstream, jwks) -> None:
    jwks.keys = [jwk_of(rsa_key("k1"))]
    gw = jwks_gateway(gateway, upstream, jwks)
    assert get(gw, mint("RS256", rsa_key("k1"))).status_code == 200
    assert_problem(get(gw, mint("RS256", rsa_key("k2"))), 401)


def test_symmetric_and_private_keys_in_a_jwks_are_ignored(gateway, upstream, jwks) -> None:
    import jwt as pyjwt

    secret = "a-secret-published-by-mistake-0123456789"
    oct_key = {
        "kty": "oct",
        "kid": "hs",
        "k": pyjwt.utils.base64url_encode(secret.encode()).decode(),
    }
    private = pyjwt.algorithms.RSAAlgorithm.to_jwk(rsa_key("k2"), as_dict=True)
    private["kid"] = "k2"
    jwks.keys = [jwk_of(rsa_key("k1"), kid="k1"), oct_key, private]
    gw = jwks_gateway(gateway, upstream, jwks, algorithms=["RS256", "HS256"], secret="x" * 32)
    assert_problem(get(gw, mint("HS256", secret, kid="hs")), 401)
    assert_problem(get(gw, rs256("k2")), 401)
    assert get(gw, rs256("k1")).status_code == 200
