"""The admin application on its own, in front of a stand-in for the supervisor.

Checks the answers that are hard to provoke from a real cluster: a reload
that fails, a handler that raises (500 without a traceback), the 202 of a
stop, and that without a token (loopback) requests pass.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from propylon.admin.app import AdminServer
from propylon.admin.control import ReloadOutcome
from propylon.config.cluster import AdminConfig
from tests.support.loop import BackgroundLoop

TOKEN = "a-token-of-some-length"


class FakeControl:
    def __init__(self) -> None:
        self.outcome = ReloadOutcome("reloaded", "every worker runs the new config", [], "ab" * 32)
        self.stops: list[str] = []
        self.fail_status = False

    async def status(self) -> dict[str, Any]:
        if self.fail_status:
            raise RuntimeError("secret internal detail")
        return {"workers": []}

    async def reload(self) -> ReloadOutcome:
        return self.outcome

    def request_stop(self, reason: str) -> None:
        self.stops.append(reason)

    async def broadcast(self, message: dict[str, Any], within: float = 2.0) -> list[dict[str, Any]]:
        return []


@pytest.fixture
def control() -> FakeControl:
    return FakeControl()


def _serve(bg: BackgroundLoop, control: FakeControl, token: str | None) -> Iterator[str]:
    config = AdminConfig(listen="127.0.0.1:0", token=token)
    server = bg.run(AdminServer.start(config, control))
    yield server.url
    bg.run(server.close())


@pytest.fixture
def admin(bg: BackgroundLoop, control: FakeControl) -> Iterator[httpx.Client]:
    for url in _serve(bg, control, TOKEN):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=url, headers=headers, timeout=5) as client:
            yield client


def test_invalid_reload_is_422_with_every_problem(admin: httpx.Client, control) -> None:
    errors = ["gateway.yaml:3: gateway.workers: expected ...", "gateway.yaml:9: routes.0: ..."]
    control.outcome = ReloadOutcome("invalid", "the config is invalid", errors)
    response = admin.post("/admin/reload")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["errors"] == errors
    assert body["detail"] == "the config is invalid"
    assert body["title"] == "Unprocessable Entity"


def test_reload_that_could_not_start_a_worker_is_500(admin: httpx.Client, control) -> None:
    control.outcome = ReloadOutcome("failed", "a new worker 1 did not start: it exited")
    response = admin.post("/admin/reload")
    assert response.status_code == 500
    assert response.json()["detail"] == "a new worker 1 did not start: it exited"


def test_successful_reload(admin: httpx.Client) -> None:
    response = admin.post("/admin/reload")
    assert response.status_code == 200
    assert response.json()["result"] == "reloaded"


def test_a_failing_handler_answers_500_without_a_traceback(admin: httpx.Client, control) -> None:
    control.fail_status = True
    response = admin.get("/admin/status")
    assert response.status_code == 500
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert response.json()["detail"] == "the admin API failed; see the gateway's log"


def test_stop_answers_202_then_stops(admin: httpx.Client, control) -> None:
    response = admin.post("/admin/stop")
    assert response.status_code == 202
    assert response.json() == {"result": "stopping"}
    deadline = time.monotonic() + 2
    while not control.stops and time.monotonic() < deadline:
        time.sleep(0.01)
    assert control.stops == ["admin stop"]


def test_request_id_is_kept_or_made(admin: httpx.Client) -> None:
    assert (
        admin.get("/admin/status", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    made = admin.get("/admin/nothing")
    assert made.json()["request_id"] == made.headers["x-request-id"] != ""


def test_malformed_authorization_is_401(admin: httpx.Client) -> None:
    for value in ("Basic dXNlcjpwYXNz", "Bearer", "Token " + TOKEN, TOKEN):
        response = admin.get("/admin/status", headers={"Authorization": value})
        assert response.status_code == 401, value
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_without_a_token_loopback_requests_pass(bg: BackgroundLoop, control) -> None:
    for url in _serve(bg, control, None):
        assert httpx.get(url + "/admin/status", timeout=5).status_code == 200
