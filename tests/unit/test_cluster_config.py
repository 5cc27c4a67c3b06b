"""Config of the cluster: gateway.workers and the other process keys, and admin."""

from __future__ import annotations

import os

import pytest

from propylon.config import ConfigError, load_config_text
from propylon.config.cluster import AdminConfig, is_loopback, parse_workers, resolve_workers


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "gw.yaml")
    return [str(issue) for issue in caught.value.issues]


def test_defaults() -> None:
    config = load_config_text("services: {}\n", "gw.yaml")
    settings = config.gateway
    assert settings.workers is None  # one process unless asked
    assert (settings.max_restarts, settings.min_uptime) == (10, 10.0)
    assert settings.max_memory == 1024**3
    assert settings.max_requests is None
    assert config.admin.listen == "127.0.0.1:9901"
    assert config.admin.token is None


def test_process_keys_read_units() -> None:
    text = (
        "gateway:\n  workers: auto\n  max_memory: 512MB\n  min_uptime: 2s\n  max_requests: 1000\n"
    )
    settings = load_config_text(text, "gw.yaml").gateway
    assert settings.workers == "auto"
    assert settings.max_memory == 512 * 1024 * 1024
    assert settings.min_uptime == 2.0
    assert settings.max_requests == 1000


@pytest.mark.parametrize("value", ["0", "-1", "many", "1.5", "true"])
def test_bad_worker_counts(value: str) -> None:
    problems = _problems(f"gateway:\n  workers: {value}\n")
    assert problems == [
        "gw.yaml:2: gateway.workers: expected a number of worker processes >= 1, "
        "or auto (one per core)"
    ]


def test_parse_and_resolve_workers() -> None:
    assert parse_workers("3") == 3
    assert parse_workers(2) == 2
    assert parse_workers("auto") == "auto"
    assert resolve_workers(4) == 4
    assert resolve_workers("auto") == len(os.sched_getaffinity(0))


def test_admin_off_loopback_needs_a_token() -> None:
    problems = _problems("admin:\n  listen: 0.0.0.0:9901\n")
    assert problems == [
        "gw.yaml:2: admin.listen: '0.0.0.0:9901' is not a loopback address: set admin.token "
        "(for example token: ${PROPYLON_ADMIN_TOKEN}) or listen on 127.0.0.1"
    ]
    token = "x" * 32
    config = load_config_text(f"admin:\n  listen: 0.0.0.0:9901\n  token: {token}\n", "gw.yaml")
    assert config.admin.token is not None
    assert config.admin.token.get_secret_value() == token
    assert token not in repr(config.admin)


def test_a_switched_off_admin_needs_no_token() -> None:
    config = load_config_text("admin:\n  enabled: false\n  listen: 0.0.0.0:9901\n", "gw.yaml")
    assert config.admin.enabled is False


def test_a_short_token_is_refused_without_echoing_it() -> None:
    problems = _problems("admin:\n  token: hunter2\n")
    assert problems == [
        "gw.yaml:2: admin.token: must be at least 16 characters "
        "(for example the output of `openssl rand -hex 32`)"
    ]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("::", False),
        ("admin.example", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_admin_config_in_code() -> None:
    assert AdminConfig(listen="[::1]:9901").listen == "[::1]:9901"
