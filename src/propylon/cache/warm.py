"""Cache warming: fetch ``cache.warm`` paths through the gateway itself.

Each path is a real HTTP/1.1 GET, sent over a socket pair straight into
this worker's own data plane (the same connection class the listener uses),
so it takes the whole path a client request takes (routing, plugins, the
upstream, the cache's store rules) and lands in *this* worker's memory
store; through the shared listener it could land in any worker. Runs as a
background task at start-up, which is also after every reload (a reload
starts new workers). A bare path is sent with ``Host: localhost``; write
``http://api.example.com/path`` to warm the entries of the host clients use.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

log = logging.getLogger("propylon.cache")

_TIMEOUT = 30.0  # per path
_HEADER = b"x-propylon-warm"


def warm_request(entry: str) -> bytes:
    if entry.startswith("/"):
        host, target = "localhost", entry
    else:
        parts = urlsplit(entry)
        host = parts.netloc
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (
        f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: propylon-cache-warmer\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")


async def warm(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Callable[[], asyncio.Protocol],
    entries: list[str],
) -> int:
    """Fetch every entry; the number answered 2xx."""
    done = 0
    for entry in entries:
        try:
            status = await asyncio.wait_for(_fetch(loop, protocol_factory, entry), _TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            log.warning("warming %s failed: %s", entry, exc or "timed out")
            continue
        if 200 <= status < 300:
            done += 1
        else:
            log.warning("warming %s: the gateway answered %d", entry, status)
    if entries:
        log.info("cache warmed: %d of %d paths", done, len(entries))
    return done


async def _fetch(
    loop: asyncio.AbstractEventLoop, protocol_factory: Callable[[], asyncio.Protocol], entry: str
) -> int:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    try:
        await loop.connect_accepted_socket(protocol_factory, theirs)
    except BaseException:
        ours.close()
        theirs.close()
        raise
    reader, writer = await asyncio.open_connection(sock=ours)
    try:
        writer.write(warm_request(entry))
        status_line = await reader.readline()
        await reader.read()  # until the gateway closes (Connection: close)
    finally:
        writer.close()
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError(f"no HTTP answer ({status_line[:40]!r})")
    return int(parts[1])
