"""`propylon demo` as a newcomer runs it: a real process, real sockets, real clients."""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
GATEWAY_LINE = re.compile(r"^\s*gateway\s+(http://\S+)\s*$")
READY_LINE = "Press Ctrl-C to stop"
PROBLEM_JSON = "application/problem+json"


def demo_command(*args: str) -> list[str]:
    if importlib.util.find_spec("propylon.__main__") is not None:
        return [sys.executable, "-m", "propylon", "demo", *args]
    return [sys.executable, "-c", "from propylon.cli.main import main; main()", "demo", *args]


@dataclass
class Demo:
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    lines: list[str] = field(default_factory=list)
    url: str = ""
    pump: threading.Thread | None = None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return "\n".join(self.lines)


def _pump(proc: subprocess.Popen[bytes], sink: list[str], ready: queue.Queue[str]) -> None:
    # Drains stdout for the whole run so the demo can never block on a full pipe.
    # Readiness is the banner's last line, so tests see the whole banner.
    assert proc.stdout is not None
    url = ""
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        sink.append(line)
        match = GATEWAY_LINE.match(line)
        if match:
            url = match.group(1)
        elif line.startswith(READY_LINE):
            ready.put(url)
    ready.put("")  # EOF: the process is gone


def start_demo(tmp_path: Path, *args: str) -> Demo:
    stderr_path = tmp_path / f"demo-stderr-{time.monotonic_ns()}.txt"
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "80"}
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(demo_command(*args), stdout=subprocess.PIPE, stderr=stderr, env=env)
    demo = Demo(proc, stderr_path)
    ready: queue.Queue[str] = queue.Queue()
    demo.pump = threading.Thread(target=_pump, args=(proc, demo.lines, ready), daemon=True)
    demo.pump.start()
    try:
        demo.url = ready.get(timeout=START_TIMEOUT)
    except queue.Empty:
        demo.url = ""
    return demo


def stop_demo(demo: Demo) -> None:
    if demo.proc.poll() is None:
        demo.proc.kill()
    demo.proc.wait(timeout=STOP_TIMEOUT)
    # The pump sees EOF once the process is gone; close the pipe only after it.
    if demo.pump is not None:
        demo.pump.join(timeout=STOP_TIMEOUT)
    if demo.proc.stdout is not None:
        demo.proc.stdout.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = start_demo(tmp_path_factory.mktemp("demo"), "--port", "0")
    try:
        assert running.url, f"no gateway line\nstdout:\n{running.stdout()}\n{running.stderr()}"
        yield running
    finally:
        stop_demo(running)


@pytest.fixture
def client(demo: Demo) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo.url, timeout=10.0) as http:
        yield http


def test_banner_lists_urls_and_curl_lines(demo: Demo) -> None:
    out = demo.stdout()
    assert READY_LINE in out
    for name in ("auth", "crm", "tickets"):
        assert re.search(rf"^\s+{name}\s+http://127\.0\.0\.1:\d+", out, re.MULTILINE), name
    curl_lines = [
        line for line in demo.lines if "curl " in line and not line.strip().startswith("#")
    ]
    assert 8 <= len(curl_lines) <= 16
    assert all(demo.url in line for line in curl_lines)


def test_gateway_health(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] in ("healthy", "ok")


def test_list_and_create_customers(client: httpx.Client) -> None:
    listed = client.get("/api/crm/customers", params={"limit": 2})
    assert listed.status_code == 200
    assert listed.headers["content-type"].startswith("application/json")
    assert len(listed.json()["data"]) == 2

    created = client.post(
        "/api/crm/customers", json={"name": "Dana Scully", "email": "dana@fbi.example"}
    )
    assert created.status_code == 201
    new_id = created.json()["data"]["id"]
    assert created.headers["location"].endswith(f"/customers/{new_id}")
    assert client.get(f"/api/crm/customers/{new_id}").json()["data"]["name"] == "Dana Scully"

    invalid = client.post("/api/crm/customers", json={"name": "No Email"})
    assert invalid.status_code == 400
    assert invalid.json()["details"][0]["field"] == "email"


def test_login_then_me(client: httpx.Client) -> None:
    login = client.post("/api/auth/login", json={"username": "bob", "password": "demo"})
    assert login.status_code == 200
    token = login.json()["token"]
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["user"]["roles"] == ["agent"]
    assert client.get("/api/auth/me").status_code == 401


def test_ticket_through_stripped_prefix(client: httpx.Client) -> None:
    response = client.get("/api/tickets/1")
    assert response.status_code == 200
    assert response.json()["data"]["id"] == 1


def test_slow_upstream_gives_504_problem(client: httpx.Client) -> None:
    response = client.get("/api/tickets/slow", params={"delay": 3})
    assert response.status_code == 504
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["status"] == 504


def test_flaky_upstream_can_fail_or_succeed(client: httpx.Client) -> None:
    assert client.get("/api/tickets/flaky", params={"fail_rate": 1}).status_code == 500
    assert client.get("/api/tickets/flaky", params={"fail_rate": 0}).status_code == 200


def test_unknown_route_is_404_problem(client: httpx.Client) -> None:
    response = client.get("/api/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_method_outside_route_is_405(client: httpx.Client) -> None:
    response = client.delete("/api/auth/me")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith(PROBLEM_JSON)


def test_cors_preflight(client: httpx.Client) -> None:
    response = client.options(
        "/api/crm/customers",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code in (200, 204)
    assert "access-control-allow-origin" in response.headers
    assert "POST" in response.headers["access-control-allow-methods"]


def test_echo_shows_forwarded_headers_and_request_id(client: httpx.Client) -> None:
    response = client.get("/api/crm/echo", params={"hello": "world"})
    assert response.status_code == 200
    body = response.json()
    received = {key.lower(): value for key, value in body["headers"].items()}
    assert body["path"] == "/echo"
    assert body["query"] == {"hello": "world"}
    assert "127.0.0.1" in received["x-forwarded-for"]
    assert received["x-request-id"] == response.headers["x-request-id"]
    assert body["request_id"] == response.headers["x-request-id"]


def test_stream_passes_a_large_body(client: httpx.Client) -> None:
    size = 0
    with client.stream("GET", "/api/tickets/stream", params={"size": "8MB"}) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            size += len(chunk)
    assert size == 8 * 1024 * 1024


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_printed_curl_lines_run(demo: Demo) -> None:
    # The lines are meant to be pasted into a shell: run them exactly as printed.
    for line in demo.lines:
        command = line.strip()
        if "curl " not in command or command.startswith("#"):
            continue
        result = subprocess.run(["bash", "-c", command], capture_output=True, timeout=60)
        assert result.returncode == 0, (command, result.stderr)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_drains_and_exits_cleanly(tmp_path: Path, signum: signal.Signals) -> None:
    demo = start_demo(tmp_path, "--port", "0")
    try:
        assert demo.url, demo.stderr()
        outcome: list[int] = []

        def slow_request() -> None:
            with httpx.Client(timeout=10.0) as http:
                url = f"{demo.url}/api/tickets/slow"
                outcome.append(http.get(url, params={"delay": "0.7"}).status_code)

        in_flight = threading.Thread(target=slow_request)
        in_flight.start()
        time.sleep(0.3)  # let the request reach the tickets service
        demo.proc.send_signal(signum)
        assert demo.proc.wait(timeout=STOP_TIMEOUT) == 0
        in_flight.join(timeout=STOP_TIMEOUT)
        assert outcome == [200], "an in-flight request must finish during a graceful stop"
        assert "Traceback" not in demo.stderr()
        assert "Traceback" not in demo.stdout()
    finally:
        stop_demo(demo)


def test_port_in_use_is_explained(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo = start_demo(tmp_path, "--port", str(port))
        try:
            assert demo.proc.wait(timeout=START_TIMEOUT) == 1
        finally:
            stop_demo(demo)
    message = demo.stderr()
    assert "already in use" in message
    assert "--port 0" in message
    assert "Traceback" not in message


def _printed(demo: Demo, label: str) -> str:
    """The value the banner prints after ``label`` (the demo JWT or API key)."""
    for _ in range(50):
        for line in demo.lines:
            if line.startswith(f"  {label}"):
                return line.split()[-1]
        time.sleep(0.1)
    raise AssertionError(f"the banner printed no {label!r} line:\n{demo.stdout}")


def test_admin_route_refuses_anonymous_callers(demo: Demo) -> None:
    response = httpx.get(demo.url + "/api/admin/customers")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert "Bearer" in response.headers["www-authenticate"]


def test_printed_jwt_and_api_key_open_the_admin_route(demo: Demo) -> None:
    token = _printed(demo, "demo JWT")
    api_key = _printed(demo, "API key")
    by_token = httpx.get(
        demo.url + "/api/admin/customers", headers={"Authorization": f"Bearer {token}"}
    )
    assert by_token.status_code == 200
    by_key = httpx.get(demo.url + "/api/admin/customers", headers={"X-API-Key": api_key})
    assert by_key.status_code == 200
    assert by_key.json()["data"] == by_token.json()["data"]
    wrong = httpx.get(demo.url + "/api/admin/customers", headers={"X-API-Key": api_key[:-1] + "x"})
    assert wrong.status_code == 401
