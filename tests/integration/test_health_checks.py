"""Passive ejection (outlier detection) and active health checks.

Upstreams really die here: ``stop()`` closes the listener and resets every
connection, so the gateway sees what it would see when a process crashes.
The measured times (eject, recover) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import itertools
import time

import httpx

from tests.support.controlled import (
    UPSTREAM_HEADER,
    Load,
    on_loop,
    one_service,
    upstreams_fixture,  # noqa: F401 - the `upstreams` fixture
    wait_for,
)
from tests.support.controlled import blast as send_many

PASSIVE = {
    "consecutive_failures": 3,
    "ejection_time": "500ms",
    "max_ejection_time": "1s",
}
ACTIVE = {"path": "/health", "interval": "200ms", "timeout": "100ms", "unhealthy": 2, "healthy": 2}


def available(bg, svc, target_id: str) -> bool:  # type: ignore[no-untyped-def]
    target = svc.target(target_id)
    return on_loop(bg, lambda: target.available(svc.loop.time()))


# -- passive: a target dies under load --------------------------------------------------


def test_killed_target_loses_no_request_is_ejected_within_1s_and_rejoins(
    bg, gateway, upstreams
) -> None:
    a, b = upstreams("a"), upstreams("b")
    gw = gateway(
        one_service(
            [a.target(), b.target()],
            retries={"attempts": 2},
            health_check={"passive": PASSIVE},
        )
    )
    svc = gw.state.services["api"]
    victim = svc.target("a")
    # Two clients: the default retry budget always allows their retries
    # (min_concurrent 3); see the defaults test below for many clients.
    with Load(gw.url, threads=2) as load:
        load.wait_requests(300)
        assert load.served_by().keys() == {"a", "b"}

        killed = time.monotonic()
        a.stop()
        assert wait_for(lambda: victim.ejected, timeout=3) is not None, "never ejected"
        ejected_after = time.monotonic() - killed
        load.wait_requests(200)

        revived = time.monotonic()
        a.start()
        rejoined = wait_for(
            lambda: not victim.ejected and load.served_by(since=revived)["a"] > 0, timeout=5
        )
        back_after = time.monotonic() - revived
        load.wait_requests(200)
    print(
        f"\ndead target ejected {ejected_after * 1000:.0f} ms after it died; back "
        f"{back_after * 1000:.0f} ms after it returned (ejection_time 500ms, max 1s); "
        f"{len(load.outcomes)} requests, {len(load.failures())} failed"
    )
    assert load.failures() == []
    assert ejected_after <= 1.0
    # It comes back once its ejection time (at most max_ejection_time) has run
    # out and one probe succeeded.
    assert rejoined is not None, "the target never rejoined"
    assert back_after <= 1.0 + 0.3
    late = load.served_by(since=revived + back_after)
    assert late["a"] > 0
    assert late["b"] > 0


def test_target_answering_5xx_is_ejected_then_probed_with_growing_ejection_times(
    gateway, upstreams
) -> None:
    a, b = upstreams("a"), upstreams("b")
    passive = {"consecutive_failures": 3, "ejection_time": "100ms", "max_ejection_time": "400ms"}
    gw = gateway(one_service([a.target(), b.target()], health_check={"passive": passive}))
    a.fail(500)
    with Load(gw.url, threads=2) as load:
        assert wait_for(lambda: len(a.arrivals) >= 3 + 5, timeout=5) is not None
    arrivals = a.arrivals
    # Three failures eject it; from then on it sees one probe per ejection.
    probes = arrivals[2:8]
    gaps = [later - earlier for earlier, later in itertools.pairwise(probes)]
    print("\ngaps between probes of an ejected target (s):", [round(g, 3) for g in gaps])
    expected = [0.1, 0.2, 0.4, 0.4, 0.4]
    for gap, want in zip(gaps, expected, strict=True):
        assert want - 0.01 <= gap <= want + 0.15, (gaps, expected)
    statuses = {o.status for o in load.outcomes}
    assert statuses <= {200, 500}
    # Only the probes (and the first failures) reached the client as 500s.
    assert sum(1 for o in load.outcomes if o.status == 500) == len(arrivals)


def test_ejected_target_returns_by_itself_without_active_checks(bg, gateway, upstreams) -> None:
    a, b = upstreams("a"), upstreams("b")
    passive = {"consecutive_failures": 2, "ejection_time": "300ms"}
    gw = gateway(one_service([a.target(), b.target()], health_check={"passive": passive}))
    svc = gw.state.services["api"]
    a.fail(503)
    send_many(gw.port, 10, connections=1)
    assert svc.target("a").ejected
    assert not available(bg, svc, "a")
    a.reset_counts()
    assert send_many(gw.port, 50, connections=1) == {200: 50}
    assert a.total == 0  # ejected: no traffic
    a.ok()

    def served_by_a() -> bool:
        send_many(gw.port, 5, connections=1)
        return a.total > 0

    assert wait_for(served_by_a, timeout=2) is not None
    assert not svc.target("a").ejected
    a.reset_counts()
    assert send_many(gw.port, 100, connections=1) == {200: 100}
    assert a.total == 50


def test_the_last_target_standing_is_not_ejected_for_5xx(bg, gateway, upstreams) -> None:
    only = upstreams("only")
    gw = gateway(
        one_service([only.target()], health_check={"passive": {"consecutive_failures": 3}})
    )
    svc = gw.state.services["api"]
    only.fail(500)
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        for _ in range(10):
            response = http.get("/x")
            assert response.status_code == 500
            assert response.headers[UPSTREAM_HEADER] == "only"  # the upstream's answer
        assert not svc.target("only").ejected
        only.ok()
        assert http.get("/x").status_code == 200  # no ejection to sit out


def test_of_two_failing_targets_one_stays_in(bg, gateway, upstreams) -> None:
    a, b = upstreams("a"), upstreams("b")
    gw = gateway(
        one_service([a.target(), b.target()], health_check={"passive": {"consecutive_failures": 3}})
    )
    svc = gw.state.services["api"]
    a.fail(503)
    b.fail(503)
    statuses = send_many(gw.port, 40, connections=1)
    assert statuses == {503: 40}
    ejected = [t.id for t in svc.targets if t.ejected]
    assert len(ejected) == 1
    # The one left in keeps getting the requests (and passing on its answers).
    remaining = b if ejected == ["a"] else a
    remaining.reset_counts()
    send_many(gw.port, 10, connections=1)
    assert remaining.total == 10


# -- active health checks -------------------------------------------------------------------


def test_active_check_takes_a_failing_target_out_and_back_in(bg, gateway, upstreams) -> None:
    a, b = upstreams("a"), upstreams("b")
    gw = gateway(
        one_service([a.target(), b.target()], health_check={"active": ACTIVE, "passive": None})
    )
    svc = gw.state.services["api"]
    target = svc.target("a")
    assert wait_for(lambda: a.health_hits >= 2 and b.health_hits >= 2, timeout=2) is not None
    assert target.healthy

    a.health_failing()
    out_after = wait_for(lambda: not target.healthy, timeout=3)
    assert out_after is not None, "a failing health check never marked the target unhealthy"
    assert not available(bg, svc, "a")
    a.reset_counts()
    assert send_many(gw.port, 200) == {200: 200}
    assert a.total == 0

    a.health_failing(False)
    back_after = wait_for(lambda: target.healthy, timeout=3)
    print(
        f"\nactive checks every 200ms (unhealthy 2, healthy 2): out after "
        f"{out_after * 1000:.0f} ms, back after "
        f"{back_after * 1000 if back_after is not None else -1:.0f} ms"
    )
    assert back_after is not None, "the target never came back"
    # Two failed checks at 200 ms intervals, plus up to one interval until the
    # first; likewise two passes to return.
    assert out_after <= 0.2 * 3 + 0.25
    assert back_after <= 0.2 * 3 + 0.25
    a.reset_counts()
    assert send_many(gw.port, 200) == {200: 200}
    assert a.total == 100


def test_active_checks_run_at_their_interval_and_do_not_flood(gateway, upstreams) -> None:
    a = upstreams("a")
    active = {**ACTIVE, "method": "HEAD"}
    gateway(one_service([a.target()], health_check={"active": active, "passive": None}))
    assert wait_for(lambda: a.health_hits >= 1, timeout=1) is not None
    a.reset_counts()
    time.sleep(1.0)
    print(f"\n{a.health_hits} health checks in 1 s at a 200 ms interval")
    assert 3 <= a.health_hits <= 7
    assert set(a.health_methods) == {"HEAD"}
    assert a.total == 0  # checks go to /health only


def test_active_check_timeout_counts_as_a_failure(gateway, upstreams) -> None:
    a, b = upstreams("a"), upstreams("b")
    gw = gateway(
        one_service([a.target(), b.target()], health_check={"active": ACTIVE, "passive": None})
    )
    target = gw.state.services["api"].target("a")
    a.health_delay = 0.5  # longer than the 100 ms check timeout
    assert wait_for(lambda: not target.healthy, timeout=3) is not None
    a.health_delay = 0.0
    assert wait_for(lambda: target.healthy, timeout=3) is not None


def test_active_check_of_a_dead_target_and_its_return(gateway, upstreams) -> None:
    a, b = upstreams("a"), upstreams("b")
    gw = gateway(
        one_service([a.target(), b.target()], health_check={"active": ACTIVE, "passive": None})
    )
    target = gw.state.services["api"].target("a")
    a.stop()
    assert wait_for(lambda: not target.healthy, timeout=3) is not None
    assert send_many(gw.port, 100) == {200: 100}  # all to b, none to the dead one
    a.start()
    assert wait_for(lambda: target.healthy, timeout=3) is not None
    assert send_many(gw.port, 100) == {200: 100}
    assert a.total == 50


def test_expected_statuses_decide_what_passes(gateway, upstreams) -> None:
    a = upstreams("a")
    active = {**ACTIVE, "expected_statuses": [204]}
    gw = gateway(one_service([a.target()], health_check={"active": active, "passive": None}))
    target = gw.state.services["api"].target("a")
    assert wait_for(lambda: not target.healthy, timeout=3) is not None  # 200 is not 204
    response = httpx.get(gw.url + "/x")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    assert a.total == 0


def test_a_probe_abandoned_by_its_client_does_not_keep_the_target_out(
    bg, gateway, upstreams
) -> None:
    a, b = upstreams("a"), upstreams("b")
    passive = {"consecutive_failures": 2, "ejection_time": "200ms"}
    gw = gateway(one_service([a.target(), b.target()], health_check={"passive": passive}))
    target = gw.state.services["api"].target("a")
    a.fail(503)
    send_many(gw.port, 4, connections=1)
    assert target.ejected
    a.ok()
    a.slow(2.0)
    time.sleep(0.25)  # the ejection time is over: the next pick of a is its probe
    with httpx.Client(base_url=gw.url, timeout=0.3) as http:
        for _ in range(10):
            try:
                http.get("/probe")
            except httpx.TimeoutException:
                break  # this one was the probe, stuck at a; the client gives up
        else:
            raise AssertionError("no request went to the ejected target after its ejection time")
    assert wait_for(lambda: a.in_flight == 0, timeout=2) is not None  # the gateway let go
    a.ok()
    assert send_many(gw.port, 20, connections=1) == {200: 20}
    assert a.hits["/w"] > 0, "the target stayed out after its probe was abandoned"
    assert not target.ejected


def test_a_target_dying_under_default_settings_loses_nothing(gateway, upstreams) -> None:
    # Defaults everywhere: retries, passive health, the breaker.
    a, b = upstreams("a"), upstreams("b")
    gw = gateway(
        {
            "services": {"api": {"targets": [a.target(), b.target()]}},
            "routes": [{"name": "all", "match": {"path": "/"}, "service": "api"}],
        }
    )
    svc = gw.state.services["api"]
    with Load(gw.url, threads=16) as load:
        load.wait_requests(300)
        a.stop()
        assert wait_for(lambda: svc.target("a").ejected, timeout=3) is not None
        load.wait_requests(300)
    failed = load.failures()
    print(f"\ndefaults, 16 clients: {len(load.outcomes)} requests, {len(failed)} failed")
    print(f"breaker {svc.breaker.snapshot()}")
    assert svc.breaker.state == "CLOSED"
    assert failed == []
