"""The auth: and consumers: sections and route auth keys: what loads, and
each mistake reported at its line (secrets never quoted)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from propylon.config import ConfigError, load_config_text
from tests.support.jwks import SECRET, public_pem, rsa_key

HEAD = """\
services:
  tickets: {targets: [{url: "http://127.0.0.1:3001"}]}
"""

EXAMPLE = """\
auth:
  jwt:
    secret: ${JWT_SECRET}
    algorithms: [HS256]
    issuer: https://auth.example.com
    audience: propylon
    leeway: 30s
    roles_claim: realm_access.roles
    max_token_bytes: 8KB
  api_keys:
    header: X-API-Key
    query_param: null
  roles:
    admin: [manager]
    manager: [agent]
    agent: [user]
  tiers: {free: {}, standard: {}, premium: {}}
consumers:
  - id: acme
    tier: premium
    roles: [agent]
    keys: [sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08]
routes:
  - name: tickets
    match: {path: /api/tickets}
    service: tickets
    auth: jwt
    roles: [agent]
    scopes: [tickets:read]
    forward_credentials: false
  - name: partners
    match: {path: /api/partners}
    service: tickets
    auth: [jwt, api_key]
  - name: public
    match: {path: /api/public}
    service: tickets
    auth: {methods: jwt, optional: true}
"""


def load(body: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return load_config_text(HEAD + textwrap.dedent(body), "gw.yaml", env=env or {})


def problems(body: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(body, env)
    return [str(issue) for issue in info.value.issues]


def test_the_documented_example_loads() -> None:
    config = load(EXAMPLE, {"JWT_SECRET": SECRET})
    jwt = config.auth.jwt
    assert jwt is not None
    assert jwt.leeway == 30
    assert jwt.max_token_bytes == 8192
    assert jwt.secret is not None
    assert SECRET not in repr(config)
    tickets, partners, public = config.routes
    assert tickets.auth.methods == ["jwt"]
    assert not tickets.auth.optional
    assert tickets.forward_credentials is False
    assert partners.auth.methods == ["jwt", "api_key"]
    assert public.auth.methods == ["jwt"]
    assert public.auth.optional
    assert config.consumers[0].tier == "premium"
    assert config.auth.fallback_tier == "free"


def test_routes_default_to_no_auth() -> None:
    config = load("routes: [{name: r, service: tickets}]")
    assert config.routes[0].auth.required is False
    assert config.routes[0].forward_credentials is True


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "routes: [{name: r, service: tickets, auth: jwtt}]",
            "gw.yaml:3: routes.0.auth: expected 'none', 'jwt' or 'api_key', got 'jwtt'",
        ),
        (
            "routes: [{name: r, service: tickets, auth: [none, jwt]}]",
            "gw.yaml:3: routes.0.auth: 'none' cannot be combined with other methods",
        ),
        (
            "routes: [{name: r, service: tickets, auth: {methods: none, optional: true}}]",
            "gw.yaml:3: routes.0.auth: optional needs jwt or api_key among the methods",
        ),
        (
            "routes: [{name: r, service: tickets, auth: jwt}]",
            "gw.yaml:3: routes.0.auth: jwt needs an auth.jwt section",
        ),
        (
            "routes: [{name: r, service: tickets, auth: api_key}]",
            "gw.yaml:3: routes.0.auth: api_key needs consumers with keys, or a redis section",
        ),
        (
            "routes: [{name: r, service: tickets, roles: [admin]}]",
            "gw.yaml:3: routes.0.roles: roles need auth: jwt or api_key on the route",
        ),
        (
            "routes: [{name: r, service: tickets, roles: ['a b']}]",
            "gw.yaml:3: routes.0.roles.0: role 'a b' must be 1-128 characters without spaces",
        ),
        (
            "auth: {roles: {admin: [manager], manager: [admin]}}",
            "gw.yaml:3: auth.roles: the role hierarchy has a cycle: admin > manager > admin",
        ),
        (
            "auth: {jwtt: {}}",
            "gw.yaml:3: auth.jwtt: unknown key 'jwtt' (did you mean 'jwt'?)",
        ),
        (
            "auth: {jwt: {algorithms: [none], secret: x}}",
            "gw.yaml:3: auth.jwt.algorithms.0: expected 'HS256', 'HS384', 'HS512', 'RS256', ",
        ),
        (
            "auth: {jwt: {algorithms: [HS256]}}",
            "gw.yaml:3: auth.jwt: HS256 need a secret",
        ),
        (
            "auth: {jwt: {algorithms: [RS256]}}",
            "gw.yaml:3: auth.jwt: RS256 need public_keys or a jwks_url",
        ),
        (
            "auth: {jwt: {algorithms: [RS256], jwks_url: 'ftp://x/keys'}}",
            "gw.yaml:3: auth.jwt.jwks_url: jwks_url must be an http:// or https:// URL",
        ),
        (
            "auth: {jwt: {algorithms: [HS256], secret: x, roles_claim: 'a..b'}}",
            "gw.yaml:3: auth.jwt.roles_claim: 'a..b' is not a claim name or a dotted path",
        ),
        (
            "auth: {identity_headers: {user_id: 'X User'}}",
            "gw.yaml:3: auth.identity_headers.user_id: 'X User' is not a valid header name",
        ),
        (
            "auth: {realm: 'a\"b'}",
            "gw.yaml:3: auth.realm: realm must be 1-64 printable characters without quotes",
        ),
        (
            "auth: {tiers: {gold: {}}, default_tier: free}",
            "gw.yaml:3: auth: default_tier 'free' is not one of the tiers",
        ),
        (
            "consumers: [{id: acme, tier: gold}]",
            "gw.yaml:3: consumers.0.tier: unknown tier 'gold' (tiers: free, standard, premium)",
        ),
        (
            "consumers: [{id: acme}, {id: acme}]",
            "gw.yaml:3: consumers.1.id: consumer id 'acme' is already used by consumers.0",
        ),
        (
            "consumers: [{id: 'a b'}]",
            "gw.yaml:3: consumers.0.id: consumer id 'a b' must be 1-128 letters, digits, ",
        ),
    ],
)
def test_mistakes_are_reported_at_their_line(body: str, expected: str) -> None:
    assert any(found.startswith(expected) for found in problems(body))


def test_a_short_secret_is_reported_without_its_value() -> None:
    found = problems("auth: {jwt: {algorithms: [HS512], secret: '${S}'}}", {"S": "x" * 40})
    assert found == [
        "gw.yaml:3: auth.jwt.secret: must be at least 64 bytes for HS512 (RFC 7518 3.2)"
    ]


def test_a_plain_key_in_consumers_is_reported_without_its_value() -> None:
    found = problems("consumers: [{id: acme, keys: [prop_secretvalue]}]")
    assert len(found) == 1
    assert found[0].startswith("gw.yaml:3: consumers.0.keys.0: expected sha256:<64")
    assert "prop_secretvalue" not in found[0]


def test_a_key_hash_listed_twice_is_an_error() -> None:
    key = "sha256:" + "a" * 64
    found = problems(f"consumers: [{{id: a, keys: ['{key}']}}, {{id: b, keys: ['{key}']}}]")
    assert found == ["gw.yaml:3: consumers.1.keys.0: this key hash is also listed for 'a'"]


@pytest.mark.parametrize(
    ("pem", "expected"),
    [
        ("not a key", "not a PEM public key"),
        ("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----", "this is a private key"),
        (public_pem(rsa_key("small", 1024)), "the RSA key has 1024 bits; at least 2048 needed"),
    ],
)
def test_bad_public_keys_are_reported(pem: str, expected: str) -> None:
    body = {"auth": {"jwt": {"algorithms": ["RS256"], "public_keys": [pem]}}}
    import yaml

    found = problems(yaml.safe_dump(body))
    assert len(found) == 1
    assert "auth.jwt.public_keys.0:" in found[0]
    assert expected in found[0]


def test_a_public_key_of_the_wrong_family_is_reported() -> None:
    import yaml

    body = {"auth": {"jwt": {"algorithms": ["ES256"], "public_keys": [public_pem(rsa_key())]}}}
    assert problems(yaml.safe_dump(body)) == [
        "gw.yaml:4: auth.jwt: public_keys[0] suits none of the algorithms ES256"
    ]


def test_check_prints_auth_problems_with_lines(tmp_path) -> None:
    file = tmp_path / "gateway.yaml"
    file.write_text(HEAD + "routes:\n  - {name: r, service: tickets, auth: jwt, scopes: [a]}\n")
    result = subprocess.run(
        [sys.executable, "-m", "propylon", "check", "-c", str(file)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"{file}:4: routes.0.auth: jwt needs an auth.jwt section"]
