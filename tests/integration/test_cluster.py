"""A supervised cluster (`propylon run --workers N`): real processes, signals and load.

The supervisor owns the listening socket; workers inherit it. A worker that
dies is replaced after a backoff; one over max_memory / max_requests is
replaced gracefully (the new one serves before the old one drains);
SIGTERM drains every worker and exits 0.
"""

from __future__ import annotations

import os
import signal
import time

from tests.support.cluster import Cluster, InFlight, Load, pid_alive
from tests.support.gateway import simple_config, wait_until


def _config(upstream_url: str, **gateway: object) -> dict[str, object]:
    return simple_config(upstream_url, gateway={"graceful_timeout": "5s", **gateway})


def _requests_by_pid(gw: Cluster) -> dict[int, int]:
    return {w["pid"]: w["requests"] for w in gw.workers()}


def test_two_workers_share_the_socket_and_both_serve(tmp_path, upstream) -> None:
    with Cluster(_config(upstream.url), tmp_path, workers=2) as gw:
        workers = gw.workers()
        assert [w["id"] for w in workers] == [1, 2]
        pids = {w["pid"] for w in workers}
        assert len(pids) == 2
        assert gw.process.pid not in pids
        # New connections go to whichever worker accepts first: both do.
        with Load(gw.port, keep_alive=0, fresh=4) as load:
            assert wait_until(lambda: all(n > 0 for n in _requests_by_pid(gw).values()), 5.0)
        assert load.failures() == []
        print(f"\ntwo workers: requests by pid {_requests_by_pid(gw)}; {load.summary()}")


def test_kill_9_of_a_worker_is_replaced_within_a_second(tmp_path, upstream) -> None:
    config = _config(upstream.url, min_uptime="1s")
    with Cluster(config, tmp_path, workers=2) as gw, Load(gw.port) as load:
        assert wait_until(lambda: len(gw.workers("spare")) == 1, 5.0)
        time.sleep(0.2)
        victim = gw.workers()[0]
        killed = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)

        def replaced() -> bool:
            return any(w["id"] == victim["id"] and w["pid"] != victim["pid"] for w in gw.workers())

        assert wait_until(replaced, timeout=2.0, interval=0.01)
        took = time.monotonic() - killed
        new = next(w for w in gw.workers() if w["id"] == victim["id"])
        assert wait_until(lambda: _requests_by_pid(gw).get(new["pid"], 0) > 0, 3.0)
        time.sleep(0.5)
        load.stop()
        restarts = {w["id"]: w["restarts"] for w in gw.workers()}
    failed = load.failures()
    print(f"\nkill -9: replaced and ready in {took * 1000:.0f} ms; {load.summary()}")
    for outcome in failed:
        print(f"  thread {outcome.thread} at +{outcome.started - killed:.3f}s: {outcome.error}")
    assert took < 1.0
    # Only connections the killed worker held fail: at most one per client
    # thread, all at the moment of the kill; everything after succeeds.
    assert len({o.thread for o in failed}) == len(failed)
    assert all(-0.05 < o.ended - killed < 0.5 for o in failed)
    assert restarts == {victim["id"]: 1, 3 - victim["id"]: 0}
    assert "killed by SIGKILL" in gw.output()


def test_sigterm_lets_slow_requests_finish_under_load(tmp_path, upstream) -> None:
    with Cluster(_config(upstream.url), tmp_path, workers=2) as gw:
        pids = [w["pid"] for w in gw.workers()]
        with Load(gw.port) as load:
            slow = [InFlight(gw.port, f"/slow?delay=1&n={n}") for n in range(4)]
            assert wait_until(lambda: len([r for r in upstream.requests if r.path == "/slow"]) == 4)
            signaled = time.monotonic()
            gw.signal(signal.SIGTERM)
            code = gw.wait(7)
            elapsed = time.monotonic() - signaled
        for request in slow:
            request.join(2)
    assert [(r.status, r.error) for r in slow] == [(200, None)] * 4
    assert code == 0
    assert 0.9 < elapsed < 5.0  # the slow requests took 1 s; graceful_timeout is 5 s
    assert not any(pid_alive(pid) for pid in pids)
    # Requests that got a response head all got the whole response; what
    # failed after the signal was refused or closed before any byte.
    cut = [o for o in load.failures() if o.error and "(after response)" in o.error]
    assert cut == []
    late = [o for o in load.failures() if o.started < signaled]
    print(
        f"\nSIGTERM: exit 0 after {elapsed:.2f}s; slow requests {[r.status for r in slow]}; "
        f"load {load.summary()}, failed that started before the signal: {len(late)}"
    )


def test_second_sigterm_kills_the_workers_at_once(tmp_path, upstream) -> None:
    with Cluster(_config(upstream.url, graceful_timeout="10s"), tmp_path, workers=2) as gw:
        pids = [w["pid"] for w in gw.workers()]
        request = InFlight(gw.port, "/slow?delay=5")
        assert wait_until(lambda: len(upstream.requests) == 1)
        gw.signal(signal.SIGTERM)
        time.sleep(0.3)
        assert gw.process.poll() is None  # draining, waiting for the slow request
        second = time.monotonic()
        gw.signal(signal.SIGTERM)
        assert gw.wait(5) == 1
        assert time.monotonic() - second < 0.5
        request.join(2)
        assert request.status is None
        assert wait_until(lambda: not any(pid_alive(pid) for pid in pids), 1.0)


def test_a_worker_that_crashes_at_start_makes_the_supervisor_give_up(tmp_path, upstream) -> None:
    config = _config(upstream.url, max_restarts=3, min_uptime="5s")
    env = {"PROPYLON_TEST_WORKER_CRASH": "start"}
    started = time.monotonic()
    with Cluster(config, tmp_path, workers=1, env=env, wait=False) as gw:
        code = gw.wait(20)
        output = gw.output()
    assert code == 3
    assert "listening on" not in output
    assert output.count("PROPYLON_TEST_WORKER_CRASH=start: failing on purpose") == 4
    # Backoff from 100 ms, doubling.
    for delay in ("0.1s", "0.2s", "0.4s"):
        assert f"restarting worker 1 in {delay}" in output
    assert "worker 1 exited 4 times in a row within min_uptime (5s) of starting" in output
    assert "giving up (gateway.max_restarts is 3)" in output
    print(f"\ncrash at start: gave up after {time.monotonic() - started:.2f}s")


def test_a_worker_over_max_memory_is_replaced_without_failed_requests(tmp_path, upstream) -> None:
    # Every worker uses more than 1 MB: each one is replaced about once a second.
    config = _config(upstream.url, max_memory="1MB")
    with Cluster(config, tmp_path, workers=2) as gw, Load(gw.port) as load:
        first = {w["pid"] for w in gw.workers()}
        assert gw.wait_for_line("max_memory 1.0 MB: replacing it", 5.0)
        assert gw.wait_for_line("replaced: pid", 5.0)
        assert wait_until(lambda: any(w["restarts"] >= 1 for w in gw.workers()), 5.0)
        load.stop()
        now = {w["pid"] for w in gw.workers()}
    assert now != first
    assert "below what a new worker uses" in gw.output()
    print(f"\nmax_memory: {load.summary()}")
    assert load.failures() == []


def test_max_requests_with_jitter_replaces_a_worker(tmp_path, upstream) -> None:
    config = _config(upstream.url, max_requests=200)
    with Cluster(config, tmp_path, workers=1) as gw, Load(gw.port) as load:
        first = gw.workers()[0]["pid"]
        assert gw.wait_for_line("requests (max_requests): replacing it", 10.0)
        assert wait_until(lambda: gw.workers()[0]["pid"] != first, 5.0)
        load.stop()
    line = next(x for x in gw.lines if "(max_requests)" in x)
    served = int(line.split("served ")[1].split()[0])
    assert served >= 200
    print(f"\nmax_requests: {line}; {load.summary()}")
    assert load.failures() == []


def test_workers_exit_when_the_supervisor_is_killed(tmp_path, upstream) -> None:
    with Cluster(_config(upstream.url), tmp_path, workers=2) as gw:
        assert wait_until(lambda: len(gw.workers("spare")) == 1, 5.0)
        pids = [w["pid"] for w in gw.status()["workers"]]
        request = InFlight(gw.port, "/slow?delay=0.5")
        assert wait_until(lambda: len(upstream.requests) == 1)
        gw.process.kill()  # SIGKILL: no chance to stop the workers
        gw.wait(5)
        # Each worker sees its channel close, drains (the request in flight
        # still completes) and exits; the spare just exits.
        request.join(5)
        assert (request.status, request.error) == (200, None)
        assert wait_until(lambda: not any(pid_alive(pid) for pid in pids), 3.0)


def test_workers_auto_is_one_per_core(tmp_path, upstream) -> None:
    with Cluster(_config(upstream.url), tmp_path, workers="auto") as gw:
        assert len(gw.workers()) == len(os.sched_getaffinity(0))


def test_a_bad_worker_count_is_a_usage_error(tmp_path, upstream) -> None:
    with Cluster(_config(upstream.url), tmp_path, workers="0", wait=False) as gw:
        assert gw.wait(10) == 2
    assert "expected a number of worker processes >= 1, or auto" in gw.output()
