"""Arrival schedules, built-in scenarios, scenario files and percentiles."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from propylon.loadtest.generator import Outcome
from propylon.loadtest.report import percentile, summarize, verdict
from propylon.loadtest.scenarios import (
    BUILTINS,
    Phase,
    ScenarioError,
    Thresholds,
    arrivals,
    builtin,
    load_scenario,
    scaled,
)

rates = st.floats(0, 500, allow_nan=False)


@given(st.floats(0.1, 60), rates, st.one_of(st.none(), rates))
def test_a_phase_sends_its_rates_integral_in_order_within_it(
    duration: float, rate: float, ramp_to: float | None
) -> None:
    phase = Phase(name="p", duration=duration, rate=rate, ramp_to=ramp_to)
    times = arrivals(phase)
    end = ramp_to if ramp_to is not None else rate
    assert len(times) == round((rate + end) / 2 * duration)
    assert times == sorted(times)
    assert all(0 <= t <= duration for t in times)


def test_a_ramp_sends_more_at_its_end() -> None:
    times = arrivals(Phase(name="ramp", duration=10, rate=10, ramp_to=100))
    first_second = sum(1 for t in times if t < 1)
    last_second = sum(1 for t in times if t >= 9)
    assert len(times) == 550
    assert 5 <= first_second <= 20
    assert 85 <= last_second <= 100


@pytest.mark.parametrize("name", BUILTINS)
def test_builtins_follow_the_documents(name: str) -> None:
    scenario = builtin(name, ["/api/tickets"])
    seconds = sum(phase.duration for phase in scenario.phases)
    assert seconds == {"quick": 10, "basic": 120, "spike": 180, "stress": 300}[name]
    assert any(r.path == "/api/tickets" for r in scenario.requests)
    assert any(r.expect == [404] for r in scenario.requests)  # 404s are part of the mix
    assert scenario.thresholds.p95_ms == 200


def test_spike_peaks_at_ten_times_normal_and_stress_ramps_to_200() -> None:
    spike = builtin("spike", ["/"])
    assert max(p.rate for p in spike.phases) == 10 * spike.phases[0].rate
    stress = builtin("stress", ["/"])
    assert (stress.phases[0].rate, stress.phases[0].ramp_to) == (20, 200)


def test_scaling_multiplies_durations_and_rates() -> None:
    scenario = scaled(builtin("basic", ["/"]), duration=0.1, rate=2)
    assert [p.duration for p in scenario.phases] == [3, 6, 3]
    assert scenario.phases[0].ramp_to == 20


def test_a_scenario_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "login.yaml"
    path.write_text(
        "phases:\n  - {name: a, duration: 2s, rate: 5}\n"
        "requests:\n  - {method: POST, path: /login, body: '{}', expect: [200, 401]}\n"
        "thresholds: {p95_ms: 50, min_rps: 4}\n"
    )
    scenario = load_scenario(path)
    assert scenario.name == "login"
    assert scenario.requests[0].expect == [200, 401]
    assert scenario.thresholds.min_rps == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("phases: []\nrequests: [{path: /}]\n", "phases"),
        ("phases: [{name: a, duration: 1s, rate: 1}]\nrequests: [{path: x}]\n", "requests.0"),
        ("phases: [{name: a, duration: 1s, rate: -1}]\nrequests: [{path: /}]\n", "phases.0.rate"),
        ("phases: [{name: a, duration: soon, rate: 1}]\nrequests: [{}]\n", "phases.0.duration"),
        ("phases: [{name: a, duration: 1s, rate: 1, burst: 3}]\nrequests: [{}]\n", "burst"),
        ("- a list\n", "mapping"),
        ("phases: [\n", "YAML"),
    ],
)
def test_a_bad_scenario_file_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message) as caught:
        load_scenario(path)
    assert str(path) in str(caught.value)


@given(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1), st.floats(0.01, 1))
def test_nearest_rank_percentile(values: list[float], share: float) -> None:
    ordered = sorted(values)
    result = percentile(ordered, share)
    assert result in ordered
    at_or_below = sum(1 for v in ordered if v <= result)
    assert at_or_below >= share * len(ordered)


def test_thresholds_judge_the_summary() -> None:
    outcomes = [Outcome(0, 200, 0.010, True) for _ in range(98)]
    outcomes += [Outcome(0, 502, 0.300, False, "status 502"), Outcome(0, 0, 1.0, False, "timeout")]
    summary = summarize(outcomes, 10.0)
    assert summary["rps"] == 10.0
    assert summary["error_rate"] == 0.02
    assert summary["error_kinds"] == {"status 502": 1, "timeout": 1}
    checks = {c["threshold"]: c["passed"] for c in verdict(summary, Thresholds(min_rps=20))}
    assert checks == {"p95_ms": True, "p99_ms": True, "max_error_rate": False, "min_rps": False}
