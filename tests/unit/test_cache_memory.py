"""The memory store: an LRU that never holds more bytes than its bound."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from propylon.cache.entry import Entry
from propylon.cache.keys import build_key
from propylon.cache.memory import MemoryStore
from propylon.cache.patterns import matcher
from propylon.cache.stats import CacheStats

NOW = 1_000_000.0


def entry(size: int, fresh: float = 60.0) -> Entry:
    return Entry(
        200, [(b"content-type", b"text/plain")], b"x" * size, NOW, NOW + fresh, NOW + fresh
    )


def key(n: int) -> str:
    return build_key("r", "h", f"/p/{n}", "")


operations = st.lists(
    st.tuples(st.sampled_from(["put", "get", "delete"]), st.integers(0, 20), st.integers(0, 3000)),
    max_size=80,
)


@settings(max_examples=200)
@given(st.integers(1024, 16_384), operations)
def test_the_store_never_exceeds_its_bound_and_tracks_its_bytes(bound, ops) -> None:
    stats = CacheStats()
    store = MemoryStore(bound, stats)
    model: dict[str, int] = {}  # key -> size, in recency order
    for op, n, size in ops:
        k = key(n)
        if op == "put":
            e = entry(size)
            stored = store.put(k, e)
            assert stored == (e.size(k) <= bound)
            if stored:
                model.pop(k, None)
                while sum(model.values()) + e.size(k) > bound:
                    del model[next(iter(model))]  # the least recently used goes first
                model[k] = e.size(k)
        elif op == "get":
            found = store.get(k, NOW)
            assert (found is not None) == (k in model)
            if k in model:
                model[k] = model.pop(k)
        else:
            assert store.delete(k) == (model.pop(k, None) is not None)
        assert store.bytes == sum(model.values()) <= bound
        assert len(store) == len(model)
    route = stats.route("r")
    assert (route.keys, route.bytes) == (len(model), store.bytes)


def test_the_least_recently_used_entry_goes_first() -> None:
    one = entry(100)
    store = MemoryStore(3 * one.size(key(0)) + 10, CacheStats())
    for n in range(3):
        store.put(key(n), entry(100))
    store.get(key(0), NOW)  # now 1 is the oldest
    store.put(key(3), entry(100))
    assert store.get(key(1), NOW) is None
    assert store.get(key(0), NOW) is not None
    assert store.stats.route("r").evictions == 1


def test_an_entry_past_its_stale_window_is_gone() -> None:
    store = MemoryStore(100_000, CacheStats())
    store.put(key(1), entry(10, fresh=5))
    assert store.get(key(1), NOW + 4) is not None
    assert store.get(key(1), NOW + 5) is None
    assert len(store) == 0
    assert store.bytes == 0


def test_delete_matching_by_path_and_route() -> None:
    store = MemoryStore(100_000, CacheStats())
    for route in ("a", "b"):
        for path in ("/x", "/x/1", "/y"):
            store.put(build_key(route, "h", path, "q=1"), entry(1))
            store.put(build_key(route, "h", path, ""), entry(1))
    assert store.delete_matching(matcher(["/x", "/x/*"]), "a") == 4
    assert store.delete_matching(matcher(["/x*"]), None) == 4
    assert len(store) == 4
    assert store.clear() == 4


header_names = st.from_regex(rb"\A[a-z0-9-]{1,12}\Z")
header_values = st.binary(max_size=20).filter(lambda v: b"\r" not in v and b"\n" not in v)


@given(
    st.integers(200, 599),
    st.lists(st.tuples(header_names, header_values), max_size=6),
    st.binary(max_size=300),
    st.floats(0, 2e9),
)
def test_an_entry_survives_its_redis_encoding(status, headers, body, stored_at) -> None:
    original = Entry(status, headers, body, stored_at, stored_at + 1, stored_at + 2)
    assert Entry.decode(original.encode()) == original


@pytest.mark.parametrize("junk", [b"", b"PCE1", b"{}\nbody", b"XXXX" + b"\0" * 40])
def test_a_value_that_is_not_an_entry_is_refused(junk) -> None:
    with pytest.raises(ValueError, match="not a cache entry"):
        Entry.decode(junk)
