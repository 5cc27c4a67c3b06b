"""Zero-downtime reload (SIGHUP, `propylon reload`) under continuous load.

The file is validated first; an invalid one changes nothing and every
problem is logged and returned. A valid one replaces the workers one at a
time, each new worker accepting before the old one drains.
"""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from typing import Any

from tests.support.cluster import Cluster, Load, pid_alive
from tests.support.gateway import route, service, wait_until


def _config(upstream_url: str, *paths: str) -> dict[str, Any]:
    return {
        "gateway": {"graceful_timeout": "5s"},
        "services": {"up": service(upstream_url)},
        "routes": [route(path.strip("/").replace("/", "-"), path) for path in paths],
    }


def _get(gw: Cluster, path: str) -> int:
    try:
        with urllib.request.urlopen(gw.url + path, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code)


def test_sighup_serves_a_new_route_without_a_failed_request(tmp_path, upstream) -> None:
    with Cluster(_config(upstream.url, "/load"), tmp_path, workers=2) as gw:
        before = gw.status()
        assert _get(gw, "/new") == 404
        with Load(gw.port) as load:
            time.sleep(0.3)
            gw.write_config(_config(upstream.url, "/load", "/new"))
            started = time.monotonic()
            gw.signal(signal.SIGHUP)
            assert gw.wait_for_line("reload done", 15.0)
            took = time.monotonic() - started
            time.sleep(0.3)
        after = gw.status()
        assert _get(gw, "/new") == 200
    old_pids = {w["pid"] for w in before["workers"] if w["id"]}
    new = [w for w in after["workers"] if w["state"] == "ready"]
    assert len(new) == 2
    assert not old_pids & {w["pid"] for w in new}
    assert {w["generation"] for w in new} == {2}
    assert after["config"]["sha256"] != before["config"]["sha256"]
    during = load.between(started, started + took)
    print(
        f"\nreload (SIGHUP, 2 workers): {took:.2f}s; {load.summary()}; "
        f"{len(during)} requests during the reload"
    )
    assert len(during) > 100
    for outcome in load.failures():
        print(f"  failed: thread {outcome.thread} +{outcome.started - started:.3f}s {outcome}")
    assert load.failures() == []


def test_invalid_config_keeps_the_old_one_serving(tmp_path, upstream) -> None:
    with Cluster(_config(upstream.url, "/load"), tmp_path, workers=2) as gw:
        pids = {w["pid"] for w in gw.workers()}
        with Load(gw.port) as load:
            broken = gw.config_path.read_text().replace("service: up", "service: nowhere")
            gw.write_text(broken.replace("graceful_timeout: 5s", "graceful_timeout: soon"))
            gw.signal(signal.SIGHUP)
            assert gw.wait_for_line("reload refused", 5.0)
            result = gw.cli("reload")
            time.sleep(0.2)
        assert {w["pid"] for w in gw.workers()} == pids
        assert _get(gw, "/load") == 200
        log = gw.output()
    assert load.failures() == []
    config = str(gw.config_path)
    lines = gw.config_path.read_text().splitlines()
    duration = lines.index("  graceful_timeout: soon") + 1
    service_line = lines.index("  service: nowhere") + 1
    expected = [
        f"{config}:{duration}: gateway.graceful_timeout: invalid duration 'soon'",
        f"{config}:{service_line}: routes.0.service: unknown service 'nowhere'",
    ]
    for line in expected:
        assert line in log  # every problem is logged by the supervisor
        assert line in result.stderr  # and printed by `propylon reload`
    assert result.returncode == 1
    assert "the config is invalid; still serving the previous one" in result.stderr
    assert "Traceback" not in result.stderr + log


def test_propylon_reload_reports_success(tmp_path, upstream) -> None:
    with Cluster(_config(upstream.url, "/load"), tmp_path, workers=1) as gw:
        gw.write_config(_config(upstream.url, "/load", "/new"))
        result = gw.cli("reload")
        assert result.returncode == 0, result.stderr
        assert "reloaded: every worker runs the new config" in result.stdout
        assert _get(gw, "/new") == 200
        assert gw.status()["config"]["generation"] == 2


def test_propylon_stop_drains_and_exits_0(tmp_path, upstream) -> None:
    with Cluster(_config(upstream.url, "/load"), tmp_path, workers=2) as gw:
        pids = [w["pid"] for w in gw.workers()]
        result = gw.cli("stop", "--wait", "--timeout", "10")
        assert result.returncode == 0, result.stderr
        assert "propylon: stopped" in result.stdout
        assert gw.wait(5) == 0
        assert "admin stop: draining the workers" in gw.output()
    assert wait_until(lambda: all(_gone(pid) for pid in pids), 2.0)


def _gone(pid: int) -> bool:
    return not pid_alive(pid)
