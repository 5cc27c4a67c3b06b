"""A real ``propylon run --workers N`` for tests, and a load client to run against it.

``Cluster`` writes the config, starts the supervisor, reads its output in
threads (so a chatty worker can never block on a full pipe) and talks to the
admin API. ``Load`` keeps requests going from threads and records every
outcome, so a test can count failures around an event (a kill, a reload).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from tests.support.gateway import _LISTENING, wait_until

TOKEN = "test-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Cluster:
    """The supervisor as a child process; ``with Cluster(...) as gw`` kills it afterwards."""

    def __init__(
        self,
        config: dict[str, Any],
        workdir: Path,
        workers: int | str = 2,
        env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> None:
        self.workdir = workdir
        self.config_path = workdir / "gateway.yaml"
        self.admin_port = free_port()
        self.write_config(config)
        self.lines: list[str] = []  # stdout and stderr, merged in arrival order
        workers_arg = ["--workers", str(workers)] if workers else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "propylon", "run", "-c", str(self.config_path), *workers_arg],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            cwd=workdir,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = 0
        if wait:
            self.wait_listening()

    def write_config(self, config: dict[str, Any]) -> None:
        config = dict(config)
        config["gateway"] = {"listen": "127.0.0.1:0", **config.get("gateway", {})}
        admin = {"listen": f"127.0.0.1:{self.admin_port}", "token": TOKEN}
        config["admin"] = {**admin, **config.get("admin", {})}
        self.write_text(yaml.safe_dump(config))

    def write_text(self, text: str) -> None:
        # Write then rename, so the supervisor never reads a half-written file.
        partial = self.config_path.with_suffix(".partial")
        partial.write_text(text)
        partial.replace(self.config_path)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_listening(self, timeout: float = 15.0) -> None:
        def listening() -> bool:
            for line in self.lines:
                match = _LISTENING.search(line)
                if match:
                    self.port = int(match.group(2))
                    return True
            return False

        if not wait_until(lambda: listening() or self.process.poll() is not None, timeout):
            raise RuntimeError(f"no listening line after {timeout}s:\n{self.output()}")
        if not self.port:
            raise RuntimeError(f"the gateway exited:\n{self.output()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def admin(self, method: str, path: str, token: str | None = TOKEN) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(self.admin_url + path, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())

    def status(self) -> dict[str, Any]:
        code, body = self.admin("GET", "/admin/status")
        assert code == 200, body
        result: dict[str, Any] = body
        return result

    def workers(self, state: str = "ready") -> list[dict[str, Any]]:
        return [w for w in self.status()["workers"] if w["state"] == state]

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "propylon", *args, "-c", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "COLUMNS": "160"},
        )

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def wait_for_line(self, text: str, timeout: float = 10.0) -> bool:
        return wait_until(lambda: any(text in line for line in self.lines), timeout)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def kill(self) -> None:
        pids = []
        if self.process.poll() is None:
            try:
                pids = [w["pid"] for w in self.status()["workers"]]
            except Exception:  # best effort: the admin API may be gone
                pids = []
            self.process.kill()
            self.process.wait(10)
        # Workers drain and exit on their own once the supervisor is gone;
        # do not leave them running into the next test.
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process.stdout is not None:
            self._reader.join(5)
            self.process.stdout.close()


@dataclass
class Outcome:
    thread: int
    started: float
    ended: float
    status: int | None
    error: str | None
    reused: bool  # sent on a keep-alive connection that had served before
    retried: bool = False


@dataclass
class Load:
    """Threads sending GET ``path`` until ``stop``; ``fresh`` threads open a connection per request.

    With ``retry``, a keep-alive request that meets a connection the server
    closed while it was idle (no byte of response came back) is retried once
    on a new connection, as RFC 9112 section 9.3.1 allows for idempotent
    requests and as browsers do; it is recorded with retried=True. Off by
    default: the tests count every such request as failed.
    """

    port: int
    path: str = "/load"
    keep_alive: int = 4
    fresh: int = 2
    retry: bool = False
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for index in range(self.keep_alive + self.fresh):
            keep = index < self.keep_alive
            thread = threading.Thread(target=self._run, args=(index, keep), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _run(self, index: int, keep_alive: bool) -> None:
        conn: http.client.HTTPConnection | None = None
        served = 0  # responses on the current connection
        while not self._stop.is_set():
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                served = 0
            started = time.monotonic()
            reused = served > 0
            status, error, conn, served = self._once(conn, served, keep_alive)
            retried = False
            if error is not None and reused and self.retry and _before_response(error):
                retried = True
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                status, error, conn, served = self._once(conn, 0, keep_alive)
            self.outcomes.append(
                Outcome(index, started, time.monotonic(), status, error, reused, retried)
            )
            if error is not None:
                time.sleep(0.01)  # a refused connect must not spin
        if conn is not None:
            conn.close()

    def _once(
        self, conn: http.client.HTTPConnection, served: int, keep_alive: bool
    ) -> tuple[int | None, str | None, http.client.HTTPConnection | None, int]:
        headers = {} if keep_alive else {"Connection": "close"}
        stage = "before"
        try:
            conn.request("GET", self.path, headers=headers)
            response = conn.getresponse()
            stage = "after"  # a status line arrived: a cut now is a failed response
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            return None, f"{type(exc).__name__} ({stage} response): {exc}", None, 0
        if not keep_alive or response.will_close:
            conn.close()
            return response.status, None, None, 0
        return response.status, None, conn, served + 1

    # -- reading the results ---------------------------------------------------

    def between(self, start: float, end: float) -> list[Outcome]:
        return [o for o in self.outcomes if o.started < end and o.ended > start]

    def failures(self, outcomes: list[Outcome] | None = None) -> list[Outcome]:
        chosen = self.outcomes if outcomes is None else outcomes
        return [o for o in chosen if o.error is not None or o.status != 200]

    def ok(self) -> int:
        return sum(1 for o in self.outcomes if o.status == 200)

    def summary(self) -> str:
        failed = self.failures()
        retried = sum(1 for o in self.outcomes if o.retried)
        return f"{len(self.outcomes)} requests, {len(failed)} failed, {retried} retried"


def _before_response(error: str) -> bool:
    """The connection closed before any byte of a response arrived."""
    kind, _, rest = error.partition(" ")
    return rest.startswith("(before response)") and kind in {
        "RemoteDisconnected",
        "ConnectionResetError",
        "BrokenPipeError",
        "ConnectionAbortedError",
    }


@dataclass
class InFlight:
    """One GET in a thread; keeps its status or the error it raised."""

    port: int
    path: str
    status: int | None = None
    error: str | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request("GET", self.path)
            response = conn.getresponse()
            response.read()
            self.status = response.status
        except (OSError, http.client.HTTPException) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"request to {self.path} still running"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "zombie"
    line = next((x for x in status.splitlines() if x.startswith("State:")), "")
    return line.lower()
