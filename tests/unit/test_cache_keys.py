"""Cache keys and path patterns, with properties for the normalisation."""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode

from hypothesis import given
from hypothesis import strategies as st

from propylon.cache.keys import build_key, key_path, key_route, normalize_host, normalize_query
from propylon.cache.patterns import expand, lua_pattern, matcher

names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=8)
values = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)
pairs = st.lists(st.tuples(names, values), max_size=6)


def encode(items: list[tuple[str, str]], plus: bool) -> bytes:
    if plus:
        return urlencode(items).encode()
    return "&".join(f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in items).encode()


@given(pairs, st.randoms(), st.booleans())
def test_order_and_encoding_never_change_the_normalised_query(items, random, plus) -> None:
    shuffled = list(items)
    random.shuffle(shuffled)
    assert normalize_query(encode(items, False), None) == normalize_query(
        encode(shuffled, plus), None
    )


@given(pairs)
def test_normalising_twice_changes_nothing(items) -> None:
    once = normalize_query(encode(items, True), None)
    assert normalize_query(once.encode(), None) == once


@given(pairs, pairs)
def test_different_parameters_give_different_queries(a, b) -> None:
    if sorted(a) != sorted(b):
        assert normalize_query(encode(a, False), None) != normalize_query(encode(b, False), None)


@given(pairs, st.frozensets(names, max_size=3))
def test_an_allow_list_keeps_exactly_the_listed_parameters(items, allow) -> None:
    kept = [(n, v) for n, v in items if n in allow]
    assert normalize_query(encode(items, False), allow) == normalize_query(
        encode(kept, False), None
    )


def test_examples() -> None:
    assert normalize_query(b"b=2&a=%41", None) == "a=A&b=2"
    assert normalize_query(b"q=a+b&&x", None) == "q=a%20b&x="
    assert normalize_query(b"", None) == ""
    assert normalize_host(b"Example.COM:80") == "example.com"
    assert normalize_host(b"Example.COM.") == "example.com"


@given(st.from_regex(r"\A[a-z][a-z0-9-]{0,10}\Z"), st.from_regex(r"\A(/[a-z0-9._~-]{1,6}){0,4}\Z"))
def test_a_key_names_its_route_and_path(route, path) -> None:
    path = path or "/"
    key = build_key(route, "h", path, "a=1", ["de"], "jwt:alice")
    assert key_route(key) == route
    assert key_path(key) == path


def test_keys_differ_by_each_part() -> None:
    base = build_key("r", "h", "/p", "a=1", ["x"], "c")
    assert (
        len(
            {
                base,
                build_key("r2", "h", "/p", "a=1", ["x"], "c"),
                build_key("r", "h2", "/p", "a=1", ["x"], "c"),
                build_key("r", "h", "/p2", "a=1", ["x"], "c"),
                build_key("r", "h", "/p", "a=2", ["x"], "c"),
                build_key("r", "h", "/p", "a=1", ["y"], "c"),
                build_key("r", "h", "/p", "a=1", ["x"], None),
            }
        )
        == 7
    )


def test_expand_names_the_resource_and_its_collection() -> None:
    assert expand("{path}", "/api/tickets/42") == "/api/tickets/42"
    assert expand("{path}/*", "/api/tickets/42/") == "/api/tickets/42/*"
    assert expand("{parent}", "/api/tickets/42") == "/api/tickets"
    assert expand("{parent}", "/api") == "/"


paths = st.from_regex(r"\A(/[a-zA-Z0-9.%()\[\]^$+?-]{0,5}){1,4}\Z")
globs = st.from_regex(r"\A(/[a-zA-Z0-9.%()\[\]^$+?*-]{0,5}){1,4}\Z")


def lua_match(pattern: str, text: str) -> bool:
    """The Lua pattern subset lua_pattern emits (^ $ .* and %-escapes), as a regex."""
    regex = ""
    body = pattern[1:-1]
    i = 0
    while i < len(body):
        if body[i] == "%":
            regex += re.escape(body[i + 1])
            i += 2
        elif body.startswith(".*", i):
            regex += ".*"
            i += 2
        else:
            regex += re.escape(body[i])
            i += 1
    return re.fullmatch(regex, text, re.DOTALL) is not None


@given(globs, paths)
def test_the_lua_pattern_matches_what_the_python_matcher_matches(glob, path) -> None:
    assert lua_match(lua_pattern(glob), path) == matcher([glob])(path)


def test_star_matches_any_characters_and_nothing_else_is_special() -> None:
    match = matcher(["/items/*", "/exact.json"])
    assert match("/items/1")
    assert match("/items/1/notes")
    assert not match("/items")
    assert match("/exact.json")
    assert not match("/exactXjson")
    assert not matcher([])("/anything")
