"""Fixtures: real servers on ephemeral loopback ports, cleaned up after each test."""

from __future__ import annotations

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
