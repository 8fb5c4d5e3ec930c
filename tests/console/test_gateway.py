"""The console API on real gateways over the session's vLLM server: what the page reads about engines, eval
reports, live metrics and the audit log (medical prompts only as hashes)."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

pytestmark = pytest.mark.slow


def get(url: str, key: str, path: str) -> dict:
    response = httpx.get(url + path, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_report_view_matches_the_harness_report_and_the_gates(console_stack):
    s, v = console_stack, console_stack.vertical
    view = get(s.url, s.viewer_key, f"/console/api/reports/{v}/2")
    report = s.report
    label = report["summary"]["adapter"]
    assert label == f"{v}@2" and view["subject"]["artifact_id"] == report["subject"]["artifact_id"]
    rows = {r["task"]: r for r in view["domain"] + view["domain_nll"] + view["general"]}
    assert set(rows) == set(report["tasks"])
    assert [r["task"] for r in view["general"]] == report["summary"]["general_tasks"]
    for name, task in report["tasks"].items():
        metric = task["primary_metric"]
        for side, subject in (("base", "base"), ("adapter", label)):
            stats = task["scores"][subject][metric]
            assert rows[name][side] == {"value": stats["mean"], "lo": stats["ci_low"], "hi": stats["ci_high"]}
        assert rows[name]["p_value"] == task["comparisons"][label]["p_value"]
        assert rows[name]["n"] == task["n_items"]
    assert view["summary"]["domain_gain"] == report["summary"]["domain_gain"]
    assert view["summary"]["significant"] == report["summary"]["significant"]
    decision = s.service.registry.check_promotion(v, 2)
    assert {g["name"] for g in view["gates"]} == set(decision.checked)
    assert all(g["passed"] for g in view["gates"]) == decision.passed
    missing = httpx.get(s.url + f"/console/api/reports/{v}/1", headers={"Authorization": f"Bearer {s.viewer_key}"})
    assert missing.status_code == 404 and "no eval report attached" in missing.json()["error"]["message"]


def test_verticals_name_the_engine_and_backend_that_serve_them(gateway, serving_stack):
    url, key = gateway
    rows = {r["name"]: r for r in get(url, key, "/console/api/verticals")["verticals"]}
    for vertical in serving_stack.service.config.bases[0].verticals:
        assert rows[vertical]["served"] and rows[vertical]["engine"].startswith("vllm-lora")
        assert rows[vertical]["backend"] == "cpu"
        assert rows[vertical]["production"] == serving_stack.service.registry.production(vertical).version


def test_audit_shows_medical_prompts_only_as_hashes_and_live_counts_them(gateway, serving_stack):
    from openai import OpenAI

    url, key = gateway
    secret = f"My neighbour {uuid.uuid4().hex[:8]} has a rash, what should he do?"
    request_id = uuid.uuid4().hex
    client = OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)
    client.chat.completions.create(model="medical", messages=[{"role": "user", "content": secret}], max_tokens=4,
                                   extra_headers={"x-request-id": request_id})
    response = httpx.get(url + "/console/api/audit?vertical=medical&limit=50",
                         headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert secret not in response.text
    row = next(r for r in response.json()["rows"] if r["request_id"] == request_id)
    assert row["prompt"] is None and re.fullmatch(r"[0-9a-f]{64}", row["prompt_sha256"])
    assert row["status"] == 200 and row["endpoint"] == "chat" and row["total_tokens"] > 4
    assert row["who"].startswith("admin (")
    live = {r["vertical"]: r for r in get(url, key, "/console/api/live")["verticals"]}
    assert live["medical"]["requests"] >= 1 and live["medical"]["completion_tokens"] >= 4
    assert live["medical"]["p50_ms"] > 0
    # a key scoped to another vertical does not see medical's traffic
    seen = {r["vertical"] for r in get(url, serving_stack.key(["petrochem"]), "/console/api/live")["verticals"]}
    assert seen <= {"petrochem"}
