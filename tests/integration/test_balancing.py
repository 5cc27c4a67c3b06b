"""Load balancing over real upstreams: weights, least_conn, random, hash.

Each upstream names itself in X-Upstream, and counts what it received, so
the split is read off the upstreams, not off the gateway's own bookkeeping.
"""

from __future__ import annotations

import threading
from collections import Counter

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
from tests.support.controlled import blast as send_many


def shares(*servers: object) -> list[float]:
    totals = [server.total for server in servers]  # type: ignore[attr-defined]
    return [count / sum(totals) for count in totals]


def served_by(url: str, count: int, *headers: tuple[str, str]) -> list[str]:
    with httpx.Client(base_url=url, headers=dict(headers), timeout=5) as http:
        return [http.get("/seq").headers[UPSTREAM_HEADER] for _ in range(count)]


# -- weighted round robin -------------------------------------------------------------


def test_weights_1_2_7_split_10000_requests_within_3_percent(gateway, upstreams) -> None:
    a, b, c = upstreams("a"), upstreams("b"), upstreams("c")
    gw = gateway(one_service([a.target(1), b.target(2), c.target(7)]))
    statuses = send_many(gw.port, 10_000)
    assert statuses == {200: 10_000}
    measured = shares(a, b, c)
    print(f"\nweights 1/2/7 -> {[f'{share:.2%}' for share in measured]}")
    for share, expected in zip(measured, [0.1, 0.2, 0.7], strict=True):
        assert abs(share - expected) <= 0.03 * expected


def test_weight_zero_target_gets_no_requests(gateway, upstreams) -> None:
    a, idle, c = upstreams("a"), upstreams("idle"), upstreams("c")
    gw = gateway(one_service([a.target(1), idle.target(0), c.target(1)]))
    assert send_many(gw.port, 500) == {200: 500}
    assert idle.total == 0
    assert a.total == c.total == 250


def test_all_weights_zero_answers_503(gateway, upstreams) -> None:
    a = upstreams("a")
    gw = gateway(one_service([a.target(0)]))
    response = httpx.get(gw.url + "/x")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "retry-after" in response.headers
    assert a.total == 0


def test_smooth_round_robin_never_sends_a_burst_to_the_heavy_target(gateway, upstreams) -> None:
    # Weights 3/1/1: nginx's smooth WRR goes a b a c a; a naive one a a a b c.
    a, b, c = upstreams("a"), upstreams("b"), upstreams("c")
    gw = gateway(one_service([a.target(3), b.target(1), c.target(1)]))
    sequence = served_by(gw.url, 50)
    assert Counter(sequence) == {"a": 30, "b": 10, "c": 10}
    assert "aaa" not in "".join(sequence), "".join(sequence)


# -- least connections ------------------------------------------------------------------


def test_least_conn_prefers_the_idle_target_while_the_other_is_busy(gateway, upstreams) -> None:
    busy, idle = upstreams("busy"), upstreams("idle")
    gw = gateway(one_service([busy.target(), idle.target()], balance="least_conn"))
    busy.slow(1.0)
    # Four concurrent requests: least_conn sends about half of them to `busy`,
    # where they stay in flight for a second.
    slow_clients = [
        threading.Thread(target=httpx.get, args=(gw.url + "/slow",), kwargs={"timeout": 5})
        for _ in range(4)
    ]
    for thread in slow_clients:
        thread.start()
    try:
        assert wait_for(lambda: busy.in_flight >= 1, timeout=2) is not None
        idle.reset_counts()
        assert wait_for(lambda: idle.in_flight == 0, timeout=1) is not None
        sequence = served_by(gw.url, 20)
        assert busy.in_flight >= 1  # still busy: the 20 went by while it was
        assert sequence == ["idle"] * 20
    finally:
        for thread in slow_clients:
            thread.join(timeout=5)
    # Once idle again, it gets its share back.
    busy.ok()
    assert set(served_by(gw.url, 10)) == {"busy", "idle"}


# -- random (power of two choices) --------------------------------------------------------


def test_random_spreads_over_all_targets(gateway, upstreams) -> None:
    servers = [upstreams(name) for name in "abc"]
    gw = gateway(one_service([s.target() for s in servers], balance="random"))
    assert send_many(gw.port, 3000) == {200: 3000}
    measured = shares(*servers)
    print(f"\nrandom over 3 -> {[f'{share:.2%}' for share in measured]}")
    assert all(0.25 <= share <= 0.42 for share in measured), measured


def test_random_never_picks_a_weight_zero_target(gateway, upstreams) -> None:
    a, idle, c = upstreams("a"), upstreams("idle"), upstreams("c")
    gw = gateway(one_service([a.target(), idle.target(0), c.target()], balance="random"))
    assert send_many(gw.port, 300) == {200: 300}
    assert idle.total == 0
    assert a.total > 0
    assert c.total > 0


# -- consistent hash ---------------------------------------------------------------------


def hashed_owners(port: int, keys: list[str], header: str) -> list[str]:
    responses = pipelined(port, [get_request("/h", f"{header}: {key}") for key in keys])
    assert all(response.status == 200 for response in responses)
    return [response.header(UPSTREAM_HEADER) or "" for response in responses]


@pytest.mark.parametrize("removal", ["weight", "drain"])
def test_hash_on_header_is_sticky_and_moves_only_the_removed_targets_keys(
    bg, gateway, upstreams, removal
) -> None:
    servers = [upstreams(name) for name in "abc"]
    gw = gateway(
        one_service(
            [s.target() for s in servers], balance="hash", hash={"on": "header", "name": "X-User"}
        )
    )
    keys = [f"user-{n}" for n in range(1000)]
    before = hashed_owners(gw.port, keys, "X-User")
    assert hashed_owners(gw.port, keys, "X-User") == before  # sticky
    spread = Counter(before)
    print(f"\n1,000 keys over 3 targets: {dict(spread)}")
    assert set(spread) == {"a", "b", "c"}
    assert min(spread.values()) >= 150

    svc = gw.state.services["api"]
    if removal == "weight":
        on_loop(bg, svc.set_weight, "b", 0)
    else:
        on_loop(bg, svc.set_draining, "b", True)
    after = hashed_owners(gw.port, keys, "X-User")
    moved = [key for key, old, new in zip(keys, before, after, strict=True) if old != new]
    assert len(moved) == spread["b"]  # exactly b's keys moved ...
    assert "b" not in after  # ... all of them, and nothing else did
    assert all(new == old for old, new in zip(before, after, strict=True) if old != "b")

    if removal == "weight":
        on_loop(bg, svc.set_weight, "b", 1)
    else:
        on_loop(bg, svc.set_draining, "b", False)
    assert hashed_owners(gw.port, keys, "X-User") == before  # b's keys come home


def test_hash_on_cookie_is_sticky_per_cookie(gateway, upstreams) -> None:
    servers = [upstreams(name) for name in "abc"]
    gw = gateway(
        one_service(
            [s.target() for s in servers], balance="hash", hash={"on": "cookie", "name": "sid"}
        )
    )
    keys = [f"s{n}" for n in range(300)]
    first = hashed_owners(gw.port, [f"theme=dark; sid={key}" for key in keys], "Cookie")
    again = hashed_owners(gw.port, [f"sid={key}" for key in keys], "Cookie")
    assert first == again
    assert set(first) == {"a", "b", "c"}


def test_hash_on_client_ip_is_sticky_per_address(gateway, upstreams) -> None:
    servers = [upstreams(name) for name in "abc"]
    config = one_service([s.target() for s in servers], balance="hash", hash={"on": "ip"})
    # Behind a trusted proxy the client address comes from X-Forwarded-For,
    # which lets one test play many clients.
    config["gateway"] = {"trusted_proxies": ["127.0.0.1/32"]}
    gw = gateway(config)
    addresses = [f"203.0.113.{n}" for n in range(1, 201)]
    first = hashed_owners(gw.port, addresses, "X-Forwarded-For")
    assert hashed_owners(gw.port, addresses, "X-Forwarded-For") == first
    assert set(first) == {"a", "b", "c"}
    # Without a forwarded address every request is 127.0.0.1: one target.
    assert len(set(served_by(gw.url, 20))) == 1


def test_hash_with_the_key_missing_falls_back_to_the_client_address(gateway, upstreams) -> None:
    servers = [upstreams(name) for name in "abc"]
    gw = gateway(
        one_service(
            [s.target() for s in servers], balance="hash", hash={"on": "header", "name": "X-User"}
        )
    )
    assert len(set(served_by(gw.url, 30))) == 1


# -- the programmatic view ------------------------------------------------------------------


def test_service_runtime_lists_targets_in_config_order(bg, gateway, upstreams) -> None:
    a, b = upstreams("a"), upstreams("b")
    unnamed = upstreams("unnamed")
    gw = gateway(
        one_service([a.target(3, tags=["blue"]), b.target(1, tags=["green"]), {"url": unnamed.url}])
    )
    svc = gw.state.services["api"]
    assert [t.id for t in svc.targets] == ["a", "b", f"127.0.0.1:{unnamed.port}"]
    assert svc.target("a") is svc.targets[0]
    assert svc.target(f"127.0.0.1:{unnamed.port}") is svc.targets[2]
    assert [t.weight for t in svc.targets] == [3, 1, 1]
    assert [list(t.tags) for t in svc.targets] == [["blue"], ["green"], []]
    first = svc.targets[0]
    assert (first.draining, first.healthy, first.ejected, first.in_flight) == (
        False,
        True,
        False,
        0,
    )
    assert on_loop(bg, lambda: first.available(svc.loop.time())) is True
    with pytest.raises(KeyError):
        svc.target("nope")
