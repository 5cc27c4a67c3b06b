"""How long ``GET /metrics`` takes on a supervised gateway (the supervisor asks
every worker and merges): ``.venv/bin/python bench/scrape.py --workers 4``.

Starts ``propylon run --workers N`` with ``--routes`` routes in front of a
small local upstream, sends some traffic to every route so each worker has
series to report, then times ``--scrapes`` scrapes one after another.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

TOKEN = "bench-admin-token-0123456789"


class _Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--routes", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--scrapes", type=int, default=30)
    args = parser.parse_args()

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    admin_port = _free_port()
    config = {
        "gateway": {"listen": "127.0.0.1:0"},
        "admin": {"listen": f"127.0.0.1:{admin_port}", "token": TOKEN},
        "services": {"up": {"targets": [{"url": f"http://127.0.0.1:{upstream.server_port}"}]}},
        "routes": [
            {"name": f"r{i}", "match": {"path": f"/r{i}"}, "service": "up"}
            for i in range(args.routes)
        ],
    }
    workdir = Path(tempfile.mkdtemp(prefix="propylon-scrape-"))
    (workdir / "gateway.yaml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "propylon", "run", "-c", str(workdir / "gateway.yaml"),
         "--workers", str(args.workers)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        port = 0
        for line in process.stdout:
            match = re.search(r"listening on http://[\d.]+:(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        time.sleep(1.0)  # every worker ready
        for index in range(args.requests):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", f"/r{index % args.routes}/x")
            conn.getresponse().read()
            conn.close()
        timings, size = [], 0
        for _ in range(args.scrapes):
            conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=10)
            started = time.perf_counter()
            conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            response = conn.getresponse()
            body = response.read()
            timings.append((time.perf_counter() - started) * 1000)
            size = len(body)
            conn.close()
        timings.sort()
        p95 = timings[int(len(timings) * 0.95) - 1]
        print(
            f"/metrics with {args.workers} workers, {args.routes} routes: "
            f"median {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms, "
            f"max {timings[-1]:.1f} ms, {size} bytes ({args.scrapes} scrapes)"
        )
    finally:
        process.terminate()
        process.wait(20)
        upstream.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
