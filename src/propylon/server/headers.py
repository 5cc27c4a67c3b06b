"""Header rewriting for both directions of the proxy.

To the upstream: hop-by-hop fields go; the gateway's own X-Forwarded-* and
X-Request-ID replace whatever the client sent (incoming X-Forwarded-* are kept
and extended only from a trusted proxy); Via is appended to (RFC 9110 7.6.3);
identity headers are always dropped, since only the gateway's auth may set
them; and the body framing is set explicitly. To the client: hop-by-hop
fields go, X-Request-ID and Via are set.
"""

from __future__ import annotations

from collections.abc import Callable

from propylon.server.http import HOP_BY_HOP, Header, render_headers, status_line

# Fields the gateway always sets itself on the upstream request.
_REPLACED_UPSTREAM = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"expect",
    b"via",
    b"x-request-id",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-prefix",
    b"forwarded",
    b"traceparent",  # the gateway's span is the upstream's parent
    # Identity is the gateway's word to the upstream, never the client's.
    b"x-consumer-id",
    b"x-user-id",
    b"x-user-roles",
    b"x-auth-method",
}


def untrusted_forwarding(peer_ip: str) -> bytes:
    """X-Forwarded-For/-Proto for a direct client; computed once per connection."""
    return b"x-forwarded-for: %s\r\nx-forwarded-proto: http\r\n" % peer_ip.encode()


def trusted_forwarding(
    peer_ip: str, headers: list[Header], is_trusted: Callable[[str], bool]
) -> tuple[bytes, bytes | None, str]:
    """For a peer in trusted_proxies: (X-Forwarded-For/-Proto lines, its
    X-Forwarded-Host or None, the client address)."""
    peer = peer_ip.encode()
    chain: list[bytes] = []
    proto = b"http"
    host: bytes | None = None
    for name, value in headers:
        if name == b"x-forwarded-for":
            chain.extend(part.strip() for part in value.split(b",") if part.strip())
        elif name == b"x-forwarded-proto" and value in (b"http", b"https"):
            proto = value
        elif name == b"x-forwarded-host" and value:
            host = value
    client_ip = peer_ip
    if chain:
        # The client is the nearest address that is not one of our proxies.
        for address in reversed(chain):
            text = address.decode("latin-1")
            if not is_trusted(text):
                client_ip = text
                break
        else:
            client_ip = chain[0].decode("latin-1")
    forwarded_for = b", ".join([*chain, peer])
    lines = b"x-forwarded-for: %s\r\nx-forwarded-proto: %s\r\n" % (forwarded_for, proto)
    return lines, host, client_ip


def upstream_head(
    headers: list[Header],
    drop: frozenset[bytes],
    forwarded: bytes,
    request_id: bytes,
    via: bytes,
    tail: bytes,
) -> bytes:
    """The header lines sent upstream after the request and Host lines,
    through the blank line that ends the head.

    The Host line is left out because it differs per target (retries go to
    another one). ``forwarded`` holds the rendered X-Forwarded-* lines,
    ``tail`` any further rendered lines (framing, prefix, upgrade).
    """
    parts: list[bytes] = []
    extend = parts.extend
    previous_via = b""
    for name, value in headers:
        if name in _REPLACED_UPSTREAM or name in drop:
            if name == b"via":
                previous_via += value + b", "
            continue
        extend((name, b": ", value, b"\r\n"))
    extend(
        (
            b"x-request-id: ",
            request_id,
            b"\r\n",
            forwarded,
            b"via: ",
            previous_via,
            via,
            b"\r\n",
            tail,
            b"\r\n",
        )
    )
    return b"".join(parts)


def client_head(status: int, reason: bytes, headers: list[Header]) -> bytes:
    return status_line(status, reason) + render_headers(headers) + b"\r\n"
