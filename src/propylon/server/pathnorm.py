"""Request-target normalisation, done once before route matching.

Matching on the raw target would let ``/api/crm/../admin`` or
``/api/%63rm`` reach a route they do not literally name. So, following
RFC 3986 section 6.2.2: percent-encodings of unreserved characters are
decoded, the hex digits of the remaining encodings are upper-cased, and dot
segments are removed. Encoded slashes (``%2F``) stay encoded: they are data,
not separators. The normalised path is also what the upstream receives.
"""

from __future__ import annotations

import re

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset(b"0123456789abcdefABCDEF")
# Characters allowed raw in a path (RFC 3986 pchar plus '/'), besides '%'.
_PATH_CHARS = re.compile(rb"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")


class InvalidPath(ValueError):
    """The request target is not a valid origin-form path."""


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Split a request target into path and query (without the '?')."""
    if b"#" in target:
        raise InvalidPath("a request target must not carry a fragment")
    path, _, query = target.partition(b"?")
    return path, query


def normalize_path(path: bytes) -> str:
    """Return the normalised path as text; raise InvalidPath when malformed."""
    if not path.startswith(b"/"):
        raise InvalidPath("the request target must be an absolute path")
    if _PATH_CHARS.fullmatch(path) is None:
        raise InvalidPath("the path contains characters that must be percent-encoded")
    if b"%" in path:
        path = _decode_unreserved(path)
    if b"/." in path:
        path = _remove_dot_segments(path)
    return path.decode("ascii")


def _decode_unreserved(path: bytes) -> bytes:
    out = bytearray()
    i = 0
    length = len(path)
    while i < length:
        byte = path[i]
        if byte != 0x25:  # '%'
            out.append(byte)
            i += 1
            continue
        if i + 2 >= length or path[i + 1] not in _HEX or path[i + 2] not in _HEX:
            raise InvalidPath("invalid percent-encoding in the path")
        value = int(path[i + 1 : i + 3], 16)
        if value in _UNRESERVED:
            out.append(value)
        else:
            out += b"%" + path[i + 1 : i + 3].upper()
        i += 3
    return bytes(out)


def _remove_dot_segments(path: bytes) -> bytes:
    segments = path.split(b"/")
    output: list[bytes] = []
    for segment in segments[1:]:
        if segment == b"..":
            if output:
                output.pop()
        elif segment != b".":
            output.append(segment)
    # A trailing '.' or '..' names a directory, so the result keeps its slash.
    if segments[-1] in (b".", b".."):
        output.append(b"")
    return b"/" + b"/".join(output)
