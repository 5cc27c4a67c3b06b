"""The built-in plugins (cors, security_headers) and the gateway's own
/health endpoints, seen from real clients in front of a real upstream."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from propylon import __version__
from tests.support.gateway import route, service, simple_config
from tests.support.problems import assert_problem
from tests.support.raw import Handler, read_request_head
from tests.support.wire import RawClient, curl

APP = "https://app.example.com"
CORS = {"allow_origins": [APP], "allow_credentials": True}

HELMET_DEFAULTS = {
    "content-security-policy": (
        "default-src 'self';base-uri 'self';font-src 'self' https: data:;"
        "form-action 'self';frame-ancestors 'self';img-src 'self' data:;"
        "object-src 'none';script-src 'self';script-src-attr 'none';"
        "style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests"
    ),
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "origin-agent-cluster": "?1",
    "referrer-policy": "no-referrer",
    "strict-transport-security": "max-age=15552000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "x-dns-prefetch-control": "off",
    "x-download-options": "noopen",
    "x-frame-options": "SAMEORIGIN",
    "x-permitted-cross-domain-policies": "none",
    "x-xss-protection": "0",
}


def preflight(origin: str, method: str = "PUT") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type",
    }


def vary_tokens(response: httpx.Response) -> set[str]:
    values = response.headers.get_list("vary")
    return {token.strip().lower() for value in values for token in value.split(",")}


def answer(raw: bytes) -> Handler:
    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_request_head(reader)
        writer.write(raw)
        await writer.drain()

    return handler


# -- cors ----------------------------------------------------------------------------------


def test_preflight_is_answered_by_the_gateway(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url, cors=CORS))
    response = httpx.options(gw.url + "/api/items", headers=preflight(APP))
    assert response.status_code == 204
    assert response.content == b""
    headers = response.headers
    assert headers["access-control-allow-origin"] == APP
    assert headers["access-control-allow-credentials"] == "true"
    assert "PUT" in [m.strip() for m in headers["access-control-allow-methods"].split(",")]
    allowed_headers = [
        h.strip().lower() for h in headers["access-control-allow-headers"].split(",")
    ]
    assert "content-type" in allowed_headers
    assert headers["access-control-max-age"] == "600"
    assert "origin" in vary_tokens(response)
    assert upstream.requests == []


def test_preflight_204_carries_no_content_length(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url, cors=CORS))
    response = httpx.options(gw.url + "/api/items", headers=preflight(APP))
    assert response.status_code == 204
    assert "content-length" not in response.headers


def test_preflight_from_a_disallowed_origin_is_403(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url, cors=CORS))
    response = httpx.options(gw.url + "/api/items", headers=preflight("https://evil.example"))
    assert_problem(response, 403)
    assert "access-control-allow-origin" not in response.headers
    assert upstream.requests == []


def test_simple_request_from_an_allowed_origin_gets_cors_headers(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url, cors=CORS))
    response = httpx.get(gw.url + "/api/items", headers={"Origin": APP})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-expose-headers"] == "X-Request-ID"
    assert "origin" in vary_tokens(response)
    assert len(upstream.requests) == 1


def test_simple_request_from_a_disallowed_origin_gets_no_cors_headers(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url, cors=CORS))
    response = httpx.get(gw.url + "/api/items", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200
    cors_headers = [name for name in response.headers if name.startswith("access-control-")]
    assert cors_headers == []
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("origin", [None, "https://evil.example"])
def test_responses_that_depend_on_origin_always_vary_on_it(gateway, upstream, origin) -> None:
    gw = gateway(simple_config(upstream.url, cors=CORS))
    headers = {"Origin": origin} if origin else {}
    response = httpx.get(gw.url + "/api/items", headers=headers)
    assert response.status_code == 200
    assert "origin" in vary_tokens(response)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://shop.example.com", True),
        ("https://a.b.example.com", True),
        ("https://example.com", False),
        ("http://shop.example.com", False),
        ("https://shop.example.com.evil.net", False),
        ("https://evilexample.com", False),
    ],
)
def test_wildcard_origin_pattern(gateway, upstream, origin, allowed) -> None:
    gw = gateway(simple_config(upstream.url, cors={"allow_origins": ["https://*.example.com"]}))
    with httpx.Client(base_url=gw.url) as client:
        simple = client.get("/x", headers={"Origin": origin})
        pre = client.options("/x", headers=preflight(origin))
    if allowed:
        assert simple.headers["access-control-allow-origin"] == origin
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == origin
    else:
        assert "access-control-allow-origin" not in simple.headers
        assert_problem(pre, 403)
    assert [seen.method for seen in upstream.requests] == ["GET"]


def test_plain_options_without_request_method_goes_upstream(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url, cors=CORS))
    response = httpx.options(gw.url + "/api/items", headers={"Origin": APP})
    assert response.status_code == 200
    assert response.json()["method"] == "OPTIONS"
    assert response.headers["access-control-allow-origin"] == APP
    assert [seen.method for seen in upstream.requests] == ["OPTIONS"]


def test_route_with_cors_off_gets_no_cors_headers(gateway, upstream) -> None:
    config = {
        "services": {"up": service(upstream.url)},
        "routes": [
            route("public", "/public", plugins={"cors": False}),
            route("all", "/"),
        ],
        "cors": CORS,
    }
    gw = gateway(config)
    with httpx.Client(base_url=gw.url) as client:
        off = client.get("/public/page", headers={"Origin": APP})
        off_preflight = client.options("/public/page", headers=preflight(APP))
        on = client.get("/private/page", headers={"Origin": APP})
    assert off.status_code == 200
    assert not [name for name in off.headers if name.startswith("access-control-")]
    # Without the plugin nobody answers preflights for the route: the upstream does.
    assert off_preflight.status_code == 200
    assert off_preflight.json()["method"] == "OPTIONS"
    assert on.headers["access-control-allow-origin"] == APP
    assert [(s.method, s.path) for s in upstream.requests] == [
        ("GET", "/public/page"),
        ("OPTIONS", "/public/page"),
        ("GET", "/private/page"),
    ]


# -- security headers ----------------------------------------------------------------------


def assert_helmet_defaults(response: httpx.Response, *, without: tuple[str, ...] = ()) -> None:
    for name, value in HELMET_DEFAULTS.items():
        if name in without:
            assert name not in response.headers, name
        else:
            assert response.headers.get_list(name) == [value], name


def test_security_headers_on_proxied_responses(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url, security_headers={}))
    response = httpx.get(gw.url + "/page")
    assert response.status_code == 200
    assert_helmet_defaults(response)
    assert "server" not in response.headers  # aiohttp's "Python/3.x aiohttp/..."


def test_security_headers_on_gateway_made_404(gateway, upstream) -> None:
    config = {
        "services": {"up": service(upstream.url)},
        "routes": [route("api", "/api")],
        "security_headers": {},
    }
    gw = gateway(config)
    response = httpx.get(gw.url + "/nowhere")
    assert_problem(response, 404)
    assert_helmet_defaults(response)
    assert upstream.requests == []


def test_security_header_set_to_false_is_left_out(gateway, upstream) -> None:
    settings = {"x_frame_options": False, "strict_transport_security": False}
    gw = gateway(simple_config(upstream.url, security_headers=settings))
    response = httpx.get(gw.url + "/page")
    assert_helmet_defaults(response, without=("x-frame-options", "strict-transport-security"))


def test_route_with_security_headers_off_gets_none(gateway, upstream) -> None:
    config = {
        "services": {"up": service(upstream.url)},
        "routes": [route("raw", "/raw", plugins={"security_headers": False}), route("all", "/")],
        "security_headers": {},
    }
    gw = gateway(config)
    with httpx.Client(base_url=gw.url) as client:
        plain = client.get("/raw/file")
        guarded = client.get("/page")
    assert not [name for name in HELMET_DEFAULTS if name in plain.headers]
    assert_helmet_defaults(guarded)


def test_upstream_set_security_header_is_kept(gateway, scripted) -> None:
    origin = scripted(
        answer(
            b"HTTP/1.1 200 OK\r\nX-Frame-Options: DENY\r\n"
            b"Content-Security-Policy: default-src 'none'\r\nContent-Length: 2\r\n\r\nok"
        )
    )
    gw = gateway(simple_config(origin.url, security_headers={}))
    response = httpx.get(gw.url + "/page")
    assert response.headers.get_list("x-frame-options") == ["DENY"]
    assert response.headers.get_list("content-security-policy") == ["default-src 'none'"]
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(("hide", "visible"), [({}, False), ({"hide_server_headers": False}, True)])
def test_server_and_powered_by_are_hidden_by_default(gateway, scripted, hide, visible) -> None:
    origin = scripted(
        answer(
            b"HTTP/1.1 200 OK\r\nServer: nginx/1.25.3\r\nX-Powered-By: Express\r\n"
            b"Content-Length: 2\r\n\r\nok"
        )
    )
    gw = gateway(simple_config(origin.url, security_headers=hide))
    response = httpx.get(gw.url + "/page")
    assert response.content == b"ok"
    assert ("server" in response.headers) is visible
    assert ("x-powered-by" in response.headers) is visible


# -- health --------------------------------------------------------------------------------


def test_health_document(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url, gateway={"name": "edge-gw"}))
    response = httpx.get(gw.url + "/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert set(body) == {"status", "service", "version", "uptime", "timestamp", "dependencies"}
    assert body["status"] == "healthy"
    assert body["service"] == "edge-gw"
    assert body["version"] == __version__
    assert isinstance(body["uptime"], int | float)
    assert 0 <= body["uptime"] < 60
    stamp = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 5
    assert isinstance(body["dependencies"], dict)
    assert upstream.requests == []


def test_liveness_and_readiness(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    live = curl("--include", gw.url + "/health/live")
    assert live.returncode == 0, live.stderr
    assert live.stdout.startswith("HTTP/1.1 200 ")
    assert "cache-control: no-store" in live.stdout.lower()
    ready = httpx.get(gw.url + "/health/ready")
    assert ready.status_code == 200
    assert ready.headers["cache-control"] == "no-store"
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["service:up"]["status"] == "pass"
    assert all(check["status"] == "pass" for check in body["checks"].values())


def test_not_ready_when_a_service_has_no_target_taking_traffic(gateway, make_upstream) -> None:
    good, drained = make_upstream(), make_upstream()
    config = {
        "services": {
            "good": service(good.url),
            "drained": {"targets": [{"url": drained.url, "weight": 0}]},
        },
        "routes": [route("all", "/", "good")],
    }
    gw = gateway(config)
    response = httpx.get(gw.url + "/health/ready")
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["cache-control"] == "no-store"
    checks = response.json()["checks"]
    assert checks["service:drained"]["status"] == "fail"
    assert checks["service:good"]["status"] == "pass"
    # Liveness is about the process, not its dependencies.
    assert httpx.get(gw.url + "/health/live").status_code == 200


def test_health_is_answered_before_a_catch_all_route(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url, security_headers={}))
    with httpx.Client(base_url=gw.url) as client:
        for path in ("/health", "/health/live", "/health/ready", "/health?verbose=1"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers["cache-control"] == "no-store", path
        assert client.get("/healthz").json()["path"] == "/healthz"
    assert [seen.path for seen in upstream.requests] == ["/healthz"]


def test_head_health_has_no_body_and_keeps_the_connection(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    with RawClient(gw.port) as conn:
        conn.send(b"HEAD /health/live HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        head = conn.read_response(method="HEAD")
        conn.send(b"GET /health/live HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        full = conn.read_response()
    assert head.status == 200
    assert head.header("content-length") == str(len(full.body))
    assert full.json() == {"status": "alive"}
    assert upstream.requests == []


@pytest.mark.parametrize(("method", "path"), [("POST", "/health"), ("DELETE", "/health/ready")])
def test_health_rejects_other_methods_with_405(gateway, upstream, method, path) -> None:
    gw = gateway(simple_config(upstream.url))
    response = httpx.request(method, gw.url + path)
    assert_problem(response, 405)
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed == {"GET", "HEAD"}
    assert upstream.requests == []
