"""The supervisor's workers: one per slot, a spare, and those draining.

- Restart: a worker that dies is replaced after the policy's backoff
  (policy.py); when the policy gives up, ``on_give_up`` is called.
- Replace: a new worker first, ready and accepting, then the old one
  drains; capacity never drops.
- Spare: one extra worker process with its modules imported but no config.
  A crashed worker is replaced by the spare in a few milliseconds instead of
  an interpreter start (half a second, more on a busy machine); a new spare
  starts in the background. Reloads use fresh processes, so new code on
  disk is picked up.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from propylon.cluster.channel import Message
from propylon.cluster.policy import RestartPolicy
from propylon.cluster.workers import WorkerProcess, WorkerStartError, describe_exit
from propylon.config.models import GatewayConfig

log = logging.getLogger("propylon.supervisor")

START_TIMEOUT = 30.0  # a worker not ready by then is killed: a failed start
STOP_MARGIN = 2.0  # beyond graceful_timeout before a draining worker is killed
MAX_REQUESTS_JITTER = 10  # up to 1/10 more requests, at random per worker


@dataclass
class Slot:
    """A place for one worker; its id stays the same across restarts."""

    id: int
    policy: RestartPolicy
    worker: WorkerProcess | None = None
    restarts: int = 0
    respawn: asyncio.Task[None] | None = None


class WorkerPool:
    def __init__(
        self,
        listener: socket.socket,
        config: GatewayConfig,
        count: int,
        on_give_up: Callable[[str], None],
    ) -> None:
        self.listener = listener
        self.config = config  # what new workers get; reload replaces it
        self.generation = 1
        settings = config.gateway
        self.slots = [
            Slot(index + 1, RestartPolicy(settings.max_restarts, settings.min_uptime))
            for index in range(count)
        ]
        self.stopping = False
        self.all_ready = asyncio.Event()
        self._on_give_up = on_give_up
        self._spare: WorkerProcess | None = None
        self._spare_coming = False
        self._draining: set[WorkerProcess] = set()
        self._incoming: set[WorkerProcess] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Told of every exited worker, first (the metrics keep what it counted).
        self.on_worker_exit: Callable[[WorkerProcess], None] | None = None

    def start(self) -> None:
        for slot in self.slots:
            self._schedule_start(slot, 0.0)

    def serving(self) -> list[WorkerProcess]:
        return [s.worker for s in self.slots if s.worker is not None and s.worker.state == "ready"]

    def live(self) -> list[WorkerProcess]:
        """Every worker process that has not exited, spare and draining ones included."""
        current = [slot.worker for slot in self.slots if slot.worker is not None]
        spare = [self._spare] if self._spare is not None else []
        live = {*current, *spare, *self._draining, *self._incoming}
        return [worker for worker in live if worker.state != "exited"]

    def restarts(self, worker: WorkerProcess) -> int:
        return self.slots[worker.slot - 1].restarts if worker.slot else 0

    def _task(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- getting a worker ---------------------------------------------------------

    async def _new_worker(self, use_spare: bool) -> WorkerProcess:
        spare = self._spare
        if use_spare and spare is not None and spare.standing_by:
            self._spare = None
            worker = spare
        else:
            worker = WorkerProcess(self._on_exit)
            worker.on_event = self.relay_event
            await worker.spawn(self.listener)
        self.refill_spare()
        return worker

    def relay_event(self, source: WorkerProcess, message: Message) -> None:
        """A breaker transition or target change in one worker goes to the
        others at once, so the whole node fails fast together (sync.py)."""
        for worker in self.serving():
            if worker is not source:
                worker.notify(message)

    def refill_spare(self, delay: float = 0.0) -> None:
        if self._spare is not None or self._spare_coming or self.stopping:
            return
        if not self.all_ready.is_set():
            return  # not while the first workers start: they need the CPU
        self._spare_coming = True
        self._task(self._spawn_spare(delay))

    async def _spawn_spare(self, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
            if self.stopping:
                return
            spare = WorkerProcess(self._on_exit)
            spare.on_event = self.relay_event
            await spare.spawn(self.listener)
            self._spare = spare
        except OSError as exc:
            log.error("cannot start a spare worker: %s", exc)
        finally:
            self._spare_coming = False

    def retire_spare(self) -> None:
        """Replace the spare, so that it runs the code now on disk."""
        spare, self._spare = self._spare, None
        if spare is not None:
            self._draining.add(spare)
            spare.stop()
        self.refill_spare()

    # -- starting and restarting --------------------------------------------------

    def _schedule_start(self, slot: Slot, delay: float) -> None:
        slot.respawn = self._task(self._start(slot, delay))

    async def _start(self, slot: Slot, delay: float) -> None:
        await asyncio.sleep(delay)
        if self.stopping:
            return
        slot.respawn = None
        try:
            worker = await self._new_worker(use_spare=True)
        except OSError as exc:
            log.error("cannot start worker %d: %s", slot.id, exc)
            self._restart(slot, 0.0, str(exc))
            return
        try:
            worker.assign(slot.id, self.generation, self.config)
        except WorkerStartError as exc:  # the spare died just now
            self._restart(slot, 0.0, str(exc))
            return
        slot.worker = worker
        try:
            await worker.wait_ready(START_TIMEOUT)
        except WorkerStartError:
            return  # _on_exit sees it die (or will, once killed) and restarts
        if slot.worker is not worker:  # replaced while it was starting
            return
        self._on_ready(worker)
        log.info("worker %d ready (pid %d) in %.2fs", slot.id, worker.pid, worker.uptime)
        if all(s.worker is not None and s.worker.state == "ready" for s in self.slots):
            self.all_ready.set()

    def _on_ready(self, worker: WorkerProcess) -> None:
        settings = self.config.gateway
        if settings.max_requests is not None:
            jitter = random.randint(0, settings.max_requests // MAX_REQUESTS_JITTER)
            worker.request_limit = settings.max_requests + jitter

    def _on_exit(self, worker: WorkerProcess) -> None:
        if self.on_worker_exit is not None:
            self.on_worker_exit(worker)
        if worker in self._draining:
            self._draining.discard(worker)
            if worker.slot:
                log.info("worker %d (pid %d) drained and exited", worker.slot, worker.pid)
            return
        if self.stopping or worker in self._incoming:
            return  # stop_all and replace wait for these themselves
        if worker is self._spare:
            self._spare = None
            delay = max(1.0, self.config.gateway.min_uptime)
            log.warning("the spare worker (pid %d) %s", worker.pid, describe_exit(worker))
            self.refill_spare(delay)
            return
        if not worker.slot:
            return  # a spare that died while it was being taken
        slot = self.slots[worker.slot - 1]
        if slot.worker is not worker:
            return
        slot.worker = None
        log.warning(
            "worker %d (pid %d) %s after %.1fs",
            slot.id,
            worker.pid,
            describe_exit(worker),
            worker.uptime,
        )
        self._restart(slot, worker.uptime, describe_exit(worker))

    def _restart(self, slot: Slot, uptime: float, how: str) -> None:
        decision = slot.policy.on_exit(uptime)
        if not decision.restart:
            settings = self.config.gateway
            self._on_give_up(
                f"worker {slot.id} exited {decision.unstable} times in a row within "
                f"min_uptime ({settings.min_uptime:g}s) of starting, last with {how}; giving "
                f"up (gateway.max_restarts is {settings.max_restarts}). See the worker's "
                "errors above."
            )
            return
        slot.restarts += 1
        log.info("restarting worker %d in %gs", slot.id, decision.delay)
        self._schedule_start(slot, decision.delay)

    # -- graceful replacement -------------------------------------------------------

    async def replace(self, slot: Slot, *, fresh: bool) -> WorkerProcess:
        """A new worker for ``slot`` (a fresh process, or the spare); then the old one drains.

        Raises WorkerStartError, and the old worker keeps serving, when the
        new one does not start.
        """
        try:
            new = await self._new_worker(use_spare=not fresh)
        except OSError as exc:
            raise WorkerStartError(f"a new worker {slot.id} did not start: {exc}") from None
        self._incoming.add(new)
        try:
            new.assign(slot.id, self.generation, self.config)
            await new.wait_ready(START_TIMEOUT)
        except WorkerStartError as exc:
            new.kill()
            raise WorkerStartError(f"a new worker {slot.id} did not start: {exc}") from None
        finally:
            self._incoming.discard(new)
        if self.stopping:
            self.drain(new)
            raise WorkerStartError("the gateway is stopping")
        old, slot.worker = slot.worker, new
        if slot.respawn is not None:  # the old one had died; this one takes its place
            slot.respawn.cancel()
            slot.respawn = None
        self._on_ready(new)
        if old is not None:
            self.drain(old)
        log.info("worker %d replaced: pid %d serving", slot.id, new.pid)
        return new

    def drain(self, worker: WorkerProcess) -> None:
        graceful = self.config.gateway.graceful_timeout
        self._draining.add(worker)
        worker.stop(graceful)
        # A worker that hangs while draining must not live forever.
        asyncio.get_running_loop().call_later(graceful + STOP_MARGIN, worker.kill)

    # -- stopping ---------------------------------------------------------------------

    async def stop_all(self) -> None:
        """Every worker drains (at most graceful_timeout), stragglers are killed."""
        self.stopping = True
        for task in list(self._tasks):
            task.cancel()
        graceful = self.config.gateway.graceful_timeout
        workers = self.live()
        for worker in workers:
            if worker.state != "draining":
                worker.stop(graceful)
        # Once every worker has closed its copy too, new connections are refused.
        self.listener.close()
        await asyncio.gather(*(w.wait_exit(graceful + STOP_MARGIN) for w in workers))
        for worker in workers:
            if worker.state != "exited":
                log.warning("worker %d (pid %d) did not drain in time: killed", *_who(worker))
                worker.kill()
        await asyncio.gather(*(worker.wait_exit(2.0) for worker in workers))

    def kill_all(self) -> None:
        for worker in self.live():
            worker.kill()


def _who(worker: WorkerProcess) -> tuple[int, int]:
    return worker.slot, worker.pid
