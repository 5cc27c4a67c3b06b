"""Request collapsing: concurrent misses for one key make one upstream request.

The first miss *leads*: it goes upstream and lands the flight with the entry
it stored, or with None when the response could not be stored (or the
exchange failed). Later misses wait for the landing, at most ``wait``
seconds; with None or after the wait they go upstream themselves.
Collapsing is per worker (with the Redis backend, other workers and nodes
may each make one request).
"""

from __future__ import annotations

import asyncio

from propylon.cache.entry import Entry


class Flights:
    def __init__(self, wait: float) -> None:
        self.wait = wait
        self._flights: dict[str, asyncio.Future[Entry | None]] = {}

    def lead(self, key: str) -> bool:
        """True when no request for ``key`` is in flight: the caller leads one."""
        if key in self._flights:
            return False
        if self.wait:  # 0 turns collapsing off
            self._flights[key] = asyncio.get_running_loop().create_future()
        return True

    def in_flight(self, key: str) -> bool:
        return key in self._flights

    async def follow(self, key: str) -> Entry | None:
        """The leader's entry, or None (nothing stored, or waited too long)."""
        flight = self._flights.get(key)
        if flight is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(flight), self.wait)
        except TimeoutError:
            return None

    def land(self, key: str, entry: Entry | None) -> None:
        flight = self._flights.pop(key, None)
        if flight is not None and not flight.done():
            flight.set_result(entry)
