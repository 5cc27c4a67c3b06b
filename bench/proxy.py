"""Pass-through proxy benchmark: propylon against nginx in front of the same upstream.

CPU 0 holds the load generator (wrk) and the upstream nginx; CPU 1 holds only the
system under test, so each case gets one core and its RPS reads as "per core".
Cases run in interleaved rounds so that drift (thermal, noisy neighbours) hits
every case alike, and the median of the rounds is reported.

Stdlib only: it must run before the project's own dependencies are installed.
Run it through ``bench/run``, which installs wrk, nginx and the venv first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from procs import (
    BenchError,
    Processes,
    Server,
    busy_share,
    cpu_ticks,
    free_port,
    rss_mb,
    start_server,
    wait_ready,
)
from report import OTHER_WARN, other_cpu0, other_cpu1, print_table, summarize
from wrk_output import Run, parse_wrk

LOAD_CPU = "0"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
SUT_CPU = "1"
REPO = Path(__file__).resolve().parent.parent

# A fixed ~200-byte JSON body: small enough that the per-request overhead of
# the proxy, not byte copying, is what gets measured.
BODY = json.dumps(
    {
        "id": 4711,
        "service": "upstream",
        "status": "ok",
        "items": [{"sku": f"A-{n:04d}", "qty": n} for n in range(1, 5)],
        "note": "fixed body for the propylon pass-through benchmark",
    },
    separators=(",", ":"),
)

# keepalive_requests defaults to 1000; raise it so neither nginx closes the
# connections wrk or the proxy reuse, which propylon would not do either.
NGINX_HEAD = """\
worker_processes 1;
daemon off;
master_process on;
{user}
pid {prefix}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type application/json;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
"""

UPSTREAM_SERVER = """\
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 200 '{body}'; }}
    }}
}}
"""

PROXY_SERVER = """\
    upstream backend {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""

PROPYLON_CONFIG = """\
gateway:
  listen: 127.0.0.1:{port}
services:
  upstream:
    targets:
      - url: http://127.0.0.1:{upstream_port}
routes:
  - name: all
    match: {{path: /}}
    service: upstream
"""

# The same proxy with metrics off (the baseline of the observability cost) ...
PROPYLON_BARE = (
    PROPYLON_CONFIG
    + """\
admin: {{enabled: false}}
metrics: {{enabled: false}}
"""
)
# ... and with metrics and a JSON access log to a file (target: >= 0.9 x bare).
PROPYLON_OBSERVED = (
    PROPYLON_CONFIG
    + """\
admin: {{listen: "127.0.0.1:0"}}
logging:
  directory: {workdir}/propylon-observed/logs
"""
)
# A limit so high that it never rejects: the cases measure the cost of the
# decision (memory, or one Redis script call per request), not of 429s.
PROPYLON_RATELIMIT = """\
gateway:
  listen: 127.0.0.1:{port}
{redis}rate_limits:
  backend: {backend}
  global: 100000000/1m
  failed_login: false
services:
  upstream:
    targets:
      - url: http://127.0.0.1:{upstream_port}
routes:
  - name: all
    match: {{path: /}}
    service: upstream
"""


@dataclass(frozen=True)
class Env:
    """What a case needs to write its config and build its command line."""

    workdir: Path
    upstream_port: int
    propylon: Path
    redis_url: str = ""


def nginx_argv(prefix: Path, body: str) -> list[str]:
    prefix.mkdir(parents=True)
    # As root the workers would drop to "nobody", who cannot enter the 0700 tempdir.
    user = "user root;" if os.geteuid() == 0 else ""
    conf = NGINX_HEAD.format(user=user, prefix=prefix) + body
    (prefix / "nginx.conf").write_text(conf)
    # -e: nginx would open its compiled-in error log before reading the config.
    return ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr"]


def nginx_case(env: Env, port: int) -> list[str]:
    body = PROXY_SERVER.format(port=port, upstream_port=env.upstream_port)
    return nginx_argv(env.workdir / "nginx-proxy", body)


PROPYLON_TWO_TARGETS = """\
gateway:
  listen: 127.0.0.1:{port}
services:
  upstream:
    balance: round_robin
    targets:
      - {{url: "http://127.0.0.1:{upstream_port}", id: a}}
      - {{url: "http://127.0.0.1:{upstream_port}", id: b}}
routes:
  - name: all
    match: {{path: /}}
    service: upstream
"""


def propylon_with(name: str, template: str) -> Callable[[Env, int], list[str]]:
    """A propylon case serving ``template`` (formatted with port and upstream_port)."""

    def case(env: Env, port: int) -> list[str]:
        config = env.workdir / name / "gateway.yaml"
        config.parent.mkdir(parents=True)
        config.write_text(
            template.format(port=port, upstream_port=env.upstream_port, workdir=env.workdir)
        )
        return [str(env.propylon), "run", "-c", str(config), "--listen", f"127.0.0.1:{port}"]

    return case


propylon_case = propylon_with("propylon", PROPYLON_CONFIG)

# The same route with its GETs cached: after the first request every one is
# a HIT answered without an upstream trip (docs/caching.md). In Redis the
# entry and its index expire 5 minutes after the run.
PROPYLON_CACHE = """\
gateway:
  listen: 127.0.0.1:{port}
{redis}cache:
  backend: {backend}
services:
  upstream:
    targets:
      - url: http://127.0.0.1:{upstream_port}
routes:
  - name: all
    match: {{path: /}}
    service: upstream
    cache: {{ttl: 5m}}
"""


def propylon_cache(backend: str) -> Callable[[Env, int], list[str]]:
    def case(env: Env, port: int) -> list[str]:
        redis = ""
        if backend == "redis":
            prefix = f"propylon-bench-{os.getpid()}:"
            redis = f"redis:\n  url: {env.redis_url}\n  key_prefix: '{prefix}'\n"
        template = PROPYLON_CACHE.replace("{redis}", redis).replace("{backend}", backend)
        return propylon_with(f"propylon-cache-{backend}", template)(env, port)

    return case


def propylon_ratelimit(backend: str) -> Callable[[Env, int], list[str]]:
    name = f"propylon-ratelimit-{backend}"

    def case(env: Env, port: int) -> list[str]:
        redis = f"redis:\n  url: {env.redis_url}\n" if backend == "redis" else ""
        config = env.workdir / name / "gateway.yaml"
        config.parent.mkdir(parents=True)
        text = PROPYLON_RATELIMIT.format(
            port=port, upstream_port=env.upstream_port, redis=redis, backend=backend
        )
        config.write_text(text)
        return [str(env.propylon), "run", "-c", str(config), "--listen", f"127.0.0.1:{port}"]

    return case


# Systems under test, in the order each round runs them. A new case (say
# propylon-jwt) is a function that writes its config and returns its argv.
CASES: dict[str, Callable[[Env, int], list[str]]] = {
    "nginx": nginx_case,
    "propylon": propylon_case,
    # Two pooled targets (same upstream) behind smooth weighted round robin.
    "propylon-2targets": propylon_with("propylon-2targets", PROPYLON_TWO_TARGETS),
    "propylon-bare": propylon_with("propylon-bare", PROPYLON_BARE),
    "propylon-observed": propylon_with("propylon-observed", PROPYLON_OBSERVED),
    # A route whose GETs are cached: memory LRU, or Redis at --redis-url.
    "propylon-cache-memory": propylon_cache("memory"),
    "propylon-cache-redis": propylon_cache("redis"),
    # A never-rejecting global per-IP limit, decided in memory or by Redis.
    "propylon-ratelimit-memory": propylon_ratelimit("memory"),
    "propylon-ratelimit-redis": propylon_ratelimit("redis"),
}


class Bench:
    def __init__(self, args: argparse.Namespace, procs: Processes, workdir: Path) -> None:
        self.args = args
        self.procs = procs
        self.workdir = workdir
        self.upstream: Server | None = None
        self.wrk_runs = 0

    def wrk(self, server: Server, seconds: int, rnd: int) -> Run:
        """One pinned wrk run, with the CPU each party used while it ran."""
        self.wrk_runs += 1
        log = self.workdir / f"wrk-{self.wrk_runs:03d}-{server.name}.log"
        conns = self.args.connections
        url = f"http://127.0.0.1:{server.port}/"
        pin = ["taskset", "-c", LOAD_CPU]
        argv = [*pin, "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", url]
        assert self.upstream is not None
        sut0, up0 = server.cpu_seconds(), self.upstream.cpu_seconds()
        # wrk is our only child that gets reaped in between, so this delta is wrk's CPU.
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        ticks0 = cpu_ticks()
        t0 = time.monotonic()
        code = self.procs.run(argv, log, timeout=seconds + 60)
        wall = time.monotonic() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        ticks1 = cpu_ticks()
        text = log.read_text(errors="replace")
        if code != 0:
            raise BenchError(f"case {server.name!r}: wrk exited with {code}:\n{text}")
        run = parse_wrk(server.name, rnd, text)
        server.requests += run.requests
        sut = server.cpu_seconds() - sut0
        run.cpu_sut = sut / wall
        run.cpu_upstream = (self.upstream.cpu_seconds() - up0) / wall
        run.cpu_wrk = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / wall
        run.sut_us_per_req = sut / max(run.requests, 1) * 1e6
        run.busy_cpu0 = busy_share(ticks0, ticks1, "cpu" + LOAD_CPU)
        run.busy_cpu1 = busy_share(ticks0, ticks1, "cpu" + SUT_CPU)
        return run

    def start(self, env: Env) -> list[Server]:
        up_argv = nginx_argv(
            self.workdir / "upstream", UPSTREAM_SERVER.format(port=env.upstream_port, body=BODY)
        )
        self.upstream = start_server(
            self.procs, "upstream", up_argv, LOAD_CPU, env.upstream_port, self.workdir
        )
        wait_ready(self.upstream)
        servers = []
        for name in self.args.case:
            port = free_port()
            argv = CASES[name](env, port)
            servers.append(start_server(self.procs, name, argv, SUT_CPU, port, self.workdir))
        for server in servers:
            wait_ready(server)
        return servers

    def rounds(self, servers: list[Server]) -> list[Run]:
        for server in servers:
            if self.args.warmup > 0:
                run = self.wrk(server, self.args.warmup, 0)
                print(f"warm-up  {server.name:<14} {run.rps:>10,.0f} rps", flush=True)
        runs = []
        for rnd in range(1, self.args.rounds + 1):
            for server in servers:
                run = self.wrk(server, self.args.duration, rnd)
                runs.append(run)
                print(
                    f"round {rnd}  {run.case:<14} {run.rps:>10,.0f} rps  p50 {run.p50_ms:.2f} ms"
                    f"  p99 {run.p99_ms:.2f} ms  errors {run.errors}  cpu sut {run.cpu_sut:.0%}"
                    f" upstream {run.cpu_upstream:.0%} wrk {run.cpu_wrk:.0%}"
                    f" other cpu0 {other_cpu0(vars(run)):.0%} cpu1 {other_cpu1(vars(run)):.0%}",
                    flush=True,
                )
                if max(other_cpu0(vars(run)), other_cpu1(vars(run))) > OTHER_WARN:
                    print("  warning: something else was using the benchmark's cores", flush=True)
        return runs

    def rss(self, server: Server, target: int, rate: float) -> dict[str, float]:
        """Drive the server until it has served `target` requests in all, then read its RSS."""
        while server.requests < target:
            seconds = min(60, max(2, int((target - server.requests) / rate) + 1))
            run = self.wrk(server, seconds, -1)
            rate = max(run.rps, 1000.0)
            print(f"rss load {server.name:<14} {server.requests:>12,} requests", flush=True)
        return rss_mb(server)


def machine() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (out.stdout + out.stderr).strip().splitlines()[0]

    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model.group(1) if model else "unknown",
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "nginx": first_line(["nginx", "-v"]),
        "wrk": first_line(["wrk", "-v"]),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--case",
        action="append",
        choices=list(CASES),
        help="system under test; repeatable (default: all)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per case")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--json", type=Path, help="write runs and summary to this file")
    parser.add_argument(
        "--rss-requests",
        type=int,
        default=0,
        help="after the rounds, drive each case to N requests and print its RSS",
    )
    parser.add_argument("--propylon", type=Path, default=REPO / ".venv" / "bin" / "propylon")
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS,
        help="Redis for the -redis cases (rate limits, cache); when nothing answers at the "
        "default, a "
        "throwaway redis-server is started on CPU 0 (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    args.case = [c for c in CASES if c in (args.case or CASES)]
    return args


def preflight(args: argparse.Namespace) -> None:
    for tool in ("taskset", "nginx", "wrk"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not on PATH; run bench/run, which installs it")
    if not {0, 1} <= os.sched_getaffinity(0):
        raise BenchError("needs CPUs 0 and 1: one for wrk and the upstream, one for the case")
    if any(c.startswith("propylon") for c in args.case) and not os.access(args.propylon, os.X_OK):
        raise BenchError(f"case 'propylon': {args.propylon} is not executable")


def bench(args: argparse.Namespace, procs: Processes, workdir: Path) -> None:
    info = machine()
    print(", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    runner = Bench(args, procs, workdir)
    redis_url = ""
    if any(case.endswith("-redis") for case in args.case):
        redis_url = redis_for(args, procs, workdir)
    servers = runner.start(Env(workdir, free_port(), args.propylon, redis_url))
    rss_start = {s.name: rss_mb(s) for s in servers}
    runs = runner.rounds(servers)
    rows = summarize(runs, args.case)
    print_table(rows)
    rss: dict[str, dict[str, dict[str, float]]] = {}
    if args.rss_requests > 0:
        for server in servers:
            rate = next(float(r["rps"]) for r in rows if r["case"] == server.name)
            after = runner.rss(server, args.rss_requests, rate)
            rss[server.name] = {"start": rss_start[server.name], "after": after}
            for proc, mb in after.items():
                before = rss_start[server.name].get(proc, 0.0)
                print(
                    f"RSS {server.name} pid {proc}: {mb:.1f} MB after {server.requests:,}"
                    f" requests (at start {before:.1f} MB)"
                )
    if args.json:
        report = {
            "machine": info,
            "args": {k: str(v) for k, v in vars(args).items()},
            "runs": [asdict(r) for r in runs],
            "summary": rows,
            "rss_mb": rss,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def redis_answers(url: str) -> bool:
    """PING over a plain socket (stdlib only; no password or TLS support here)."""
    match = re.match(r"^redis://([^:/]+):(\d+)", url)
    if match is None:
        raise BenchError(f"--redis-url {url!r}: expected redis://HOST:PORT[/DB]")
    try:
        with socket.create_connection((match.group(1), int(match.group(2))), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_for(args: argparse.Namespace, procs: Processes, workdir: Path) -> str:
    if redis_answers(args.redis_url):
        return str(args.redis_url)
    if args.redis_url != DEFAULT_REDIS or shutil.which("redis-server") is None:
        raise BenchError(f"no Redis answers at {args.redis_url} (and no redis-server to start)")
    port = free_port()
    argv = ["taskset", "-c", LOAD_CPU, "redis-server", "--port", str(port)]
    argv += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    procs.spawn(argv, workdir / "redis.log")
    url = f"redis://127.0.0.1:{port}/15"
    deadline = time.monotonic() + 10
    while not redis_answers(url):
        if time.monotonic() > deadline:
            raise BenchError("the throwaway redis-server did not start")
        time.sleep(0.05)
    return url


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    # SIGTERM/SIGHUP unwind like Ctrl-C does, so the finally below still runs.
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    procs = Processes()
    try:
        preflight(args)
        with tempfile.TemporaryDirectory(prefix="propylon-bench-") as tmp:
            try:
                bench(args, procs, Path(tmp))
            finally:
                # A second Ctrl-C must not cut the clean-up short.
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
                procs.close()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
