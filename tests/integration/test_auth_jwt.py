"""JWT routes through a real gateway and upstream: each bad input of the
issue gets its own test, then identity headers, optional auth, RBAC and the
failure hook."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import httpx
import pytest

from propylon.auth.events import AuthFailure, auth_failures
from tests.support.gateway import route, service
from tests.support.jwks import SECRET, b64url, claims, mint, public_pem, rsa_key
from tests.support.problems import assert_problem

INVALID_TOKEN = (
    'Bearer realm="propylon", error="invalid_token", '
    'error_description="The access token is invalid or has expired"'
)


def jwt_gateway(
    gateway: Any, upstream: Any, jwt: dict[str, Any] | None = None, **route_settings: Any
) -> Any:
    settings: dict[str, Any] = {"auth": "jwt", **route_settings}
    config = {
        "services": {"up": service(upstream.url)},
        "auth": {
            "jwt": {
                "secret": SECRET,
                "algorithms": ["HS256"],
                "issuer": "https://auth.test",
                "audience": "propylon",
                **(jwt or {}),
            },
            "roles": {"admin": ["manager"], "manager": ["agent"], "agent": ["user"]},
        },
        "routes": [route("open", "/open"), route("api", "/api", **settings)],
    }
    return gateway(config)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_invalid_token(response: httpx.Response, upstream: Any) -> None:
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == INVALID_TOKEN
    assert response.json()["detail"] == "the credentials are invalid"
    assert upstream.requests == []


# -- bad input that must get 401 -----------------------------------------------------------


def test_alg_none_is_401(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream)
    unsigned = b64url(b'{"alg":"none","typ":"JWT"}') + "." + b64url(json.dumps(claims()).encode())
    for token in (unsigned + ".", unsigned + "." + b64url(b"x")):
        assert_invalid_token(httpx.get(gw.url + "/api", headers=bearer(token)), upstream)


def test_hs256_signed_with_the_rsa_public_key_is_401(gateway, upstream) -> None:
    pem = public_pem(rsa_key())
    gw = jwt_gateway(
        gateway, upstream, {"secret": None, "algorithms": ["RS256"], "public_keys": [pem]}
    )
    forged = _hs256(claims(), pem.encode())
    assert_invalid_token(httpx.get(gw.url + "/api", headers=bearer(forged)), upstream)


def test_hs256_signed_with_the_rsa_public_key_is_401_when_hs256_is_allowed_too(
    gateway, upstream
) -> None:
    pem = public_pem(rsa_key())
    gw = jwt_gateway(gateway, upstream, {"algorithms": ["HS256", "RS256"], "public_keys": [pem]})
    forged = _hs256(claims(), pem.encode())
    assert_invalid_token(httpx.get(gw.url + "/api", headers=bearer(forged)), upstream)


def test_expired_token_is_401(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream)
    token = mint(exp=claims()["iat"] - 60)
    assert_invalid_token(httpx.get(gw.url + "/api", headers=bearer(token)), upstream)


def test_not_yet_valid_token_is_401(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream)
    token = mint(nbf=claims()["iat"] + 600)
    assert_invalid_token(httpx.get(gw.url + "/api", headers=bearer(token)), upstream)


def test_wrong_issuer_is_401(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream)
    token = mint(iss="https://evil.test")
    assert_invalid_token(httpx.get(gw.url + "/api", headers=bearer(token)), upstream)


def test_wrong_audience_is_401(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream)
    token = mint(aud="another-api")
    assert_invalid_token(httpx.get(gw.url + "/api", headers=bearer(token)), upstream)


def test_tampered_payload_is_401(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream)
    head, _, signature = mint(roles=["user"]).split(".")
    payload = b64url(json.dumps(claims(roles=["admin"])).encode())
    tampered = f"{head}.{payload}.{signature}"
    assert_invalid_token(httpx.get(gw.url + "/api", headers=bearer(tampered)), upstream)


def test_malformed_base64_is_401(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream)
    head, payload, signature = mint().split(".")
    padded = base64.b64encode(json.dumps(claims()).encode()).decode()  # '+', '/', '='
    for token in (f"{head}.{payload}!.{signature}", f"{head}.{padded}.{signature}"):
        assert_invalid_token(httpx.get(gw.url + "/api", headers=bearer(token)), upstream)


def test_over_long_token_is_401(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream, {"max_token_bytes": "1KB"})
    token = mint(padding="x" * 2000)  # validly signed, but over the cap
    assert_invalid_token(httpx.get(gw.url + "/api", headers=bearer(token)), upstream)


def test_missing_credential_on_a_protected_route_is_401(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream)
    response = httpx.get(gw.url + "/api")
    body = assert_problem(response, 401)
    assert body["detail"] == "this request needs credentials"
    # RFC 6750 3.1: no error code when the request had no credentials.
    assert response.headers["www-authenticate"] == 'Bearer realm="propylon"'
    assert upstream.requests == []


def test_another_scheme_counts_as_missing(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream)
    response = httpx.get(gw.url + "/api", auth=("alice", "secret"))
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == 'Bearer realm="propylon"'


def test_spoofed_identity_headers_never_reach_the_upstream(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream)
    spoofed = {
        "X-User-ID": "admin",
        "X-User-Roles": "admin",
        "X-Consumer-ID": "acme",
        "X-Auth-Method": "jwt",
    }
    assert httpx.get(gw.url + "/open", headers=spoofed).status_code == 200
    token = mint(roles=["user"])
    assert httpx.get(gw.url + "/api", headers={**spoofed, **bearer(token)}).status_code == 200
    anonymous, authenticated = upstream.requests
    for name in ("x-user-id", "x-user-roles", "x-consumer-id", "x-auth-method"):
        assert name not in anonymous.headers
    seen = [(k, v) for k, v in authenticated.raw_headers if k.startswith(("x-user", "x-auth"))]
    assert sorted(seen) == [
        ("x-auth-method", "jwt"),
        ("x-user-id", "alice"),
        ("x-user-roles", "user"),
    ]
    assert "x-consumer-id" not in authenticated.headers


def test_repeated_authorization_headers_are_400(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream)
    token = mint()
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", "Bearer other")]
    response = httpx.get(gw.url + "/api", headers=headers)
    assert_problem(response, 400)
    challenge = 'Bearer realm="propylon", error="invalid_request"'
    assert response.headers["www-authenticate"] == challenge
    assert upstream.requests == []


def test_the_reply_never_says_which_check_failed(gateway, upstream, caplog) -> None:
    gw = jwt_gateway(gateway, upstream)
    tokens = {
        "expired": mint(exp=claims()["iat"] - 60),
        "wrong issuer": mint(iss="https://evil.test"),
        "bad signature or unknown key": mint(key="another-secret-that-is-long-enough-000"),
    }
    with caplog.at_level(logging.INFO, logger="propylon.auth"):
        replies = {
            reason: httpx.get(gw.url + "/api", headers=bearer(token))
            for reason, token in tokens.items()
        }
    bodies = {(r.headers["www-authenticate"], r.json()["detail"]) for r in replies.values()}
    assert len(bodies) == 1
    logged = caplog.text
    for reason, token in tokens.items():
        assert f"reason={reason}" in logged
        assert token not in logged
        assert token.split(".")[2] not in logged


# -- identity to the upstream --------------------------------------------------------------


def test_a_valid_token_reaches_the_upstream_with_identity_headers(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream)
    token = mint(roles=["agent", "user"])
    response = httpx.get(gw.url + "/api/tickets", headers=bearer(token))
    assert response.status_code == 200
    seen = upstream.requests[0].headers
    assert seen["x-user-id"] == "alice"
    assert seen["x-user-roles"] == "agent,user"
    assert seen["x-auth-method"] == "jwt"
    assert seen["authorization"] == f"Bearer {token}"  # forwarded by default


def test_forward_credentials_false_strips_authorization(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream, forward_credentials=False)
    assert httpx.get(gw.url + "/api", headers=bearer(mint())).status_code == 200
    assert "authorization" not in upstream.requests[0].headers
    assert upstream.requests[0].headers["x-user-id"] == "alice"


def test_renamed_identity_headers_are_sent_and_spoofed_copies_dropped(gateway, upstream) -> None:
    config = {
        "services": {"up": service(upstream.url)},
        "auth": {
            "jwt": {"secret": SECRET, "algorithms": ["HS256"], "audience": "propylon"},
            "identity_headers": {"user_id": "X-Authenticated-User", "method": False},
        },
        "routes": [route("open", "/open"), route("api", "/api", auth="jwt")],
    }
    gw = gateway(config)
    spoofed = {"X-Authenticated-User": "root"}
    httpx.get(gw.url + "/open", headers=spoofed)
    httpx.get(gw.url + "/api", headers={**spoofed, **bearer(mint())})
    anonymous, authenticated = upstream.requests
    assert "x-authenticated-user" not in anonymous.headers
    assert [v for k, v in authenticated.raw_headers if k == "x-authenticated-user"] == ["alice"]
    assert "x-user-id" not in authenticated.headers
    assert "x-auth-method" not in authenticated.headers


def test_a_repeat_token_is_accepted_from_the_cache(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream)
    token = mint()
    with httpx.Client() as client:
        for _ in range(5):
            assert client.get(gw.url + "/api", headers=bearer(token)).status_code == 200
    assert len(upstream.requests) == 5


# -- optional auth -------------------------------------------------------------------------


def test_optional_auth_lets_anonymous_through_and_identifies_the_rest(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream, auth={"methods": "jwt", "optional": True})
    assert httpx.get(gw.url + "/api").status_code == 200
    assert httpx.get(gw.url + "/api", headers=bearer(mint())).status_code == 200
    anonymous, known = upstream.requests
    assert "x-user-id" not in anonymous.headers
    assert known.headers["x-user-id"] == "alice"


def test_optional_auth_still_rejects_a_bad_token(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream, auth={"methods": ["jwt"], "optional": True})
    assert_invalid_token(
        httpx.get(gw.url + "/api", headers=bearer(mint(iss="x"))), upstream
    )  # fmt: skip


# -- RBAC ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("roles", "status"),
    [(["admin"], 200), (["manager"], 200), (["agent"], 200), (["user"], 403), ([], 403)],
)
def test_route_roles_follow_the_hierarchy(gateway, upstream, roles, status) -> None:
    gw = jwt_gateway(gateway, upstream, roles=["agent"])
    response = httpx.get(gw.url + "/api", headers=bearer(mint(roles=roles)))
    if status == 403:
        assert_problem(response, 403)
        assert upstream.requests == []
    else:
        assert response.status_code == 200


def test_missing_scopes_are_403_with_insufficient_scope(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream, scopes=["tickets:read", "tickets:write"])
    response = httpx.get(gw.url + "/api", headers=bearer(mint(scope="tickets:read")))
    assert_problem(response, 403)
    assert response.headers["www-authenticate"] == (
        'Bearer realm="propylon", error="insufficient_scope", scope="tickets:read tickets:write"'
    )
    token = mint(scope="tickets:read tickets:write other")
    assert httpx.get(gw.url + "/api", headers=bearer(token)).status_code == 200


def test_optional_route_with_roles_wants_credentials(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream, auth={"methods": ["jwt"], "optional": True}, roles=["user"])
    assert_problem(httpx.get(gw.url + "/api"), 401)


# -- the failure hook ----------------------------------------------------------------------


def test_each_authentication_failure_is_published(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream)
    seen: list[AuthFailure] = []
    unsubscribe = auth_failures.subscribe(seen.append)
    try:
        httpx.get(gw.url + "/api")
        httpx.get(gw.url + "/api", headers=bearer(mint(iss="https://evil.test")))
        httpx.get(gw.url + "/api", headers=bearer(mint()))  # fine: not published
        httpx.get(gw.url + "/api", headers=bearer(mint(roles=[])))  # fine too
    finally:
        unsubscribe()
    assert [(f.kind, f.method, f.reason, f.route) for f in seen] == [
        ("missing", None, "no credentials", "api"),
        ("invalid", "jwt", "wrong issuer", "api"),
    ]
    assert all(f.client_ip == "127.0.0.1" and f.request_id for f in seen)


def test_a_failing_subscriber_does_not_change_the_reply(gateway, upstream) -> None:
    gw = jwt_gateway(gateway, upstream)

    def broken(failure: AuthFailure) -> None:
        raise RuntimeError("boom")

    unsubscribe = auth_failures.subscribe(broken)
    try:
        assert_problem(httpx.get(gw.url + "/api"), 401)
    finally:
        unsubscribe()


def _hs256(payload: dict[str, Any], secret: bytes) -> str:
    import hashlib
    import hmac

    head = b64url(b'{"alg":"HS256","typ":"JWT"}') + "." + b64url(json.dumps(payload).encode())
    signature = hmac.new(secret, head.encode(), hashlib.sha256).digest()
    return head + "." + b64url(signature)
