"""The failed-login limiter: only failures count, and once they are used up
even the right credentials get 429 until the limit refills."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from propylon.auth.apikeys import generate_key, hash_key
from tests.support.gateway import route, service
from tests.support.loop import BackgroundLoop
from tests.support.problems import assert_problem

GOOD_KEY = generate_key()
BAD_KEY = generate_key()


class LoginService:
    """An upstream login endpoint: 200 for alice/secret, else 401 (or 403 for 'locked')."""

    def __init__(self) -> None:
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.calls = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/login", self._login)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def _login(self, request: web.Request) -> web.Response:
        self.calls += 1
        user, password = request.headers.get("x-login-user"), request.headers.get("x-password")
        if user == "locked":
            return web.json_response({"error": "locked"}, status=403)
        if (user, password) == ("alice", "secret"):
            return web.json_response({"token": "t"})
        return web.json_response({"error": "bad credentials"}, status=401)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
def login_service(bg: BackgroundLoop) -> Iterator[LoginService]:
    server = LoginService()
    bg.run(server.start())
    yield server
    bg.run(server.stop())


def login_gateway(
    gateway: Any,
    upstream: Any,
    login: LoginService,
    redis: dict[str, str] | None = None,
    **failed: Any,
) -> Any:
    extra = {"redis": redis} if redis else {}
    return gateway(
        {
            **extra,
            "services": {"up": service(upstream.url), "auth-svc": service(login.url)},
            "consumers": [{"id": "acme", "keys": [hash_key(GOOD_KEY)]}],
            "rate_limits": {
                "global": False,
                "per_user": False,
                "tiers": {},
                "failed_login": {"rate": "5/15m", "routes": ["login"], **failed},
            },
            "routes": [
                route("api", "/api", auth="api_key"),
                route("login", "/login", "auth-svc"),
                route("open", "/open"),
            ],
        }
    )


def login(client: httpx.Client, url: str, user: str, password: str) -> httpx.Response:
    headers = {"X-Login-User": user, "X-Password": password}
    return client.post(url + "/login", headers=headers)


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_five_bad_keys_then_the_right_key_is_429(
    gateway, upstream, login_service, request, backend: str
) -> None:
    redis = None
    if backend == "redis":
        redis = {"url": request.getfixturevalue("redis_url")}
        redis["key_prefix"] = request.getfixturevalue("redis_prefix")
    gw = login_gateway(gateway, upstream, login_service, redis)
    with httpx.Client() as client:
        for _ in range(5):
            assert client.get(gw.url + "/api", headers={"X-API-Key": BAD_KEY}).status_code == 401
            if redis:  # a failure is counted by a task after the 401: let it land
                time.sleep(0.02)
        response = client.get(gw.url + "/api", headers={"X-API-Key": GOOD_KEY})
        body = assert_problem(response, 429)
        assert "failed_login" in body["detail"]
        assert int(response.headers["retry-after"]) > 0
        assert len(upstream.requests) == 0
        # Failed logins say nothing about routes without authentication.
        assert client.get(gw.url + "/open").status_code == 200


def test_good_keys_do_not_use_up_the_failures(gateway, upstream, login_service) -> None:
    gw = login_gateway(gateway, upstream, login_service)
    with httpx.Client() as client:
        for _ in range(20):
            assert client.get(gw.url + "/api", headers={"X-API-Key": GOOD_KEY}).status_code == 200
        for _ in range(4):
            assert client.get(gw.url + "/api", headers={"X-API-Key": BAD_KEY}).status_code == 401
        assert client.get(gw.url + "/api", headers={"X-API-Key": GOOD_KEY}).status_code == 200
        assert client.get(gw.url + "/api").status_code == 401  # no key: the fifth failure
        assert_problem(client.get(gw.url + "/api", headers={"X-API-Key": GOOD_KEY}), 429)


def test_an_upstream_login_route_counts_its_401_and_403(gateway, upstream, login_service) -> None:
    gw = login_gateway(gateway, upstream, login_service)
    with httpx.Client() as client:
        for _ in range(10):
            assert login(client, gw.url, "alice", "secret").status_code == 200
        for _ in range(4):
            assert login(client, gw.url, "alice", "wrong").status_code == 401
        assert login(client, gw.url, "locked", "x").status_code == 403
        calls = login_service.calls
        response = login(client, gw.url, "alice", "secret")
        assert_problem(response, 429)
        assert login_service.calls == calls  # never reached the login service


def test_failures_per_username_lock_that_name_only(gateway, upstream, login_service) -> None:
    gw = login_gateway(
        gateway, upstream, login_service, by=["username"], username_header="X-Login-User"
    )
    with httpx.Client() as client:
        for _ in range(5):
            assert login(client, gw.url, "Alice", "guess").status_code == 401
        assert_problem(login(client, gw.url, "alice", "secret"), 429)  # names are case-folded
        assert login(client, gw.url, "bob", "x").status_code == 401  # another name is free
