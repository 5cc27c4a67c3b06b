"""The log writer's queue bound, redaction, and the day-based rotation."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from propylon.config.models import GatewayConfig
from propylon.config.observability import LoggingConfig
from propylon.observability.logs import secret_values
from propylon.observability.logs.records import Redactor, access_json, access_record
from propylon.observability.logs.rotation import LogFile
from propylon.observability.logs.writer import LogWriter


def _record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("propylon.test", level, __file__, 1, message, None, None)


def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    config = LoggingConfig(directory=str(tmp_path), queue_size=100, flush_interval="1h")
    writer = LogWriter(config, [], worker=1)
    for index in range(150):
        writer.app(_record(f"line {index}"))
    assert writer.dropped == 50
    writer.close()  # drains what was queued
    lines = [json.loads(x) for x in (tmp_path / "combined.log").read_text().splitlines()]
    assert [line["message"] for line in lines] == [f"line {i}" for i in range(100)]
    assert writer.figures()["written"] == 100


def test_warnings_go_to_error_log_and_credentials_are_redacted(tmp_path: Path) -> None:
    config = LoggingConfig(directory=str(tmp_path), flush_interval="1h")
    writer = LogWriter(config, ["the-jwt-secret-value"], worker=None)
    writer.app(_record("upstream said Authorization: Bearer abc.def.ghi", logging.WARNING))
    writer.app(_record("key the-jwt-secret-value leaked?"))
    writer.close()
    error = (tmp_path / "error.log").read_text()
    combined = (tmp_path / "combined.log").read_text()
    assert "abc.def.ghi" not in combined
    assert "the-jwt-secret-value" not in combined
    assert "[REDACTED]" in error
    assert len(error.splitlines()) == 1
    assert len(combined.splitlines()) == 2


def test_every_secret_of_the_config_is_known_to_the_redactor() -> None:
    config = GatewayConfig.model_validate(
        {
            "admin": {"token": "admin-token-0123456789abcdef"},
            "redis": {"url": "redis://:redis-password-xyz@127.0.0.1:6379/0"},
            "auth": {
                "jwt": {"secret": "a-jwt-secret-of-at-least-32-chars!!", "algorithms": ["HS256"]}
            },
        }
    )
    found = set(secret_values(config))
    assert {"admin-token-0123456789abcdef", "redis-password-xyz"} <= found
    assert "a-jwt-secret-of-at-least-32-chars!!" in found
    assert Redactor(found).literal("x redis-password-xyz y") == "x [REDACTED] y"


def test_a_log_written_yesterday_is_rotated_at_the_first_line_of_today(tmp_path: Path) -> None:
    now = [time.time()]
    path = tmp_path / "access.log"
    log = LogFile(path, max_size=None, daily=True, keep=5, clock=lambda: now[0])
    log.write(b"yesterday\n")
    yesterday = now[0] - 86400
    os.utime(path, (yesterday, yesterday))
    log.write(b"today\n")
    assert path.read_text() == "today\n"
    (old,) = log.rotated()
    assert old.read_text() == "yesterday\n"
    log.write(b"still today\n")
    assert len(log.rotated()) == 1
    log.close()


def test_size_rotation_keeps_only_the_newest_files(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = LogFile(path, max_size=10, daily=False, keep=2)
    for index in range(6):
        log.write(b"0123456789 %d\n" % index)
    kept = log.rotated()
    assert [p.read_text() for p in kept] == ["0123456789 3\n", "0123456789 4\n"]
    assert path.read_text() == "0123456789 5\n"
    log.close()


_text = st.text(max_size=40)
_entries = st.tuples(
    st.floats(min_value=1e9, max_value=2e9),
    st.floats(min_value=0, max_value=100),
    st.none() | st.floats(min_value=0, max_value=100),
    st.from_regex(rb"\A[A-Za-z0-9._:\-]{1,32}\Z"),
    st.sampled_from(["GET", "POST", "DELETE"]),
    _text,
    st.sampled_from(["", "items", "a.b-c"]),
    st.integers(100, 599),
    st.none() | _text,
    st.integers(0, 2**40),
    st.integers(0, 2**40),
    _text,
    st.lists(st.tuples(st.sampled_from([b"user-agent", b"accept"]), st.binary(max_size=30))),
    st.none() | _text,
    st.none() | st.from_regex(rb"\A[0-9a-f]{32}\Z"),
    st.none() | st.dictionaries(st.sampled_from(["cache", "rate_limit"]), st.none() | _text),
    st.none()
    | st.fixed_dictionaries(
        {},
        optional={
            "cache": st.sampled_from(["HIT", "MISS", "BYPASS", "STALE"]),
            "rate_limit": st.fixed_dictionaries(
                {"result": st.sampled_from(["allowed", "rejected", "bypass"])},
                optional={"limit": _text, "remaining": st.integers(0, 10**6)},
            ),
        },
    ),
)


@given(_entries)
def test_the_fast_access_line_is_the_json_of_the_record(entry) -> None:
    fast = json.loads(access_json(entry, 3, 42))
    slow = access_record(entry, 3, 42)
    for key in ("duration_ms", "upstream_duration_ms"):
        if slow[key] is not None:
            assert abs(fast.pop(key) - slow.pop(key)) < 0.0011
    assert fast == slow
