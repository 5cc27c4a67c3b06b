"""Reading and resetting keys: `propylon ratelimit show|reset` against Redis,
and the admin API (DELETE /admin/rate-limits/{key}) for the memory backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.cluster import Cluster
from tests.support.gateway import route, service


def limits(**extra: Any) -> dict[str, Any]:
    return {"global": "3/h", "failed_login": False, **extra}


def cli(config_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "propylon", "ratelimit", *args, "-c", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.redis
def test_show_and_reset_a_key_in_redis(
    gateway: Any, upstream: Any, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    config = {
        "services": {"up": service(upstream.url)},
        "redis": {"url": redis_url, "key_prefix": redis_prefix},
        "rate_limits": limits(),
        "routes": [route("api", "/api")],
    }
    gw = gateway(config)
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(yaml.safe_dump(config))
    with httpx.Client() as client:
        assert [client.get(gw.url + "/api").status_code for _ in range(4)] == [200] * 3 + [429]
        shown = cli(config_file, "show", "global:127.0.0.1")
        assert shown.returncode == 0, shown.stderr
        assert "global:127.0.0.1: 0 of 3 left" in shown.stdout
        assert "redis" in shown.stdout
        reset = cli(config_file, "reset", "global:127.0.0.1")
        assert reset.returncode == 0, reset.stderr
        assert "1 key(s) deleted" in reset.stdout
        response = client.get(gw.url + "/api")
        assert response.status_code == 200
        assert response.headers["ratelimit-remaining"] == "2"
        # A whole limit at once.
        client.get(gw.url + "/api")
        assert "1 key(s) deleted" in cli(config_file, "reset", "global").stdout
        assert client.get(gw.url + "/api").headers["ratelimit-remaining"] == "2"
    unknown = cli(config_file, "reset", "nosuch:1")
    assert unknown.returncode == 1
    assert "no rate limit is named 'nosuch'" in unknown.stderr


def test_memory_keys_are_reset_in_every_worker(tmp_path: Path, bg: Any) -> None:
    from tests.support.upstream import Upstream

    upstream = Upstream()
    bg.run(upstream.start())
    config = {
        "services": {"up": service(upstream.url)},
        "rate_limits": limits(),
        "routes": [route("api", "/api")],
    }
    try:
        with Cluster(config, tmp_path, workers=2) as gw:
            # Each worker has its own buckets; fresh connections go to either.
            statuses = [httpx.get(gw.url + "/api").status_code for _ in range(12)]
            assert 429 in statuses
            code, body = gw.admin("GET", "/admin/rate-limits/global:127.0.0.1")
            assert code == 200, body
            assert body["backend"] == "memory"
            assert len(body["workers"]) == 2
            used = 6 - sum(w["remaining"] for w in body["workers"])
            assert used == statuses.count(200)
            code, body = gw.admin("DELETE", "/admin/rate-limits/global:127.0.0.1")
            assert code == 200, body
            assert body["workers"] == 2
            assert body["deleted"] >= 1
            code, body = gw.admin("GET", "/admin/rate-limits/global:127.0.0.1")
            assert {w["remaining"] for w in body["workers"]} == {3}
            assert httpx.get(gw.url + "/api").status_code == 200
            result = gw.cli("ratelimit", "reset", "global")
            assert result.returncode == 0, result.stderr
            assert "deleted" in result.stdout
            code, body = gw.admin("DELETE", "/admin/rate-limits/nosuch")
            assert code == 404
            assert "no rate limit is named" in body["detail"]
    finally:
        bg.run(upstream.stop())


def test_a_memory_gateway_that_is_not_running_says_where_its_limits_live(
    tmp_path: Path,
) -> None:
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "services": {"up": service("http://127.0.0.1:9")},
                "rate_limits": limits(),
                "routes": [route("api", "/api")],
            }
        )
    )
    result = cli(config_file, "reset", "global:127.0.0.1")
    assert result.returncode == 1
    assert "in memory inside the running gateway" in result.stderr
    assert "Is the gateway running" in result.stderr


def test_a_single_process_serves_the_same_operations(tmp_path: Path, bg: Any) -> None:
    from tests.support.upstream import Upstream

    upstream = Upstream()
    bg.run(upstream.start())
    config = {
        "services": {"up": service(upstream.url)},
        "rate_limits": limits(),
        "routes": [route("api", "/api", cache={"ttl": "1m"})],
    }
    try:
        with Cluster(config, tmp_path, workers=0) as gw:
            statuses = [httpx.get(gw.url + f"/api/{i}").status_code for i in range(4)]
            assert statuses == [200, 200, 200, 429]
            result = gw.cli("ratelimit", "reset", "global:127.0.0.1")
            assert result.returncode == 0, result.stderr
            assert httpx.get(gw.url + "/api/x").status_code == 200
            code, body = gw.admin("GET", "/admin/rate-limits/global:127.0.0.1")
            assert code == 200, body
            assert [w["remaining"] for w in body["workers"]] == [2]
            purged = gw.cli("cache", "purge", "/api/*")
            assert purged.returncode == 0, purged.stderr
    finally:
        bg.run(upstream.stop())
