"""Route matching, against a brute-force reference of the documented rules.

router.py's docstring: longest path prefix on segment boundaries first; at
one prefix, routes with an exact host, then wildcard hosts (longest suffix
first), then routes without hosts, each group in config order; a method
mismatch falls through to shorter prefixes; nothing matching at all is 405
with the methods that would have matched when there are some, else 404.

The reference reads "exact host" and "longest suffix" as how the request's
host matched the route (as nginx server_name and Envoy virtual hosts rank
names), not as the best host the route happens to list.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from propylon.server.router import Router, RouteSpec, host_without_port, rewrite_path

# -- the reference --------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    prefix: str
    hosts: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()


def clean_prefix(prefix: str) -> str:
    return prefix.rstrip("/") or "/"


def under(prefix: str, path: str) -> bool:
    """Whether ``prefix`` covers ``path`` on a segment boundary."""
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def host_rank(route: Route, host: str) -> tuple[int, int] | None:
    """How well ``host`` matches the route (lower is better); None: not at all."""
    if not route.hosts:
        return (2, 0)
    hosts = [h.lower() for h in route.hosts]
    if host in (h for h in hosts if not h.startswith("*.")):
        return (0, 0)
    suffixes = [len(h) - 1 for h in hosts if h.startswith("*.") and host.endswith(h[1:])]
    if suffixes:
        return (1, -max(suffixes))
    return None


def reference_match(
    routes: list[Route], host: str, path: str, method: str
) -> tuple[int | None, frozenset[str]]:
    prefixes = {clean_prefix(r.prefix) for r in routes if under(clean_prefix(r.prefix), path)}
    allowed: set[str] = set()
    for prefix in sorted(prefixes, key=len, reverse=True):
        ranked = []
        for order, route in enumerate(routes):
            rank = host_rank(route, host) if clean_prefix(route.prefix) == prefix else None
            if rank is not None:
                ranked.append((rank, order, route))
        for _, order, route in sorted(ranked, key=lambda item: (item[0], item[1])):
            methods = {m.upper() for m in route.methods}
            if not methods or method in methods:
                return order, frozenset()
            allowed |= methods
    return None, frozenset(allowed)


def build(routes: list[Route]) -> Router[int]:
    return Router(
        RouteSpec(index, r.prefix, r.hosts, r.methods, index) for index, r in enumerate(routes)
    )


# -- strategies -------------------------------------------------------------------------

EXACT_HOSTS = ["a.com", "b.a.com", "x.b.a.com", "c.com"]
WILDCARDS = ["*.a.com", "*.b.a.com", "*.x.b.a.com", "*.com"]
REQUEST_HOSTS = [*EXACT_HOSTS, "y.x.b.a.com", "d.com", "evila.com", "a.com.evil", ""]
METHODS = ["GET", "POST", "DELETE"]

names = st.sampled_from(["a", "b", "ab"])
prefixes = st.builds(
    lambda parts, slash: "/" + "/".join(parts) + ("/" if slash else ""),
    st.lists(names, max_size=3),
    st.booleans(),
)
paths = st.builds(
    lambda parts, slash: "/" + "/".join(parts) + ("/" if slash else ""),
    st.lists(st.sampled_from(["a", "b", "ab", "abc", ""]), max_size=5),
    st.booleans(),
)
route_methods = st.lists(st.sampled_from(METHODS), max_size=2, unique=True).map(tuple)
# Hosts a route lists where both readings of the docstring agree: none,
# exact names only, or a single wildcard.
plain_hosts = st.one_of(
    st.just(()),
    st.lists(st.sampled_from(EXACT_HOSTS), min_size=1, max_size=2, unique=True).map(tuple),
    st.sampled_from(WILDCARDS).map(lambda w: (w,)),
)
mixed_hosts = st.lists(st.sampled_from(EXACT_HOSTS + WILDCARDS), max_size=3, unique=True).map(tuple)
plain_routes = st.lists(st.builds(Route, prefixes, plain_hosts, route_methods), max_size=7)
mixed_routes = st.lists(st.builds(Route, prefixes, mixed_hosts, route_methods), max_size=7)
request_hosts = st.sampled_from(REQUEST_HOSTS)
request_methods = st.sampled_from([*METHODS, "PATCH"])


# -- properties ----------------------------------------------------------------------------


@given(plain_routes, request_hosts, paths, request_methods)
def test_router_agrees_with_the_reference(
    routes: list[Route], host: str, path: str, method: str
) -> None:
    assert build(routes).match(host, path, method) == reference_match(routes, host, path, method)


@given(mixed_routes, request_hosts, paths, request_methods)
@example([Route("/", ("b.a.com", "*.a.com")), Route("/", ("*.b.a.com",))], "x.b.a.com", "/", "GET")
def test_router_agrees_with_the_reference_for_any_host_lists(
    routes: list[Route], host: str, path: str, method: str
) -> None:
    assert build(routes).match(host, path, method) == reference_match(routes, host, path, method)


@given(plain_routes, request_hosts, paths, request_methods)
def test_a_match_is_a_route_that_covers_the_request(
    routes: list[Route], host: str, path: str, method: str
) -> None:
    target, allowed = build(routes).match(host, path, method)
    if target is None:
        assert method not in allowed
        return
    route = routes[target]
    assert allowed == frozenset()
    assert under(clean_prefix(route.prefix), path)
    assert host_rank(route, host) is not None
    assert not route.methods or method in route.methods


@given(plain_routes, request_hosts, paths, request_methods)
def test_allowed_methods_each_lead_to_a_match(
    routes: list[Route], host: str, path: str, method: str
) -> None:
    router = build(routes)
    _, allowed = router.match(host, path, method)
    for other in allowed:
        assert router.match(host, path, other)[0] is not None


# -- tables: routing ---------------------------------------------------------------------------


def match(routes: list[Route], path: str, method: str = "GET", host: str = "gw.test") -> object:
    return build(routes).match(host, path, method)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api", 0),
        ("/api/", 0),
        ("/api/users", 0),
        ("/api//users", 0),
        ("/apix", None),
        ("/ap", None),
        ("/", None),
        ("/other/api", None),
    ],
)
def test_prefix_matches_on_segment_boundaries(path: str, expected: int | None) -> None:
    assert match([Route("/api")], path)[0] == expected  # type: ignore[index]


def test_trailing_slash_in_a_prefix_is_ignored() -> None:
    assert match([Route("/api/")], "/api")[0] == 0  # type: ignore[index]
    assert match([Route("/api/")], "/apix")[0] is None  # type: ignore[index]


def test_longest_prefix_wins_whatever_the_config_order() -> None:
    routes = [Route("/"), Route("/api"), Route("/api/v2")]
    assert match(routes, "/api/v2/users") == (2, frozenset())
    assert match(routes, "/api/v1") == (1, frozenset())
    assert match(routes, "/web") == (0, frozenset())
    assert match(list(reversed(routes)), "/api/v2/users") == (0, frozenset())


def test_method_mismatch_falls_through_to_a_shorter_prefix() -> None:
    routes = [Route("/api", methods=("GET",)), Route("/api/v2", methods=("POST",))]
    assert match(routes, "/api/v2/x", "GET") == (0, frozenset())
    assert match(routes, "/api/v2/x", "POST") == (1, frozenset())


def test_no_method_match_anywhere_is_405_with_every_allowed_method() -> None:
    routes = [Route("/api", methods=("GET",)), Route("/api/v2", methods=("POST", "PUT"))]
    assert match(routes, "/api/v2/x", "DELETE") == (None, frozenset({"GET", "POST", "PUT"}))
    assert match(routes, "/api/v1", "DELETE") == (None, frozenset({"GET"}))


def test_no_prefix_match_is_404() -> None:
    assert match([Route("/api", methods=("GET",))], "/web", "GET") == (None, frozenset())
    assert match([], "/", "GET") == (None, frozenset())


def test_routes_for_another_host_do_not_make_a_405() -> None:
    routes = [Route("/api", hosts=("a.com",), methods=("GET",))]
    assert match(routes, "/api", "POST", host="b.com") == (None, frozenset())
    assert match(routes, "/api", "POST", host="a.com") == (None, frozenset({"GET"}))


def test_exact_host_then_wildcard_then_no_host_at_one_prefix() -> None:
    routes = [Route("/"), Route("/", ("*.a.com",)), Route("/", ("b.a.com",))]
    assert match(routes, "/x", host="b.a.com") == (2, frozenset())
    assert match(routes, "/x", host="c.a.com") == (1, frozenset())
    assert match(routes, "/x", host="c.com") == (0, frozenset())


def test_longest_wildcard_suffix_wins() -> None:
    routes = [Route("/", ("*.com",)), Route("/", ("*.a.com",)), Route("/", ("*.b.a.com",))]
    assert match(routes, "/", host="x.b.a.com") == (2, frozenset())
    assert match(routes, "/", host="x.a.com") == (1, frozenset())
    assert match(routes, "/", host="x.com") == (0, frozenset())


def test_config_order_breaks_ties() -> None:
    routes = [Route("/", ("a.com",)), Route("/", ("a.com", "b.com"))]
    assert match(routes, "/", host="a.com") == (0, frozenset())
    assert match(routes, "/", host="b.com") == (1, frozenset())


def test_a_longer_prefix_beats_a_better_host() -> None:
    routes = [Route("/api", ("a.com",)), Route("/api/v2")]
    assert match(routes, "/api/v2", host="a.com") == (1, frozenset())


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("x.a.com", 0),
        ("y.x.a.com", 0),
        ("a.com", None),  # a wildcard needs at least one more label
        ("evila.com", None),
        ("a.com.evil", None),
        ("x.a.co", None),
        ("", None),
    ],
)
def test_wildcard_host_matching(host: str, expected: int | None) -> None:
    assert match([Route("/", ("*.a.com",))], "/", host=host)[0] == expected  # type: ignore[index]


def test_route_hosts_and_methods_are_case_insensitive() -> None:
    routes = [Route("/", ("API.Example.COM", "*.Shop.Example.COM"), ("get",))]
    assert match(routes, "/", "GET", host="api.example.com")[0] == 0  # type: ignore[index]
    assert match(routes, "/", "GET", host="x.shop.example.com")[0] == 0  # type: ignore[index]


def test_a_route_ranks_by_the_host_that_matched_not_its_best_host() -> None:
    # x.b.a.com matches route 0 only through *.a.com: route 1's longer
    # wildcard is the more specific match.
    routes = [Route("/", ("b.a.com", "*.a.com")), Route("/", ("*.b.a.com",))]
    assert match(routes, "/", host="x.b.a.com") == (1, frozenset())


def test_a_wildcard_route_ranks_by_the_suffix_that_matched() -> None:
    routes = [Route("/", ("*.com", "*.x.b.a.com")), Route("/", ("*.b.a.com",))]
    assert match(routes, "/", host="y.b.a.com") == (1, frozenset())


# -- tables: host_without_port ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("example.com:8080", "example.com"),
        ("EXAMPLE.com:80", "example.com"),
        ("example.com:", "example.com"),
        ("  example.com:80  ", "example.com"),
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.1:8080", "127.0.0.1"),
        ("[::1]", "[::1]"),
        ("[::1]:80", "[::1]"),
        ("[2001:DB8::1]:443", "[2001:db8::1]"),
        ("[fe80::1%25eth0]:8080", "[fe80::1%25eth0]"),
        ("", ""),
    ],
)
def test_host_without_port(header: str, expected: str) -> None:
    assert host_without_port(header) == expected


# -- tables and properties: rewrite_path ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "prefix", "strip", "rewrite", "expected"),
    [
        ("/api/users", "/api", False, None, "/api/users"),
        ("/api/users", "/api", True, None, "/users"),
        ("/api/users/", "/api", True, None, "/users/"),
        ("/api", "/api", True, None, "/"),
        ("/api/", "/api", True, None, "/"),
        ("/api//users", "/api", True, None, "//users"),
        ("/api/v2/x", "/api/v2", True, None, "/x"),
        ("/x", "/", True, None, "/x"),
        ("/", "/", True, None, "/"),
        ("/api/users", "/api", False, "/v2", "/v2/users"),
        ("/api", "/api", False, "/v2", "/v2"),
        ("/api/", "/api", False, "/v2", "/v2/"),
        ("/api/users", "/api", False, "/v2/", "/v2/users"),
        ("/api", "/api", False, "/v2/", "/v2/"),
        ("/api/users", "/api", False, "/", "/users"),
        ("/api", "/api", False, "/", "/"),
        ("/x", "/", False, "/v2", "/v2/x"),
    ],
)
def test_rewrite_path(
    path: str, prefix: str, strip: bool, rewrite: str | None, expected: str
) -> None:
    assert rewrite_path(path, prefix, strip, rewrite) == expected


covered = st.builds(
    lambda prefix, rest: (prefix, (prefix if prefix != "/" else "") + rest),
    prefixes.map(clean_prefix),
    st.one_of(st.just(""), paths),
)


@given(covered)
def test_strip_prefix_output_starts_with_a_slash_and_undoes_cleanly(
    prefix_and_path: tuple[str, str],
) -> None:
    prefix, path = prefix_and_path
    path = path or "/"
    stripped = rewrite_path(path, prefix, True, None)
    assert stripped.startswith("/")
    if prefix == "/":
        assert stripped == path
    elif stripped == "/":
        assert path in (prefix, prefix + "/")
    else:
        assert prefix + stripped == path


@given(covered, prefixes)
def test_rewrite_output_starts_with_the_rewrite(
    prefix_and_path: tuple[str, str], rewrite: str
) -> None:
    prefix, path = prefix_and_path
    path = path or "/"
    rewritten = rewrite_path(path, prefix, False, rewrite)
    assert rewritten.startswith("/")
    assert rewritten.startswith(rewrite.rstrip("/"))
