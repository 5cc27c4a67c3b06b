"""Python-only cost of one proxied request: the data plane on fake transports.

No sockets, no kernel: a client connection and a pooled upstream connection
are fed canned bytes, so the number is the gateway's own per-request work.
Steadier than wrk on a shared machine; under callgrind it is exact:

    .venv/bin/python bench/hotpath.py            # microseconds per request
    .venv/bin/python bench/hotpath.py --plugins  # with cors + security_headers
    .venv/bin/python bench/hotpath.py --bare     # metrics off (metrics.enabled: false)
    .venv/bin/python bench/hotpath.py --observed # metrics + JSON access log to a file
    .venv/bin/python bench/hotpath.py --profile  # cProfile of 30k requests
    .venv/bin/python bench/hotpath.py --cache    # memory-cache hits (no upstream trip)
    N=2000 valgrind --tool=callgrind .venv/bin/python bench/hotpath.py   # instructions
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from typing import Any

import uvloop

from propylon.config.models import GatewayConfig
from propylon.observability import logs
from propylon.server.protocol import ClientConnection
from propylon.server.state import GatewayState
from propylon.server.upstream.connection import UpstreamConnection

REQUEST = b"GET /api/items?id=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n\r\n"
BODY = b'{"id":1,"name":"Alice Example","email":"alice@example.com","active":true}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 05:20:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: keep-alive\r\n\r\n%s"
    % (len(BODY), BODY)
)


class NullTransport:
    """Just enough of asyncio.Transport for the data plane."""

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def build(
    plugins: bool, cache: bool = False, bare: bool = False, log_dir: str | None = None
) -> tuple[ClientConnection, UpstreamConnection]:
    config: dict[str, Any] = {
        "services": {"up": {"targets": [{"url": "http://127.0.0.1:9"}]}},
        "routes": [{"name": "all", "match": {"path": "/"}, "service": "up"}],
    }
    if plugins:
        config["security_headers"] = {}
    if cache:
        config["routes"][0]["cache"] = {"ttl": "1h"}
    if bare:
        config["metrics"] = {"enabled": False}
    if log_dir is not None:
        config["logging"] = {"directory": log_dir}
    validated = GatewayConfig.model_validate(config)
    logs.configure(validated)
    state = GatewayState(validated, uvloop.new_event_loop())
    pool = state.services["up"].pools[0]
    upstream = UpstreamConnection(pool)
    upstream.connection_made(NullTransport())  # type: ignore[arg-type]
    pool.release(upstream)
    client = ClientConnection(state)
    client.connection_made(NullTransport())  # type: ignore[arg-type]
    return client, upstream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", action="store_true", help="enable security_headers")
    parser.add_argument("--profile", action="store_true", help="print a cProfile")
    parser.add_argument("--cache", action="store_true", help="a cached route: hits only")
    parser.add_argument("--bare", action="store_true", help="metrics.enabled: false")
    parser.add_argument("--observed", action="store_true", help="access log to a temp dir")
    args = parser.parse_args()
    log_dir = tempfile.mkdtemp(prefix="propylon-hotpath-") if args.observed else None
    client, upstream = build(args.plugins, args.cache, args.bare, log_dir)

    def one() -> None:
        client.data_received(REQUEST)
        upstream.data_received(RESPONSE)

    if args.cache:

        async def miss() -> None:  # stores the entry; every later request is a hit
            one()

        client.state.loop.run_until_complete(miss())

        def one() -> None:
            client.data_received(REQUEST)

    count = int(os.environ.get("N", "100000"))
    for _ in range(min(count, 2000)):
        one()
    started = time.perf_counter()
    for _ in range(count):
        one()
    elapsed = time.perf_counter() - started
    writer = logs.current()
    if writer is not None:
        while writer.figures()["queued"]:  # the writer thread's work is part of the cost
            time.sleep(0.001)
        elapsed = time.perf_counter() - started
        print(f"log writer: {writer.figures()}")
    print(f"{elapsed / max(count, 1) * 1e6:.2f} us per request (python only, N={count})")
    if args.profile:
        profile = cProfile.Profile()

        def many() -> None:
            for _ in range(30000):
                one()

        profile.runcall(many)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
