"""The rate_limits section and the route rate_limit key: defaults, shorthands,
and errors that name the key and its line."""

from __future__ import annotations

import textwrap

import pytest

from propylon.config import ConfigError, GatewayConfig, load_config_text
from propylon.config.loader import ConfigIssue

BASE = """
services:
  up: {targets: [{url: "http://127.0.0.1:9000"}]}
"""


def load(text: str) -> GatewayConfig:
    return load_config_text(textwrap.dedent(BASE) + textwrap.dedent(text), "gw.yaml", env={})


def only(text: str) -> ConfigIssue:
    with pytest.raises(ConfigError) as caught:
        load(text)
    assert len(caught.value.issues) == 1, caught.value.issues
    return caught.value.issues[0]


def test_the_defaults_are_the_documents_numbers() -> None:
    limits = load("rate_limits: {}\n").rate_limits
    assert limits is not None
    assert str(limits.global_.rate) == "100/15m"  # type: ignore[union-attr]
    assert limits.global_.by == ["ip"]  # type: ignore[union-attr]
    assert str(limits.per_user.rate) == "1000/15m"  # type: ignore[union-attr]
    assert {tier: str(spec.rate) for tier, spec in limits.tiers.items()} == {  # type: ignore[union-attr]
        "free": "100/1h",
        "standard": "1000/1h",
        "premium": "10000/1h",
    }
    assert str(limits.failed_login.rate) == "5/15m"  # type: ignore[union-attr]
    assert (limits.on_redis_error, limits.expected_nodes, limits.bypass_roles) == (
        "local",
        1,
        ["admin"],
    )


def test_shorthands_for_limits_and_route_lists() -> None:
    config = load(
        """
        rate_limits:
          global: false
          tiers: {free: 10/m, premium: {rate: 100/m, burst: 150}}
        routes:
          - {name: a, service: up, rate_limit: 5/s}
          - name: b
            service: up
            rate_limit: [{rate: 5/s, by: [ip, "header:X-Tenant"]}, {rate: 100/h, by: user}]
          - {name: c, service: up, rate_limit: false}
        """
    )
    limits = config.rate_limits
    assert limits is not None
    assert limits.global_ is False
    assert limits.tiers["free"].by == ["consumer"]  # type: ignore[union-attr]
    assert limits.tiers["premium"].burst == 150  # type: ignore[union-attr]
    a, b, c = config.routes
    assert a.rate_limit
    assert a.rate_limit[0].rate.limit == 5
    assert b.rate_limit
    assert [spec.by for spec in b.rate_limit] == [["ip", "header:x-tenant"], ["user"]]
    assert c.rate_limit is False


@pytest.mark.parametrize(
    ("text", "line", "path", "fragment"),
    [
        ("rate_limits:\n  global: 100/fortnight\n", 5, "rate_limits.global", "invalid rate"),
        ("rate_limits:\n  on_redis_error: panic\n", 5, "rate_limits.on_redis_error", "local"),
        ("rate_limits:\n  expected_nodes: 0\n", 5, "rate_limits.expected_nodes", "1"),
        ("rate_limits:\n  tiers: {gold: 5/m}\n", 5, "rate_limits.tiers.gold", "unknown tier"),
        ("rate_limits:\n  backend: redis\n", 5, "rate_limits.backend", "redis section"),
        (
            "rate_limits:\n  failed_login: {routes: [nope]}\n",
            5,
            "rate_limits.failed_login.routes.0",
            "no route named 'nope'",
        ),
        (
            "rate_limits:\n  failed_login: {by: [username]}\n",
            5,
            "rate_limits.failed_login",
            "username_header",
        ),
        (
            "rate_limits:\n  global: {rate: 0/m}\n",
            5,
            "rate_limits.global.rate",
            "at least 1",
        ),
        (
            "routes:\n  - {name: a, service: up, rate_limit: {rate: 5/s, by: [cookie]}}\n",
            5,
            "routes.0.rate_limit.by",
            "unknown key part 'cookie'",
        ),
        ("rate_limits:\n  global: {rate: 5/s, burts: 3}\n", 5, "rate_limits.global.burts", ""),
        (
            "routes:\n  - {name: a, service: up, rate_limit: {rate: 5/s, name: global}}\n",
            5,
            "routes.0.rate_limit.name",
            "built-in limit",
        ),
        (
            "routes:\n  - {name: a, service: up, rate_limit: {rate: 5/s, name: shared}}\n"
            "  - {name: b, service: up, rate_limit: {rate: 6/s, name: shared}}\n",
            6,
            "routes.1.rate_limit.name",
            "defined differently on route 'a'",
        ),
    ],
)
def test_mistakes_name_the_key_and_line(text: str, line: int, path: str, fragment: str) -> None:
    issue = only(text)
    assert issue.path == path
    assert issue.line == line
    assert fragment in issue.problem
