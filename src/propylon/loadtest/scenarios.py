"""Load-test scenarios: phases of arrival rates, a weighted request mix and
pass/fail thresholds. Built-ins follow the design documents (quick, basic,
spike, stress); a YAML file of the same shape is a custom scenario.

The model is *open*: requests arrive at the phase's rate whatever the
target's latency (as Artillery's arrivalRate), so a slow target shows as
latency and errors, not as a politely lower request rate.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from propylon.config.units import parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Phase(_Strict):
    name: str
    duration: Duration = Field(gt=0)
    rate: float = Field(ge=0)  # requests per second at the start of the phase
    ramp_to: float | None = Field(default=None, ge=0)  # ... and at its end


class RequestSpec(_Strict):
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    path: str = "/"
    weight: int = Field(default=1, ge=1)
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    # Statuses that count as success; default any 1xx-3xx.
    expect: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _path(self) -> RequestSpec:
        if not self.path.startswith("/"):
            raise ValueError(f"path {self.path!r} must start with '/'")
        return self


class Thresholds(_Strict):
    p95_ms: float | None = 200.0
    p99_ms: float | None = 500.0
    max_error_rate: float | None = Field(default=0.01, ge=0, le=1)
    min_rps: float | None = None


class Scenario(_Strict):
    name: str
    description: str = ""
    phases: list[Phase] = Field(min_length=1)
    requests: list[RequestSpec] = Field(min_length=1)
    thresholds: Thresholds = Thresholds()
    timeout: Duration = 10.0  # per request; a slower answer is an error
    connections: int = Field(default=256, ge=1, le=10_000)  # most requests in flight


def arrivals(phase: Phase) -> list[float]:
    """The send times (seconds from the phase start) of a phase's requests.

    Evenly spaced by the integral of the (linearly ramping) rate, so a phase
    of 10 s at 20/s sends exactly 200 requests.
    """
    start = phase.rate
    end = phase.ramp_to if phase.ramp_to is not None else start
    total = (start + end) / 2 * phase.duration
    count = round(total)
    times = []
    for i in range(count):
        # Solve integral_0^t rate = (i + 0.5) for t (rate linear in t).
        n = (i + 0.5) * total / count if count else 0.0
        slope = (end - start) / phase.duration
        if abs(slope) < 1e-12:
            t = n / start if start else 0.0
        else:
            t = (-start + math.sqrt(max(0.0, start * start + 2 * slope * n))) / slope
        times.append(min(max(t, 0.0), phase.duration))
    return times


def _builtin(
    name: str, description: str, phases: list[Phase], paths: list[str], **thresholds: float
) -> Scenario:
    requests = [
        RequestSpec(path="/health", weight=1),
        *(RequestSpec(path=path, weight=3) for path in paths),
        RequestSpec(path="/loadtest-no-such-route", weight=1, expect=[404]),
    ]
    return Scenario(
        name=name,
        description=description,
        phases=phases,
        requests=requests,
        thresholds=Thresholds(**thresholds),
    )


def builtin(name: str, paths: list[str]) -> Scenario:
    """A built-in scenario, its API calls aimed at ``paths``."""
    if name == "quick":
        return _builtin(
            "quick",
            "10 s at 20 requests/s: does it work?",
            [Phase(name="steady", duration=10, rate=20)],
            paths,
        )
    if name == "basic":
        return _builtin(
            "basic",
            "2 minutes of normal traffic, 10-20 requests/s",
            [
                Phase(name="warm-up", duration=30, rate=5, ramp_to=10),
                Phase(name="steady", duration=60, rate=20),
                Phase(name="cool-down", duration=30, rate=20, ramp_to=10),
            ],
            paths,
        )
    if name == "spike":
        return _builtin(
            "spike",
            "3 minutes: 10 requests/s, a burst to 100/s, then back",
            [
                Phase(name="normal", duration=60, rate=10),
                Phase(name="spike", duration=30, rate=100),
                Phase(name="recovery", duration=90, rate=10),
            ],
            paths,
        )
    if name == "stress":
        return _builtin(
            "stress",
            "5 minutes ramping 20 -> 200 requests/s: where does it break?",
            [
                Phase(name="ramp", duration=240, rate=20, ramp_to=200),
                Phase(name="peak", duration=60, rate=200),
            ],
            paths,
            min_rps=100,
        )
    raise KeyError(name)


BUILTINS = ("quick", "basic", "spike", "stress")


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the key."""


def load_scenario(path: Path) -> Scenario:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping with phases and requests")
    data.setdefault("name", path.stem)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{path}: {'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors()
        ]
        raise ScenarioError("\n".join(problems)) from None


def scaled(scenario: Scenario, duration: float = 1.0, rate: float = 1.0) -> Scenario:
    """The same scenario with every phase's duration and rates multiplied."""
    phases = [
        phase.model_copy(
            update={
                "duration": phase.duration * duration,
                "rate": phase.rate * rate,
                "ramp_to": phase.ramp_to * rate if phase.ramp_to is not None else None,
            }
        )
        for phase in scenario.phases
    ]
    return scenario.model_copy(update={"phases": phases})
