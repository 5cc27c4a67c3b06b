"""Blue-green, canary and breaker control through the admin API of a
running cluster: every worker follows, and bad requests are problems."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cluster import TOKEN, Cluster
from tests.support.gateway import route
from tests.support.upstream import Upstream

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _blue_green(workdir: Path, blue: Upstream, green: Upstream) -> Cluster:
    config: dict[str, Any] = {
        "services": {
            "api": {
                "targets": [
                    {"url": blue.url, "id": "blue", "weight": 100},
                    {"url": green.url, "id": "green", "weight": 0},
                ]
            }
        },
        "routes": [route("api", "/", "api")],
    }
    return Cluster(config, workdir, workers=2)


@pytest.fixture
def blue_green(
    tmp_path: Path, make_upstream: Callable[[], Upstream]
) -> Iterator[tuple[Cluster, Upstream, Upstream]]:
    """A cluster of its own, for tests that change it."""
    blue, green = make_upstream(), make_upstream()
    with _blue_green(tmp_path, blue, green) as gw:
        yield gw, blue, green


@pytest.fixture(scope="module")
def untouched(tmp_path_factory: pytest.TempPathFactory, bg: Any) -> Iterator[Cluster]:
    """One cluster for the tests that only look, or whose changes are refused."""
    blue, green = Upstream(), Upstream()
    bg.run(blue.start())
    bg.run(green.start())
    with _blue_green(tmp_path_factory.mktemp("services"), blue, green) as gw:
        yield gw
    bg.run(blue.stop())
    bg.run(green.stop())


def admin(gw: Cluster, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
    return httpx.request(method, gw.admin_url + path, json=body, headers=AUTH, timeout=10, **kw)


def spread(gw: Cluster, count: int = 40) -> None:
    # A new connection each time, so both workers serve some of them.
    for _ in range(count):
        assert httpx.get(gw.url + "/x", headers={"Connection": "close"}).status_code == 200


def test_the_services_view_merges_every_worker(untouched: Cluster) -> None:
    gw = untouched
    response = admin(gw, "GET", "/admin/services")
    assert response.status_code == 200
    body = response.json()
    assert body["workers"] == 2
    (api,) = body["services"]
    assert api["name"] == "api"
    assert [(t["id"], t["weight"], t["draining"]) for t in api["targets"]] == [
        ("blue", 100, False),
        ("green", 0, False),
    ]
    assert api["circuit_breaker"]["workers"] == ["CLOSED", "CLOSED"]
    assert admin(gw, "GET", "/admin/services/api").json()["name"] == "api"
    missing = admin(gw, "GET", "/admin/services/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_switching_blue_to_green_moves_all_traffic(
    blue_green: tuple[Cluster, Upstream, Upstream],
) -> None:
    gw, blue, green = blue_green
    spread(gw)
    assert green.requests == []
    # Canary: some weight on green, then the switch, then drain blue.
    response = admin(gw, "PATCH", "/admin/services/api/targets/green", {"weight": 100})
    assert response.status_code == 200
    assert response.json()["workers"] == 2
    response = admin(gw, "PATCH", "/admin/services/api/targets/blue", {"drain": True})
    assert response.status_code == 200
    targets = {t["id"]: t for t in response.json()["targets"]}
    assert targets["blue"]["draining"] is True
    assert targets["green"]["weight"] == 100
    before = len(blue.requests)
    spread(gw)
    assert len(blue.requests) == before  # no worker sends anything to blue
    assert len(green.requests) == 40


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/admin/services/api/targets/green", {"weight": 1001}, 422),
        ("/admin/services/api/targets/green", {"weight": "10"}, 422),
        ("/admin/services/api/targets/green", {"weight": True}, 422),
        ("/admin/services/api/targets/green", {"drain": "yes"}, 422),
        ("/admin/services/api/targets/green", {"colour": "red"}, 422),
        ("/admin/services/api/targets/green", {}, 422),
        ("/admin/services/api/targets/green", [1], 400),
        ("/admin/services/api/targets/purple", {"weight": 1}, 404),
        ("/admin/services/nope/targets/green", {"weight": 1}, 404),
    ],
)
def test_bad_changes_are_refused(untouched: Cluster, path: str, body: Any, status: int) -> None:
    gw = untouched
    response = admin(gw, "PATCH", path, body)
    assert response.status_code == status
    problem = response.json()
    assert problem["status"] == status
    assert set(problem) >= {"type", "title", "detail", "request_id"}
    view = admin(gw, "GET", "/admin/services/api").json()
    assert [t["weight"] for t in view["targets"]] == [100, 0]  # nothing changed


def test_a_tripped_breaker_fails_fast_everywhere_until_reset(
    blue_green: tuple[Cluster, Upstream, Upstream],
) -> None:
    gw, blue, _green = blue_green
    response = admin(gw, "POST", "/admin/services/api/breaker", {"action": "trip"})
    assert response.status_code == 200
    assert response.json()["circuit_breaker"]["workers"] == ["OPEN", "OPEN"]
    before = len(blue.requests)
    statuses = [
        httpx.get(gw.url + "/x", headers={"Connection": "close"}).status_code for _ in range(20)
    ]
    assert statuses == [503] * 20
    assert len(blue.requests) == before
    response = admin(gw, "POST", "/admin/services/api/breaker", {"action": "reset"})
    assert response.json()["circuit_breaker"]["workers"] == ["CLOSED", "CLOSED"]
    spread(gw, 10)
    bad = admin(gw, "POST", "/admin/services/api/breaker", {"action": "explode"})
    assert bad.status_code == 422
