"""Network faults on loopback for the upstream-failure tests.

``closed_port`` gives a port nothing listens on (connect is refused);
``unaccepting_listener`` gives one whose accept queue is full, so a further
connect hangs in SYN retransmission until the caller gives up (Linux drops
SYNs to a listener with a full accept queue); ``cancel_handlers_on_disconnect``
makes the aiohttp test upstream cancel a handler when its client goes away,
which is what lets tests see that the gateway closed an upstream connection.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

from tests.support.upstream import Upstream


def closed_port() -> int:
    """A loopback port that was free a moment ago and has no listener."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def unaccepting_listener(fillers: int = 4) -> Iterator[int]:
    """Yield the port of a listener (backlog 0) whose accept queue is full."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    queued: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port: int = listener.getsockname()[1]
        for _ in range(fillers):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            queued.append(filler)
        # The queue must really be full, or the test would measure nothing.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.3)
            try:
                probe.connect(("127.0.0.1", port))
            except TimeoutError:
                pass
            else:
                raise RuntimeError("loopback accepted a connection beyond a full backlog")
        yield port
    finally:
        for filler in queued:
            filler.close()
        listener.close()


def cancel_handlers_on_disconnect(upstream: Upstream) -> Upstream:
    """Make aiohttp cancel a request handler when its connection is lost.

    aiohttp >= 3.9 no longer does this by default (``handler_cancellation``
    is False), so without it ``upstream.cancelled`` would never be filled.
    The server reads the flag when a connection is lost, so setting it on a
    running server takes effect for every later disconnect.
    """
    assert upstream.runner is not None
    assert upstream.runner.server is not None
    upstream.runner.server.handler_cancellation = True
    return upstream


def narrow_send_buffer(transport: object, size: int = 4096) -> None:
    """Emulate a slow link on one of the gateway's sockets.

    On loopback the kernel grows a socket's send buffer to megabytes, so a
    slow peer only fills it after a long time; over a real slow network the
    bytes in flight stay few. A small, fixed SO_SNDBUF brings that about at
    once, so a test can reach "the kernel is full, the transport buffers".
    """
    sock = transport.get_extra_info("socket")  # type: ignore[attr-defined]
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
