"""Redis dies during a load run: no 5xx, per-node local limits, no waiting,
and Redis decides again soon after it is back."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx
import pytest

from tests.support.gateway import route, service
from tests.support.problems import assert_problem
from tests.support.redis import new_prefix

pytestmark = pytest.mark.redis

LIMIT, NODES = 400, 4  # the local fallback admits LIMIT / NODES = 100 per node


class Load:
    """A few clients sending requests back to back, recording each one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, float, int, str]] = []  # start, latency, status, limit
        self.running = True

    async def client(self) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            while self.running:
                start = time.monotonic()
                response = await client.get(self.url + "/api")
                latency = time.monotonic() - start
                limit = response.headers.get("ratelimit-limit", "")
                self.samples.append((start, latency, response.status_code, limit))

    def between(self, start: float, end: float) -> list[tuple[float, float, int, str]]:
        return [s for s in self.samples if start <= s[0] < end]


def test_a_redis_outage_falls_back_to_local_limits_without_waiting(
    gateway: Any, upstream: Any, redis_server: Any
) -> None:
    gw = gateway(
        {
            "services": {"up": service(upstream.url)},
            "redis": {"url": redis_server.url, "key_prefix": new_prefix(), "timeout": "250ms"},
            "rate_limits": {
                "global": f"{LIMIT}/h",
                "expected_nodes": NODES,
                "on_redis_error": "local",
                "failed_login": False,
            },
            "routes": [route("api", "/api")],
        }
    )
    load = Load(gw.url)
    marks: dict[str, float] = {}

    async def scenario() -> None:
        clients = [asyncio.ensure_future(load.client()) for _ in range(4)]
        await asyncio.sleep(0.6)
        marks["killed"] = time.monotonic()
        await asyncio.to_thread(redis_server.stop)
        await asyncio.sleep(1.5)
        marks["restarting"] = time.monotonic()
        await asyncio.to_thread(redis_server.start)
        marks["restarted"] = time.monotonic()
        await asyncio.sleep(2.5)
        load.running = False
        await asyncio.gather(*clients)

    asyncio.run(scenario())
    samples = load.samples
    assert not [s for s in samples if s[2] >= 500], "no 5xx, ever"
    before = load.between(0, marks["killed"])
    # The first local decision marks the outage (the server takes a moment to die).
    local_mark = str(LIMIT // NODES)
    first_local = min(s[0] for s in samples if s[3] == local_mark)
    assert first_local - marks["killed"] < 1.0
    outage = load.between(first_local, marks["restarting"])
    assert before
    assert {s[3] for s in before} == {str(LIMIT)}
    assert {s[2] for s in before} == {200}
    # From then on until the restart every decision is local: each node
    # enforces its share, LIMIT / NODES pass, then 429s.
    assert {s[3] for s in outage} == {local_mark}
    assert sum(1 for s in outage if s[2] == 200) == LIMIT // NODES
    assert sum(1 for s in outage if s[2] == 429) > 0
    # Back on Redis (its limit in the headers again) within 2 s of the restart.
    resumed = [s for s in load.between(marks["restarted"], 1e18) if s[3] == str(LIMIT)]
    assert resumed, "Redis decisions never resumed"
    took = resumed[0][0] - marks["restarted"]
    phases = {
        "before": before,
        "outage": load.between(marks["killed"], marks["restarting"]),
        "after": load.between(marks["restarted"], 1e18),
    }
    report = []
    for phase, chosen in phases.items():
        latencies = sorted(s[1] * 1000 for s in chosen)
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        report.append(
            f"{phase}: n={len(chosen)} p50={statistics.median(latencies):.2f} "
            f"p99={p99:.2f} max={latencies[-1]:.2f} ms"
        )
    snapshot = gw.state.rate_limiter.snapshot()
    print(
        "\n" + "; ".join(report) + f"; Redis decisions resumed {took:.2f} s after the restart; "
        f"fallback decisions {snapshot['fallback']}"
    )
    assert took < 2.0
    assert snapshot["fallback"] >= len(outage)


@pytest.mark.parametrize("mode", ["local", "allow", "deny"])
def test_what_each_on_redis_error_mode_answers_without_redis(
    gateway: Any, upstream: Any, mode: str
) -> None:
    from tests.support.redis import _free_port

    gw = gateway(
        {
            "services": {"up": service(upstream.url)},
            # Nothing listens here: Redis is down from the start.
            "redis": {"url": f"redis://127.0.0.1:{_free_port()}/0"},
            "rate_limits": {"global": "6/h", "expected_nodes": 3, "on_redis_error": mode},
            "routes": [route("api", "/api")],
        }
    )
    with httpx.Client() as client:
        responses = [client.get(gw.url + "/api") for _ in range(3)]
    statuses = [r.status_code for r in responses]
    if mode == "local":
        assert statuses == [200, 200, 429]  # 6 / 3 nodes = 2 here
        assert responses[0].headers["ratelimit-limit"] == "2"
    elif mode == "allow":
        assert statuses == [200, 200, 200]
        assert "ratelimit-limit" not in responses[0].headers
    else:
        for response in responses:
            body = assert_problem(response, 503)
            assert body["detail"] == "rate limits cannot be checked right now"
            assert response.headers["retry-after"] == "1"
    assert gw.state.rate_limiter.snapshot()["fallback"] == 3
