"""A stored response, and its one-value form for Redis (metadata, then the body)."""

from __future__ import annotations

import struct
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
        """One value: a fixed header (magic, status, times, head length), the
        header lines, the body. Binary because Redis hits decode it each time
        (a JSON line cost 4 us; this about 1)."""
        head = b"".join([b"%s:%s\r\n" % header for header in self.headers])
        fixed = _FIXED.pack(
            _MAGIC, self.status, self.stored_at, self.fresh_until, self.stale_until, len(head)
        )
        return fixed + head + self.body

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        """The inverse of encode(); ValueError when the value is not one."""
        try:
            magic, status, stored_at, fresh_until, stale_until, size = _FIXED.unpack_from(data)
        except struct.error:
            raise ValueError("not a cache entry") from None
        start = _FIXED.size
        if magic != _MAGIC or start + size > len(data):
            raise ValueError("not a cache entry")
        head = data[start : start + size]
        headers = [_split(line) for line in head.split(b"\r\n")[:-1]]
        return cls(status, headers, data[start + size :], stored_at, fresh_until, stale_until)


def _split(line: bytes) -> Header:
    name, _, value = line.partition(b":")
    return name, value


_MAGIC = b"PCE1"  # propylon cache entry, format 1
_FIXED = struct.Struct("<4sHdddI")
