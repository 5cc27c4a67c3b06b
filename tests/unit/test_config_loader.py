"""The config loader: every problem reported once, at its key path and line."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from propylon.config import ConfigError, GatewayConfig, load_config, load_config_text
from propylon.errors import ConfigIssue

FULL = """\
gateway:
  name: edge
  listen: 127.0.0.1:9000
  graceful_timeout: 500ms
  trusted_proxies: [10.0.0.0/8]
  limits:
    max_header_bytes: 16KB
    max_body: 10MB
    header_timeout: 5s
    idle_timeout: 2m
services:
  users:
    targets:
      - url: http://127.0.0.1:3001
        weight: 3
    timeouts: {connect: 250ms, read: 10s, total: 1h}
    pool: {max_idle: 8, idle_timeout: 15m}
routes:
  - name: users
    match: {path: /api/users/, hosts: [API.example.com], methods: [get, post]}
    service: users
    strip_prefix: true
    plugins:
      cors: false
      security_headers: {x_frame_options: DENY, strict_transport_security: false}
cors:
  allow_origins: [https://app.example.com]
  allow_credentials: true
  max_age: 10m
security_headers:
  strict_transport_security: {max_age: 1d}
"""
SERVICE = "services:\n  api:\n    targets: [{url: 'http://127.0.0.1:3001'}]\n"


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def load(text: str, env: Mapping[str, str] | None = None) -> GatewayConfig:
    return load_config_text(dedent(text), "gw.yaml", env={} if env is None else env)


def problems(text: str, env: Mapping[str, str] | None = None) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load(text, env)
    return caught.value.issues


def only(text: str, env: Mapping[str, str] | None = None) -> ConfigIssue:
    found = problems(text, env)
    assert len(found) == 1, found
    return found[0]


def test_full_config_loads_with_seconds_and_bytes() -> None:
    config = load(FULL)
    assert config.gateway.graceful_timeout == 0.5
    assert config.gateway.limits.max_header_bytes == 16 * 1024
    assert config.gateway.limits.max_body == 10 * 1024 * 1024
    assert config.gateway.limits.idle_timeout == 120.0
    users = config.services["users"]
    assert (users.timeouts.connect, users.timeouts.total) == (0.25, 3600.0)
    assert users.pool.idle_timeout == 900.0
    route = config.routes[0]
    assert (route.match.path, route.match.hosts, route.match.methods) == (
        "/api/users",
        ["api.example.com"],
        ["GET", "POST"],
    )
    assert route.plugins.cors is False
    assert config.cors is not None
    assert config.cors.max_age == 600.0


# -- interpolation ---------------------------------------------------------


def test_variable_from_env() -> None:
    assert load("gateway:\n  name: ${NAME}\n", {"NAME": "edge"}).gateway.name == "edge"


def test_default_when_unset_or_empty() -> None:
    text = "gateway:\n  name: ${NAME:-fallback}\n"
    assert load(text).gateway.name == "fallback"
    assert load(text, {"NAME": ""}).gateway.name == "fallback"
    assert load(text, {"NAME": "set"}).gateway.name == "set"


def test_reference_inside_a_string() -> None:
    config = load("gateway:\n  listen: 127.0.0.1:${PORT:-8081}\n", {})
    assert config.gateway.listen == "127.0.0.1:8081"


def test_missing_variable_is_reported_with_its_line() -> None:
    issue = only("gateway:\n  name: edge\n  listen: 0.0.0.0:${GATEWAY_PORT}\n")
    assert (issue.line, issue.path) == (3, "gateway.listen")
    assert "undefined variable 'GATEWAY_PORT'" in issue.problem


def test_escape_keeps_a_literal_reference() -> None:
    assert load("gateway:\n  name: $${NAME}-x\n", {"NAME": "no"}).gateway.name == "${NAME}-x"


@pytest.mark.parametrize(
    ("value", "problem"),
    [("${NAME", "unclosed '${NAME'"), ("${1NAME}", "invalid reference '${1NAME}'")],
)
def test_malformed_reference(value: str, problem: str) -> None:
    issue = only(f"gateway:\n  name: x\n  listen: '{value}'\n")
    assert (issue.line, issue.path) == (3, "gateway.listen")
    assert problem in issue.problem


def test_whole_unquoted_reference_is_retyped_like_yaml() -> None:
    text = SERVICE + (
        'security_headers:\n  x_frame_options: ${XFO:-false}\n  x_xss_protection: "${XSS:-0}"\n'
    )
    config = load(text)
    assert config.security_headers is not None
    assert config.security_headers.x_frame_options is False
    assert config.security_headers.x_xss_protection == "0"  # quoted: stays a string


def test_empty_whole_reference_is_null() -> None:
    text = SERVICE + "routes:\n  - name: a\n    service: api\n    rewrite: ${REWRITE:-}\n"
    assert load(text).routes[0].rewrite is None
    issue = only(text.replace("${REWRITE:-}", "'${REWRITE:-}'"))
    assert (issue.path, issue.problem) == ("routes.0.rewrite", "rewrite '' must start with '/'")


def test_retyped_values_validate_as_numbers() -> None:
    text = "services:\n  api:\n    targets:\n      - url: http://a:1\n        weight: ${W:-7}\n"
    assert load(text).services["api"].targets[0].weight == 7
    issue = only(text, {"W": "heavy"})
    assert issue.path == "services.api.targets.0.weight"
    assert issue.problem == "expected a whole number, got 'heavy'"


def test_dotenv_file_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "gateway.yaml").write_text("gateway:\n  name: ${NAME}\n  listen: ${LISTEN}\n")
    (tmp_path / ".env").write_text("NAME=from-dotenv\nLISTEN=:7000\n")
    config = load_config(tmp_path / "gateway.yaml", env={})
    assert (config.gateway.name, config.gateway.listen) == ("from-dotenv", ":7000")
    # The real environment wins over .env.
    config = load_config(tmp_path / "gateway.yaml", env={"NAME": "from-env"})
    assert (config.gateway.name, config.gateway.listen) == ("from-env", ":7000")


def test_keys_are_not_interpolated() -> None:
    issue = only("${SECTION}: {}\n", {"SECTION": "gateway"})
    assert issue.problem.startswith("unknown key '${SECTION}'")


# -- YAML ------------------------------------------------------------------


def test_yaml_syntax_error_has_its_line() -> None:
    issue = only("gateway:\n  name: edge\n   listen: :80\n")
    assert issue.line == 3
    assert issue.problem.startswith("invalid YAML: ")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('gateway:\n  name: "a\x07"\n', 2, "#x0007"),
        ("gateway: {}\n---\nroutes: []\n", 2, "single document"),
        ("gateway:\n  name: !!python/object:os.system x\n", 2, "cannot read this value"),
        ("gateway:\n  limits:\n    max_body: !!int ten\n", 3, "it is not a valid int"),
        ("gateway: *nowhere\n", 1, "undefined alias"),
    ],
)
def test_unreadable_yaml(text: str, line: int, fragment: str) -> None:
    issue = only(text)
    assert issue.line == line
    assert fragment in issue.problem


def test_duplicate_keys_are_errors() -> None:
    issue = only("gateway:\n  name: a\n  listen: :80\n  name: b\n")
    assert (issue.line, issue.path) == (4, "gateway.name")
    assert issue.problem == "duplicate key 'name' (first on line 2): remove one"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a list\n", "just text\n"])
def test_root_must_be_a_mapping(text: str) -> None:
    issue = only(text)
    assert (issue.line, issue.path) == (1, "")
    assert "must be a mapping with sections gateway, services, routes" in issue.problem


def test_merge_keys_and_x_anchors() -> None:
    text = """
        x-timeouts: &fast {connect: 1s, read: 2s}
        services:
          api:
            targets: [{url: "http://a:1"}]
            timeouts:
              <<: *fast
              read: 3s
        """
    timeouts = load(text).services["api"].timeouts
    assert (timeouts.connect, timeouts.read) == (1.0, 3.0)


def test_alias_bomb_stays_fast() -> None:
    lines = ["x-a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"x-a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 9)]
    started = time.monotonic()
    load("\n".join([*lines, SERVICE]))
    assert time.monotonic() - started < 5


def test_recursive_alias_is_an_error() -> None:
    found = problems("x-loop: &loop\n  again: *loop\n")
    assert [(issue.line, issue.path) for issue in found] == [(1, "x-loop.again")]


# -- cross references ---------------------------------------------------------


def test_unknown_service_points_at_the_service_key() -> None:
    issue = only(SERVICE + "routes:\n  - name: a\n    match: {path: /a}\n    service: apx\n")
    assert (issue.line, issue.path) == (7, "routes.0.service")
    assert issue.problem == "unknown service 'apx' (services: api)"


def test_duplicate_route_name_points_at_the_second_name() -> None:
    text = SERVICE + "routes:\n  - name: a\n    service: api\n  - name: a\n    service: api\n"
    issue = only(text)
    assert (issue.line, issue.path) == (7, "routes.1.name")
    assert "already used by routes.0.name (line 5)" in issue.problem


def test_all_problems_are_reported_in_line_order() -> None:
    text = """
        gateway:
          lisen: :80
          graceful_timeout: never
        services:
          api:
            targets: [{url: "http://a:1", weight: lots}]
        routes:
          - name: a
            service: nope
          - name: a
            service: api
            match: {path: relative}
        """
    found = problems(text)
    assert [(issue.line, issue.path) for issue in found] == [
        (2, "gateway.lisen"),
        (3, "gateway.graceful_timeout"),
        (6, "services.api.targets.0.weight"),
        (9, "routes.0.service"),
        (10, "routes.1.name"),
        (12, "routes.1.match.path"),
    ]
    assert str(found[0]).startswith("gw.yaml:2: gateway.lisen: unknown key 'lisen'")


# -- files -----------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml", env={})
    (issue,) = caught.value.issues
    assert (issue.line, issue.path) == (None, "")
    assert "no such file" in issue.problem


def test_directory_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path, env={})
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path / "bin.yaml", env={})


# -- anything else is a ConfigError, never another exception ------------------

KEYS = st.sampled_from(
    [
        "gateway",
        "services",
        "routes",
        "cors",
        "security_headers",
        "listen",
        "name",
        "targets",
        "url",
        "weight",
        "match",
        "path",
        "methods",
        "service",
        "plugins",
        "limits",
        "max_body",
        "strict_transport_security",
        "x_frame_options",
    ]
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(KEYS | st.integers(0, 3), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
def test_arbitrary_documents_only_raise_config_error(document: object) -> None:
    text = yaml.safe_dump(document)
    try:
        load_config_text(text, env={})
    except ConfigError as exc:
        issues = exc.issues
    else:
        return
    assert issues
    assert all(issue.problem for issue in issues)
