"""Validation messages: what each problem says, and where it points."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from propylon.config import ConfigError, load_config_text
from propylon.config.diagnostics import validation_issues
from propylon.errors import ConfigIssue

SERVICE = "services:\n  api:\n    targets: [{url: 'http://127.0.0.1:3001'}]\n"


def problems(text: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "gw.yaml", env={})
    return caught.value.issues


def only(text: str) -> ConfigIssue:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def test_unknown_key_has_line_path_and_suggestion() -> None:
    issue = only("gateway:\n  name: edge\n  lisen: :80\n")
    assert (issue.line, issue.path) == (3, "gateway.lisen")
    assert issue.problem == (
        "unknown key 'lisen' (did you mean 'listen'?); "
        "allowed keys: name, listen, graceful_timeout, trusted_proxies, limits, "
        "workers, max_memory, max_requests, max_restarts, min_uptime"
    )


def test_unknown_key_in_a_list_item() -> None:
    text = SERVICE + "routes:\n  - name: a\n    service: api\n    strip: true\n"
    issue = only(text)
    assert (issue.line, issue.path) == (7, "routes.0.strip")


def test_missing_key_points_at_the_mapping_that_lacks_it() -> None:
    issue = only(SERVICE + "routes:\n  - name: a\n    strip_prefix: true\n")
    assert (issue.line, issue.path) == (5, "routes.0.service")
    assert issue.problem == "missing required key 'service'"


@pytest.mark.parametrize(
    ("text", "path", "line", "problem"),
    [
        ("gateway:\n  name: [a]\n", "gateway.name", 2, "expected a string, got a list"),
        ("gateway:\n  listen: 8080\n", "gateway.listen", 2, "expected HOST:PORT"),
        ("gateway:\n  listen: ':99999'\n", "gateway.listen", 2, "invalid port 99999"),
        ("gateway:\n  graceful_timeout: soon\n", "gateway.graceful_timeout", 2, "duration"),
        ("gateway:\n  limits:\n    max_body: lots\n", "gateway.limits.max_body", 3, "size"),
        ("gateway:\n  trusted_proxies: [a.b]\n", "gateway.trusted_proxies", 2, "CIDR"),
        ("gateway: 3\n", "gateway", 1, "expected a mapping, got 3"),
        ("services:\n", "services", 1, "expected a mapping, got null"),
        ("routes: {}\n", "routes", 1, "expected a list, got a mapping"),
        ("services:\n  api:\n    targets: []\n", "services.api.targets", 3, "at least 1"),
        (
            SERVICE + "    preserve_host: maybe\n",
            "services.api.preserve_host",
            4,
            "expected true or false, got 'maybe'",
        ),
        (
            "services:\n  api:\n    targets: [{url: 'ftp://a'}]\n",
            "services.api.targets.0.url",
            3,
            "'ftp://a' must be an http://HOST[:PORT] URL",
        ),
        (
            SERVICE + "    pool: {max_idle: -1}\n",
            "services.api.pool.max_idle",
            4,
            "must be at least 0, got -1",
        ),
        (
            "services:\n  bad name: {targets: [{url: 'http://a:1'}]}\n",
            "services",
            1,
            "service name 'bad name' must be",
        ),
        (
            "security_headers:\n  x_frame_options: true\n",
            "security_headers.x_frame_options",
            2,
            "expected a string or false, got true",
        ),
        (
            SERVICE + "routes:\n  - {name: a, service: api, plugins: {cors: 1}}\n",
            "routes.0.plugins.cors",
            5,
            "expected a mapping or false, got 1",
        ),
        (
            SERVICE + "routes:\n  - {name: a, service: api, match: {methods: GET}}\n",
            "routes.0.match.methods",
            5,
            "expected a list, got 'GET'",
        ),
        (
            SERVICE + "routes:\n  - {name: a, service: api, match: {methods: [FETCH]}}\n",
            "routes.0.match.methods",
            5,
            "unknown HTTP method 'FETCH'",
        ),
        (
            SERVICE + "routes:\n  - name: a\n    service: api\n    rewrite: x\n",
            "routes.0.rewrite",
            7,
            "rewrite 'x' must start with '/'",
        ),
        (
            "cors:\n  allow_credentials: true\n",
            "cors",
            1,
            "allow_credentials cannot be used with allow_origins '*'",
        ),
    ],
)
def test_bad_values(text: str, path: str, line: int, problem: str) -> None:
    issue = only(text)
    assert (issue.path, issue.line) == (path, line)
    assert problem in issue.problem
    assert "Value error" not in issue.problem
    assert "https://" not in issue.problem


def test_unknown_key_inside_a_union_member() -> None:
    text = (
        SERVICE + "routes:\n  - name: a\n    service: api\n    plugins:\n      cors: {orgins: []}\n"
    )
    issue = only(text)
    assert (issue.line, issue.path) == (8, "routes.0.plugins.cors.orgins")
    assert "did you mean 'allow_origins'" in issue.problem


def test_nested_unions_report_only_the_real_problem() -> None:
    text = SERVICE + (
        "routes:\n"
        "  - name: a\n"
        "    service: api\n"
        "    plugins:\n"
        "      security_headers:\n"
        "        strict_transport_security: {max_age: often}\n"
        "  - name: b\n"
        "    service: api\n"
        "    plugins: {security_headers: {strict_transport_security: 3}}\n"
    )
    found = problems(text)
    assert [(issue.line, issue.path) for issue in found] == [
        (9, "routes.0.plugins.security_headers.strict_transport_security.max_age"),
        (12, "routes.1.plugins.security_headers.strict_transport_security"),
    ]
    assert found[0].problem.startswith("invalid duration 'often'")
    assert found[1].problem == "expected a mapping or false, got 3"


# -- secrets ---------------------------------------------------------------


class _SecretModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_token: int
    db_password: str
    level: int

    @field_validator("db_password")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        raise ValueError(f"password {value!r} is too short")


def test_secret_values_are_never_echoed() -> None:
    data = {"api_token": "hunter2", "db_password": "pw-from-env", "level": "high"}
    with pytest.raises(ValidationError) as caught:
        _SecretModel.model_validate(data)
    lines = {("api_token",): 1, ("db_password",): 2, ("level",): 3}
    found = validation_issues(caught.value, data, lines, "f.yaml", _SecretModel)
    assert [str(issue) for issue in found] == [
        "f.yaml:1: api_token: expected a whole number",
        "f.yaml:2: db_password: password '***' is too short",
        "f.yaml:3: level: expected a whole number, got 'high'",
    ]


def test_long_values_are_not_quoted() -> None:
    issue = only(SERVICE + f"    preserve_host: {'x' * 100}\n")
    assert issue.problem == "expected true or false, got a long string"
    issue = only(SERVICE + "    preserve_host: x\n")
    assert issue.problem == "expected true or false, got 'x'"
