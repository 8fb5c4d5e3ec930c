"""Monitoring and early warning: the shipped alert rules pass `promtool check rules` and their own promtool unit
tests, name only metrics the gateway exports, and a real Alertmanager delivers an alert to the gateway's webhook
receiver, which writes it to the audit trail and, for a `domainlm_action: suspend` alert, suspends the vertical."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from domainlm.serving.metrics import Metrics
from domainlm.ports import free_port
from tests.fixtures.serving import wait_ready

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "domainlm-alerts.yml"
UNIT_TESTS = Path(__file__).with_name("alerts_test.yml")
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def exported_names() -> set[str]:
    """Every series name the gateway's /metrics can carry."""
    names = set()
    for family in Metrics().registry.collect():
        suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"],
                    "gauge": [""]}.get(family.type, [""])
        names.update(family.name + s for s in suffixes)
    return names


def test_rules_name_only_metrics_the_gateway_exports():
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} >= {"DomainlmHarmfulRequestSpike", "DomainlmBlockedOutputs",
                                           "DomainlmBlockedOutputBurst", "DomainlmRefusalRateDrift",
                                           "DomainlmGuardSlow"}
    exported = exported_names()
    for rule in rules:
        used = set(__import__("re").findall(r"\b(domainlm_[a-z_]+)\b", rule["expr"]))
        assert used and used <= exported, f"{rule['alert']} names {sorted(used - exported)}"
        assert rule["labels"]["severity"] in ("warning", "critical") and "{{ $labels.vertical }}" in \
            rule["annotations"]["summary"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (make setup installs Debian's "
                                                               "prometheus package)")
def test_promtool_checks_the_rules_and_runs_their_unit_tests():
    check = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert check.returncode == 0 and "SUCCESS: 5 rules found" in check.stdout, check.stdout + check.stderr
    unit = subprocess.run(["promtool", "test", "rules", str(UNIT_TESTS)], capture_output=True, text=True,
                          check=False)
    assert unit.returncode == 0 and "SUCCESS" in unit.stdout, unit.stdout + unit.stderr


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool not installed (make setup installs Debian's "
                                                             "prometheus-alertmanager package)")
def test_the_alertmanager_config_is_valid():
    check = subprocess.run(["amtool", "check-config", str(ALERTMANAGER_CONFIG)], capture_output=True, text=True,
                           check=False)
    assert check.returncode == 0 and "SUCCESS" in check.stdout, check.stdout + check.stderr


def _audit(stack, endpoint: str) -> list[dict]:
    rows = httpx.get(stack.url + "/admin/audit", headers={"Authorization": f"Bearer {stack.admin_key}"},
                     params={"limit": 200}).json()["requests"]
    return [r for r in rows if r["endpoint"] == endpoint]


def test_webhook_rejects_non_admin_keys_and_malformed_payloads(hf_stack):
    user = hf_stack.key(["petrochem"])
    body = {"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "X"}}]}
    refused = httpx.post(hf_stack.url + "/admin/alerts", json=body, headers={"Authorization": f"Bearer {user}"})
    assert refused.status_code == 403
    admin = {"Authorization": f"Bearer {hf_stack.admin_key}"}
    bad = httpx.post(hf_stack.url + "/admin/alerts", json={"status": "burning", "alerts": []}, headers=admin)
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("prometheus-alertmanager") is None,
                    reason="alertmanager not installed (make setup installs Debian's prometheus-alertmanager package)")
def test_a_real_alertmanager_reaches_the_gateway_which_audits_and_suspends(hf_stack, tmp_path):
    key_file = tmp_path / "alertmanager.key"
    key_file.write_text(hf_stack.admin_key)
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["route"].update(group_wait="1s", group_interval="1s")
    hook = config["receivers"][0]["webhook_configs"][0]
    hook["url"] = hf_stack.url + "/admin/alerts"
    hook["http_config"]["authorization"]["credentials_file"] = str(key_file)
    (tmp_path / "am.yml").write_text(yaml.safe_dump(config))
    port, cluster = free_port(), free_port()
    proc = subprocess.Popen(["prometheus-alertmanager", f"--config.file={tmp_path / 'am.yml'}",
                             f"--storage.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                             f"--cluster.listen-address=127.0.0.1:{cluster}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    am = f"http://127.0.0.1:{port}"
    try:
        wait_ready(am, proc, 30, path="/-/ready")
        alerts = [{"labels": {"alertname": "DomainlmBlockedOutputBurst", "vertical": "petrochem",
                              "severity": "critical", "domainlm_action": "suspend"},
                   "annotations": {"summary": "petrochem: 10 or more harmful answers stopped within 5 minutes"}},
                  {"labels": {"alertname": "DomainlmGuardSlow", "vertical": "medical", "severity": "warning"},
                   "annotations": {"summary": "medical: guard checks take over 10 ms at p99"}}]
        assert httpx.post(am + "/api/v2/alerts", json=alerts).status_code == 200
        def names() -> set[str]:   # the session's gateway may hold other alerts already (the fuzz tests post some)
            return {json.loads(r["policy"])["alert"] if isinstance(r["policy"], str) else r["policy"]["alert"]
                    for r in _audit(hf_stack, "admin/alerts")}

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not {"DomainlmBlockedOutputBurst", "DomainlmGuardSlow"} <= names():
            time.sleep(0.3)
        assert {"DomainlmBlockedOutputBurst", "DomainlmGuardSlow"} <= names()
        suspended = hf_stack.service.suspensions.get("petrochem")
        assert suspended is not None and "DomainlmBlockedOutputBurst" in suspended.reason
        assert hf_stack.service.suspensions.get("medical") is None     # a warning does not stop a vertical
        refused = httpx.post(hf_stack.url + "/v1/chat/completions",
                             headers={"Authorization": f"Bearer {hf_stack.admin_key}"},
                             json={"model": "petrochem", "messages": [{"role": "user", "content": "hi"}]})
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "vertical_suspended"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if hf_stack.service.suspensions.get("petrochem") is not None:
            hf_stack.service.suspensions.resume("petrochem", "tests")
