"""Fixtures: real servers on ephemeral loopback ports, cleaned up after each test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import GatewayProcess, InProcessGateway
from tests.support.loop import BackgroundLoop
from tests.support.raw import Handler, ScriptedUpstream
from tests.support.upstream import Upstream


@pytest.fixture(scope="session")
def bg() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture
def upstream(bg: BackgroundLoop) -> Iterator[Upstream]:
    server = Upstream()
    bg.run(server.start())
    yield server
    bg.run(server.stop())


@pytest.fixture
def make_upstream(bg: BackgroundLoop) -> Iterator[Callable[[], Upstream]]:
    started: list[Upstream] = []

    def make() -> Upstream:
        server = Upstream()
        bg.run(server.start())
        started.append(server)
        return server

    yield make
    for server in started:
        bg.run(server.stop())


@pytest.fixture
def scripted(bg: BackgroundLoop) -> Iterator[Callable[[Handler], ScriptedUpstream]]:
    started: list[ScriptedUpstream] = []

    def make(handler: Handler) -> ScriptedUpstream:
        server = ScriptedUpstream(handler)
        bg.run(server.start())
        started.append(server)
        return server

    yield make
    for server in started:
        bg.run(server.stop())


@pytest.fixture
def gateway(bg: BackgroundLoop) -> Iterator[Callable[[dict[str, Any]], InProcessGateway]]:
    """Factory: ``gateway(config_dict)`` starts one in-process on a free port."""
    started: list[InProcessGateway] = []

    def make(config: dict[str, Any]) -> InProcessGateway:
        handle = InProcessGateway(bg, config)
        started.append(handle)
        return handle

    yield make
    for handle in started:
        handle.stop()


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], GatewayProcess]]:
    """Factory: ``gateway_process(config_dict)`` runs `propylon run` as a child."""
    started: list[GatewayProcess] = []

    def make(config: dict[str, Any]) -> GatewayProcess:
        workdir = tmp_path / f"gw{len(started)}"
        workdir.mkdir()
        handle = GatewayProcess(config, workdir)
        started.append(handle)
        return handle

    yield make
    for handle in started:
        handle.kill()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis for the session (see tests/support/redis.py)."""
    from tests.support.redis import RedisServer, redis_unavailable

    try:
        server = RedisServer()
    except FileNotFoundError:
        url = os.environ.get("REDIS_URL")
        if not url:
            redis_unavailable("redis-server is not installed and REDIS_URL is not set")
        yield url  # type: ignore[misc]
        return
    yield server.url
    server.close()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix for one test; every key under it is deleted afterwards."""
    from tests.support.redis import delete_prefix, new_prefix

    prefix = new_prefix()
    yield prefix
    delete_prefix(redis_url, prefix)


@pytest.fixture
def redis_server() -> Iterator[Any]:
    """A private redis-server that the test may stop and start (outage tests)."""
    from tests.support.redis import RedisServer, redis_unavailable

    try:
        server = RedisServer()
    except FileNotFoundError:
        redis_unavailable("redis-server is not installed; outage tests need their own")
    yield server
    server.close()
