"""Path patterns for invalidation and purges: ``*`` matches any characters.

A route's ``invalidate`` patterns may name the written path (``{path}``)
and its collection (``{parent}``): a write to ``/api/tickets/42`` expands
``{path}``, ``{path}/*``, ``{parent}`` to ``/api/tickets/42``,
``/api/tickets/42/*`` and ``/api/tickets``. Patterns match paths only:
every query and vary variant of a matching path goes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable


def expand(pattern: str, path: str) -> str:
    parent = path.rstrip("/").rsplit("/", 1)[0] or "/"
    return pattern.replace("{path}", path.rstrip("/") or "/").replace("{parent}", parent)


def matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """One compiled test for a set of patterns."""
    parts = [
        "".join(".*" if piece == "*" else re.escape(piece) for piece in _pieces(p))
        for p in patterns
    ]
    if not parts:
        return lambda path: False
    compiled = re.compile("(?:" + "|".join(parts) + r")\Z", re.DOTALL)
    return lambda path: compiled.match(path) is not None


def _pieces(pattern: str) -> list[str]:
    return [piece for piece in re.split(r"(\*)", pattern) if piece]


_LUA_MAGIC = set("^$()%.[]*+-?")


def lua_pattern(pattern: str) -> str:
    """The same pattern as an anchored Lua pattern (for the Redis purge script)."""
    out = []
    for piece in _pieces(pattern):
        if piece == "*":
            out.append(".*")
        else:
            out.append("".join("%" + ch if ch in _LUA_MAGIC else ch for ch in piece))
    return "^" + "".join(out) + "$"
