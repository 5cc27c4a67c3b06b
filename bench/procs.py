"""Child processes of the benchmark: each in its own process group, pinned, cleaned up."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

READY_TIMEOUT_S = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A setup or measurement failure, reported as one line without a traceback."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Processes:
    """Children started in their own process groups, so one killpg takes each tree."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # Catch workers whose master exited without taking them along.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def run(self, argv: list[str], log: Path, timeout: float) -> int:
        """Run a short-lived child (wrk) to completion; close() kills it if we are interrupted."""
        proc = self.spawn(argv, log)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(
                f"{' '.join(argv)} still running after {timeout:.0f}s; see {log}"
            ) from None
        self._procs.remove(proc)
        return code

    def close(self) -> None:
        for proc in reversed(self._procs):
            self.stop(proc)
        self._procs.clear()


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    requests: int = 0  # served so far, warm-ups included, for the RSS check

    def group(self) -> list[int]:
        """Pids in this server's process group (taskset execs, so the leader is the server)."""
        pids: list[int] = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    stat = (entry / "stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[2]) == self.proc.pid:
                        pids.append(int(entry.name))
        return sorted(pids)

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.group():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime + stime
        return total / CLOCK_TICKS

    def log_tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join("    " + line for line in text.splitlines()[-lines:])


def wait_ready(server: Server, timeout: float = READY_TIMEOUT_S) -> None:
    """Return once the server answers GET / with 200; fail fast if it exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        code = server.proc.poll()
        if code is not None:
            raise BenchError(
                f"case {server.name!r} exited with code {code} before it was ready;"
                f" its output ends:\n{server.log_tail()}"
            )
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
        try:
            conn.request("GET", "/")
            status = conn.getresponse().status
            if status == 200:
                return
            last = f"status {status}"
        except OSError as exc:
            last = str(exc)
        finally:
            conn.close()
        time.sleep(0.1)
    raise BenchError(
        f"case {server.name!r} not ready on port {server.port} after {timeout:.0f}s ({last});"
        f" its output ends:\n{server.log_tail()}"
    )


def start_server(
    procs: Processes, name: str, argv: list[str], cpu: str, port: int, workdir: Path
) -> Server:
    log = workdir / f"{name}.log"
    return Server(name, port, procs.spawn(["taskset", "-c", cpu, *argv], log), log)


def rss_mb(server: Server) -> dict[str, float]:
    """VmRSS of every process in the server's group, keyed "pid comm"."""
    out: dict[str, float] = {}
    for pid in server.group():
        with contextlib.suppress(OSError):
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            status = Path(f"/proc/{pid}/status").read_text()
            kb = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
            if kb:
                out[f"{pid} {comm}"] = int(kb.group(1)) / 1024
    return out


def cpu_ticks() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per CPU: shows when a run lost its cores to something else."""
    ticks: dict[str, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            nums = [int(v) for v in values[:8]]  # guest time is already inside user
            ticks[name] = (sum(nums) - nums[3] - nums[4], sum(nums))  # minus idle, iowait
    return ticks


def busy_share(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], cpu: str
) -> float:
    busy = after[cpu][0] - before[cpu][0]
    total = after[cpu][1] - before[cpu][1]
    return busy / total if total else 0.0
