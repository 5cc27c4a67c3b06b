"""HTTP/1.1 proxy semantics as clients and upstreams see them on the wire:
connection reuse, pipelining, message framing, hop-by-hop fields and the
headers the gateway adds on the way (RFC 9110 and RFC 9112)."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.gateway import service, simple_config
from tests.support.raw import Handler, read_request_head
from tests.support.wire import RawClient, curl

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def get(path: str, *extra: str, version: str = "1.1") -> bytes:
    lines = [f"GET {path} HTTP/{version}", "Host: gw.test", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(raw: bytes) -> Handler:
    """A scripted upstream that reads one request head and writes ``raw``."""

    async def handler(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await read_request_head(reader)
        writer.write(raw)
        await writer.drain()

    return handler


def upstream_request_headers(received: bytes) -> dict[str, str]:
    head = received.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    pairs = (line.partition(":") for line in head[1:])
    return {name.strip().lower(): value.strip() for name, _, value in pairs}


# -- connection reuse -------------------------------------------------------------


def test_sequential_requests_reuse_one_client_and_one_upstream_connection(
    gateway, upstream
) -> None:
    gw = gateway(simple_config(upstream.url))
    client_ports = set()
    with httpx.Client(base_url=gw.url) as client:
        for index in range(50):
            response = client.get(f"/item/{index}")
            assert response.status_code == 200
            assert response.json()["path"] == f"/item/{index}"
            client_ports.add(response.extensions["network_stream"].get_extra_info("client_addr"))
    assert len(client_ports) == 1
    assert len(upstream.requests) == 50
    assert upstream.connections == 1


def test_upstream_connection_is_reused_across_client_connections(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    for index in range(3):
        result = curl(f"{gw.url}/curl/{index}")
        assert result.returncode == 0, result.stderr
        assert f'"/curl/{index}"' in result.stdout
    with httpx.Client() as client:
        assert client.get(gw.url + "/httpx").status_code == 200
    assert len(upstream.requests) == 4
    assert upstream.connections == 1


# -- pipelining and connection management -----------------------------------------


def test_pipelined_requests_are_answered_in_order(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    post = b"POST /second HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5\r\n\r\nhello"
    with RawClient(gw.port) as conn:
        # The first answer is the slowest: order must come from the gateway.
        conn.send(get("/slow?delay=0.2") + post + get("/third"))
        bodies = [conn.read_response().json() for _ in range(3)]
        assert not conn.closed_by_peer(wait=0.2)
    assert bodies[0] == {"slept": 0.2}
    assert [(b["method"], b["path"]) for b in bodies[1:]] == [
        ("POST", "/second"),
        ("GET", "/third"),
    ]
    assert bodies[1]["body_length"] == 5


def test_pipelined_request_after_connection_close_is_not_served(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    with RawClient(gw.port, timeout=0.8) as conn:
        conn.send(get("/first") + get("/last", "Connection: close") + get("/never"))
        first = conn.read_response()
        last = conn.read_response()
        assert conn.closed_by_peer()
    assert first.json()["path"] == "/first"
    assert last.json()["path"] == "/last"
    assert last.header("connection") == "close"
    assert [seen.path for seen in upstream.requests] == ["/first", "/last"]


def test_malformed_request_pipelined_after_a_valid_one_is_answered_in_order(
    gateway, upstream
) -> None:
    gw = gateway(simple_config(upstream.url))
    with RawClient(gw.port, timeout=0.8) as conn:
        conn.send(get("/valid") + b"NOT A REQUEST\r\n\r\n")
        valid = conn.read_response()
        rejected = conn.read_response()
        assert conn.closed_by_peer()
    assert valid.json()["path"] == "/valid"
    assert rejected.status == 400
    assert rejected.header("content-type") == "application/problem+json"
    assert [seen.path for seen in upstream.requests] == ["/valid"]


def test_connection_close_request_gets_close_and_the_socket_closes(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    with RawClient(gw.port) as conn:
        conn.send(get("/bye", "Connection: close"))
        response = conn.read_response()
        assert response.status == 200
        assert response.header("connection") == "close"
        assert conn.closed_by_peer()


def test_http10_request_is_answered_then_closed(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    with RawClient(gw.port) as conn:
        conn.send(b"GET /old HTTP/1.0\r\n\r\n")
        response = conn.read_response()
        assert response.status == 200
        assert response.json()["path"] == "/old"
        assert (response.header("connection") or "close").lower() == "close"
        assert conn.closed_by_peer()


def test_http10_keep_alive_keeps_the_connection_open(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    with RawClient(gw.port) as conn:
        conn.send(get("/one", "Connection: keep-alive", version="1.0"))
        first = conn.read_response()
        assert first.header("connection").lower() == "keep-alive"
        assert not conn.closed_by_peer(wait=0.2)
        conn.send(get("/two", "Connection: keep-alive", version="1.0"))
        second = conn.read_response()
    assert first.json()["path"] == "/one"
    assert second.json()["path"] == "/two"
    assert second.header("connection").lower() == "keep-alive"


# -- message framing ----------------------------------------------------------------


def test_head_keeps_content_length_sends_no_body_and_the_connection_stays_usable(
    gateway, upstream
) -> None:
    gw = gateway(simple_config(upstream.url))
    with RawClient(gw.port) as conn:
        conn.send(get("/status/200"))
        full = conn.read_response()
        conn.send(b"HEAD /status/200 HTTP/1.1\r\nHost: gw.test\r\n\r\n")
        head = conn.read_response(method="HEAD")
        # A body byte after the HEAD response would corrupt this next response.
        conn.send(get("/after"))
        after = conn.read_response()
    assert full.body == b"status 200"
    assert head.status == 200
    assert head.header("content-length") == str(len(full.body))
    assert after.status == 200
    assert after.json()["path"] == "/after"
    assert [seen.method for seen in upstream.requests] == ["GET", "HEAD", "GET"]


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_upstream_status_keeps_the_connection_usable(gateway, upstream, status) -> None:
    gw = gateway(simple_config(upstream.url))
    with RawClient(gw.port) as conn:
        conn.send(get(f"/status/{status}"))
        response = conn.read_response()
        conn.send(get("/after"))
        after = conn.read_response()
    assert response.status == status
    assert response.body == b""
    assert response.header("transfer-encoding") is None
    assert after.json()["path"] == "/after"


def test_expect_100_continue_gets_interim_response_and_upstream_gets_no_expect(
    gateway, upstream
) -> None:
    gw = gateway(simple_config(upstream.url))
    head = (
        b"POST /upload-me HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 11\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    with RawClient(gw.port, timeout=1.5) as conn:
        conn.send(head)
        interim = conn.read_response(method="POST")  # before any body byte is sent
        conn.send(b"hello world")
        final = conn.read_response(method="POST")
    assert (interim.version, interim.status) == ("HTTP/1.1", 100)
    assert final.status == 200
    assert final.json()["body_length"] == 11
    [seen] = upstream.requests
    assert seen.body_length == 11
    assert "expect" not in seen.headers


def test_expect_100_continue_from_an_http10_client_is_ignored(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    head = b"POST /old HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    with RawClient(gw.port) as conn:
        conn.send(head)
        time.sleep(0.1)  # an HTTP/1.0 client knows no 1xx: it just sends the body
        conn.send(b"hello")
        response = conn.read_response(method="POST")
    assert response.status == 200
    assert response.json()["body_length"] == 5


def test_unframed_upstream_response_is_chunked_for_http11_clients(gateway, scripted) -> None:
    origin = scripted(answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello"))
    gw = gateway(simple_config(origin.url))
    with RawClient(gw.port) as conn:
        conn.send(get("/unframed"))
        response = conn.read_response()
        assert response.status == 200
        assert response.chunked
        assert response.header("content-length") is None
        assert response.body == b"hello"
        # The framing is the gateway's, so the client connection outlives the upstream's.
        conn.send(get("/again"))
        assert conn.read_response().body == b"hello"


def test_unframed_upstream_response_ends_with_close_for_http10_clients(gateway, scripted) -> None:
    origin = scripted(answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello"))
    gw = gateway(simple_config(origin.url))
    with RawClient(gw.port) as conn:
        conn.send(get("/unframed", version="1.0"))
        response = conn.read_response()
        assert response.status == 200
        assert response.header("transfer-encoding") is None
        assert response.body == b"hello"
        assert conn.closed_by_peer()


def test_chunked_request_body_reaches_upstream_intact(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    pieces = [bytes([i % 251]) * (1 + i * 997 % 40_000) for i in range(60)]
    payload = b"".join(pieces)

    def body() -> Iterator[bytes]:
        yield from pieces

    with httpx.Client() as client:
        response = client.post(gw.url + "/upload", content=body())
    assert response.status_code == 200
    assert response.json() == {
        "length": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    [seen] = upstream.requests
    assert seen.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in seen.headers


def test_chunked_upstream_response_arrives_intact(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    with httpx.Client() as client:
        response = client.get(gw.url + "/bytes?n=100000&chunked=1")
    assert response.status_code == 200
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.content == b"x" * 100_000


# -- hop-by-hop fields ----------------------------------------------------------------


def test_hop_by_hop_request_headers_do_not_reach_the_upstream(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    headers = {
        "Connection": "keep-alive, X-Secret-Hop",
        "X-Secret-Hop": "1",
        "Keep-Alive": "5",
        "TE": "trailers",
        "Proxy-Authorization": "x",
        "X-End-To-End": "kept",
    }
    response = httpx.get(gw.url + "/hop", headers=headers)
    assert response.status_code == 200
    seen = upstream.requests[0].headers
    for name in ("x-secret-hop", "keep-alive", "te", "proxy-authorization"):
        assert name not in seen, name
    assert "x-secret-hop" not in seen.get("connection", "").lower()
    assert seen["x-end-to-end"] == "kept"


def test_hop_by_hop_response_headers_do_not_reach_the_client(gateway, scripted) -> None:
    origin = scripted(
        answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Up-Hop\r\n"
            b"X-Up-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: y\r\n"
            b"X-End-To-End: kept\r\n\r\nok"
        )
    )
    gw = gateway(simple_config(origin.url))
    response = httpx.get(gw.url + "/hop")
    assert response.status_code == 200
    assert response.content == b"ok"
    for name in ("x-up-hop", "keep-alive", "proxy-authenticate"):
        assert name not in response.headers, name
    assert "x-up-hop" not in response.headers.get("connection", "").lower()
    assert response.headers["x-end-to-end"] == "kept"


# -- forwarding headers -------------------------------------------------------------------


def test_untrusted_client_forwarding_headers_are_replaced(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    spoofed = {
        "Host": "shop.example.com",
        "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
        "Forwarded": "for=6.6.6.6;proto=https;host=evil.example",
    }
    response = httpx.get(gw.url + "/who", headers=spoofed)
    assert response.status_code == 200
    [seen] = upstream.requests
    forwarded_for = [v for k, v in seen.raw_headers if k == "x-forwarded-for"]
    assert forwarded_for == ["127.0.0.1"]
    assert seen.headers["x-forwarded-proto"] == "http"
    assert seen.headers["x-forwarded-host"] == "shop.example.com"
    assert "forwarded" not in seen.headers


def test_trusted_proxy_forwarding_headers_are_kept_and_extended(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url, gateway={"trusted_proxies": ["127.0.0.1/32"]}))
    sent = {
        "Host": "internal.example",
        "X-Forwarded-For": "203.0.113.7, 198.51.100.2",
        "X-Forwarded-Host": "public.example.com",
        "X-Forwarded-Proto": "https",
    }
    response = httpx.get(gw.url + "/who", headers=sent)
    assert response.status_code == 200
    seen = upstream.requests[0].headers
    assert seen["x-forwarded-for"] == "203.0.113.7, 198.51.100.2, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-host"] == "public.example.com"


def test_via_is_appended_to_an_incoming_via(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    response = httpx.get(gw.url + "/via", headers={"Via": "1.1 edge-cdn"})
    assert response.status_code == 200
    assert upstream.requests[0].headers["via"] == "1.1 edge-cdn, 1.1 propylon"
    assert response.headers["via"] == "1.1 propylon"


def test_via_from_several_field_lines_is_kept_whole(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    with RawClient(gw.port) as conn:
        conn.send(get("/via", "Via: 1.0 first", "Via: 1.1 second", "Connection: close"))
        assert conn.read_response().status == 200
    # RFC 9110 section 5.3: field lines of one name form one comma-separated list.
    assert upstream.requests[0].headers["via"] == "1.0 first, 1.1 second, 1.1 propylon"


# -- request id ----------------------------------------------------------------------------


def test_valid_incoming_request_id_is_kept(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    response = httpx.get(gw.url + "/id", headers={"X-Request-ID": "trace-42.a_b:C"})
    assert response.headers["x-request-id"] == "trace-42.a_b:C"
    assert upstream.requests[0].headers["x-request-id"] == "trace-42.a_b:C"


@pytest.mark.parametrize("bad", ["bad id with spaces", "a" * 300])
def test_invalid_incoming_request_id_is_replaced(gateway, upstream, bad) -> None:
    gw = gateway(simple_config(upstream.url))
    response = httpx.get(gw.url + "/id", headers={"X-Request-ID": bad})
    generated = response.headers["x-request-id"]
    assert generated != bad
    assert REQUEST_ID.match(generated)
    assert [v for k, v in upstream.requests[0].raw_headers if k == "x-request-id"] == [generated]


def test_upstream_request_id_does_not_override_the_gateways(gateway, scripted) -> None:
    origin = scripted(
        answer(b"HTTP/1.1 200 OK\r\nX-Request-ID: upstream-made\r\nContent-Length: 2\r\n\r\nok")
    )
    gw = gateway(simple_config(origin.url))
    response = httpx.get(gw.url + "/id", headers={"X-Request-ID": "client-made"})
    assert response.headers.get_list("x-request-id") == ["client-made"]
    assert upstream_request_headers(origin.received_bytes)["x-request-id"] == "client-made"


# -- Host towards the upstream ----------------------------------------------------------------


def test_upstream_host_is_the_target_by_default(gateway, upstream) -> None:
    gw = gateway(simple_config(upstream.url))
    httpx.get(gw.url + "/h", headers={"Host": "client.example:8443"})
    assert upstream.requests[0].headers["host"] == f"127.0.0.1:{upstream.port}"


def test_preserve_host_forwards_the_clients_host(gateway, upstream) -> None:
    config = simple_config(upstream.url)
    config["services"]["up"] = service(upstream.url, preserve_host=True)
    gw = gateway(config)
    httpx.get(gw.url + "/h", headers={"Host": "client.example:8443"})
    assert upstream.requests[0].headers["host"] == "client.example:8443"
