"""Structured logs: JSON lines with the documented fields, secrets redacted,
warnings in error.log, size rotation across workers, stdout for containers."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

from tests.support.cluster import TOKEN, Cluster
from tests.support.gateway import route, service, wait_until

ACCESS_FIELDS = {
    "time", "request_id", "method", "path", "route", "status", "duration_ms",
    "upstream_target", "upstream_duration_ms", "bytes_in", "bytes_out", "client_ip",
    "user_agent", "consumer", "cache", "rate_limit", "level", "type",
}  # fmt: skip
SECRETS = {
    "bearer": "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LWJlYXJlcg.signature-part-1234",
    "api_key": "pk_live_1234567890abcdef",
    "cookie": "session-cookie-value-987654",
    "query": "query-secret-value-555",
    "configured": "configured-secret-in-path-42",
}


def _request(port: int, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST" if body else "GET", path, body=body or None, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _config(upstream_url: str, logs: Path, **logging: object) -> dict[str, object]:
    return {
        "gateway": {"graceful_timeout": "3s"},
        "services": {
            "up": service(upstream_url),
            "dead": {
                **service("http://127.0.0.1:9"),
                "health_check": {"passive": {"consecutive_failures": 1}},
            },
        },
        "routes": [route("items", "/items"), route("dead", "/dead", "dead")],
        "logging": {
            "directory": str(logs),
            "redact_values": [SECRETS["configured"]],
            **logging,
        },
    }


def test_access_lines_are_json_with_every_field_and_no_secret(tmp_path, upstream) -> None:
    logs = tmp_path / "logs"
    headers = {
        "Authorization": f"Bearer {SECRETS['bearer']}",
        "X-API-Key": SECRETS["api_key"],
        "Cookie": f"sid={SECRETS['cookie']}",
        "User-Agent": "log-test/2.0",
        "X-Request-ID": "log-test-request-1",
    }
    with Cluster(_config(upstream.url, logs), tmp_path, workers=2) as gw:
        path = f"/items/{SECRETS['configured']}?token={SECRETS['query']}"
        assert _request(gw.port, path, headers, body=b"hello") == 200
        for _ in range(5):
            assert _request(gw.port, "/items/plain") == 200
        assert _request(gw.port, "/dead") in (502, 503)
        assert wait_until(lambda: len(_lines(logs / "access.log")) == 7, 5)
        assert wait_until(lambda: "ejected" in (logs / "error.log").read_text(), 5)
    access = _lines(logs / "access.log")
    for line in access:
        assert set(line) >= ACCESS_FIELDS, line
        assert line["type"] == "access"
    first = next(line for line in access if line["request_id"] == "log-test-request-1")
    assert first["method"] == "POST"
    assert first["route"] == "items"
    assert first["status"] == 200
    assert first["bytes_in"] == 5
    assert first["bytes_out"] > 0
    assert first["client_ip"] == "127.0.0.1"
    assert first["user_agent"] == "log-test/2.0"
    assert first["upstream_target"] == upstream.url.removeprefix("http://")
    assert 0 <= first["upstream_duration_ms"] <= first["duration_ms"]
    assert first["path"] == "/items/[REDACTED]"
    assert first["time"].endswith("Z")
    assert {line["worker"] for line in access} <= {1, 2}
    # No secret sent in the request, nor the admin token, is in any file.
    everything = "".join(p.read_text() for p in logs.iterdir() if p.suffix == ".log")
    for secret in [*SECRETS.values(), TOKEN]:
        assert secret not in everything
    # The gateway's own warnings: JSON, in error.log and combined.log.
    errors = _lines(logs / "error.log")
    ejected = next(line for line in errors if "ejected" in line["message"])
    assert ejected["level"] == "warning"
    assert ejected["type"] == "app"
    assert ejected["logger"] == "propylon.upstream"
    combined = _lines(logs / "combined.log")
    assert {line["type"] for line in combined} == {"access", "app"}
    assert sum(line["type"] == "access" for line in combined) == 7


def test_size_rotation_across_two_workers(tmp_path, upstream) -> None:
    logs = tmp_path / "logs"
    config = _config(upstream.url, logs, rotation={"max_size": "4KB", "keep": 3})
    config["logging"]["flush_interval"] = "10ms"  # type: ignore[index]
    with Cluster(config, tmp_path, workers=2) as gw:
        for _ in range(120):
            assert _request(gw.port, "/items/rotate") == 200
        rotated = lambda: sorted(p.name for p in logs.glob("access.log.*") if p.suffix != ".lock")  # noqa: E731
        assert wait_until(lambda: len(rotated()) == 3, 5)
    current = logs / "access.log"
    # Each writer checks the size before it appends a batch, so the two
    # workers may each add one batch past the limit before one rotates.
    assert current.stat().st_size < 4096 + 2 * 2048
    total = len(_lines(current)) + sum(len(_lines(logs / name)) for name in rotated())
    assert 0 < total < 120  # the oldest files were deleted (keep: 3)
    for name in rotated():
        assert all(line["type"] == "access" for line in _lines(logs / name))


def test_stdout_lines_for_containers(tmp_path, upstream) -> None:
    config = {
        "services": {"up": service(upstream.url)},
        "routes": [route("items", "/items")],
        "logging": {"stdout": True},
    }
    with Cluster(config, tmp_path, workers=0) as gw:
        assert _request(gw.port, "/items/x", {"X-Request-ID": "stdout-test-1"}) == 200

        def access_line() -> dict | None:
            for text in gw.lines:
                if text.startswith("{") and "stdout-test-1" in text:
                    return json.loads(text)
            return None

        assert wait_until(lambda: access_line() is not None, 5)
    line = access_line()
    assert line is not None
    assert line["route"] == "items"
    assert line["status"] == 200


def test_cache_and_rate_limit_outcomes_are_in_each_line(tmp_path, upstream) -> None:
    logs = tmp_path / "logs"
    config = _config(upstream.url, logs)
    config["routes"] = [
        route("items", "/items", cache={"ttl": "1m"}),
        route("limited", "/limited", rate_limit={"rate": "2/m", "by": ["ip"], "name": "tight"}),
    ]
    with Cluster(config, tmp_path, workers=0) as gw:
        statuses = [_request(gw.port, "/items/1") for _ in range(2)]
        statuses += [_request(gw.port, "/limited") for _ in range(3)]
        assert statuses == [200, 200, 200, 200, 429]
        assert wait_until(lambda: len(_lines(logs / "access.log")) == 5, 5)
    lines = _lines(logs / "access.log")
    assert [line["cache"] for line in lines[:2]] == ["MISS", "HIT"]
    outcomes = [line["rate_limit"] for line in lines[2:]]
    assert [o["result"] for o in outcomes] == ["allowed", "allowed", "rejected"]
    assert {o["limit"] for o in outcomes} == {"tight"}
    assert [o["remaining"] for o in outcomes[:2]] == [1, 0]
    assert all(line["rate_limit"] is None for line in lines[:2])
