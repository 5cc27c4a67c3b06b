"""Route matching: host, longest path prefix on segment boundaries, method.

Routes are indexed by prefix, so a match costs one dict look-up per path
segment, whatever the number of routes. At one prefix, the route whose host
matched best wins: an exact name, then the longest wildcard suffix that
matched the request's host, then routes without hosts; ties go to the route
that comes first in the config. A method mismatch at a longer
prefix falls through to shorter prefixes; only when nothing matches is the
answer 405 (with the methods that would have matched) instead of 404.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class RouteSpec(Generic[T]):
    """What the router needs to know of a route; ``target`` is what it returns."""

    __slots__ = ("exact_hosts", "methods", "order", "prefix", "suffixes", "target")

    def __init__(
        self,
        target: T,
        prefix: str,
        hosts: Iterable[str] = (),
        methods: Iterable[str] = (),
        order: int = 0,
    ) -> None:
        self.target = target
        self.prefix = prefix.rstrip("/") or "/"
        host_list = [host.lower() for host in hosts]
        self.exact_hosts = frozenset(h for h in host_list if not h.startswith("*."))
        # "*.example.com" matches any name ending in ".example.com".
        self.suffixes = tuple(
            sorted((h[1:] for h in host_list if h.startswith("*.")), key=len, reverse=True)
        )
        self.methods = frozenset(m.upper() for m in methods) or None
        self.order = order

    def host_rank(self, host: str) -> int | None:
        """How well ``host`` matches: lower is better; None for no match.

        0 = exact name, then wildcards by the length of the suffix that
        matched (longer is better), last a route without hosts.
        """
        if not self.exact_hosts and not self.suffixes:
            return _ANY_HOST
        if host in self.exact_hosts:
            return 0
        for suffix in self.suffixes:  # longest first
            if host.endswith(suffix):
                return _ANY_HOST - len(suffix)
        return None


_ANY_HOST = 1 << 16  # worse than any wildcard, whose suffix is shorter than this


class Router(Generic[T]):
    def __init__(self, specs: Iterable[RouteSpec[T]]) -> None:
        by_prefix: dict[str, list[RouteSpec[T]]] = {}
        for spec in specs:
            by_prefix.setdefault(spec.prefix, []).append(spec)
        self._by_prefix = {
            prefix: tuple(sorted(group, key=lambda s: s.order))
            for prefix, group in by_prefix.items()
        }

    def match(self, host: str, path: str, method: str) -> tuple[T | None, frozenset[str]]:
        """Return ``(target, frozenset())`` or ``(None, allowed_methods)``.

        ``host`` must be lower-case without port; ``path`` normalised.
        An empty ``allowed_methods`` means 404, a non-empty one 405.
        """
        allowed: frozenset[str] = frozenset()
        candidate = path
        by_prefix = self._by_prefix
        while True:
            group = by_prefix.get(candidate)
            if group is not None:
                best: RouteSpec[T] | None = None
                best_rank = _ANY_HOST + 1
                for spec in group:  # in config order, so ties keep the first
                    rank = spec.host_rank(host)
                    if rank is None:
                        continue
                    if spec.methods is not None and method not in spec.methods:
                        allowed = allowed | spec.methods
                    elif rank < best_rank:
                        best, best_rank = spec, rank
                if best is not None:
                    return best.target, frozenset()
            if candidate == "/":
                return None, allowed
            cut = candidate.rfind("/")
            candidate = candidate[:cut] or "/"


def host_without_port(host_header: str) -> str:
    """``Example.com:8080`` -> ``example.com``; ``[::1]:80`` -> ``[::1]``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    colon = host.rfind(":")
    return host[:colon] if colon >= 0 else host


def rewrite_path(path: str, prefix: str, strip_prefix: bool, rewrite: str | None) -> str:
    """The path sent upstream after ``strip_prefix`` or a prefix ``rewrite``."""
    if not strip_prefix and rewrite is None:
        return path
    remainder = path if prefix == "/" else path[len(prefix) :]
    if rewrite is not None:
        base = rewrite.rstrip("/")
        return base + remainder if remainder else (rewrite or "/")
    if not remainder:
        return "/"
    return remainder if remainder.startswith("/") else "/" + remainder
