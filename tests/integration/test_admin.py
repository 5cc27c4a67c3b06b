"""The admin API of a running supervisor, and the CLI that uses it.

Bearer token (constant-time compare), problem+json for every error,
`propylon status` as a table or JSON, refusal to listen off loopback
without a token.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import TOKEN, Cluster
from tests.support.gateway import simple_config
from tests.support.upstream import Upstream


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, bg: Any) -> Iterator[Cluster]:
    upstream = Upstream()
    bg.run(upstream.start())
    with Cluster(simple_config(upstream.url), tmp_path_factory.mktemp("admin"), workers=2) as gw:
        yield gw
    bg.run(upstream.stop())


def _problem(code: int, body: Any, status: int) -> None:
    assert code == status
    assert body["status"] == status
    assert body["type"].startswith("https://propylon.dev/problems/")
    assert set(body) >= {"type", "title", "status", "detail", "request_id"}


def test_status_needs_the_bearer_token(gw: Cluster) -> None:
    code, body = gw.admin("GET", "/admin/status", token=None)
    _problem(code, body, 401)
    assert "Authorization: Bearer" in body["detail"]
    code, body = gw.admin("GET", "/admin/status", token="wrong-token-wrong-token")
    _problem(code, body, 401)
    assert body["detail"] == "the admin token is not valid"


def test_401_says_how_to_authenticate(gw: Cluster) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(gw.admin_url + "/admin/status", timeout=5)
    caught.value.close()
    assert caught.value.headers["WWW-Authenticate"] == 'Bearer realm="propylon-admin"'
    assert caught.value.headers["Content-Type"].startswith("application/problem+json")
    assert caught.value.headers["X-Request-ID"]


def test_status_lists_the_workers(gw: Cluster) -> None:
    status = gw.status()
    assert status["version"]
    assert status["state"] == "running"
    assert status["pid"] == gw.process.pid
    assert len(status["config"]["sha256"]) == 64
    assert status["uptime"] > 0
    ready = [w for w in status["workers"] if w["state"] == "ready"]
    assert [w["id"] for w in ready] == [1, 2]
    for worker in ready:
        assert set(worker) >= {"pid", "uptime", "rss", "requests", "restarts"}
        assert worker["rss"] > 1024 * 1024
        assert worker["restarts"] == 0


def test_unknown_endpoint_and_wrong_method_are_problems(gw: Cluster) -> None:
    code, body = gw.admin("GET", "/admin/nothing")
    _problem(code, body, 404)
    code, body = gw.admin("GET", "/admin/reload")
    _problem(code, body, 405)
    assert body["detail"] == "GET is not allowed on /admin/reload"


def test_propylon_status_prints_a_table(gw: Cluster) -> None:
    result = gw.cli("status")
    assert result.returncode == 0, result.stderr
    for worker in gw.workers():
        assert str(worker["pid"]) in result.stdout
    for column in ("pid", "state", "uptime", "memory", "requests", "restarts"):
        assert column in result.stdout
    assert f"supervisor pid {gw.process.pid}" in result.stdout


def test_propylon_status_json(gw: Cluster) -> None:
    result = gw.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert [w["id"] for w in status["workers"] if w["state"] == "ready"] == [1, 2]


def test_propylon_status_with_a_wrong_token_fails(gw: Cluster) -> None:
    result = gw.cli("status", "--token", "not-the-token-not-the-token")
    assert result.returncode == 1
    assert "propylon: the admin token is not valid" in result.stderr


def test_propylon_status_without_a_gateway_says_so(tmp_path: Path) -> None:
    port = _free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"admin": {"listen": f"127.0.0.1:{port}"}}))
    result = _cli("status", "-c", str(config))
    assert result.returncode == 1
    assert f"cannot reach the admin API at http://127.0.0.1:{port}" in result.stderr


def test_admin_off_loopback_without_a_token_is_refused(tmp_path: Path, upstream: Any) -> None:
    config = simple_config(upstream.url, admin={"listen": "0.0.0.0:9901"})
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _cli("run", "-c", str(path), "--workers", "1")
    assert result.returncode == 1
    assert f"{path}:2: admin.listen: '0.0.0.0:9901' is not a loopback address" in result.stderr


def test_admin_port_in_use_stops_the_start(tmp_path: Path, upstream: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = simple_config(upstream.url, admin={"listen": f"127.0.0.1:{port}"})
        config["gateway"] = {"listen": "127.0.0.1:0"}
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(config))
        result = _cli("run", "-c", str(path), "--workers", "1")
    assert result.returncode == 1
    assert f"cannot start the admin API on 127.0.0.1:{port}" in result.stderr


def test_token_is_never_echoed(gw: Cluster) -> None:
    assert TOKEN not in gw.output()
    assert TOKEN not in gw.cli("status", "--json").stdout


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "propylon", *args], capture_output=True, text=True, timeout=30
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
