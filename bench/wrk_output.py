"""wrk's text output, parsed into one Run per measured run."""

from __future__ import annotations

import re
from dataclasses import dataclass

from procs import BenchError


@dataclass
class Run:
    case: str
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    socket_errors: int
    non_2xx: int
    # Share of one core used during the run, and CPU time per request of the case.
    cpu_sut: float = 0.0
    cpu_upstream: float = 0.0
    cpu_wrk: float = 0.0
    sut_us_per_req: float = 0.0
    # Share of each core busy with anything at all, ours or not.
    busy_cpu0: float = 0.0
    busy_cpu1: float = 0.0

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx


UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(case: str, rnd: int, text: str) -> Run:
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, text, re.M)
        if match is None:
            raise BenchError(f"case {case!r}: no {pattern!r} in wrk output:\n{text}")
        return match

    def latency(pct: str) -> float:
        match = find(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m|h)$")
        return float(match.group(1)) * UNIT_MS[match.group(2)]

    sock = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return Run(
        case=case,
        round=rnd,
        rps=float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        requests=int(find(r"^\s+(\d+) requests in").group(1)),
        socket_errors=sum(int(n) for n in sock.groups()) if sock else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )
