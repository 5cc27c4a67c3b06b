"""The memory store: one byte-bounded LRU per worker, with a path index.

Every entry's size (key, headers, body, bookkeeping) counts against
``max_bytes``; storing evicts the least recently used entries until the new
one fits, and an entry larger than the whole bound is never stored. The
index maps each normalised path to its keys (every query and vary variant),
so invalidating ``/api/tickets`` touches only its entries.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from propylon.cache.entry import Entry
from propylon.cache.keys import key_path, key_route
from propylon.cache.stats import CacheStats


class MemoryStore:
    def __init__(self, max_bytes: int, stats: CacheStats) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.stats = stats
        self._entries: OrderedDict[str, tuple[Entry, int]] = OrderedDict()
        self._by_path: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> Entry | None:
        """A fresh or stale entry (the caller tells them apart), or None."""
        found = self._entries.get(key)
        if found is None:
            return None
        entry = found[0]
        if now >= entry.stale_until:
            self.delete(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry) -> bool:
        size = entry.size(key)
        if size > self.max_bytes:
            return False
        self.delete(key)
        while self.bytes + size > self.max_bytes:
            old_key = next(iter(self._entries))
            self.delete(old_key)
            self.stats.route(key_route(old_key)).evictions += 1
        self._entries[key] = (entry, size)
        self.bytes += size
        path = key_path(key)
        self._by_path.setdefault(path, set()).add(key)
        stats = self.stats.route(key_route(key))
        stats.keys += 1
        stats.bytes += size
        return True

    def delete(self, key: str) -> bool:
        found = self._entries.pop(key, None)
        if found is None:
            return False
        size = found[1]
        self.bytes -= size
        path = key_path(key)
        keys = self._by_path.get(path)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_path[path]
        stats = self.stats.route(key_route(key))
        stats.keys -= 1
        stats.bytes -= size
        return True

    def delete_matching(self, path_matches: Callable[[str], bool], route: str | None) -> int:
        """Delete the entries whose path matches (of one route, or of all)."""
        doomed = [
            key
            for path, keys in self._by_path.items()
            if path_matches(path)
            for key in keys
            if route is None or key_route(key) == route
        ]
        for key in doomed:
            self.delete(key)
        return len(doomed)

    def clear(self) -> int:
        count = len(self._entries)
        for key in list(self._entries):
            self.delete(key)
        return count
