"""A stored response, and its one-value form for Redis (metadata, then the body)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from propylon.server.http import Header

_OVERHEAD = 160  # the Entry object, its dict slot and its LRU links, roughly


@dataclass(slots=True)
class Entry:
    status: int
    headers: list[Header]  # as the client got them, less per-response fields
    body: bytes
    stored_at: float  # wall-clock seconds: entries in Redis outlive processes
    fresh_until: float
    stale_until: float  # fresh_until + the route's stale_ttl

    def size(self, key: str) -> int:
        """Bytes this entry holds in memory, for the LRU bound."""
        headers = sum(len(name) + len(value) + 16 for name, value in self.headers)
        return _OVERHEAD + len(key) + headers + len(self.body)

    def encode(self) -> bytes:
        meta = {
            "s": self.status,
            "h": [
                [name.decode("latin-1"), value.decode("latin-1")] for name, value in self.headers
            ],
            "t": self.stored_at,
            "f": self.fresh_until,
            "x": self.stale_until,
        }
        return json.dumps(meta, separators=(",", ":")).encode() + b"\n" + self.body

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        """The inverse of encode(); ValueError when the value is not one."""
        meta_bytes, sep, body = data.partition(b"\n")
        if not sep:
            raise ValueError("not a cache entry")
        try:
            meta = json.loads(meta_bytes)
            headers = [(str(n).encode("latin-1"), str(v).encode("latin-1")) for n, v in meta["h"]]
            return cls(
                int(meta["s"]), headers, body, float(meta["t"]), float(meta["f"]), float(meta["x"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a cache entry: {exc}") from None
