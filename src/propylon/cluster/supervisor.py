"""The supervisor: one process that owns the listening socket and runs N workers.

Workers inherit the socket, so the kernel's accept queue outlives any of
them: a connection that arrives while a worker restarts waits in the queue
instead of being refused. The supervisor never accepts on it.

- Workers that die are restarted, over-limit ones replaced gracefully
  (pool.py); too many unstable starts in a row and the supervisor gives up
  (exit 3).
- SIGTERM / SIGINT / ``POST /admin/stop``: every worker drains, exit 0. A
  second signal kills the workers and exits 1 at once.
- SIGHUP / ``POST /admin/reload``: the file is validated first; an invalid
  file changes nothing. A valid one replaces the workers one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from propylon import __version__
from propylon.admin.control import ReloadOutcome
from propylon.cluster.channel import Message
from propylon.cluster.pool import WorkerPool
from propylon.cluster.source import load_config_file
from propylon.cluster.workers import WorkerProcess, WorkerStartError
from propylon.config.models import GatewayConfig, parse_listen
from propylon.errors import ConfigError
from propylon.observability.hub import ObservabilityHub

if TYPE_CHECKING:
    from propylon.admin.app import AdminServer

log = logging.getLogger("propylon.supervisor")

EXIT_OK, EXIT_ERROR, EXIT_GAVE_UP = 0, 1, 3
WATCH_INTERVAL = 1.0  # how often memory and request counts are checked
MB = 1024 * 1024


class Supervisor:
    def __init__(
        self,
        config_path: Path,
        config: GatewayConfig,
        config_hash: str,
        *,
        workers: int,
        listen: str,
    ) -> None:
        self.config_path = config_path.resolve()
        self.config = config
        self.config_hash = config_hash
        self.listen = listen
        self.workers = workers
        self.started_at = time.time()
        self.stopping = False
        self._pool: WorkerPool | None = None
        self._exit_code = EXIT_OK
        self._rolling = asyncio.Lock()  # one reload or replacement at a time
        self._done = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._warned_memory = False
        self.observability = ObservabilityHub(self._ask_counting, lambda: self.config)

    @property
    def pool(self) -> WorkerPool:
        assert self._pool is not None, "the supervisor is not running"
        return self._pool

    # -- life cycle -------------------------------------------------------------

    async def run(self) -> int:
        from propylon.admin.app import AdminServer  # aiohttp: supervisor only

        host, port = parse_listen(self.listen)
        try:
            listener = _bind(host, port)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            log.error("cannot listen on %s:%s: %s", host, port, reason)
            return EXIT_ERROR
        admin: AdminServer | None = None
        if self.config.admin.enabled:
            try:
                admin = await AdminServer.start(self.config.admin, self, self.observability)
            except OSError as exc:
                log.error("cannot start the admin API on %s: %s", self.config.admin.listen, exc)
                listener.close()
                return EXIT_ERROR
        self._pool = WorkerPool(listener, self.config, self.workers, self._give_up)
        self._pool.on_worker_exit = self._worker_exited
        self._install_signals()
        self.pool.start()
        await _first(self.pool.all_ready, self._done)
        if not self._done.is_set():
            self._announce(listener, admin)
            self._spawn(self._watch())
            self.pool.refill_spare()
        await self._done.wait()
        if admin is not None:
            await admin.close()
        return self._exit_code

    def _announce(self, listener: socket.socket, admin: AdminServer | None) -> None:
        host, port = listener.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        config = self.config
        # One line, the same shape as a single process prints (scripts parse it).
        print(
            f"propylon {__version__} listening on http://{shown}:{port} "
            f"({len(config.routes)} routes, {len(config.services)} services); "
            f"supervisor pid {os.getpid()}, {self.workers} workers",
            flush=True,
        )
        if admin is not None:
            auth = "bearer token" if config.admin.token else "no token, loopback only"
            print(f"propylon admin API on {admin.url} ({auth})", flush=True)

    async def _ask_counting(self, message: Message) -> list[Message]:
        """Like broadcast, but draining workers answer too: until they exit,
        their counts are part of the node's."""
        counting = [w for w in self.pool.live() if w.slot and w.state in ("ready", "draining")]
        replies = await asyncio.gather(*(w.request(message, 2.0) for w in counting))
        return [reply for reply in replies if reply is not None]

    def _worker_exited(self, worker: WorkerProcess) -> None:
        if worker.slot:  # a spare never served
            self.observability.aggregator.retire(worker.pid, worker.final_metrics)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_stop_signal, signum)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))

    def _on_stop_signal(self, signum: int) -> None:
        if self.stopping:
            log.warning("second signal: killing the workers, exiting now")
            self.pool.kill_all()
            os._exit(EXIT_ERROR)
        self.request_stop(f"{signal.Signals(signum).name} received")

    def _give_up(self, message: str) -> None:
        log.error("%s", message)
        self.request_stop("workers keep crashing", EXIT_GAVE_UP)

    def request_stop(self, reason: str, code: int = EXIT_OK) -> None:
        if self.stopping:
            return
        self.stopping = True
        self._exit_code = code
        graceful = self.config.gateway.graceful_timeout
        log.info("%s: draining the workers (up to %gs)", reason, graceful)
        self._spawn(self._shutdown())

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        await self.pool.stop_all()
        log.info("stopped")
        self._done.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- reload -------------------------------------------------------------------

    async def reload(self) -> ReloadOutcome:
        async with self._rolling:
            if self.stopping:
                return ReloadOutcome("failed", "the gateway is stopping")
            try:
                config, digest = load_config_file(self.config_path)
            except ConfigError as exc:
                errors = [str(issue) for issue in exc.issues]
                log.error("reload refused, still serving the previous config:")
                for line in errors:
                    log.error("  %s", line)
                return ReloadOutcome(
                    "invalid", "the config is invalid; still serving the previous one", errors
                )
            self._warn_fixed(config)
            log.info("reloading (config sha256 %s), one worker at a time", digest[:12])
            started = time.monotonic()
            pool = self.pool
            previous = (pool.config, pool.generation)
            pool.config, pool.generation = config, pool.generation + 1
            for index, slot in enumerate(pool.slots):
                try:
                    # Fresh processes, not the spare: they import the code now on disk.
                    await pool.replace(slot, fresh=True)
                except WorkerStartError as exc:
                    log.error("reload failed: %s", exc)
                    if index == 0:
                        pool.config, pool.generation = previous
                        return ReloadOutcome("failed", f"{exc}; still serving the previous config")
                    detail = f"{exc}; workers 1-{index} run the new config, the rest the old one"
                    return ReloadOutcome("failed", detail)
                if index == 0:  # the first new worker serves: this config is the one now
                    self.config, self.config_hash = config, digest
            pool.retire_spare()
            took = time.monotonic() - started
            log.info("reload done in %.2fs: %d workers on the new config", took, len(pool.slots))
            return ReloadOutcome("reloaded", "every worker runs the new config", [], digest)

    def _warn_fixed(self, new: GatewayConfig) -> None:
        """Settings a reload cannot apply; say so instead of ignoring them silently."""
        old = self.config
        fixed = {
            "gateway.listen": (old.gateway.listen, new.gateway.listen),
            "gateway.workers": (old.gateway.workers, new.gateway.workers),
            "admin": (old.admin, new.admin),
        }
        for key, (before, after) in fixed.items():
            if before != after:
                log.warning("%s changed: a reload keeps the running value; restart to apply", key)

    # -- memory and request limits ------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if self._rolling.locked() or self.stopping:
                continue
            await asyncio.gather(*(worker.refresh() for worker in self.pool.serving()))
            for slot in self.pool.slots:
                worker = slot.worker
                if worker is None or self.stopping:
                    continue
                reason = self._over_limit(worker)
                if reason is None:
                    continue
                log.warning("worker %d (pid %d) %s: replacing it", slot.id, worker.pid, reason)
                async with self._rolling:
                    try:
                        await self.pool.replace(slot, fresh=False)
                    except WorkerStartError as exc:
                        log.error("%s; the old worker keeps serving", exc)
                    else:
                        slot.restarts += 1

    def _over_limit(self, worker: WorkerProcess) -> str | None:
        if worker.state != "ready":
            return None
        settings = self.config.gateway
        limit = settings.max_memory
        if limit is not None and worker.rss is not None and worker.rss > limit:
            if not self._warned_memory and worker.uptime < settings.min_uptime:
                self._warned_memory = True
                log.warning(
                    "gateway.max_memory (%.1f MB) is below what a new worker uses (%.1f MB): "
                    "workers will be replaced over and over",
                    limit / MB,
                    worker.rss / MB,
                )
            return f"uses {worker.rss / MB:.1f} MB > max_memory {limit / MB:.1f} MB"
        if worker.request_limit is not None and worker.requests >= worker.request_limit:
            return f"served {worker.requests} requests (max_requests)"
        return None

    # -- what the admin API asks ----------------------------------------------------

    async def status(self) -> dict[str, Any]:
        live = self.pool.live()
        await asyncio.gather(*(worker.refresh() for worker in live))
        rows = []
        for worker in sorted(live, key=lambda w: (w.slot or len(live) + 1, w.started)):
            row = worker.describe()
            row["restarts"] = self.pool.restarts(worker)
            rows.append(row)
        return {
            "name": self.config.gateway.name,
            "version": __version__,
            "pid": os.getpid(),
            "state": "stopping" if self.stopping else "running",
            "uptime": round(time.time() - self.started_at, 3),
            "listen": self.listen,
            "config": {
                "file": str(self.config_path),
                "sha256": self.config_hash,
                "generation": self.pool.generation,
            },
            "workers": rows,
        }

    async def broadcast(self, message: Message, within: float = 2.0) -> list[Message]:
        serving = self.pool.serving()
        replies = await asyncio.gather(*(w.request(message, within) for w in serving))
        return [reply for reply in replies if reply is not None]


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=2048)
    sock.setblocking(False)
    return sock


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
