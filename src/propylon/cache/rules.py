"""The parts of RFC 9111 a gateway cache applies.

Requests: ``Cache-Control: no-cache`` (or ``Pragma: no-cache``, or
``max-age=0``) skips the lookup and refreshes the entry; ``no-store`` keeps
the response out of the cache. Responses are stored only when their status
is listed, they set no cookie, their ``Cache-Control`` has no ``no-store``,
``private`` or ``no-cache``, their ``Vary`` is covered by the key, and some
freshness remains: ``s-maxage`` then ``max-age`` then ``Expires`` shorten
the route's TTL (they never lengthen it), less any ``Age`` they arrived with.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable

from propylon.server.http import Header

NOT_STORED = -1.0


def directives(value: bytes) -> dict[str, str]:
    """``no-cache, max-age="60"`` -> {"no-cache": "", "max-age": "60"}."""
    found: dict[str, str] = {}
    for part in value.decode("latin-1").split(","):
        name, _, argument = part.strip().partition("=")
        if name:
            found[name.lower()] = argument.strip().strip('"')
    return found


def _seconds(text: str) -> float:
    return float(text) if text.isdigit() else 0.0  # invalid: treated as stale


class RequestRules:
    """What a request's own headers ask of the cache."""

    __slots__ = ("no_store", "refresh")

    def __init__(self, cache_control: bytes | None, pragma: bytes | None) -> None:
        self.refresh = False
        self.no_store = False
        if cache_control is not None:
            found = directives(cache_control)
            self.no_store = "no-store" in found
            self.refresh = "no-cache" in found or found.get("max-age") == "0"
        elif pragma is not None and b"no-cache" in pragma.lower():
            self.refresh = True  # RFC 9111 5.4: Pragma only without Cache-Control


def response_ttl(
    headers: Iterable[Header], route_ttl: float, vary_names: frozenset[bytes]
) -> float:
    """Seconds the response may be served for, or NOT_STORED."""
    cache_control: list[bytes] = []
    expires = age = None
    for name, value in headers:
        if name == b"set-cookie":
            return NOT_STORED  # never share one client's cookie with another
        if name == b"cache-control":
            cache_control.append(value)
        elif name == b"vary":
            for field in value.lower().split(b","):
                field = field.strip()
                if field == b"*" or (field and field not in vary_names):
                    return NOT_STORED  # varies on something the key does not hold
        elif name == b"expires":
            expires = value
        elif name == b"age":
            age = value
    ttl = route_ttl
    found = directives(b",".join(cache_control)) if cache_control else {}
    if "no-store" in found or "private" in found or "no-cache" in found:
        return NOT_STORED
    lifetime: float | None = None
    if "s-maxage" in found:  # RFC 9111 5.2.2.10: a shared cache prefers it
        lifetime = _seconds(found["s-maxage"])
    elif "max-age" in found:
        lifetime = _seconds(found["max-age"])
    elif expires is not None:
        lifetime = _expires_in(expires)
    if lifetime is not None:
        ttl = min(ttl, lifetime)
    if age is not None and age.isdigit():
        ttl -= int(age)
    return ttl if ttl > 0 else NOT_STORED


def _expires_in(value: bytes) -> float:
    try:
        when = email.utils.parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError):
        return 0.0  # RFC 9111 5.3: an invalid date means "already expired"
    return when.timestamp() - time.time()


def not_modified(
    if_none_match: bytes | None, if_modified_since: bytes | None, headers: Iterable[Header]
) -> bool:
    """Whether a stored response answers a conditional GET with 304 (RFC 9110 13.1).

    If-None-Match compares entity tags weakly; If-Modified-Since counts only
    without If-None-Match.
    """
    etag = last_modified = None
    for name, value in headers:
        if name == b"etag":
            etag = value
        elif name == b"last-modified":
            last_modified = value
    if if_none_match is not None:
        if etag is None:
            return False
        if if_none_match.strip() == b"*":
            return True
        wanted = {tag.strip().removeprefix(b"W/") for tag in if_none_match.split(b",")}
        return etag.strip().removeprefix(b"W/") in wanted
    if if_modified_since is None or last_modified is None:
        return False
    try:
        since = email.utils.parsedate_to_datetime(if_modified_since.decode("latin-1"))
        modified = email.utils.parsedate_to_datetime(last_modified.decode("latin-1"))
    except (TypeError, ValueError):
        return False
    return modified <= since


# RFC 9110 15.4.5: a 304 carries these of the 200 it stands for.
NOT_MODIFIED_FIELDS = frozenset(
    {b"cache-control", b"content-location", b"date", b"etag", b"expires", b"vary", b"last-modified"}
)
