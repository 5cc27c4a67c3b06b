"""API keys from the config's consumers, alone and combined with JWT."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from propylon.auth.apikeys import generate_key, hash_key
from propylon.auth.runtime import runtime_for
from tests.support.gateway import route, service
from tests.support.jwks import SECRET, mint
from tests.support.problems import assert_problem

ACME_KEY = generate_key()
GLOBEX_KEY = generate_key()
INVALID_KEY = (
    'ApiKey realm="propylon", header="X-API-Key", error="invalid_key", '
    'error_description="The API key is invalid"'
)


def keys_gateway(
    gateway: Any, upstream: Any, api_keys: dict[str, Any] | None = None, **route_settings: Any
) -> Any:
    config = {
        "services": {"up": service(upstream.url)},
        "auth": {
            "jwt": {"secret": SECRET, "algorithms": ["HS256"], "audience": "propylon"},
            "api_keys": api_keys or {},
            "roles": {"manager": ["agent"], "agent": ["user"]},
        },
        "consumers": [
            {"id": "acme", "tier": "premium", "roles": ["agent"], "keys": [hash_key(ACME_KEY)]},
            {"id": "globex", "keys": [hash_key(GLOBEX_KEY)]},
        ],
        "routes": [route("api", "/api", **{"auth": "api_key", **route_settings})],
    }
    return gateway(config)


def test_a_valid_key_reaches_the_upstream_as_its_consumer(gateway, upstream) -> None:
    gw = keys_gateway(gateway, upstream)
    assert httpx.get(gw.url + "/api", headers={"X-API-Key": ACME_KEY}).status_code == 200
    seen = upstream.requests[0].headers
    assert seen["x-consumer-id"] == "acme"
    assert seen["x-auth-method"] == "api_key"
    assert seen["x-user-roles"] == "agent"
    assert "x-user-id" not in seen
    assert seen["x-api-key"] == ACME_KEY  # forwarded unless forward_credentials: false


def test_a_key_that_differs_in_the_last_character_is_401(gateway, upstream) -> None:
    gw = keys_gateway(gateway, upstream)
    last = ACME_KEY[-1]
    forged = ACME_KEY[:-1] + ("A" if last != "A" else "B")
    response = httpx.get(gw.url + "/api", headers={"X-API-Key": forged})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == INVALID_KEY
    assert upstream.requests == []


def test_a_missing_key_is_401_with_the_api_key_challenge(gateway, upstream) -> None:
    gw = keys_gateway(gateway, upstream)
    response = httpx.get(gw.url + "/api")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == 'ApiKey realm="propylon", header="X-API-Key"'


def test_the_query_parameter_is_off_unless_configured(gateway, upstream) -> None:
    gw = keys_gateway(gateway, upstream)
    assert_problem(httpx.get(gw.url + "/api", params={"api_key": ACME_KEY}), 401)


def test_a_configured_query_parameter_carries_the_key(gateway, upstream) -> None:
    gw = keys_gateway(gateway, upstream, {"query_param": "api_key"})
    response = httpx.get(gw.url + "/api", params={"q": "1", "api_key": ACME_KEY})
    assert response.status_code == 200
    assert upstream.requests[0].headers["x-consumer-id"] == "acme"


def test_a_custom_header_name(gateway, upstream) -> None:
    gw = keys_gateway(gateway, upstream, {"header": "Authorization-Key"})
    assert httpx.get(gw.url + "/api", headers={"Authorization-Key": GLOBEX_KEY}).status_code == 200
    assert_problem(httpx.get(gw.url + "/api", headers={"X-API-Key": GLOBEX_KEY}), 401)


def test_forward_credentials_false_strips_the_key(gateway, upstream) -> None:
    gw = keys_gateway(gateway, upstream, forward_credentials=False)
    assert httpx.get(gw.url + "/api", headers={"X-API-Key": ACME_KEY}).status_code == 200
    assert "x-api-key" not in upstream.requests[0].headers


@pytest.mark.parametrize(("key", "status"), [(ACME_KEY, 200), (GLOBEX_KEY, 403)])
def test_consumer_roles_follow_the_hierarchy(gateway, upstream, key, status) -> None:
    gw = keys_gateway(gateway, upstream, roles=["user"])
    response = httpx.get(gw.url + "/api", headers={"X-API-Key": key})
    assert response.status_code == status


def test_the_consumer_tier_is_part_of_the_identity(gateway, upstream, bg) -> None:
    gw = keys_gateway(gateway, upstream)
    keys = runtime_for(gw.state.config).api_keys
    acme = bg.run(keys.find(ACME_KEY.encode()))
    globex = bg.run(keys.find(GLOBEX_KEY.encode()))
    assert (acme.identity.consumer_id, acme.identity.tier) == ("acme", "premium")
    assert (globex.identity.consumer_id, globex.identity.tier) == ("globex", "free")


# -- jwt or api_key ------------------------------------------------------------------------


def test_either_method_succeeds_on_a_combined_route(gateway, upstream) -> None:
    gw = keys_gateway(gateway, upstream, auth=["jwt", "api_key"])
    token = {"Authorization": f"Bearer {mint(iss=None)}"}
    assert httpx.get(gw.url + "/api", headers=token).status_code == 200
    assert httpx.get(gw.url + "/api", headers={"X-API-Key": ACME_KEY}).status_code == 200
    bad_token = {"Authorization": f"Bearer {mint(aud='other')}"}
    assert (
        httpx.get(gw.url + "/api", headers={**bad_token, "X-API-Key": ACME_KEY}).status_code == 200
    )
    methods = [seen.headers["x-auth-method"] for seen in upstream.requests]
    assert methods == ["jwt", "api_key", "api_key"]


def test_a_combined_route_offers_both_challenges(gateway, upstream) -> None:
    gw = keys_gateway(gateway, upstream, auth=["jwt", "api_key"])
    response = httpx.get(gw.url + "/api")
    assert_problem(response, 401)
    assert response.headers.get_list("www-authenticate") == [
        'Bearer realm="propylon"',
        'ApiKey realm="propylon", header="X-API-Key"',
    ]
    invalid = httpx.get(gw.url + "/api", headers={"X-API-Key": "prop_nope"})
    assert invalid.headers.get_list("www-authenticate") == [INVALID_KEY, 'Bearer realm="propylon"']


def test_repeated_key_headers_are_400(gateway, upstream) -> None:
    gw = keys_gateway(gateway, upstream)
    headers = [("X-API-Key", ACME_KEY), ("X-API-Key", GLOBEX_KEY)]
    assert_problem(httpx.get(gw.url + "/api", headers=headers), 400)
    assert upstream.requests == []
