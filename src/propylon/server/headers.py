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
    # Identity is the gateway's word to the upstream, never the client's.
    b"x-consumer-id",
    b"x-user-id",
    b"x-user-roles",
    b"x-auth-method",
}
_REPLACED_CLIENT = HOP_BY_HOP | {b"x-request-id", b"via"}
_REPLACED_CLIENT_CHUNKED = _REPLACED_CLIENT | {b"content-length"}


class Forwarding:
    """The X-Forwarded-* values and client address for one request."""

    __slots__ = ("client_ip", "forwarded_for", "host", "proto")

    def __init__(
        self,
        peer_ip: str,
        trusted_peer: bool,
        headers: list[Header],
        host: bytes,
        is_trusted: Callable[[str], bool],
    ) -> None:
        peer = peer_ip.encode()
        self.client_ip = peer_ip
        self.forwarded_for = peer
        self.proto = b"http"
        self.host = host
        if not trusted_peer:
            return
        chain: list[bytes] = []
        for name, value in headers:
            if name == b"x-forwarded-for":
                chain.extend(part.strip() for part in value.split(b",") if part.strip())
            elif name == b"x-forwarded-proto" and value in (b"http", b"https"):
                self.proto = value
            elif name == b"x-forwarded-host" and value:
                self.host = value
        if chain:
            self.forwarded_for = b", ".join(chain) + b", " + peer
            # The client is the nearest address that is not one of our proxies.
            for address in reversed(chain):
                text = address.decode("latin-1")
                if not is_trusted(text):
                    self.client_ip = text
                    break
            else:
                self.client_ip = chain[0].decode("latin-1")


def upstream_head(
    method: bytes,
    target: bytes,
    headers: list[Header],
    drop: frozenset[bytes],
    host: bytes,
    forwarding: Forwarding,
    request_id: bytes,
    via: bytes,
    framing: Header | None,
    upgrade: bytes | None,
    prefix: bytes | None,
) -> bytes:
    """The request head sent upstream, as one bytes object."""
    out: list[Header] = [(b"host", host)]
    previous_via = b""
    for header in headers:
        name = header[0]
        if name in _REPLACED_UPSTREAM or name in drop:
            if name == b"via":
                previous_via += header[1] + b", "
            continue
        out.append(header)
    out.append((b"x-request-id", request_id))
    out.append((b"x-forwarded-for", forwarding.forwarded_for))
    out.append((b"x-forwarded-proto", forwarding.proto))
    out.append((b"x-forwarded-host", forwarding.host))
    out.append((b"via", previous_via + via))
    if prefix is not None:
        out.append((b"x-forwarded-prefix", prefix))
    if framing is not None:
        out.append(framing)
    if upgrade is not None:
        out.append((b"connection", b"upgrade"))
        out.append((b"upgrade", upgrade))
    return b"%s %s HTTP/1.1\r\n%s\r\n" % (method, target, render_headers(out))


def client_headers(
    headers: list[Header], request_id: bytes, via: bytes, chunked_out: bool
) -> list[Header]:
    """The upstream response's headers, made fit for the client."""
    drop = _REPLACED_CLIENT_CHUNKED if chunked_out else _REPLACED_CLIENT
    tokens: set[bytes] = set()
    previous_via = b""
    out: list[Header] = []
    for header in headers:
        name = header[0]
        if name in drop:
            if name == b"connection":
                tokens.update(t.strip().lower() for t in header[1].split(b","))
            elif name == b"via":
                previous_via += header[1] + b", "
            continue
        out.append(header)
    if tokens:
        out = [h for h in out if h[0] not in tokens]
    out.append((b"x-request-id", request_id))
    out.append((b"via", previous_via + via))
    return out


def client_head(status: int, reason: bytes, headers: list[Header]) -> bytes:
    return status_line(status, reason) + render_headers(headers) + b"\r\n"
