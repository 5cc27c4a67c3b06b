"""`propylon loadtest` against a real gateway and upstream on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.gateway import InProcessGateway, route, service, simple_config
from tests.support.upstream import Upstream


def loadtest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "propylon", "loadtest", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_healthy_gateway_passes_and_the_report_counts_every_request(
    gateway: Callable[[dict[str, Any]], InProcessGateway], upstream: Upstream, tmp_path: Path
) -> None:
    gw = gateway(simple_config(upstream.url))
    scenario = tmp_path / "short.yaml"
    scenario.write_text(
        "phases:\n  - {name: one, duration: 1s, rate: 40}\n"
        "  - {name: two, duration: 1s, rate: 80}\n"
        "requests:\n  - {path: /api/items, weight: 3}\n  - {path: /health}\n"
        "thresholds: {p95_ms: 1000, p99_ms: 2000, max_error_rate: 0}\n"
    )
    done = loadtest(gw.url, "--scenario", str(scenario), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] is True
    assert [p["requests"] for p in report["phases"]] == [40, 80]
    assert report["overall"]["requests"] == 120
    assert report["overall"]["statuses"] == {"200": 120}
    # What the report says it sent is what arrived (/health stays in the gateway).
    by_request = report["overall"]["by_request"]
    assert sum(by_request.values()) == 120
    assert by_request["GET /api/items"] == len(upstream.requests)
    assert 60 <= by_request["GET /api/items"] <= 110  # weight 3 of 4
    assert "sent 120" in done.stderr  # the live progress went to stderr


def test_errors_fail_the_run(
    gateway: Callable[[dict[str, Any]], InProcessGateway], upstream: Upstream
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    config = {
        "services": {"dead": service(f"http://127.0.0.1:{dead}")},
        "routes": [route("dead", "/", "dead")],
    }
    gw = gateway(config)
    done = loadtest(gw.url, "--path", "/api", "--duration-scale", "0.1", "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["passed"] is False
    assert report["overall"]["error_kinds"].get("status 502", 0) > 0
    failed = [c["threshold"] for c in report["thresholds"] if not c["passed"]]
    assert "max_error_rate" in failed


def test_nothing_listening_is_a_connect_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = loadtest(f"http://127.0.0.1:{port}", "--duration-scale", "0.05", "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["overall"]["error_kinds"] == {"connect": 10}


def test_bad_arguments_are_explained(tmp_path: Path) -> None:
    done = loadtest("127.0.0.1:8080")
    assert done.returncode == 2
    assert "base URL" in done.stderr
    done = loadtest("http://127.0.0.1:8080", "--scenario", "nonesuch")
    assert done.returncode == 2
    assert "neither a built-in" in done.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("phases: [{name: a, duration: 1s, rate: 1}]\nrequests: [{path: nope}]\n")
    done = loadtest("http://127.0.0.1:8080", "--scenario", str(bad))
    assert done.returncode == 2
    assert f"{bad}: requests.0" in done.stderr
