"""The memory cache in a cluster: each worker has its own entries, and
invalidations and purges reach all of them (EventHub, supervisor channel)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.cache import cache_config
from tests.support.cache_upstream import CacheUpstream
from tests.support.cluster import TOKEN, Cluster


@pytest.fixture(scope="module")
def origin_m(bg: Any) -> Iterator[CacheUpstream]:
    server = CacheUpstream()
    bg.run(server.start())
    yield server
    bg.run(server.stop())


@pytest.fixture(scope="module")
def cluster(origin_m: CacheUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(cache_config(origin_m.url), tmp_path_factory.mktemp("cache"), workers=2) as gw:
        yield gw


def fresh_get(cluster: Cluster, path: str) -> httpx.Response:
    # A new connection each time, so the kernel may hand it to either worker.
    return httpx.get(cluster.url + path, headers={"Connection": "close"}, timeout=10)


def fill_both_workers(cluster: Cluster, origin: CacheUpstream, path: str) -> None:
    """Until both workers missed once (each now holds an entry)."""
    for _ in range(400):
        fresh_get(cluster, path)
        if origin.hits[path] >= 2:
            return
    pytest.skip("the kernel sent every connection to one worker")


def purge(cluster: Cluster, body: Any) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        cluster.admin_url + "/admin/cache/purge",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def no_old_answers(cluster: Cluster, origin: CacheUpstream, path: str, before: int) -> None:
    for _ in range(40):
        assert fresh_get(cluster, path).json()["serial"] > before


def test_a_write_on_one_worker_evicts_the_entries_of_every_worker(cluster, origin_m) -> None:
    fill_both_workers(cluster, origin_m, "/items/9")
    before = origin_m.hits["/items/9"]
    assert httpx.put(cluster.url + "/items/9").status_code == 200
    no_old_answers(cluster, origin_m, "/items/9", before)


def test_the_admin_purge_reaches_every_worker(cluster, origin_m) -> None:
    fill_both_workers(cluster, origin_m, "/items/p")
    before = origin_m.hits["/items/p"]
    code, body = purge(cluster, {"pattern": "/items/p*"})
    assert code == 200, body
    assert body["result"] == "purged"
    assert body["workers"] == 2
    assert body["purged"] == 2
    no_old_answers(cluster, origin_m, "/items/p", before)


def test_the_cli_purges_through_the_admin_api(cluster, origin_m) -> None:
    fill_both_workers(cluster, origin_m, "/items/cli")
    before = origin_m.hits["/items/cli"]
    done = cluster.cli("cache", "purge", "--route", "items")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("purged ")
    no_old_answers(cluster, origin_m, "/items/cli", before)


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ([], 400, "JSON object"),
        ({}, 422, "give a"),
        ({"pattern": 3}, 422, "non-empty string"),
        ({"pattern": "items"}, 422, "starts with"),
        ({"everything": True}, 422, "takes"),
    ],
)
def test_a_bad_purge_request_is_a_problem(cluster, body, status, detail) -> None:
    code, answer = purge(cluster, body)
    assert code == status
    assert detail in answer["detail"]
    assert answer["status"] == status
