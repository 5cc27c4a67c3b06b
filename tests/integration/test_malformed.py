"""Nothing malformed is ever forwarded.

Every test sends hand-made bytes over a raw socket and checks, from the
outside, the whole contract for a request the gateway must refuse: the
status, an application/problem+json body with no traceback in it, the
connection closed afterwards, nothing (not even a connection) reaching the
upstream, and a fresh connection served normally afterwards.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.gateway import InProcessGateway, simple_config
from tests.support.hostile import HttpResponse, Wire, http_ok, split_responses
from tests.support.raw import ScriptedUpstream
from tests.support.upstream import Upstream

MAX_HEADER_BYTES = 4096
MAX_BODY = 1024
LIMITS = {"max_header_bytes": "4KB", "max_body": "1KB"}
SETTLE = 0.2  # seconds the gateway gets to (wrongly) reach the upstream
PROBLEM_FIELDS = {"type", "title", "status", "detail", "request_id"}

GatewayFactory = Callable[[dict[str, Any]], InProcessGateway]
ScriptedFactory = Callable[..., ScriptedUpstream]


def config(upstream_url: str, **limits: str) -> dict[str, Any]:
    return simple_config(upstream_url, gateway={"limits": {**LIMITS, **limits}})


def assert_problem(response: HttpResponse, status: int) -> None:
    assert response.status == status
    assert response.headers.get("content-type") == "application/problem+json"
    assert response.headers.get("connection") == "close"
    text = response.body.decode()
    for leak in ("Traceback", 'File "', ".py", "httptools"):
        assert leak not in text
    document = json.loads(text)
    assert set(document) >= PROBLEM_FIELDS
    assert document["status"] == status
    for name in ("type", "title", "detail"):
        assert isinstance(document[name], str)
        assert document[name]
    assert document["request_id"] == response.headers["x-request-id"]


def refused(port: int, data: bytes, status: int, wait: float = 3.0) -> HttpResponse:
    """Send ``data``; expect exactly one problem response, then a close."""
    with Wire(port) as wire:
        wire.send(data)
        received = wire.read_until_closed(wait)
    assert received.closed, f"the connection was left open; received {received.data!r}"
    responses, rest = split_responses(received.data)
    assert len(responses) == 1, received.data
    assert rest == b""
    assert_problem(responses[0], status)
    return responses[0]


def assert_nothing_reached(upstream: ScriptedUpstream) -> None:
    time.sleep(SETTLE)
    assert upstream.connections == 0
    assert upstream.received_bytes == b""


def assert_still_serves(gw: InProcessGateway, upstream: ScriptedUpstream | Upstream) -> None:
    """A well-formed request on a fresh connection still goes through."""
    response = httpx.get(gw.url + "/after", timeout=5)
    assert response.status_code == 200
    if isinstance(upstream, Upstream):
        assert upstream.requests[-1].path == "/after"
    else:
        assert b"GET /after HTTP/1.1\r\n" in upstream.received_bytes


@pytest.fixture
def guarded(
    gateway: GatewayFactory, scripted: ScriptedFactory
) -> tuple[InProcessGateway, ScriptedUpstream]:
    """A gateway with small limits and a catch-all route to a scripted upstream."""
    upstream = scripted(http_ok())
    return gateway(config(upstream.url)), upstream


def post(*fields: bytes, body: bytes = b"", version: bytes = b"1.1") -> bytes:
    head = b"POST /submit HTTP/" + version + b"\r\nHost: gw.test\r\n"
    return head + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


def get(target: bytes = b"/", *fields: bytes, host: bool = True) -> bytes:
    head = b"GET " + target + b" HTTP/1.1\r\n" + (b"Host: gw.test\r\n" if host else b"")
    return head + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


CHUNKED = b"Transfer-Encoding: chunked"
HTTP10_TE = "RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing"

BAD_REQUESTS = [
    # -- body framing (RFC 9112 section 6) ---------------------------------------
    pytest.param(
        post(b"Content-Length: 5", CHUNKED, body=b"0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"),
        id="content-length-and-chunked",
    ),
    pytest.param(
        post(CHUNKED, b"Content-Length: 5", body=b"0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"),
        id="chunked-and-content-length",
    ),
    pytest.param(
        post(b"Content-Length: 5", b"Content-Length: 6", body=b"hello!"),
        id="two-different-content-lengths",
    ),
    # RFC 9112 6.3: a proxy MUST either reject identical duplicates or collapse
    # them; llhttp rejects, and rejecting is the choice that cannot desync.
    pytest.param(
        post(b"Content-Length: 5", b"Content-Length: 5", body=b"hello"),
        id="duplicate-identical-content-length",
    ),
    pytest.param(post(b"Content-Length: 5, 5", body=b"hello"), id="content-length-list"),
    pytest.param(post(b"Content-Length: 12a", body=b"hello"), id="content-length-12a"),
    pytest.param(post(b"Content-Length: -1", body=b"hello"), id="content-length-negative"),
    pytest.param(post(b"Content-Length: +5", body=b"hello"), id="content-length-plus-sign"),
    pytest.param(post(b"Content-Length: 0x5", body=b"hello"), id="content-length-hex"),
    pytest.param(
        post(b"Content-Length: 99999999999999999999999", body=b"hello"),
        id="content-length-overflow",
    ),
    pytest.param(post(b"Transfer-Encoding: gzip", body=b"hello"), id="transfer-encoding-gzip"),
    pytest.param(
        post(b"Transfer-Encoding: chunked, gzip", body=b"5\r\nhello\r\n0\r\n\r\n"),
        id="transfer-encoding-chunked-then-gzip",
    ),
    pytest.param(
        post(CHUNKED, CHUNKED, body=b"5\r\nhello\r\n0\r\n\r\n"), id="chunked-applied-twice"
    ),
    pytest.param(
        post(CHUNKED, body=b"5\r\nhello\r\n0\r\n\r\n", version=b"1.0"),
        id="chunked-on-http-1.0",
    ),
    # -- chunked body (RFC 9112 section 7.1) -------------------------------------
    pytest.param(post(CHUNKED, body=b"zz\r\nhello\r\n0\r\n\r\n"), id="chunk-size-zz"),
    pytest.param(
        post(CHUNKED, body=b"10000000000000000\r\nhello\r\n0\r\n\r\n"), id="chunk-size-overflow"
    ),
    pytest.param(post(CHUNKED, body=b"5\r\nhello0\r\n\r\n"), id="chunk-data-without-crlf"),
    pytest.param(post(CHUNKED, body=b"5\nhello\n0\n\n"), id="chunk-lines-with-bare-lf"),
    pytest.param(post(CHUNKED, body=b"-5\r\nhello\r\n0\r\n\r\n"), id="chunk-size-negative"),
    # -- request line (RFC 9112 section 3) -------------------------------------------
    pytest.param(b"GET\r\nHost: gw.test\r\n\r\n", id="request-line-method-only"),
    pytest.param(b"GET / HTTP/9.9\r\nHost: gw.test\r\n\r\n", id="version-9.9"),
    pytest.param(b"GET / HTTP/1.10\r\nHost: gw.test\r\n\r\n", id="version-1.10"),
    pytest.param(b"GET / http/1.1\r\nHost: gw.test\r\n\r\n", id="version-lower-case"),
    pytest.param(b"G ET / HTTP/1.1\r\nHost: gw.test\r\n\r\n", id="method-with-space"),
    pytest.param(b"G\x01ET / HTTP/1.1\r\nHost: gw.test\r\n\r\n", id="method-with-control"),
    pytest.param(b"GET /a b HTTP/1.1\r\nHost: gw.test\r\n\r\n", id="target-with-space"),
    pytest.param(b"GET /a\tb HTTP/1.1\r\nHost: gw.test\r\n\r\n", id="target-with-tab"),
    pytest.param(b"GET /a\x7fb HTTP/1.1\r\nHost: gw.test\r\n\r\n", id="target-with-del"),
    # -- line endings and header fields (RFC 9112 sections 2.2 and 5) ------------
    pytest.param(b"GET / HTTP/1.1\nHost: gw.test\n\n", id="bare-lf-everywhere"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: gw.test\nX-A: b\r\n\r\n", id="bare-lf-after-field"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: gw.test\r\n\n", id="bare-lf-ending-head"),
    pytest.param(get(b"/", b"X-A: a\rb"), id="bare-cr-in-value"),
    pytest.param(get(b"/", b"X-A: a\x00b"), id="nul-in-value"),
    pytest.param(get(b"/", b"X-A: a\x01b"), id="control-in-value"),
    pytest.param(get(b"/", b"X-A: a\x7fb"), id="del-in-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost : gw.test\r\n\r\n", id="space-before-colon-host"),
    pytest.param(get(b"/", b"X-A : b"), id="space-before-colon"),
    pytest.param(get(b"/", b"X A: b"), id="space-in-field-name"),
    pytest.param(get(b"/", b": b"), id="empty-field-name"),
    pytest.param(get(b"/", b"X-A: a", b" folded"), id="obs-fold-space"),
    pytest.param(get(b"/", b"X-A: a", b"\tfolded"), id="obs-fold-tab"),
    pytest.param(b"GET / HTTP/1.1\r\n Host: gw.test\r\n\r\n", id="whitespace-after-start-line"),
    # -- Host (RFC 9112 section 3.2) --------------------------------------------------
    pytest.param(get(b"/", host=False), id="missing-host"),
    pytest.param(get(b"/", b"Host: other.test"), id="two-hosts"),
    pytest.param(get(b"/", b"host: gw.test"), id="two-identical-hosts"),
    # -- request target ----------------------------------------------------------------
    pytest.param(get(b"/a#frag"), id="fragment"),
    pytest.param(get(b"/a?x=1#frag"), id="fragment-after-query"),
    pytest.param(get(b"/a#frag?x=1"), id="fragment-before-query"),
    pytest.param(get(b"*"), id="asterisk-form-get"),
    pytest.param(get(b"example.com:80"), id="authority-form-get"),
    pytest.param(get(b"/%zz"), id="percent-zz"),
    pytest.param(get(b"/a%4"), id="percent-truncated-at-end"),
    pytest.param(get(b"/%4/b"), id="percent-one-digit"),
    pytest.param(get(b"/a%"), id="percent-alone"),
]


@pytest.mark.parametrize("data", BAD_REQUESTS)
def test_malformed_request_gets_400_and_is_never_forwarded(
    guarded: tuple[InProcessGateway, ScriptedUpstream], data: bytes
) -> None:
    gw, upstream = guarded
    refused(gw.port, data, 400)
    assert_nothing_reached(upstream)
    assert_still_serves(gw, upstream)


def test_unsupported_major_version_is_refused(
    guarded: tuple[InProcessGateway, ScriptedUpstream],
) -> None:
    # llhttp lets "HTTP/2.0" through in an HTTP/1 request line (it knows the
    # h2 preface); HTTP/2 framing cannot arrive this way, so the gateway must
    # refuse it like HTTP/9.9 (400, or 505 per RFC 9110 15.6.6).
    gw, upstream = guarded
    with Wire(gw.port) as wire:
        wire.send(b"GET / HTTP/2.0\r\nHost: gw.test\r\n\r\n")
        received = wire.read_until_closed(3.0)
    responses, _ = split_responses(received.data)
    assert len(responses) == 1
    assert responses[0].status in (400, 505)
    assert_problem(responses[0], responses[0].status)
    assert received.closed
    assert_nothing_reached(upstream)
    assert_still_serves(gw, upstream)


# -- size limits ------------------------------------------------------------------

BIG = MAX_HEADER_BYTES + 1000
TOO_LARGE_HEADS = [
    pytest.param(get(b"/", b"X-Big: " + b"v" * BIG), id="one-large-field"),
    pytest.param(
        get(b"/", *(b"X-Field-%03d: %s" % (i, b"v" * 20) for i in range(200))),
        id="many-small-fields",
    ),
    # RFC 9110 15.5.15 has 414 for this; the contract (ARCHITECTURE.md 3,
    # "Errors") lists only 431 for an oversized head, so 431 it is.
    pytest.param(get(b"/" + b"u" * BIG), id="long-target"),
    pytest.param(get(b"/?" + b"q=1&" * (BIG // 4)), id="long-query"),
]


@pytest.mark.parametrize("data", TOO_LARGE_HEADS)
def test_oversized_head_gets_431_and_is_never_forwarded(
    guarded: tuple[InProcessGateway, ScriptedUpstream], data: bytes
) -> None:
    gw, upstream = guarded
    refused(gw.port, data, 431)
    assert_nothing_reached(upstream)
    assert_still_serves(gw, upstream)


@pytest.mark.parametrize(
    "pieces",
    [
        pytest.param(
            [b"GET / HTTP/1.1\r\nHost: gw.test\r\nX-Big: " + b"v" * BIG],
            id="one-read",
        ),
        pytest.param([b"GET / HTTP/1.1\r\nHost: gw.test\r\nX-Big: ", b"v" * BIG], id="second-read"),
    ],
)
def test_unfinished_oversized_head_gets_431_without_waiting(
    guarded: tuple[InProcessGateway, ScriptedUpstream], pieces: list[bytes]
) -> None:
    # The head never ends: the limit must trip on the bytes held, not on
    # fields parsed, or a client could make the gateway buffer until the
    # header timeout (10 s by default here).
    gw, upstream = guarded
    with Wire(gw.port) as wire:
        for piece in pieces:
            wire.send(piece)
            time.sleep(0.05)
        received = wire.read_until_closed(2.0)
    assert received.closed
    responses, _ = split_responses(received.data)
    assert len(responses) == 1
    assert_problem(responses[0], 431)
    assert_nothing_reached(upstream)
    assert_still_serves(gw, upstream)


def test_content_length_over_max_body_gets_413_before_the_body(
    guarded: tuple[InProcessGateway, ScriptedUpstream],
) -> None:
    gw, upstream = guarded
    with Wire(gw.port) as wire:
        wire.send(post(b"Content-Length: %d" % (MAX_BODY + 1)))  # the head only
        received = wire.read_until_closed(2.0)
    assert received.closed
    assert received.elapsed < 1.0  # answered without waiting for the body
    responses, rest = split_responses(received.data)
    assert len(responses) == 1
    assert rest == b""
    assert_problem(responses[0], 413)
    assert_nothing_reached(upstream)
    assert_still_serves(gw, upstream)


def test_streamed_chunked_body_over_max_body_gets_413_and_never_completes_upstream(
    gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = gateway(config(upstream.url))
    chunk = b"200\r\n" + b"c" * 0x200 + b"\r\n"
    with Wire(gw.port) as wire:
        wire.send(post(CHUNKED))
        time.sleep(SETTLE)  # the head goes upstream; now stream the body
        for _ in range(8):  # 4 KB in all, the limit is 1 KB
            if not wire.send(chunk) or wire.poll(0.1):
                break  # the gateway answered: stop before it resets us
        else:
            wire.send(b"0\r\n\r\n")
        received = wire.read_until_closed(3.0)
    assert received.closed
    responses, _ = split_responses(received.data)
    assert len(responses) == 1
    assert_problem(responses[0], 413)
    time.sleep(SETTLE)
    assert upstream.requests == []  # aiohttp records only complete requests
    assert_still_serves(gw, upstream)


def test_chunked_body_over_max_body_in_one_read_reaches_nothing(
    guarded: tuple[InProcessGateway, ScriptedUpstream],
) -> None:
    gw, upstream = guarded
    body = b"258\r\n" + b"c" * 600 + b"\r\n"
    refused(gw.port, post(CHUNKED, body=body * 2 + b"0\r\n\r\n"), 413)
    assert_nothing_reached(upstream)
    assert_still_serves(gw, upstream)


# -- time limits ------------------------------------------------------------------


@pytest.fixture
def hurried(
    gateway: GatewayFactory, scripted: ScriptedFactory
) -> tuple[InProcessGateway, ScriptedUpstream]:
    upstream = scripted(http_ok())
    return gateway(config(upstream.url, header_timeout="500ms", idle_timeout="500ms")), upstream


def test_partial_head_gets_408_after_the_header_timeout(
    hurried: tuple[InProcessGateway, ScriptedUpstream],
) -> None:
    gw, upstream = hurried
    with Wire(gw.port) as wire:
        wire.send(b"GET / HTTP/1.1\r\nHost: gw.test\r\n")  # and then nothing
        received = wire.read_until_closed(3.0)
    assert received.closed
    assert 0.4 <= received.elapsed <= 1.5
    responses, rest = split_responses(received.data)
    assert len(responses) == 1
    assert rest == b""
    assert_problem(responses[0], 408)
    assert_nothing_reached(upstream)
    assert_still_serves(gw, upstream)


def test_trickled_head_does_not_extend_the_header_timeout(
    hurried: tuple[InProcessGateway, ScriptedUpstream],
) -> None:
    gw, upstream = hurried
    head = b"GET / HTTP/1.1\r\nHost: gw.test\r\nX-Slow: " + b"s" * 100
    started = time.monotonic()
    with Wire(gw.port) as wire:
        for byte in head:  # one byte every 50 ms: 7 s for the whole head
            if not wire.send(bytes([byte])) or wire.poll(0.05):
                break
        received = wire.read_until_closed(3.0)
    assert received.closed
    assert time.monotonic() - started <= 1.5
    responses, _ = split_responses(received.data)
    assert len(responses) == 1
    assert_problem(responses[0], 408)
    assert_nothing_reached(upstream)
    assert_still_serves(gw, upstream)


def test_idle_keep_alive_connection_is_closed_quietly(
    hurried: tuple[InProcessGateway, ScriptedUpstream],
) -> None:
    gw, upstream = hurried
    with Wire(gw.port) as wire:
        wire.send(get(b"/first"))
        [response] = wire.read_responses(1)
        assert response.status == 200
        assert response.headers.get("connection") != "close"
        received = wire.read_until_closed(3.0)  # and send nothing more
    assert received.closed
    assert received.data == b""  # no 408 for a connection between requests
    assert 0.4 <= received.elapsed <= 1.5
    assert_still_serves(gw, upstream)


# -- pipelining and pooled upstream connections -------------------------------------


@pytest.mark.parametrize("good", [1, 2], ids=["one-good-first", "two-good-first"])
def test_malformed_request_pipelined_in_one_read_is_answered_in_order(
    guarded: tuple[InProcessGateway, ScriptedUpstream], good: int
) -> None:
    gw, upstream = guarded
    requests = b"".join(get(b"/good%d" % i) for i in range(good))
    with Wire(gw.port) as wire:
        wire.send(requests + b"GET / HTTP/9.9\r\nHost: gw.test\r\n\r\n")
        received = wire.read_until_closed(3.0)
    assert received.closed
    responses, rest = split_responses(received.data)
    assert [r.status for r in responses] == [200] * good + [400]
    assert rest == b""
    assert_problem(responses[-1], 400)
    time.sleep(SETTLE)
    assert upstream.received_bytes.count(b" HTTP/1.1\r\n") == good  # only the good ones
    assert_still_serves(gw, upstream)


def test_malformed_request_pipelined_behind_a_slow_one_is_answered_in_order(
    gateway: GatewayFactory, scripted: ScriptedFactory
) -> None:
    upstream = scripted(http_ok(delay=0.3))
    gw = gateway(config(upstream.url))
    with Wire(gw.port) as wire:
        wire.send(get(b"/first"))
        time.sleep(0.1)  # /first is upstream now, its answer still 0.2 s away
        wire.send(b"GET / HTTP/9.9\r\nHost: gw.test\r\n\r\n")
        received = wire.read_until_closed(3.0)
    assert received.closed
    responses, rest = split_responses(received.data)
    assert [r.status for r in responses] == [200, 400]
    assert rest == b""
    assert_problem(responses[1], 400)
    time.sleep(SETTLE)
    assert upstream.received_bytes.count(b" HTTP/1.1\r\n") == 1
    assert b"GET /first HTTP/1.1\r\n" in upstream.received_bytes
    assert_still_serves(gw, upstream)


def test_invalid_chunk_on_a_pooled_connection_never_completes_upstream(
    gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = gateway(config(upstream.url))
    assert httpx.get(gw.url + "/warm", timeout=5).status_code == 200  # pools a connection
    assert len(upstream.requests) == 1
    with Wire(gw.port) as wire:
        wire.send(post(CHUNKED, body=b"5\r\nhello\r\n"))
        time.sleep(SETTLE)  # the head and the good chunk go upstream at once
        wire.send(b"zz\r\nhello\r\n0\r\n\r\n")
        received = wire.read_until_closed(3.0)
    assert received.closed
    responses, _ = split_responses(received.data)
    assert len(responses) == 1
    assert_problem(responses[0], 400)
    time.sleep(SETTLE)
    assert len(upstream.requests) == 1  # the bad request never completed upstream
    assert_still_serves(gw, upstream)


def test_invalid_chunk_on_a_pooled_connection_sends_nothing_after_the_good_bytes(
    gateway: GatewayFactory, scripted: ScriptedFactory
) -> None:
    upstream = scripted(http_ok())
    gw = gateway(config(upstream.url))
    assert httpx.get(gw.url + "/warm", timeout=5).status_code == 200
    with Wire(gw.port) as wire:
        wire.send(post(CHUNKED, body=b"5\r\nhello\r\n"))
        time.sleep(SETTLE)
        wire.send(b"5\r\nworld\r\nzz\r\nhello\r\n0\r\n\r\n")  # a good chunk, then a bad one
        received = wire.read_until_closed(3.0)
    assert received.closed
    assert_problem(split_responses(received.data)[0][0], 400)
    time.sleep(SETTLE)
    forwarded = upstream.received_bytes.split(b"POST /submit HTTP/1.1\r\n", 1)[1]
    body = forwarded.split(b"\r\n\r\n", 1)[1]
    # Nothing of the read holding the bad chunk moves: not even its good chunk,
    # and never a last-chunk that would complete the request.
    assert body == b"5\r\nhello\r\n"
    assert_still_serves(gw, upstream)
    assert upstream.connections == 2  # the poisoned connection was not pooled again


# -- valid framing the gateway must not mangle ------------------------------------------


def test_transfer_coding_the_gateway_does_not_implement_is_not_dropped(
    guarded: tuple[InProcessGateway, ScriptedUpstream],
) -> None:
    # RFC 9112 6.1: a server that does not understand a transfer coding
    # SHOULD answer 501; a proxy may forward it, but never strip it.
    gw, upstream = guarded
    data = post(b"Transfer-Encoding: gzip, chunked", body=b"5\r\nhello\r\n0\r\n\r\n")
    with Wire(gw.port) as wire:
        wire.send(data + get(b"/", b"Connection: close"))
        received = wire.read_until_closed(3.0)
    time.sleep(SETTLE)
    forwarded = upstream.received_bytes.lower()
    if b"post /submit" in forwarded:
        assert b"transfer-encoding: gzip, chunked\r\n" in forwarded
    else:
        assert split_responses(received.data)[0][0].status in (400, 501)


def test_extra_response_from_upstream_never_reaches_the_client(
    gateway: GatewayFactory, scripted: ScriptedFactory
) -> None:
    async def answers_twice(reader: Any, writer: Any) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            b"HTTP/1.1 302 Found\r\nLocation: http://evil.test/\r\nContent-Length: 0\r\n\r\n"
        )
        await writer.drain()
        await reader.read()

    upstream = scripted(answers_twice)
    gw = gateway(config(upstream.url))
    with Wire(gw.port) as wire:
        wire.send(get(b"/once"))
        received = wire.read_until_closed(1.0)
    assert received.data.count(b"HTTP/1.1 ") == 1
    assert b"evil.test" not in received.data
