"""Blue-green and canary at run time: weights and drain through the
programmatic API (what the admin API calls), under load, without restart."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.support.controlled import (
    UPSTREAM_HEADER,
    Load,
    on_loop,
    one_service,
    upstreams_fixture,  # noqa: F401 - the `upstreams` fixture
    wait_for,
)
from tests.support.controlled import blast as send_many


def test_drain_lets_in_flight_requests_finish_and_sends_new_ones_elsewhere(
    bg, gateway, upstreams
) -> None:
    blue, green = upstreams("blue"), upstreams("green")
    gw = gateway(one_service([blue.target(1, tags=["blue"]), green.target(0, tags=["green"])]))
    svc = gw.state.services["api"]
    results: list[httpx.Response] = []

    def slow_request() -> None:
        results.append(httpx.get(gw.url + "/report?delay=0.8", timeout=5))

    in_flight = [threading.Thread(target=slow_request) for _ in range(3)]
    for thread in in_flight:
        thread.start()
    try:
        assert wait_for(lambda: blue.in_flight == 3, timeout=2) is not None
        assert svc.target("blue").in_flight == 3
        on_loop(bg, svc.set_weight, "green", 1)
        on_loop(bg, svc.set_draining, "blue", True)
        assert svc.target("blue").draining
        with httpx.Client(base_url=gw.url, timeout=5) as http:
            served = {http.get("/new").headers[UPSTREAM_HEADER] for _ in range(20)}
        assert served == {"green"}
        assert blue.in_flight == 3  # still busy with the old ones
    finally:
        for thread in in_flight:
            thread.join(timeout=5)
    assert [r.status_code for r in results] == [200, 200, 200]
    assert {r.headers[UPSTREAM_HEADER] for r in results} == {"blue"}
    assert blue.hits["/new"] == 0
    assert svc.target("blue").in_flight == 0


def test_undrain_brings_a_target_back(bg, gateway, upstreams) -> None:
    a, b = upstreams("a"), upstreams("b")
    gw = gateway(one_service([a.target(), b.target()]))
    svc = gw.state.services["api"]
    on_loop(bg, svc.set_draining, "a", True)
    assert send_many(gw.port, 100) == {200: 100}
    assert a.total == 0
    on_loop(bg, svc.set_draining, "a", False)
    assert send_many(gw.port, 100) == {200: 100}
    assert a.total == 50


def test_canary_weight_change_at_run_time(bg, gateway, upstreams) -> None:
    stable, canary = upstreams("stable"), upstreams("canary")
    gw = gateway(one_service([stable.target(100), canary.target(0, tags=["canary"])]))
    svc = gw.state.services["api"]
    assert send_many(gw.port, 500) == {200: 500}
    assert canary.total == 0
    for stable_weight, canary_weight in [(90, 10), (50, 50), (0, 100)]:
        on_loop(bg, svc.set_weight, "stable", stable_weight)
        on_loop(bg, svc.set_weight, "canary", canary_weight)
        assert (svc.target("stable").weight, svc.target("canary").weight) == (
            stable_weight,
            canary_weight,
        )
        stable.reset_counts()
        canary.reset_counts()
        assert send_many(gw.port, 1000) == {200: 1000}
        share = canary.total / 1000
        assert abs(share - canary_weight / 100) <= 0.03, (canary_weight, share)


def test_blue_green_switch_under_continuous_load_loses_nothing(bg, gateway, upstreams) -> None:
    blue, green = upstreams("blue"), upstreams("green")
    gw = gateway(one_service([blue.target(100, tags=["blue"]), green.target(0, tags=["green"])]))
    svc = gw.state.services["api"]
    marks: dict[str, float] = {}
    with Load(gw.url, threads=4) as load:
        load.wait_requests(200)
        # The recipe of docs/blue-green.md: green is up; shift 10 -> 50 -> 100 %,
        # drain blue, wait for its last request, stop it.
        for blue_weight, green_weight in [(90, 10), (50, 50), (0, 100)]:
            on_loop(bg, svc.set_weight, "green", green_weight)
            on_loop(bg, svc.set_weight, "blue", blue_weight)
            load.wait_requests(200)
        marks["all green"] = time.monotonic()
        on_loop(bg, svc.set_draining, "blue", True)
        assert wait_for(lambda: svc.target("blue").in_flight == 0, timeout=2) is not None
        blue.stop()
        marks["blue stopped"] = time.monotonic()
        load.wait_requests(300)
    print(
        f"\nblue-green switch: {len(load.outcomes)} requests, {len(load.failures())} failed, "
        f"served {dict(load.served_by())}"
    )
    assert load.failures() == []
    assert load.served_by(since=marks["all green"] + 0.05)["blue"] == 0
    assert load.served_by(since=marks["blue stopped"])["green"] >= 300 - 4
    assert load.served_by()["blue"] > 0


def test_set_weight_and_drain_reject_bad_input(bg, gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(one_service([a.target()]))
    svc = gw.state.services["api"]
    with pytest.raises(ValueError, match="weight"):
        on_loop(bg, svc.set_weight, "a", -1)
    with pytest.raises(ValueError, match="weight"):
        on_loop(bg, svc.set_weight, "a", 1001)
    with pytest.raises(KeyError):
        on_loop(bg, svc.set_weight, "missing", 1)
    with pytest.raises(KeyError):
        on_loop(bg, svc.set_draining, "missing", True)
    assert svc.target("a").weight == 1


def test_target_changes_reach_observers_and_snapshots(bg, gateway, upstreams) -> None:
    a, b = upstreams("a"), upstreams("b")
    gw = gateway(one_service([a.target(3, tags=["blue"]), b.target(1, tags=["green"])]))
    svc = gw.state.services["api"]
    seen: list[tuple[str, int, bool]] = []

    def observer(service, target) -> None:  # type: ignore[no-untyped-def]
        seen.append((target.id, target.weight, target.draining))

    def broken(service, target) -> None:  # type: ignore[no-untyped-def]
        raise RuntimeError("an observer that fails must not stop the change")

    on_loop(bg, svc.add_observer, broken)
    on_loop(bg, svc.add_observer, observer)
    on_loop(bg, svc.set_weight, "a", 5)
    on_loop(bg, svc.set_weight, "a", 5)  # no change, no news
    on_loop(bg, svc.set_draining, "b", True)
    on_loop(bg, lambda: svc.set_weight("b", 7, remote=True))  # applied from elsewhere
    assert seen == [("a", 5, False), ("b", 1, True)]
    assert svc.target("b").weight == 7

    snapshot = on_loop(bg, svc.snapshot)
    assert snapshot["name"] == "api"
    assert snapshot["balance"] == "round_robin"
    targets = {t["id"]: t for t in snapshot["targets"]}
    assert targets["a"]["weight"] == 5
    assert targets["a"]["tags"] == ["blue"]
    assert targets["a"]["available"] is True
    assert targets["b"]["draining"] is True
    assert targets["b"]["available"] is False
    assert snapshot["circuit_breaker"]["state"] == "CLOSED"
    assert on_loop(bg, svc.ready) is True
    on_loop(bg, svc.set_draining, "a", True)
    assert on_loop(bg, svc.ready) is False
