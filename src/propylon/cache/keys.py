"""Cache keys: method, host, normalised path and query, vary headers, consumer.

Only what is listed here can change a key, and the key covers everything
the gateway lets reach the upstream that could change the answer (Host, and
X-Forwarded-Host/-Proto when a trusted proxy sent them). Headers outside the
key never reach a stored entry through the key's eyes: that is what keeps
an unkeyed ``X-Forwarded-Host: evil`` from poisoning a shared entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote, unquote_plus

SEPARATOR = _SEP = "\x1f"  # unit separator: never in a decoded path, host or header value we keep


def normalize_query(query: bytes, allow: frozenset[str] | None) -> str:
    """The query as a canonical string: decoded, re-encoded one way, sorted.

    ``allow`` keeps only the named parameters (None keeps all). ``a=%41&b``
    and ``b=&a=A`` give the same result.
    """
    if not query:
        return ""
    pairs: list[tuple[str, str]] = []
    for part in query.decode("latin-1").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name = unquote_plus(name)
        if allow is not None and name not in allow:
            continue
        pairs.append((name, unquote_plus(value)))
    pairs.sort()
    return "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs)


def normalize_host(host: bytes) -> str:
    """Lower-case, without a trailing dot and without the default port."""
    text = host.decode("latin-1").strip().lower()
    if text.endswith(":80"):
        text = text[:-3]
    return text.rstrip(".")


def build_key(
    route: str,
    host: str,
    path: str,
    query: str,
    vary: Sequence[str] = (),
    consumer: str | None = None,
) -> str:
    """The key of a GET (HEAD shares it). Readable, for X-Cache-Key and purges."""
    key = f"{route}{_SEP}GET{_SEP}{host}{_SEP}{path}"
    if query:
        key += "?" + query
    for value in vary:
        key += _SEP + value
    if consumer is not None:
        key += f"{_SEP}consumer={consumer}"
    return key


def key_route(key: str) -> str:
    return key.split(_SEP, 1)[0]


def key_path(key: str) -> str:
    """The normalised path a key was built from (without its query)."""
    parts = key.split(_SEP, 4)
    return parts[3].split("?", 1)[0] if len(parts) > 3 else ""


def printable(key: str) -> str:
    """The key for a header or a log line (the separator shown as ' ')."""
    return key.replace(_SEP, " ")
