"""The role hierarchy: table tests of who is admitted, a property against a
reference reachability, and the config's cycle check."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from propylon.auth.rbac import RoleHierarchy
from propylon.config.auth import find_cycle

SUPPORT = {"admin": ["manager"], "manager": ["agent"], "agent": ["user"]}


@pytest.mark.parametrize(
    ("held", "required", "admitted"),
    [
        (["admin"], ["user"], True),
        (["admin"], ["agent"], True),
        (["admin"], ["admin"], True),
        (["manager"], ["agent"], True),
        (["manager"], ["admin"], False),
        (["agent"], ["manager"], False),
        (["agent"], ["agent"], True),
        (["user"], ["agent"], False),
        (["user"], ["user"], True),
        ([], ["user"], False),
        (["auditor"], ["auditor"], True),  # a role outside the hierarchy is itself
        (["auditor"], ["user"], False),
        (["user"], ["admin", "user"], True),  # any listed role will do
        (["agent"], ["admin", "manager"], False),
        (["user", "manager"], ["agent"], True),
    ],
)
def test_who_is_admitted(held: list[str], required: list[str], admitted: bool) -> None:
    assert RoleHierarchy(SUPPORT).admits(held, required) is admitted


@pytest.mark.parametrize(
    ("role", "implied"),
    [
        ("admin", {"admin", "manager", "agent", "user"}),
        ("manager", {"manager", "agent", "user"}),
        ("agent", {"agent", "user"}),
        ("user", {"user"}),
        ("unknown", {"unknown"}),
    ],
)
def test_what_a_role_implies(role: str, implied: set[str]) -> None:
    assert RoleHierarchy(SUPPORT).implied(role) == implied


def test_a_role_may_include_several_branches() -> None:
    hierarchy = RoleHierarchy({"lead": ["support", "billing"], "billing": ["viewer"]})
    assert hierarchy.implied("lead") == {"lead", "support", "billing", "viewer"}
    assert hierarchy.admits(["lead"], ["viewer"])
    assert not hierarchy.admits(["support"], ["viewer"])


ROLES = st.sampled_from([f"r{n}" for n in range(8)])
GRAPHS = st.dictionaries(ROLES, st.lists(ROLES, max_size=4), max_size=8)


def reachable(graph: dict[str, list[str]], start: str) -> set[str]:
    """Reference: the roles reachable from ``start`` by repeated expansion."""
    found = {start}
    while True:
        grown = found | {child for role in found for child in graph.get(role, [])}
        if grown == found:
            return found
        found = grown


@given(GRAPHS, ROLES, ROLES)
def test_a_role_admits_exactly_the_roles_reachable_from_it(
    graph: dict[str, list[str]], held: str, required: str
) -> None:
    hierarchy = RoleHierarchy(graph)
    assert hierarchy.implied(held) == reachable(graph, held)
    assert hierarchy.admits([held], [required]) is (required in reachable(graph, held))


@given(GRAPHS)
def test_the_cycle_check_finds_a_cycle_exactly_when_one_exists(
    graph: dict[str, list[str]],
) -> None:
    cycle = find_cycle(graph)
    has_cycle = any(
        role in reachable(graph, child) for role, children in graph.items() for child in children
    )
    assert bool(cycle) is has_cycle
    if cycle:
        assert cycle[0] == cycle[-1]
        for parent, child in itertools.pairwise(cycle):
            assert child in graph[parent]
