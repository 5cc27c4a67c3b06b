"""A breaker that opens in one worker opens in every worker of the node.

The workers tell the supervisor, which tells the others (sync.py, over the
worker channels): the whole node fails fast together, without Redis.
"""

from __future__ import annotations

import socket
import time

import httpx

from tests.support.cluster import Cluster
from tests.support.gateway import wait_until


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_open_breaker_reaches_every_worker_within_100ms(tmp_path) -> None:
    config = {
        "gateway": {"graceful_timeout": "2s"},
        "services": {
            "dead": {
                "targets": [{"url": f"http://127.0.0.1:{_closed_port()}"}],
                "retries": {"attempts": 0},
                "health_check": {"passive": None},
                "circuit_breaker": {"failure_threshold": 1, "open_for": "30s"},
            }
        },
        "routes": [{"name": "all", "match": {"path": "/"}, "service": "dead"}],
    }
    with Cluster(config, tmp_path, workers=2) as gw:
        assert wait_until(lambda: len(gw.workers()) == 2, 10.0)
        # Fresh connections spread over both workers; the first failure opens
        # the breaker of the worker that served it.
        first = httpx.get(gw.url + "/x", headers={"connection": "close"})
        assert first.status_code == 502
        opened = time.monotonic()
        time.sleep(0.1)
        statuses = []
        for _ in range(40):
            with httpx.Client() as client:  # a new connection each time
                statuses.append(client.get(gw.url + "/x").status_code)
        print(f"\nafter {time.monotonic() - opened:.2f}s: {statuses.count(503)} x 503")
        assert statuses == [503] * 40, statuses
