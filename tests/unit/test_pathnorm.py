"""Request-target normalisation (RFC 3986 section 6.2.2), as the router sees it.

Property tests throw arbitrary bytes at ``normalize_path`` (it either raises
InvalidPath or returns a path with every invariant the router relies on) and
compare valid paths against a literal transcription of RFC 3986's
remove_dot_segments; table tests pin the RFC's own examples.
"""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from propylon.server.pathnorm import InvalidPath, normalize_path, split_target

UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
PATH_CHARS = frozenset(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/%")
PERCENT = re.compile(r"%(..)")


# -- a reference implementation, straight from the RFC -------------------------------


def reference_decode(path: str) -> str:
    """RFC 3986 6.2.2.1-2: upper-case every escape, decode the unreserved ones."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in UNRESERVED else "%" + match.group(1).upper()

    return PERCENT.sub(fix, path)


def reference_remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, rule by rule, on a string buffer."""
    source, output = path, ""
    while source:
        if source.startswith("../"):
            source = source[3:]
        elif source.startswith(("./", "/./")):
            source = source[2:]
        elif source == "/.":
            source = "/"
        elif source.startswith("/../"):
            source = source[3:]
            output = output[: max(output.rfind("/"), 0)]
        elif source == "/..":
            source = "/"
            output = output[: max(output.rfind("/"), 0)]
        elif source in (".", ".."):
            source = ""
        else:
            cut = source.find("/", 1)
            segment = source if cut < 0 else source[:cut]
            output += segment
            source = source[len(segment) :]
    return output


def reference(path: str) -> str:
    return reference_remove_dot_segments(reference_decode(path))


# -- invariants ---------------------------------------------------------------------


def assert_normal_form(result: str) -> None:
    """What the router and the upstream may rely on, whatever came in."""
    assert isinstance(result, str)
    assert result.startswith("/")
    segments = result.split("/")[1:]
    assert "." not in segments
    assert ".." not in segments
    for escape in re.finditer(r"%(.?.?)", result):
        digits = escape.group(1)
        assert re.fullmatch(r"[0-9A-F]{2}", digits), result
        assert chr(int(digits, 16)) not in UNRESERVED, result
    assert normalize_path(result.encode()) == result  # idempotent


def normalized_or_invalid(raw: bytes) -> str | None:
    try:
        return normalize_path(raw)
    except InvalidPath:
        return None


# -- strategies -----------------------------------------------------------------------

PIECES = [
    b"/", b"//", b".", b"..", b"a", b"B", b"~", b"-", b"_", b"%2e", b"%2E", b"%2f", b"%2F",
    b"%41", b"%7e", b"%7E", b"%25", b"%3a", b"%", b"%4", b"%zz", b"?", b"#", b" ", b"\x00",
    b"\n", b"\r", b"\t", b"\xff", b"\xc3\xa9", b":", b"@", b"!", b"'", b"=", b";", b"\\",
]  # fmt: skip
tricky_bytes = st.lists(st.sampled_from(PIECES), max_size=16).map(b"".join)
any_bytes = st.one_of(st.binary(max_size=64), tricky_bytes, tricky_bytes.map(b"/".__add__))

SEGMENT_PIECES = [
    "a", "bc", "~", "-", ".", "..", "%2e", "%2E", "%2e%2e", ".%2e", "%41", "%7e", "%2f",
    "%2F", "%3b", "%25", "%c3%a9", ";x=1", ":", "@", "!$&'()*+,;=",
]  # fmt: skip
segment = st.lists(st.sampled_from(SEGMENT_PIECES), max_size=3).map("".join)
valid_path = st.lists(segment, min_size=1, max_size=8).map(lambda parts: "/" + "/".join(parts))


# -- properties --------------------------------------------------------------------------


@given(any_bytes)
@example(b"/a/../../..")
@example(b"//..//../%2e%2E/x")
def test_any_bytes_give_a_normal_path_or_invalid_path(raw: bytes) -> None:
    result = normalized_or_invalid(raw)  # any other exception fails the test
    if result is not None:
        assert_normal_form(result)


@given(any_bytes)
@example(b"/a\n")
def test_result_holds_only_path_characters(raw: bytes) -> None:
    result = normalized_or_invalid(raw)
    if result is not None:
        assert set(result) <= PATH_CHARS, repr(result)


@given(valid_path)
def test_valid_paths_match_the_rfc_algorithm(path: str) -> None:
    assert normalize_path(path.encode()) == reference(path)


@given(valid_path)
def test_normalisation_is_idempotent(path: str) -> None:
    once = normalize_path(path.encode())
    assert normalize_path(once.encode()) == once


@given(
    st.integers(min_value=1, max_value=12), valid_path, st.sampled_from(["..", "%2e%2e", ".%2E"])
)
def test_nothing_climbs_above_the_root(depth: int, path: str, dots: str) -> None:
    climbing = "/" + "/".join([dots] * depth) + path
    assert normalize_path(climbing.encode()) == normalize_path(path.encode())


@given(st.lists(st.sampled_from(["a", "b", "%2F", "x%2fy"]), max_size=4), valid_path)
def test_a_route_prefix_is_left_only_through_dot_segments(prefix: list[str], rest: str) -> None:
    # Without a '.' or '..' segment in the input, the result stays under the prefix.
    base = "/" + "/".join(["api", *prefix])
    if any(s in (".", "..") for s in reference_decode(rest).split("/")):
        return
    assert normalize_path((base + rest).encode()).startswith(base.replace("%2f", "%2F"))


# -- tables --------------------------------------------------------------------------------

# RFC 3986 section 5.4, with base path /b/c/d;p: each reference, merged with
# the base as section 5.2.3 does, is a path whose normal form is the example's
# result. Examples that change only the query or fragment are left out.
RFC_5_4 = [
    ("g", "/b/c/g"),
    ("./g", "/b/c/g"),
    ("g/", "/b/c/g/"),
    (";x", "/b/c/;x"),
    ("g;x", "/b/c/g;x"),
    (".", "/b/c/"),
    ("./", "/b/c/"),
    ("..", "/b/"),
    ("../", "/b/"),
    ("../g", "/b/g"),
    ("../..", "/"),
    ("../../", "/"),
    ("../../g", "/g"),
    # 5.4.2, abnormal examples
    ("../../../g", "/g"),
    ("../../../../g", "/g"),
    ("g.", "/b/c/g."),
    (".g", "/b/c/.g"),
    ("g..", "/b/c/g.."),
    ("..g", "/b/c/..g"),
    ("./../g", "/b/g"),
    ("./g/.", "/b/c/g/"),
    ("g/./h", "/b/c/g/h"),
    ("g/../h", "/b/c/h"),
    ("g;x=1/./y", "/b/c/g;x=1/y"),
    ("g;x=1/../y", "/b/c/y"),
]
RFC_5_4_ABSOLUTE = [("/g", "/g"), ("/./g", "/g"), ("/../g", "/g")]


@pytest.mark.parametrize(("reference_path", "expected"), RFC_5_4, ids=[r for r, _ in RFC_5_4])
def test_rfc_3986_section_5_4_relative_examples(reference_path: str, expected: str) -> None:
    merged = "/b/c/" + reference_path
    assert normalize_path(merged.encode()) == expected


@pytest.mark.parametrize(("path", "expected"), RFC_5_4_ABSOLUTE)
def test_rfc_3986_section_5_4_absolute_path_examples(path: str, expected: str) -> None:
    assert normalize_path(path.encode()) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/b/c/./../../g", "/a/g"),  # RFC 3986 5.2.4
        ("/mid/content=5/../6", "/mid/6"),  # RFC 3986 5.2.4
        ("/", "/"),
        ("/.", "/"),
        ("/..", "/"),
        ("/a/..", "/"),
        ("/a/.", "/a/"),
        ("/a/b/..", "/a/"),
        ("/a/./b", "/a/b"),
        ("/a//b", "/a//b"),
        ("//..", "/"),
        ("/a//..", "/a/"),
        ("/a//../b", "/a/b"),
        ("//../x", "/x"),
        ("/...", "/..."),
        ("/.../..", "/"),
        ("/api/../admin", "/admin"),
    ],
)
def test_dot_segments(path: str, expected: str) -> None:
    assert normalize_path(path.encode()) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/%41", "/A"),
        ("/%7E", "/~"),
        ("/%7e", "/~"),
        ("/%61%62%63", "/abc"),
        ("/%30%2D%2E%5F", "/0-._"),
        ("/api/%63rm", "/api/crm"),
        ("/%2f", "/%2F"),
        ("/%2F", "/%2F"),
        ("/%3a%3B%40", "/%3A%3B%40"),
        ("/%25", "/%25"),
        ("/%2541", "/%2541"),  # an encoded '%' stays: no double decoding
        ("/%c3%a9", "/%C3%A9"),
        ("/%2e%2e/x", "/x"),
        ("/a/%2E/b", "/a/b"),
        ("/a/.%2e/b", "/b"),
        ("/a/%2e%2e%2fb", "/a/..%2Fb"),  # an encoded slash is data, not a separator
        ("/a%2F..%2Fb", "/a%2F..%2Fb"),
    ],
)
def test_percent_encodings(path: str, expected: str) -> None:
    assert normalize_path(path.encode()) == expected


@pytest.mark.parametrize(
    "path",
    [
        b"",
        b"a/b",
        b"*",
        b"example.com:80",
        b"http://example.com/",
        b"/a b",
        b"/a\x00",
        b"/a\tb",
        b"/a\rb",
        b"/\xc3\xa9",
        b"/\xff",
        b"/a\\b",
        b"/a?b",
        b"/a#b",
        b"/a[b]",
        b'/a"b',
        b"/a<b>",
        b"/%",
        b"/a%",
        b"/a%4",
        b"/%4/b",
        b"/%zz",
        b"/%g1",
        b"/%1g",
        b"/%%41",
        pytest.param(
            b"/a\n",
        ),
    ],
)
def test_invalid_paths_raise_invalid_path(path: bytes) -> None:
    with pytest.raises(InvalidPath):
        normalize_path(path)


def test_invalid_path_is_a_value_error() -> None:
    assert issubclass(InvalidPath, ValueError)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/", (b"/", b"")),
        (b"/a", (b"/a", b"")),
        (b"/a?", (b"/a", b"")),
        (b"/a?b=1", (b"/a", b"b=1")),
        (b"/a?b=1?c", (b"/a", b"b=1?c")),
        (b"/a?b=/../x", (b"/a", b"b=/../x")),
    ],
)
def test_split_target(target: bytes, expected: tuple[bytes, bytes]) -> None:
    assert split_target(target) == expected


@pytest.mark.parametrize(
    "target",
    [
        b"/a#f",
        b"/a?b#f",
        b"#",
        pytest.param(
            b"/a#f?b",
        ),
    ],
)
def test_split_target_rejects_a_fragment(target: bytes) -> None:
    with pytest.raises(InvalidPath):
        split_target(target)


def route_path(target: bytes) -> str:
    """What the exchange does with a request target before routing."""
    path, _ = split_target(target)
    return normalize_path(path)


@given(st.binary(max_size=32), st.binary(max_size=32))
def test_no_target_with_a_fragment_gets_through(before: bytes, after: bytes) -> None:
    # Whatever split_target misses, split_target + normalize_path never accept '#'.
    with pytest.raises(InvalidPath):
        route_path(before + b"#" + after)
