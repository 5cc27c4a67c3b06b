"""Send a scenario's requests at their arrival times and record each outcome.

Latency is measured from the time a request was *due*, not from when the
client got round to sending it, so a saturated client or target shows up as
latency instead of hiding behind a lower send rate (coordinated omission).
The request mix is drawn with a fixed seed: two runs send the same sequence.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from propylon.loadtest.scenarios import RequestSpec, Scenario, arrivals


@dataclass(slots=True)
class Outcome:
    phase: int
    status: int  # 0: no response (refused, reset, timed out)
    latency: float  # seconds from when it was due to the end of the response
    ok: bool
    error: str | None = None  # a short kind: "timeout", "connect", "status 502" ...
    request: str = ""  # "METHOD /path" of the scenario's request


@dataclass
class Progress:
    """What the live display shows, refreshed about once a second."""

    phase: str
    phase_index: int
    elapsed: float
    total_duration: float
    target_rate: float
    outcomes: list[Outcome]
    in_flight: int


@dataclass
class RunResult:
    scenario: Scenario
    outcomes: list[Outcome] = field(default_factory=list)
    elapsed: float = 0.0


Tick = Callable[[Progress], None]


class LoadGenerator:
    def __init__(self, target: str, scenario: Scenario, *, seed: int = 0) -> None:
        self.target = target.rstrip("/")
        self.scenario = scenario
        self._random = random.Random(seed)
        weights = [spec.weight for spec in scenario.requests]
        self._cumulative = [sum(weights[: i + 1]) for i in range(len(weights))]
        self._in_flight = 0
        self._started = 0.0
        self._phase_index = 0
        self._phase_start = 0.0

    def _pick(self) -> RequestSpec:
        return self._random.choices(self.scenario.requests, cum_weights=self._cumulative)[0]

    async def run(self, tick: Tick | None = None) -> RunResult:
        scenario = self.scenario
        result = RunResult(scenario)
        connector = aiohttp.TCPConnector(limit=scenario.connections)
        timeout = aiohttp.ClientTimeout(total=scenario.timeout)
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        ticker = loop.create_task(self._tick_every_second(tick, result)) if tick else None
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                await self._send_all(session, result)
        finally:
            if ticker is not None:
                ticker.cancel()
        result.elapsed = loop.time() - self._started
        if tick is not None:
            tick(self._progress(result))
        return result

    async def _send_all(self, session: aiohttp.ClientSession, result: RunResult) -> None:
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[None]] = set()
        phase_start = self._started
        for index, phase in enumerate(self.scenario.phases):
            self._phase_index, self._phase_start = index, phase_start
            for due_in_phase in arrivals(phase):
                due = phase_start + due_in_phase
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = loop.create_task(
                    self._one(session, self._pick(), index, due, result.outcomes)
                )
                pending.add(task)
                task.add_done_callback(pending.discard)
            phase_start += phase.duration
            remaining = phase_start - loop.time()  # its last request may be due early
            if remaining > 0:
                await asyncio.sleep(remaining)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _tick_every_second(self, tick: Tick, result: RunResult) -> None:
        while True:
            await asyncio.sleep(1.0)
            tick(self._progress(result))

    def _progress(self, result: RunResult) -> Progress:
        now = asyncio.get_running_loop().time()
        phase = self.scenario.phases[self._phase_index]
        into = min(1.0, (now - self._phase_start) / phase.duration)
        end = phase.ramp_to if phase.ramp_to is not None else phase.rate
        return Progress(
            phase=phase.name,
            phase_index=self._phase_index,
            elapsed=now - self._started,
            total_duration=sum(p.duration for p in self.scenario.phases),
            target_rate=phase.rate + (end - phase.rate) * into,
            outcomes=result.outcomes,
            in_flight=self._in_flight,
        )

    async def _one(
        self,
        session: aiohttp.ClientSession,
        spec: RequestSpec,
        phase: int,
        due: float,
        outcomes: list[Outcome],
    ) -> None:
        loop = asyncio.get_running_loop()
        self._in_flight += 1
        status, error = 0, None
        try:
            async with session.request(
                spec.method,
                self.target + spec.path,
                headers=spec.headers or None,
                data=spec.body.encode() if spec.body is not None else None,
                allow_redirects=False,
            ) as response:
                await response.read()
                status = response.status
        except TimeoutError:
            error = "timeout"
        except aiohttp.ClientConnectorError:
            error = "connect"
        except (aiohttp.ClientError, OSError) as exc:
            error = type(exc).__name__
        finally:
            self._in_flight -= 1
        latency = loop.time() - due
        if status:
            ok = status in spec.expect if spec.expect else status < 400
            if not ok:
                error = f"status {status}"
        else:
            ok = False
        outcomes.append(Outcome(phase, status, latency, ok, error, f"{spec.method} {spec.path}"))
