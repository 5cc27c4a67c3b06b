"""The deployment files in deploy/ agree with each other and with the gateway:
their configs validate, probes hit real endpoints, mounts match commands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from propylon.config.loader import load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ENV = {"PROPYLON_ADMIN_TOKEN": "a-token-of-at-least-some-length-0123"}


def documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.y*ml")), ids=lambda p: str(p.name))
def test_every_yaml_file_parses(path: Path) -> None:
    assert documents(path)


@pytest.mark.parametrize(
    "path", [DEPLOY / "compose/gateway.yaml", DEPLOY / "kubernetes/gateway.yaml"]
)
def test_the_shipped_gateway_configs_validate(path: Path) -> None:
    config = load_config(path, env=ENV)
    assert config.redis is not None  # many nodes share one Redis
    assert config.admin.token is not None  # the admin port listens off loopback


def test_kubernetes_probes_hit_the_health_endpoints() -> None:
    (deployment,) = documents(DEPLOY / "kubernetes/deployment.yaml")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    config_arg = container["args"][container["args"].index("-c") + 1]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(Path(config_arg).parent) in mounts
    kustomization = documents(DEPLOY / "kubernetes/kustomization.yaml")[0]
    assert Path(config_arg).name in kustomization["configMapGenerator"][0]["files"]
    for resource in kustomization["resources"]:
        assert (DEPLOY / "kubernetes" / resource).is_file()
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    drain = load_config(DEPLOY / "kubernetes/gateway.yaml", env=ENV).gateway.graceful_timeout
    assert grace > drain + 5  # the preStop pause plus the drain fit in


def test_compose_mounts_the_config_where_the_image_reads_it() -> None:
    dockerfile = (DEPLOY / "docker/Dockerfile").read_text()
    cmd = re.search(r"^CMD \[(.*)\]$", dockerfile, re.M)
    assert cmd is not None
    config_path = re.findall(r'"([^"]+)"', cmd.group(1))[2]
    compose = documents(DEPLOY / "compose/docker-compose.yml")[0]
    for node in ("gw1", "gw2"):
        volumes = compose["services"][node]["volumes"]
        assert any(v.split(":")[1] == config_path for v in volumes)
    haproxy = (DEPLOY / "compose/haproxy.cfg").read_text()
    assert "GET /health/ready" in haproxy
    assert {"gw1", "gw2"} <= set(re.findall(r"server (\w+)", haproxy))
