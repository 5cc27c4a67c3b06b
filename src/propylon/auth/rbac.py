"""Role-based access: a role hierarchy and the check a route makes.

The hierarchy maps a role to the roles it includes (``admin: [manager]``,
``manager: [agent]``): holding ``admin`` then counts as holding ``manager``
and ``agent`` too. A route's ``roles:`` admits a caller who holds any listed
role, directly or through the hierarchy. Closures are computed once at load,
so a check is one set operation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class RoleHierarchy:
    __slots__ = ("_closure",)

    def __init__(self, includes: Mapping[str, Iterable[str]]) -> None:
        graph = {role: tuple(children) for role, children in includes.items()}
        self._closure = {role: _reachable(graph, role) for role in graph}

    def implied(self, role: str) -> frozenset[str]:
        """``role`` and every role it includes, directly or transitively."""
        return self._closure.get(role) or frozenset((role,))

    def expand(self, roles: Iterable[str]) -> frozenset[str]:
        """Every role that holding ``roles`` amounts to."""
        result: set[str] = set()
        for role in roles:
            result |= self.implied(role)
        return frozenset(result)

    def admits(self, held: Iterable[str], required: Iterable[str]) -> bool:
        """Whether a caller holding ``held`` may pass a route needing any of ``required``."""
        return not self.expand(held).isdisjoint(required)


def _reachable(graph: Mapping[str, tuple[str, ...]], start: str) -> frozenset[str]:
    # Iterative, and safe on cycles: config rejects them, but a store-fed
    # hierarchy later might not.
    seen = {start}
    stack = [start]
    while stack:
        for child in graph.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return frozenset(seen)
