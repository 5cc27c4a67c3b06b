"""Start the gateway for a test: in-process on the background loop, or as a
real ``propylon run`` subprocess (for signals, RSS and the CLI)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from propylon.config.models import GatewayConfig
from propylon.server.gateway import Gateway
from tests.support.loop import BackgroundLoop

_LISTENING = re.compile(r"listening on http://([\d.]+):(\d+)")


def service(url: str, **settings: Any) -> dict[str, Any]:
    return {"targets": [{"url": url}], **settings}


def route(name: str, path: str, service_name: str = "up", **settings: Any) -> dict[str, Any]:
    return {"name": name, "match": {"path": path}, "service": service_name, **settings}


def simple_config(upstream_url: str, **top: Any) -> dict[str, Any]:
    """One service ``up`` and one catch-all route ``all`` in front of it."""
    config: dict[str, Any] = {
        "services": {"up": service(upstream_url)},
        "routes": [route("all", "/")],
    }
    config.update(top)
    return config


class InProcessGateway:
    def __init__(self, loop: BackgroundLoop, config: dict[str, Any]) -> None:
        self._loop = loop
        self.gateway = Gateway(GatewayConfig.model_validate(config))
        loop.run(self.gateway.start("127.0.0.1", 0))
        self.port = self.gateway.port
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def state(self) -> Any:
        return self.gateway.state

    def stop(self, graceful_timeout: float = 1.0) -> None:
        self._loop.run(self.gateway.stop(graceful_timeout))


class GatewayProcess:
    """``propylon run`` as a child process on a free port."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.config_path = workdir / "gateway.yaml"
        config = dict(config)
        config.setdefault("gateway", {})
        config["gateway"] = {**config["gateway"], "listen": "127.0.0.1:0"}
        self.config_path.write_text(yaml.safe_dump(config))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "propylon", "run", "-c", str(self.config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = _LISTENING.search(line)
        if match is None:
            self.kill()
            raise RuntimeError(f"gateway did not start: {line!r} {self.stderr()}")
        self.port = int(match.group(2))
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_bytes(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        kb = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
        return kb * 1024

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def wait_until(predicate: Any, timeout: float = 5.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
