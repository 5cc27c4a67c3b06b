"""The shipped Grafana dashboard and Prometheus alert rules only use metrics
that ``/metrics`` really exports, and have the panels and alerts promised."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cluster import Cluster
from tests.support.gateway import simple_config
from tests.support.scrape import fetch

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "propylon-dashboard.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
_METRIC = re.compile(r"\b((?:propylon|process)_[a-z0-9_]+)")
_SUFFIXES = ("_bucket", "_count", "_sum")


def _expressions(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["expr"]] if isinstance(value.get("expr"), str) else []
        query = value.get("query")
        if isinstance(query, dict) and isinstance(query.get("query"), str):
            found.append(query["query"])
        return found + [e for item in value.values() for e in _expressions(item)]
    if isinstance(value, list):
        return [e for item in value for e in _expressions(item)]
    return []


def _referenced(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in _METRIC.findall(expr)}


def _family(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def _exported(tmp_path: Path, upstream_url: str) -> set[str]:
    with Cluster(simple_config(upstream_url), tmp_path, workers=0) as gw:
        status, _, body = fetch(gw.admin_url + "/metrics")
    assert status == 200
    names = set()
    for family in text_string_to_metric_families(body.decode()):
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
    return names


def test_every_metric_the_dashboard_and_alerts_use_is_exported(tmp_path, upstream) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    rules = yaml.safe_load(ALERTS.read_text())
    used = _referenced(_expressions(dashboard)) | _referenced(
        [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    )
    assert len(used) >= 10
    exported = _exported(tmp_path, upstream_url=upstream.url)
    missing = sorted(
        name for name in used if _family(name) not in exported and name not in exported
    )
    assert missing == []


def test_the_alerts_promised_are_there_with_severity_and_summary() -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    wanted = {
        "HighErrorRate",
        "CircuitBreakerOpen",
        "HighResponseTime",
        "RateLimitSpike",
        "UpstreamDown",
    }
    assert wanted <= set(alerts)
    for rule in alerts.values():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
        assert rule["for"]


def test_the_dashboard_has_the_panels_promised() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " | ".join(panel["title"].lower() for panel in dashboard["panels"])
    for topic in (
        "request rate",
        "p95",
        "error rate",
        "cache hit",
        "breaker",
        "rate-limit",
        "memory",
        "connections",
    ):
        assert topic in titles, topic
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
