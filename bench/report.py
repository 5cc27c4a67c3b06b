"""The summary: medians over rounds per case, the table, and the ratios to the baseline."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from wrk_output import Run

BASELINE = "nginx"
OTHER_WARN = 0.10  # share of a core used by something else before a run is flagged

MEDIAN_KEYS = (
    *("rps", "p50_ms", "p99_ms", "sut_us_per_req"),
    *("cpu_sut", "cpu_upstream", "cpu_wrk", "busy_cpu0", "busy_cpu1"),
)


# CPU time on a core that none of our processes account for: other load on the
# machine, or softirq work the kernel charges to no one (a few percent).
def other_cpu0(r: Mapping[str, Any]) -> float:
    return max(0.0, float(r["busy_cpu0"]) - float(r["cpu_upstream"]) - float(r["cpu_wrk"]))


def other_cpu1(r: Mapping[str, Any]) -> float:
    return max(0.0, float(r["busy_cpu1"]) - float(r["cpu_sut"]))


def summarize(runs: list[Run], cases: list[str]) -> list[dict[str, float | int | str]]:
    rows: list[dict[str, float | int | str]] = []
    for case in cases:
        mine = [r for r in runs if r.case == case]
        row: dict[str, float | int | str] = {"case": case, "errors": sum(r.errors for r in mine)}
        for key in MEDIAN_KEYS:
            row[key] = statistics.median(getattr(r, key) for r in mine)
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, float | int | str]]) -> None:
    print(
        f"\n{'case':<14} {'rps':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'us/req':>7}"
        f" {'cpu sut':>8} {'upstream':>9} {'wrk':>5} {'other0':>7} {'other1':>7}"
    )
    for r in rows:
        print(
            f"{r['case']:<14} {r['rps']:>10,.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}"
            f" {r['errors']:>7} {r['sut_us_per_req']:>7.1f} {r['cpu_sut']:>8.0%}"
            f" {r['cpu_upstream']:>9.0%} {r['cpu_wrk']:>5.0%}"
            f" {other_cpu0(r):>7.0%} {other_cpu1(r):>7.0%}"
        )
    base = next((r for r in rows if r["case"] == BASELINE), None)
    for r in rows:
        if base is not None and r is not base:
            rps = float(r["rps"]) / float(base["rps"])
            p99 = float(r["p99_ms"]) / float(base["p99_ms"])
            print(f"{r['case']}/{BASELINE}: rps {rps:.2f}x  p99 {p99:.2f}x")
    # Feature cases (propylon-*) also against the plain propylon proxy.
    plain = next((r for r in rows if r["case"] == "propylon"), None)
    for r in rows:
        if plain is not None and str(r["case"]).startswith("propylon-"):
            rps = float(r["rps"]) / float(plain["rps"])
            cost = float(r["sut_us_per_req"]) / float(plain["sut_us_per_req"])
            print(f"{r['case']}/propylon: rps {rps:.2f}x  us/req {cost:.2f}x")
