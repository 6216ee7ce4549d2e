"""deploy/: the Kubernetes manifests pass the schema and agree with the app and the measurements."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.helpers import TestClient

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
MANIFESTS = ["deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"]
K8S_VERSION = "1.33.0"  # a release still served by the major clouds; the schema ships in kubernetes-validate


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / name).read_text())


def mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit == "Gi" else 1)


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_passes_the_kubernetes_schema(name: str) -> None:
    kubernetes_validate.validate(load(name), K8S_VERSION, strict=True)


def test_the_validator_rejects_a_broken_manifest() -> None:
    broken = load("deployment.yaml")
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eight thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    assert sorted(load("kustomization.yaml")["resources"]) == sorted(MANIFESTS)


def test_probes_hit_real_routes_and_ports_match(client: TestClient) -> None:
    container = load("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    (port,) = container["ports"]
    assert f"EXPOSE {port['containerPort']}" in (REPO / "Dockerfile").read_text()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] == port["name"]
        assert client.get(get["path"]).status_code == 200
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"  # 503 until the model loads
    service = load("service.yaml")["spec"]
    assert service["ports"][0]["targetPort"] == port["name"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # ClientIP affinity lasts as long as an idle session does
    assert service["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == int(env["LNRNN_SESSION_TTL_S"])


def test_memory_request_covers_the_measured_peak() -> None:
    results = json.loads((REPO / "bench" / "results.json").read_text())
    peak = results["serving"]["load"]["rss_after"]["peak_rss_mib"]  # 64 clients for 60 s
    resources = load("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert mebibytes(resources["requests"]["memory"]) >= peak
    assert mebibytes(resources["limits"]["memory"]) >= 2 * peak
