"""RFC 9111 rules: which responses are stored, and for how long."""

from __future__ import annotations

import email.utils
import time

import pytest

from propylon.cache.rules import NOT_STORED, RequestRules, directives, response_ttl

NONE: frozenset[bytes] = frozenset()


def ttl(
    *headers: tuple[bytes, bytes], route: float = 300.0, vary: frozenset[bytes] = NONE
) -> float:
    return response_ttl(list(headers), route, vary)


def test_directives_parse_names_and_quoted_values() -> None:
    assert directives(b'No-Cache, max-age="60" ,private') == {
        "no-cache": "",
        "max-age": "60",
        "private": "",
    }


@pytest.mark.parametrize(
    "header",
    [
        (b"set-cookie", b"a=b"),
        (b"cache-control", b"no-store"),
        (b"cache-control", b"private"),
        (b"cache-control", b"no-cache"),
        (b"cache-control", b"max-age=0"),
        (b"cache-control", b"max-age=soon"),
        (b"vary", b"*"),
        (b"vary", b"cookie"),
        (b"expires", b"not a date"),
    ],
)
def test_not_stored(header) -> None:
    assert ttl(header) == NOT_STORED


def test_the_route_ttl_applies_without_freshness_headers() -> None:
    assert ttl((b"content-type", b"x")) == 300.0


def test_max_age_shortens_and_never_lengthens() -> None:
    assert ttl((b"cache-control", b"public, max-age=60")) == 60.0
    assert ttl((b"cache-control", b"max-age=6000")) == 300.0


def test_s_maxage_wins_over_max_age() -> None:
    assert ttl((b"cache-control", b"max-age=10"), (b"cache-control", b"s-maxage=100")) == 100.0


def test_expires_and_age() -> None:
    soon = email.utils.formatdate(time.time() + 100, usegmt=True).encode()
    assert 98 <= ttl((b"expires", soon)) <= 100
    assert ttl((b"cache-control", b"max-age=60"), (b"age", b"50")) == 10.0
    assert ttl((b"cache-control", b"max-age=60"), (b"age", b"70")) == NOT_STORED


def test_a_vary_covered_by_the_key_is_fine() -> None:
    assert (
        ttl((b"vary", b"Accept-Language, accept"), vary=frozenset({b"accept-language", b"accept"}))
        == 300.0
    )


@pytest.mark.parametrize(
    ("cache_control", "pragma", "refresh", "no_store"),
    [
        (b"no-cache", None, True, False),
        (b"max-age=0", None, True, False),
        (b"no-store", None, False, True),
        (None, b"no-cache", True, False),
        (b"max-age=10", b"no-cache", False, False),  # Pragma only without Cache-Control
        (b"max-stale", None, False, False),
    ],
)
def test_request_directives(cache_control, pragma, refresh, no_store) -> None:
    rules = RequestRules(cache_control, pragma)
    assert (rules.refresh, rules.no_store) == (refresh, no_store)
