"""`propylon token` and `propylon keys new` as a user runs them."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jwt
import yaml

from tests.support.gateway import route, service
from tests.support.jwks import SECRET


def propylon(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "propylon", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def jwt_config(upstream_url: str = "http://127.0.0.1:9", **jwt_settings: Any) -> dict[str, Any]:
    return {
        "services": {"up": service(upstream_url)},
        "auth": {
            "jwt": {
                "secret": "${JWT_SECRET}",
                "algorithms": ["HS256"],
                "issuer": "https://auth.example.com",
                "audience": "propylon",
                **jwt_settings,
            },
            "roles": {"manager": ["agent"]},
        },
        "routes": [
            route("tickets", "/api/tickets", auth="jwt", roles=["agent"], scopes=["tickets:read"])
        ],
    }


def write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def test_token_mints_what_the_gateway_accepts(tmp_path, gateway, upstream) -> None:
    config = jwt_config(upstream.url)
    file = write(tmp_path / "gateway.yaml", config)
    result = propylon(
        "token", "-c", str(file), "--sub", "alice", "--role", "manager",
        "--scope", "tickets:read", "--ttl", "10m", env={"JWT_SECRET": SECRET},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="propylon")
    assert claims["sub"] == "alice"
    assert claims["iss"] == "https://auth.example.com"
    assert claims["roles"] == ["manager"]
    assert claims["scope"] == "tickets:read"
    assert claims["exp"] - claims["iat"] == 600

    config["auth"]["jwt"]["secret"] = SECRET
    gw = gateway(config)
    response = httpx.get(gw.url + "/api/tickets", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert upstream.requests[0].headers["x-user-roles"] == "manager"


def test_token_puts_roles_at_a_nested_claim_path(tmp_path) -> None:
    file = write(tmp_path / "gateway.yaml", jwt_config(roles_claim="realm_access.roles"))
    result = propylon("token", "-c", str(file), "--sub", "bob", "--role", "agent",
                      env={"JWT_SECRET": SECRET})  # fmt: skip
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"], audience="propylon")
    assert claims["realm_access"] == {"roles": ["agent"]}


def test_token_needs_an_hs_secret(tmp_path) -> None:
    from tests.support.jwks import public_pem, rsa_key

    config = jwt_config(secret=None, algorithms=["RS256"], public_keys=[public_pem(rsa_key())])
    result = propylon("token", "-c", str(write(tmp_path / "g.yaml", config)), "--sub", "x")
    assert result.returncode == 1
    assert "has no auth.jwt.secret" in result.stderr
    assert result.stdout == ""


def test_token_reports_config_errors_with_lines(tmp_path) -> None:
    file = write(tmp_path / "g.yaml", jwt_config())
    result = propylon("token", "-c", str(file), "--sub", "x", env={"JWT_SECRET": "short"})
    assert result.returncode == 1
    line = file.read_text().splitlines().index("    secret: ${JWT_SECRET}") + 1
    assert f"{file}:{line}: auth.jwt.secret: must be at least 32 bytes" in result.stderr
    assert "short" not in result.stderr


def test_keys_new_prints_the_key_once_and_its_hash(tmp_path) -> None:
    result = propylon("keys", "new", "--consumer", "acme", "--tier", "premium", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("prop_")
    assert len(key) > 40
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert f"- sha256:{digest}" in result.stderr
    assert "tier: premium" in result.stderr
    assert key not in result.stderr
    other = propylon("keys", "new", "--consumer", "acme", cwd=tmp_path).stdout.strip()
    assert other != key


def test_keys_new_hash_works_in_the_config(tmp_path, gateway, upstream) -> None:
    result = propylon("keys", "new", "--consumer", "acme", cwd=tmp_path)
    key = result.stdout.strip()
    key_hash = next(
        line.strip().removeprefix("- ") for line in result.stderr.splitlines() if "sha256:" in line
    )
    gw = gateway(
        {
            "services": {"up": service(upstream.url)},
            "consumers": [{"id": "acme", "keys": [key_hash]}],
            "routes": [route("api", "/", auth="api_key")],
        }
    )
    assert httpx.get(gw.url + "/", headers={"X-API-Key": key}).status_code == 200


def test_keys_new_checks_tier_and_consumer(tmp_path) -> None:
    config = jwt_config()
    config["auth"]["tiers"] = {"bronze": {}, "gold": {}}
    file = write(tmp_path / "gateway.yaml", config)
    env = {"JWT_SECRET": SECRET}
    unknown = propylon(
        "keys", "new", "--consumer", "acme", "--tier", "premium", cwd=tmp_path, env=env
    )
    assert unknown.returncode == 2
    assert "unknown tier 'premium' (tiers: bronze, gold)" in unknown.stderr
    assert (
        propylon(
            "keys", "new", "--consumer", "acme", "--tier", "gold", "-c", str(file), env=env
        ).returncode
        == 0
    )
    bad = propylon("keys", "new", "--consumer", "a b", cwd=tmp_path, env=env)
    assert bad.returncode == 2
    assert "consumer id 'a b'" in bad.stderr
    assert bad.stdout == ""
