"""Route matching as a client sees it: which upstream gets the request, with
which path, and what the gateway answers when nothing matches."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.gateway import route, service
from tests.support.problems import assert_problem
from tests.support.raw import read_request_head
from tests.support.wire import RawClient, curl


def config(upstreams: dict[str, Any], *routes: dict[str, Any]) -> dict[str, Any]:
    return {
        "services": {name: service(up.url) for name, up in upstreams.items()},
        "routes": list(routes),
    }


def paths(upstream) -> list[str]:  # type: ignore[no-untyped-def]
    return [seen.path for seen in upstream.requests]


async def ok_after_head(reader, writer) -> None:  # type: ignore[no-untyped-def]
    await read_request_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    await writer.drain()


def raw_get(port: int, target: str) -> tuple[int, dict[str, Any]]:
    """Send ``target`` byte for byte (httpx would normalise it first)."""
    with RawClient(port) as conn:
        conn.send(f"GET {target} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n".encode())
        response = conn.read_response()
    return response.status, response.json() if response.status == 200 else {}


# -- prefixes --------------------------------------------------------------------------


def test_longest_prefix_wins(gateway, make_upstream) -> None:
    api, crm = make_upstream(), make_upstream()
    gw = gateway(
        config(
            {"api": api, "crm": crm},
            route("api", "/api", "api"),
            route("crm", "/api/crm", "crm"),
        )
    )
    with httpx.Client(base_url=gw.url) as client:
        for path in ("/api/crm", "/api/crm/", "/api/crm/customers/1", "/api/other", "/api"):
            assert client.get(path).status_code == 200, path
    assert paths(crm) == ["/api/crm", "/api/crm/", "/api/crm/customers/1"]
    assert paths(api) == ["/api/other", "/api"]


def test_prefix_matches_only_on_segment_boundaries(gateway, upstream) -> None:
    gw = gateway(config({"up": upstream}, route("crm", "/api/crm", "up")))
    with httpx.Client(base_url=gw.url) as client:
        for path in ("/api/crmx", "/api/crmx/1", "/api", "/"):
            body = assert_problem(client.get(path), 404)
            assert body["title"] == "Not Found"
        assert client.get("/api/crm/1").status_code == 200
    assert paths(upstream) == ["/api/crm/1"]


# -- hosts ---------------------------------------------------------------------------------


def host_route(name: str, *hosts: str) -> dict[str, Any]:
    return {**route(name, "/", name), "match": {"path": "/", "hosts": list(hosts)}}


def test_exact_host_beats_wildcard_beats_no_host(gateway, make_upstream) -> None:
    exact, wildcard, deeper, anyhost = (make_upstream() for _ in range(4))
    # Listed in reverse precedence: config order must not decide.
    gw = gateway(
        config(
            {"exact": exact, "wildcard": wildcard, "deeper": deeper, "anyhost": anyhost},
            route("anyhost", "/", "anyhost"),
            host_route("wildcard", "*.example.com"),
            host_route("deeper", "*.api.example.com"),
            host_route("exact", "api.example.com"),
        )
    )
    expected = {
        "api.example.com": exact,
        "API.Example.COM:8443": exact,
        "www.example.com": wildcard,
        "a.b.example.com": wildcard,
        "v1.api.example.com": deeper,
        "example.com": anyhost,
        "api.example.com.evil.net": anyhost,
        "other.org": anyhost,
    }
    with httpx.Client(base_url=gw.url) as client:
        for host, target in expected.items():
            path = "/" + host.replace(":", "_")
            assert client.get(path, headers={"Host": host}).status_code == 200
            assert target.requests[-1].path == path, host
    seen = sum(len(up.requests) for up in (exact, wildcard, deeper, anyhost))
    assert seen == len(expected)


def test_host_only_routes_answer_404_for_other_hosts(gateway, upstream) -> None:
    gw = gateway(
        config({"up": upstream}, {**route("h", "/", "up"), "match": {"hosts": ["api.example.com"]}})
    )
    assert httpx.get(gw.url + "/x", headers={"Host": "api.example.com"}).status_code == 200
    assert_problem(httpx.get(gw.url + "/x", headers={"Host": "web.example.com"}), 404)
    assert len(upstream.requests) == 1


# -- methods ---------------------------------------------------------------------------------


def test_wrong_method_is_405_with_allow(gateway, upstream) -> None:
    gw = gateway(
        config(
            {"up": upstream},
            {**route("read", "/items", "up"), "match": {"path": "/items", "methods": ["GET"]}},
            {**route("write", "/items", "up"), "match": {"path": "/items", "methods": ["post"]}},
        )
    )
    with httpx.Client(base_url=gw.url) as client:
        response = client.delete("/items/7")
        body = assert_problem(response, 405)
        assert response.headers["allow"] == "GET, POST"
        assert "DELETE" in body["detail"]
        assert client.get("/items/7").status_code == 200
        assert client.post("/items", content=b"{}").status_code == 200
    assert [(seen.method, seen.path) for seen in upstream.requests] == [
        ("GET", "/items/7"),
        ("POST", "/items"),
    ]


def test_shorter_prefix_that_allows_the_method_wins_over_405(gateway, make_upstream) -> None:
    readonly, fallback = make_upstream(), make_upstream()
    gw = gateway(
        config(
            {"readonly": readonly, "fallback": fallback},
            {**route("ro", "/docs", "readonly"), "match": {"path": "/docs", "methods": ["GET"]}},
            route("rest", "/", "fallback"),
        )
    )
    with httpx.Client(base_url=gw.url) as client:
        assert client.put("/docs/1", content=b"x").status_code == 200
        assert client.get("/docs/1").status_code == 200
    assert [(s.method, s.path) for s in fallback.requests] == [("PUT", "/docs/1")]
    assert [(s.method, s.path) for s in readonly.requests] == [("GET", "/docs/1")]


# -- path changes -------------------------------------------------------------------------------


def test_strip_prefix_removes_the_route_prefix_and_keeps_the_query(gateway, upstream) -> None:
    gw = gateway(config({"up": upstream}, route("crm", "/api/crm", "up", strip_prefix=True)))
    with httpx.Client(base_url=gw.url) as client:
        client.get("/api/crm/customers/1")
        client.get("/api/crm")
        client.get("/api/crm/")
    assert paths(upstream) == ["/customers/1", "/", "/"]


def test_query_string_reaches_the_upstream_byte_for_byte(gateway, scripted) -> None:
    origin = scripted(ok_after_head)
    gw = gateway(
        {
            "services": {"up": service(origin.url)},
            "routes": [route("crm", "/api/crm", "up", strip_prefix=True)],
        }
    )
    result = curl(f"{gw.url}/api/crm/search?q=a%20b&tag=x&tag=y&empty=&%7Eu=%2F")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok"
    request_line = origin.received_bytes.split(b"\r\n", 1)[0]
    assert request_line == b"GET /search?q=a%20b&tag=x&tag=y&empty=&%7Eu=%2F HTTP/1.1"


def test_rewrite_replaces_the_route_prefix(gateway, upstream) -> None:
    gw = gateway(config({"up": upstream}, route("crm", "/api/crm", "up", rewrite="/v2")))
    with httpx.Client(base_url=gw.url) as client:
        client.get("/api/crm/customers", params={"page": "2"})
        client.get("/api/crm")
    assert paths(upstream) == ["/v2/customers", "/v2"]
    assert upstream.requests[0].query == "page=2"


# -- normalisation before matching -----------------------------------------------------------------


@pytest.fixture
def crm_and_rest(gateway, make_upstream):  # type: ignore[no-untyped-def]
    crm, rest = make_upstream(), make_upstream()
    gw = gateway(
        config(
            {"crm": crm, "rest": rest},
            route("crm", "/api/crm", "crm", strip_prefix=True),
            route("rest", "/", "rest"),
        )
    )
    return gw, crm, rest


@pytest.mark.parametrize(
    ("target", "upstream_path"),
    [
        ("/api/crm/../admin", "/api/admin"),  # RFC 3986 section 5.2.4
        ("/api/crm/../../admin", "/admin"),
        ("/api/crm/%2E%2E/admin", "/api/admin"),
        ("/api/crm/./../../../admin", "/admin"),
        ("/api%2Fcrm/x", "/api%2Fcrm/x"),  # an encoded slash is data, not a separator
    ],
)
def test_paths_that_leave_the_crm_prefix_do_not_reach_it(
    crm_and_rest, target, upstream_path
) -> None:
    gw, crm, rest = crm_and_rest
    status, body = raw_get(gw.port, target)
    assert status == 200
    assert body["path"] == upstream_path
    assert crm.requests == []
    assert paths(rest) == [upstream_path]


@pytest.mark.parametrize(
    ("target", "upstream_path"),
    [
        ("/api/%63rm/x", "/x"),  # %63 is "c", an unreserved character
        ("/api/crm/./x", "/x"),
        ("/api/crm/a/../b", "/b"),
        ("/api/crm/a%2Fb", "/a%2Fb"),
        ("/api/crm/a%2fb", "/a%2Fb"),
        ("/api/crm/caf%c3%a9", "/caf%C3%A9"),
    ],
)
def test_normalised_paths_reach_crm(crm_and_rest, target, upstream_path) -> None:
    gw, crm, rest = crm_and_rest
    status, body = raw_get(gw.port, target)
    assert status == 200
    assert body["path"] == upstream_path
    assert rest.requests == []
    assert paths(crm) == [upstream_path]


def test_curl_path_as_is_dot_segments_are_resolved_before_matching(crm_and_rest) -> None:
    gw, crm, rest = crm_and_rest
    result = curl("--path-as-is", f"{gw.url}/api/crm/../../admin/users")
    assert result.returncode == 0, result.stderr
    assert '"path": "/admin/users"' in result.stdout
    assert crm.requests == []
    assert paths(rest) == ["/admin/users"]
