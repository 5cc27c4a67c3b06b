"""Retries: which requests, on what, where, how often, how fast.

Backend hits are counted on the upstreams, so "retried" and "not retried"
are observed facts, not the gateway's own claim.
"""

from __future__ import annotations

import itertools
import math
import time

import httpx
import pytest

from tests.support.controlled import (
    UPSTREAM_HEADER,
    get_request,
    one_service,
    pipelined,
    upstreams_fixture,  # noqa: F401 - the `upstreams` fixture
)

FAST_BACKOFF = {"backoff": "1ms", "max_backoff": "1ms"}


def hits(*servers: object) -> int:
    return sum(server.total for server in servers)  # type: ignore[attr-defined]


def test_get_answered_503_is_retried_on_the_other_target(gateway, upstreams) -> None:
    failing, healthy = upstreams("failing"), upstreams("healthy")
    gw = gateway(
        one_service([failing.target(), healthy.target()], retries={"attempts": 1, **FAST_BACKOFF})
    )
    failing.fail(503)
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        for _ in range(20):
            response = http.get("/r")
            assert response.status_code == 200
            assert response.headers[UPSTREAM_HEADER] == "healthy"
    assert healthy.total == 20
    assert failing.total >= 5  # the first try went there about half of the time


def test_a_single_target_is_retried_itself(gateway, upstreams) -> None:
    only = upstreams("only")
    gw = gateway(one_service([only.target()], retries={"attempts": 2, **FAST_BACKOFF}))
    only.fail_next(2)
    response = httpx.get(gw.url + "/r", timeout=5)
    assert response.status_code == 200
    assert only.total == 3


@pytest.mark.parametrize("attempts", [0, 1, 2, 3])
def test_attempts_bound_the_backend_hits(gateway, upstreams, attempts) -> None:
    a, b = upstreams("a"), upstreams("b")
    gw = gateway(
        one_service([a.target(), b.target()], retries={"attempts": attempts, **FAST_BACKOFF})
    )
    a.fail(503)
    b.fail(503)
    response = httpx.get(gw.url + "/r", timeout=5)
    # Out of attempts: the last upstream answer goes to the client as it is.
    assert response.status_code == 503
    assert response.headers[UPSTREAM_HEADER] in {"a", "b"}
    assert hits(a, b) == 1 + attempts
    if attempts:
        assert a.total >= 1
        assert b.total >= 1  # each retry goes to a different target than the last


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"])
def test_idempotent_methods_are_retried(gateway, upstreams, method) -> None:
    a, b = upstreams("a"), upstreams("b")
    gw = gateway(one_service([a.target(), b.target()], retries={"attempts": 1, **FAST_BACKOFF}))
    a.fail(503)
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        for _ in range(4):
            assert http.request(method, "/r").status_code == 200
    assert b.methods[method] == 4


def test_backoff_grows_exponentially_with_jitter(gateway, upstreams) -> None:
    a, b = upstreams("a"), upstreams("b")
    retries = {"attempts": 3, "backoff": "40ms", "max_backoff": "80ms"}
    gw = gateway(one_service([a.target(), b.target()], retries=retries))
    a.fail(503)
    b.fail(503)
    ceilings = [0.04, 0.08, 0.08]  # 40 ms doubling, capped at 80 ms
    gaps: list[list[float]] = [[], [], []]
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        for _ in range(10):
            a.reset_counts()
            b.reset_counts()
            assert http.get("/r").status_code == 503
            arrivals = sorted(a.arrivals + b.arrivals)
            assert len(arrivals) == 4
            for index, (earlier, later) in enumerate(itertools.pairwise(arrivals)):
                gaps[index].append(later - earlier)
    means = [sum(column) / len(column) for column in gaps]
    print("\nmean wait before retry 1, 2, 3 (ms):", [round(m * 1000, 1) for m in means])
    for column, ceiling in zip(gaps, ceilings, strict=True):
        assert max(column) <= ceiling + 0.03  # never more than the ceiling ...
        assert sum(column) >= 0.15 * ceiling * len(column)  # ... and no instant retries
    # Full jitter: waits spread over [0, ceiling]; later ones may exceed the first ceiling.
    assert max(gaps[1] + gaps[2]) > ceilings[0]
    assert len({round(g, 3) for g in gaps[0]}) > 3


def test_connect_error_is_retried_on_the_other_target(gateway, upstreams) -> None:
    dead, alive = upstreams("dead"), upstreams("alive")
    gw = gateway(one_service([dead.target(), alive.target()], retries={"attempts": 1}))
    dead.stop()
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        statuses = [http.get("/r").status_code for _ in range(20)]
    assert statuses == [200] * 20
    assert alive.total == 20


def test_timeout_is_retried_on_the_other_target(gateway, upstreams) -> None:
    stuck, quick = upstreams("stuck"), upstreams("quick")
    gw = gateway(
        one_service(
            [stuck.target(), quick.target()],
            retries={"attempts": 1, **FAST_BACKOFF},
            timeouts={"read": "200ms"},
        )
    )
    stuck.slow(2.0)
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        for _ in range(4):
            started = time.monotonic()
            response = http.get("/r")
            assert response.status_code == 200
            assert response.headers[UPSTREAM_HEADER] == "quick"
            assert time.monotonic() - started < 1.0
    assert stuck.total >= 1


def test_only_the_configured_statuses_are_retried(gateway, upstreams) -> None:
    a, b = upstreams("a"), upstreams("b")
    gw = gateway(
        one_service(
            [a.target(), b.target()], retries={"attempts": 2, "statuses": [500], **FAST_BACKOFF}
        )
    )
    a.fail(503)  # not in the list
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        statuses = [http.get("/r").status_code for _ in range(10)]
    assert sorted(statuses) == [200] * 5 + [503] * 5
    assert hits(a, b) == 10
    a.fail(500)
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        assert [http.get("/r").status_code for _ in range(10)] == [200] * 10


def test_connect_errors_are_not_retried_when_not_configured(gateway, upstreams) -> None:
    dead, alive = upstreams("dead"), upstreams("alive")
    gw = gateway(
        one_service([dead.target(), alive.target()], retries={"attempts": 2, "on": ["timeout"]})
    )
    dead.stop()
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        statuses = [http.get("/r").status_code for _ in range(10)]
    assert sorted(statuses) == [200] * 5 + [502] * 5


# -- never retried ------------------------------------------------------------------------


def test_post_is_never_retried(gateway, upstreams) -> None:
    a, b = upstreams("a"), upstreams("b")
    gw = gateway(one_service([a.target(), b.target()], retries={"attempts": 3, **FAST_BACKOFF}))
    a.fail(503)
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        statuses = [http.post("/r", content=b'{"n": 1}').status_code for _ in range(10)]
    assert a.methods["POST"] + b.methods["POST"] == 10  # one backend hit each
    assert statuses.count(503) == a.methods["POST"] == 5
    assert statuses.count(200) == b.methods["POST"] == 5


def test_post_is_retried_when_listed_in_methods(gateway, upstreams) -> None:
    a, b = upstreams("a"), upstreams("b")
    retries = {"attempts": 1, "methods": ["GET", "post"], **FAST_BACKOFF}
    gw = gateway(one_service([a.target(), b.target()], retries=retries))
    a.fail(503)
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        assert [http.post("/r", content=b"x").status_code for _ in range(6)] == [200] * 6
    assert b.methods["POST"] == 6


def test_no_retry_once_response_bytes_reached_the_client(gateway, upstreams) -> None:
    a, b = upstreams("a"), upstreams("b")
    gw = gateway(one_service([a.target(), b.target()], retries={"attempts": 2, **FAST_BACKOFF}))
    with httpx.Client(base_url=gw.url, timeout=5) as http, pytest.raises(httpx.HTTPError):
        http.get("/r?truncate=1")
    assert hits(a, b) == 1


def test_a_body_too_large_to_replay_is_not_retried(gateway, upstreams) -> None:
    a, b = upstreams("a"), upstreams("b")
    retries = {"attempts": 2, "max_body": "16KB", **FAST_BACKOFF}
    gw = gateway(one_service([a.target(), b.target()], retries=retries))
    a.fail(503)
    with httpx.Client(base_url=gw.url, timeout=5) as http:
        big = [http.put("/r", content=b"x" * 64 * 1024).status_code for _ in range(4)]
        assert hits(a, b) == 4
        assert sorted(big) == [200, 200, 503, 503]
        small = [http.put("/r", content=b"x" * 1024).status_code for _ in range(4)]
    assert small == [200] * 4


# -- the retry budget -------------------------------------------------------------------------


def concurrent_failures(port: int, count: int) -> list[int]:
    """``count`` GETs at once, each on its own connection; their statuses."""
    request = get_request("/budget?status=503&delay=0.2")
    responses = pipelined(port, [request] * count, connections=count, batch=1)
    return [response.status for response in responses]


@pytest.mark.parametrize("budget", [0.2, 1.0])
def test_retry_budget_caps_amplification_when_every_target_fails(
    gateway, upstreams, budget
) -> None:
    a, b = upstreams("a"), upstreams("b")
    attempts, concurrent = 3, 40
    retries = {"attempts": attempts, "budget": budget, "min_concurrent": 0, **FAST_BACKOFF}
    gw = gateway(one_service([a.target(), b.target()], retries=retries))
    statuses = concurrent_failures(gw.port, concurrent)
    assert statuses == [503] * concurrent
    total = hits(a, b)
    print(
        f"\nbudget {budget}: {concurrent} failing requests caused {total} backend hits "
        f"({total / concurrent:.2f}x; without a budget {1 + attempts}x)"
    )
    assert total >= concurrent
    # Retries in flight stay under budget * requests in flight (<= concurrent),
    # and each retry holds its slot for a whole upstream round trip.
    cap = concurrent + math.ceil(budget * concurrent) * attempts
    assert total <= cap
    if budget < 1.0:
        assert concurrent < total  # the budget allows some retries, not none ...
        assert total < concurrent * (1 + attempts) / 2  # ... but far from all
    else:
        assert total > concurrent + math.ceil(0.2 * concurrent) * attempts  # really capped above


def test_min_concurrent_retries_are_allowed_with_a_zero_budget(gateway, upstreams) -> None:
    a, b = upstreams("a"), upstreams("b")
    retries = {"attempts": 1, "budget": 0.0, "min_concurrent": 2, **FAST_BACKOFF}
    gw = gateway(one_service([a.target(), b.target()], retries=retries))
    concurrent = 20
    assert concurrent_failures(gw.port, concurrent) == [503] * concurrent
    assert concurrent < hits(a, b) <= concurrent + 2
