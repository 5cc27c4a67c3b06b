"""The circuit breaker of a service, as clients and the upstream see it.

Retries are off in these tests, so one client request is one backend call
and one outcome for the breaker; "the backend was not hit" is read off the
upstream's own counter.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx
import pytest

from tests.support.controlled import (
    UPSTREAM_HEADER,
    get_request,
    on_loop,
    one_service,
    pipelined,
    upstreams_fixture,  # noqa: F401 - the `upstreams` fixture
    wait_for,
)
from tests.support.problems import assert_problem
from tests.support.wire import RawClient

NEVER = 1000  # a threshold no test reaches


def breaker_config(targets: list[dict[str, Any]], **breaker: Any) -> dict[str, Any]:
    settings = {"failure_threshold": NEVER, "volume_threshold": NEVER, "open_for": "30s"}
    return one_service(targets, circuit_breaker={**settings, **breaker})


def get(http: httpx.Client, failing: bool = False) -> httpx.Response:
    return http.get("/c?status=500" if failing else "/c")


def assert_fails_fast(response: httpx.Response, open_for: float) -> None:
    assert_problem(response, 503)
    assert UPSTREAM_HEADER not in response.headers
    assert 1 <= int(response.headers["retry-after"]) <= max(1, round(open_for))


# -- opening ---------------------------------------------------------------------------


def test_opens_after_exactly_failure_threshold_consecutive_failures(gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(breaker_config([a.target()], failure_threshold=3))
    breaker = gw.state.services["api"].breaker
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        for attempt in range(1, 4):
            assert breaker.state == "CLOSED"
            response = get(http, failing=True)
            assert response.status_code == 500  # the upstream's own answer
            assert response.headers[UPSTREAM_HEADER] == "a"
            assert a.total == attempt
        assert breaker.state == "OPEN"
        for _ in range(5):
            assert_fails_fast(get(http), open_for=30)
    assert a.total == 3  # the 4th and later requests never reached the backend


def test_a_success_resets_the_consecutive_count(gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(breaker_config([a.target()], failure_threshold=3))
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        for _ in range(6):
            assert get(http, failing=True).status_code == 500
            assert get(http, failing=True).status_code == 500
            assert get(http).status_code == 200
    assert gw.state.services["api"].breaker.state == "CLOSED"
    assert a.total == 18


def test_opens_at_the_failure_rate_only_once_the_volume_threshold_is_met(
    gateway, upstreams
) -> None:
    a = upstreams("a")
    gw = gateway(
        breaker_config(
            [a.target()], failure_rate=0.5, volume_threshold=10, window="10s", failure_threshold=3
        )
    )
    breaker = gw.state.services["api"].breaker
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        # F S F S F S F S F: 5 failures in 9 calls (56 %), never 2 in a row.
        for index in range(9):
            get(http, failing=index % 2 == 0)
            assert breaker.state == "CLOSED", f"opened below the volume threshold at {index + 1}"
        assert get(http, failing=True).status_code == 500  # 6 of 10: 60 %
        assert breaker.state == "OPEN"
        assert_fails_fast(get(http), open_for=30)
    assert a.total == 10


def test_opens_when_a_success_completes_the_volume_at_a_high_failure_rate(
    gateway, upstreams
) -> None:
    a = upstreams("a")
    gw = gateway(
        breaker_config(
            [a.target()], failure_rate=0.5, volume_threshold=10, window="10s", failure_threshold=3
        )
    )
    breaker = gw.state.services["api"].breaker
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        for failing in [True, True, False] * 3:  # 6 of 9 fail, never 3 in a row
            get(http, failing=failing)
        assert breaker.state == "CLOSED"
        get(http)  # the 10th call: 6 failures of 10 = 60 % >= 50 %
        assert breaker.state == "OPEN"


def test_a_failure_rate_below_the_threshold_keeps_it_closed(gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(breaker_config([a.target()], failure_rate=0.5, volume_threshold=10, window="10s"))
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        for index in range(40):
            get(http, failing=index % 5 in (0, 2))  # 40 %
    assert gw.state.services["api"].breaker.state == "CLOSED"
    assert a.total == 40


def test_outcomes_older_than_the_window_do_not_count(gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(
        breaker_config(
            [a.target()], failure_rate=0.5, volume_threshold=8, window="500ms", failure_threshold=5
        )
    )
    breaker = gw.state.services["api"].breaker
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        for _ in range(4):
            get(http, failing=True)
        time.sleep(0.7)  # those four leave the window
        for failing in [False, False, False, False, True, True, False, True]:
            get(http, failing=failing)  # 3 of 8 here; 7 of 12 with the old ones
    assert breaker.state == "CLOSED"


@pytest.mark.parametrize("status", [400, 404, 409, 429])
def test_4xx_never_counts_by_default(gateway, upstreams, status) -> None:
    a = upstreams("a")
    gw = gateway(breaker_config([a.target()], failure_threshold=2))
    a.fail(status)
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        assert {get(http).status_code for _ in range(10)} == {status}
    assert gw.state.services["api"].breaker.state == "CLOSED"
    assert a.total == 10


def test_failure_statuses_and_failure_on_choose_what_counts(gateway, upstreams) -> None:
    a, b = upstreams("a"), upstreams("b")
    config = breaker_config([a.target()], failure_threshold=2, failure_statuses=[429])
    config["services"]["other"] = breaker_config(
        [b.target()], failure_threshold=2, failure_on=["connect_error"]
    )["services"]["api"]
    config["routes"].insert(0, {"name": "other", "match": {"path": "/other"}, "service": "other"})
    gw = gateway(config)
    a.fail(429)
    b.fail(500)
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        assert [get(http).status_code for _ in range(2)] == [429, 429]
        assert http.get("/other").status_code == 500
        assert http.get("/other").status_code == 500
        assert http.get("/other").status_code == 500
    assert gw.state.services["api"].breaker.state == "OPEN"  # 429 was listed
    assert gw.state.services["other"].breaker.state == "CLOSED"  # 5xx was not


def test_connect_errors_and_timeouts_count(gateway, upstreams) -> None:
    dead, stuck = upstreams("dead"), upstreams("stuck")
    config = breaker_config([dead.target()], failure_threshold=3)
    config["services"]["slow"] = breaker_config([stuck.target()], failure_threshold=2)["services"][
        "api"
    ] | {"timeouts": {"read": "100ms"}}
    config["routes"].insert(0, {"name": "slow", "match": {"path": "/slow"}, "service": "slow"})
    gw = gateway(config)
    dead.stop()
    stuck.slow(1.0)
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        assert [get(http).status_code for _ in range(3)] == [502, 502, 502]
        assert_fails_fast(get(http), open_for=30)
        assert [http.get("/slow").status_code for _ in range(2)] == [504, 504]
        assert_fails_fast(http.get("/slow"), open_for=30)
    assert stuck.total == 2


def test_slow_calls_open_it_when_configured(gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(
        breaker_config(
            [a.target()], slow_call_duration="50ms", slow_call_rate=0.5, volume_threshold=4
        )
    )
    breaker = gw.state.services["api"].breaker
    a.slow(0.08)
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        assert [get(http).status_code for _ in range(4)] == [200] * 4  # slow, but answered
        assert breaker.state == "OPEN"
        assert_fails_fast(get(http), open_for=30)
    assert a.total == 4


def test_a_disabled_breaker_never_opens(gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(breaker_config([a.target()], enabled=False, failure_threshold=1))
    a.fail(500)
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        assert {get(http).status_code for _ in range(10)} == {500}
    assert gw.state.services["api"].breaker.state == "CLOSED"
    assert a.total == 10


def test_failed_attempts_that_a_retry_made_good_do_not_count(gateway, upstreams) -> None:
    dead, alive = upstreams("dead"), upstreams("alive")
    config = breaker_config(
        [dead.target(), alive.target()], failure_rate=0.3, volume_threshold=10, window="10s"
    )
    config["services"]["api"]["retries"] = {"attempts": 1}
    gw = gateway(config)
    dead.stop()
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        statuses = [get(http).status_code for _ in range(30)]
    print(f"\nbreaker after 30 good requests: {gw.state.services['api'].breaker.snapshot()}")
    assert statuses == [200] * 30
    assert gw.state.services["api"].breaker.state == "CLOSED"


# -- OPEN --------------------------------------------------------------------------------


def test_open_answers_503_fast_without_touching_the_backend(bg, gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(breaker_config([a.target()], open_for="10s"))
    breaker = gw.state.services["api"].breaker
    on_loop(bg, breaker.trip)
    assert breaker.state == "OPEN"
    assert_fails_fast(httpx.get(gw.url + "/c"), open_for=10)
    latencies = []
    with RawClient(gw.port) as raw:
        request = get_request("/c")
        for _ in range(200):
            started = time.perf_counter()
            raw.send(request)
            response = raw.read_response()
            latencies.append(time.perf_counter() - started)
            assert response.status == 503
            assert response.header("retry-after") is not None
    median = statistics.median(latencies)
    print(
        f"\nfail-fast 503 while OPEN: median {median * 1000:.3f} ms, "
        f"p99 {sorted(latencies)[197] * 1000:.3f} ms over 200 requests (one keep-alive client)"
    )
    assert median < 0.005
    assert a.total == 0


def test_retry_after_counts_down_the_open_time(bg, gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(breaker_config([a.target()], open_for="10s"))
    on_loop(bg, gw.state.services["api"].breaker.trip)
    first = int(httpx.get(gw.url + "/c").headers["retry-after"])
    assert 9 <= first <= 10
    time.sleep(1.1)
    later = int(httpx.get(gw.url + "/c").headers["retry-after"])
    assert later in (first - 1, first - 2)


# -- HALF_OPEN ----------------------------------------------------------------------------


def test_half_open_admits_only_the_configured_probes_then_closes(bg, gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(
        breaker_config([a.target()], open_for="300ms", half_open_max_calls=2, success_threshold=2)
    )
    breaker = gw.state.services["api"].breaker
    on_loop(bg, breaker.trip)
    time.sleep(0.35)
    a.slow(0.3)  # the probes stay in flight while the others arrive
    responses = pipelined(gw.port, [get_request("/c")] * 6, connections=6, batch=1)
    statuses = sorted(response.status for response in responses)
    assert statuses == [200, 200, 503, 503, 503, 503]
    assert a.total == 2
    assert breaker.state == "CLOSED"  # two probes succeeded
    a.ok()
    assert httpx.get(gw.url + "/c").status_code == 200


def test_half_open_needs_success_threshold_successes(bg, gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(
        breaker_config([a.target()], open_for="300ms", half_open_max_calls=1, success_threshold=3)
    )
    breaker = gw.state.services["api"].breaker
    on_loop(bg, breaker.trip)
    time.sleep(0.35)
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        for expected in ["HALF_OPEN", "HALF_OPEN", "CLOSED"]:
            assert get(http).status_code == 200
            assert breaker.state == expected
    assert a.total == 3


def test_one_failure_in_half_open_reopens(bg, gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(
        breaker_config([a.target()], open_for="300ms", half_open_max_calls=1, success_threshold=2)
    )
    breaker = gw.state.services["api"].breaker
    on_loop(bg, breaker.trip)
    time.sleep(0.35)
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        assert get(http, failing=True).status_code == 500  # the probe reached the backend
        assert breaker.state == "OPEN"
        assert_fails_fast(get(http), open_for=0.3)
        assert a.total == 1
        time.sleep(0.35)  # open_for starts again from the reopening
        assert get(http).status_code == 200
        assert get(http).status_code == 200
    assert breaker.state == "CLOSED"


def test_it_recovers_by_itself_when_the_service_does(gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(
        breaker_config([a.target()], failure_threshold=3, open_for="200ms", success_threshold=1)
    )
    breaker = gw.state.services["api"].breaker
    a.fail(503)
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        for _ in range(3):
            get(http)
        assert breaker.state == "OPEN"
        a.ok()

        def answered() -> bool:
            return get(http).status_code == 200

        assert wait_for(answered, timeout=2, interval=0.05) is not None
    assert breaker.state == "CLOSED"


# -- control and observation --------------------------------------------------------------


def test_trip_and_reset(bg, gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(breaker_config([a.target()]))
    breaker = gw.state.services["api"].breaker
    on_loop(bg, breaker.trip)
    assert breaker.state == "OPEN"
    assert_fails_fast(httpx.get(gw.url + "/c"), open_for=30)
    assert a.total == 0
    on_loop(bg, breaker.reset)
    assert breaker.state == "CLOSED"
    assert httpx.get(gw.url + "/c").status_code == 200
    assert a.total == 1


def test_observers_see_every_transition(bg, gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(
        breaker_config([a.target()], failure_threshold=2, open_for="200ms", success_threshold=1)
    )
    breaker = gw.state.services["api"].breaker
    seen: list[Any] = []
    on_loop(bg, breaker.add_observer, seen.append)
    started = time.time()
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        get(http, failing=True)
        get(http, failing=True)  # CLOSED -> OPEN
        time.sleep(0.25)
        get(http)  # OPEN -> HALF_OPEN -> CLOSED
        on_loop(bg, breaker.trip)  # CLOSED -> OPEN
        on_loop(bg, breaker.reset)  # OPEN -> CLOSED
    moves = [(t.from_state, t.to_state) for t in seen]
    assert moves == [
        ("CLOSED", "OPEN"),
        ("OPEN", "HALF_OPEN"),
        ("HALF_OPEN", "CLOSED"),
        ("CLOSED", "OPEN"),
        ("OPEN", "CLOSED"),
    ]
    assert {t.service for t in seen} == {"api"}
    assert all(t.reason for t in seen)
    assert "consecutive" in seen[0].reason
    assert all(started - 1 <= t.at <= time.time() + 1 for t in seen)
    assert [t.at for t in seen] == sorted(t.at for t in seen)


def test_a_failing_observer_does_not_stop_the_others_or_the_transition(
    bg, gateway, upstreams
) -> None:
    a = upstreams("a")
    gw = gateway(breaker_config([a.target()]))
    breaker = gw.state.services["api"].breaker
    seen: list[Any] = []

    def broken(transition: Any) -> None:
        raise RuntimeError("observer failed")

    on_loop(bg, breaker.add_observer, broken)
    on_loop(bg, breaker.add_observer, seen.append)
    on_loop(bg, breaker.trip)
    assert breaker.state == "OPEN"
    assert [(t.from_state, t.to_state) for t in seen] == [("CLOSED", "OPEN")]


def test_a_transition_from_another_gateway_is_applied_and_marked_remote(
    bg, gateway, upstreams
) -> None:
    a = upstreams("a")
    gw = gateway(breaker_config([a.target()]))
    breaker = gw.state.services["api"].breaker
    seen: list[Any] = []
    on_loop(bg, breaker.add_observer, seen.append)
    on_loop(bg, breaker.apply_remote, "OPEN", "opened by worker 2")
    assert_fails_fast(httpx.get(gw.url + "/c"), open_for=30)
    on_loop(bg, breaker.apply_remote, "OPEN", "again")  # already open: nothing happens
    on_loop(bg, breaker.apply_remote, "CLOSED", "closed by worker 2")
    assert httpx.get(gw.url + "/c").status_code == 200
    assert [(t.to_state, t.reason, t.remote) for t in seen] == [
        ("OPEN", "opened by worker 2", True),
        ("CLOSED", "closed by worker 2", True),
    ]


def test_snapshot_reports_state_counts_and_times(bg, gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(breaker_config([a.target()], failure_threshold=5))
    breaker = gw.state.services["api"].breaker
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        for failing in [False, True, False, False]:
            get(http, failing=failing)
    snapshot = on_loop(bg, breaker.snapshot)
    assert snapshot["state"] == "CLOSED"
    assert snapshot["failures"] == 1
    assert snapshot["successes"] == 3
    assert snapshot["total"] == 4
    assert snapshot["success_rate"] == pytest.approx(0.75)
    assert snapshot["last_transition"] <= time.time()
    assert snapshot["opened_at"] is None
    on_loop(bg, breaker.trip)
    opened = on_loop(bg, breaker.snapshot)
    assert opened["state"] == "OPEN"
    assert abs(opened["opened_at"] - time.time()) < 2
    assert opened["last_transition"] == opened["opened_at"]


def test_each_service_has_its_own_breaker(bg, gateway, upstreams) -> None:
    a, b = upstreams("a"), upstreams("b")
    config = breaker_config([a.target()], failure_threshold=2)
    config["services"]["other"] = breaker_config([b.target()], failure_threshold=2)["services"][
        "api"
    ]
    config["routes"].insert(0, {"name": "other", "match": {"path": "/other"}, "service": "other"})
    gw = gateway(config)
    services = gw.state.services
    a.fail(500)
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        get(http)
        get(http)
        assert services["api"].breaker.state == "OPEN"
        assert services["other"].breaker.state == "CLOSED"
        assert_fails_fast(get(http), open_for=30)
        assert http.get("/other").status_code == 200
        on_loop(bg, services["other"].breaker.trip)
        on_loop(bg, services["api"].breaker.reset)
        assert_fails_fast(http.get("/other"), open_for=30)
        assert get(http).status_code == 500  # api is closed again; a still fails
    assert b.total == 1


# -- fallback ------------------------------------------------------------------------------

FALLBACK = {"status": 200, "body": '{"items":[]}', "headers": {"X-Fallback": "static"}}


def test_route_fallback_is_served_while_the_breaker_is_open(bg, gateway, upstreams) -> None:
    a = upstreams("a")
    config = breaker_config([a.target()])
    config["routes"][0]["fallback"] = FALLBACK
    gw = gateway(config)
    breaker = gw.state.services["api"].breaker
    on_loop(bg, breaker.trip)
    response = httpx.get(gw.url + "/c")
    assert response.status_code == 200
    assert response.json() == {"items": []}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-fallback"] == "static"
    assert "x-request-id" in response.headers
    assert a.total == 0
    on_loop(bg, breaker.reset)
    assert httpx.get(gw.url + "/c").headers[UPSTREAM_HEADER] == "a"


@pytest.mark.parametrize("how", ["weight", "drain"])
def test_route_fallback_is_served_when_no_target_is_available(bg, gateway, upstreams, how) -> None:
    a = upstreams("a")
    config = breaker_config([a.target()])
    config["routes"][0]["fallback"] = FALLBACK
    gw = gateway(config)
    svc = gw.state.services["api"]
    if how == "weight":
        on_loop(bg, svc.set_weight, "a", 0)
    else:
        on_loop(bg, svc.set_draining, "a", True)
    response = httpx.get(gw.url + "/c")
    assert response.status_code == 200
    assert response.json() == {"items": []}
    assert a.total == 0


def test_without_a_fallback_no_available_target_is_a_503_problem(bg, gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(breaker_config([a.target()]))
    on_loop(bg, gw.state.services["api"].set_draining, "a", True)
    response = httpx.get(gw.url + "/c")
    assert_problem(response, 503)
    assert int(response.headers["retry-after"]) >= 1


def test_trip_of_a_disabled_breaker_is_not_reported_as_open_while_traffic_flows(
    bg, gateway, upstreams
) -> None:
    a = upstreams("a")
    gw = gateway(breaker_config([a.target()], enabled=False))
    breaker = gw.state.services["api"].breaker
    on_loop(bg, breaker.trip)
    response = httpx.get(gw.url + "/c")
    # Either the operator's trip is honoured, or it is refused and the state says so.
    assert (breaker.state == "OPEN") == (response.status_code == 503)
