"""/admin on the real stack: hot load (checked on every replica), promote with gates or force, rollback, unload,
and refusal of tampered or unloadable adapters."""

from __future__ import annotations

import os

import httpx
import pytest

from tests.fixtures.serving import REPLICA_KEY_ENV, build_adapter

pytestmark = pytest.mark.slow


def served_on_vllm(url: str) -> dict[str, dict]:
    headers = {"Authorization": f"Bearer {os.environ[REPLICA_KEY_ENV]}"}
    return {m["id"]: m for m in httpx.get(url + "/v1/models", headers=headers, timeout=30).json()["data"]}


def test_hot_load_promote_rollback_unload(gateway, serving_stack, base_model, tmp_path):
    url, admin = gateway
    H = {"Authorization": f"Bearer {admin}"}
    registry = serving_stack.service.registry
    v1 = registry.get("medical")
    v2 = registry.register(build_adapter(tmp_path / "m2", base_model, "medical", seed=7))

    def admin_post(path, body, headers=H):
        return httpx.post(url + path, json=body, headers=headers, timeout=300)

    def chat(model):
        return httpx.post(url + "/v1/chat/completions", headers=H, timeout=120, json={
            "model": model, "messages": [{"role": "user", "content": "What is anemia?"}], "max_tokens": 4})

    user = serving_stack.key(["medical"])
    assert admin_post("/admin/load", {"model": v2.ref}, {"Authorization": f"Bearer {user}"}).status_code == 403
    assert chat(v2.ref).status_code == 404  # not loaded yet
    # the vLLM server itself, reached directly: loopback only, and no adapter swap without its key
    managed = serving_stack.managed()
    assert managed.url.startswith("http://127.0.0.1:") and "--host" in managed.process.spec.command()
    assert managed.process.spec.command()[managed.process.spec.command().index("--host") + 1] == "127.0.0.1"
    bypass = httpx.post(managed.url + "/v1/load_lora_adapter", timeout=30,
                        json={"lora_name": "medical@1", "lora_path": str(v2.path)})
    assert bypass.status_code == 401
    assert httpx.get(managed.url + "/v1/models", timeout=30).status_code == 401

    loaded = admin_post("/admin/load", {"model": v2.ref})
    assert loaded.status_code == 200, loaded.text
    for replica in serving_stack.pool.replicas:  # listed with the right parent and path on every replica
        card = served_on_vllm(replica.url)[v2.ref]
        assert card["parent"] == "smollm2-135m" and card["root"] == str(v2.path)
    answer = chat(v2.ref)
    assert answer.status_code == 200 and answer.json()["model"] == v2.ref

    refused = admin_post("/admin/promote", {"vertical": "medical", "version": v2.version})
    assert refused.status_code == 409 and "no eval report attached" in refused.json()["error"]["message"]
    promoted = admin_post("/admin/promote", {"vertical": "medical", "version": v2.version, "force": True})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json() == {"production": v2.ref, "previous": v1.ref, "forced": True}
    assert chat("medical").headers["x-domainlm-adapter"] == v2.ref
    assert registry.get("medical").version == v2.version
    assert v1.ref not in served_on_vllm(serving_stack.managed().url)  # the old version left the replicas
    assert any(r["event"] == "force" and r["actor"].startswith("key:") for r in registry.audit_log("medical"))

    assert admin_post("/admin/unload", {"model": v2.ref}).status_code == 409  # production cannot be unloaded

    rolled = admin_post("/admin/rollback", {"vertical": "medical"})
    assert rolled.status_code == 200, rolled.text
    assert rolled.json() == {"production": v1.ref, "previous": v2.ref}
    assert chat("medical").headers["x-domainlm-adapter"] == v1.ref
    assert v2.ref not in served_on_vllm(serving_stack.managed().url)
    status = httpx.get(url + "/admin/status", headers=H).json()
    assert status["production"]["medical"] == v1.ref and status["ready"]


def test_tampered_and_unloadable_adapters_are_refused(gateway, serving_stack, base_model, tmp_path):
    url, admin = gateway
    H = {"Authorization": f"Bearer {admin}"}
    registry = serving_stack.service.registry
    tampered = registry.register(build_adapter(tmp_path / "p2", base_model, "petrochem", seed=11))
    weights = tampered.path / "adapter_model.safetensors"
    os.chmod(weights, 0o644)
    weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)
    refused = httpx.post(url + "/admin/load", json={"model": tampered.ref}, headers=H, timeout=120)
    assert refused.status_code == 409 and "sha256 mismatch" in refused.json()["error"]["message"]

    too_big = registry.register(build_adapter(tmp_path / "p3", base_model, "petrochem", seed=12, rank=64))
    failed = httpx.post(url + "/admin/load", json={"model": too_big.ref}, headers=H, timeout=120)
    assert failed.status_code == 502 and failed.json()["error"]["code"] == "adapter_load_failed"
    assert too_big.ref not in served_on_vllm(serving_stack.managed().url)
    assert too_big.ref not in {m["id"] for m in httpx.get(url + "/v1/models", headers=H).json()["data"]}

    assert httpx.post(url + "/admin/load", json={"model": "../../etc@1"}, headers=H).status_code == 400
    assert httpx.post(url + "/admin/load", json={"model": "petrochem@999"}, headers=H).status_code == 404


def test_suspend_and_resume_through_the_admin_api(gateway, serving_stack):
    """The emergency switch from the admin API: a 503 naming the reason for the vertical's callers (the other
    vertical unaffected), shown in /admin/status and /admin/verticals, audited, undone by resume."""
    url, admin = gateway
    H = {"Authorization": f"Bearer {admin}"}

    def chat(model):
        return httpx.post(url + "/v1/chat/completions", headers=H, timeout=120, json={
            "model": model, "messages": [{"role": "user", "content": "What is anemia?"}], "max_tokens": 2})

    user = serving_stack.key(["medical"])
    refused = httpx.post(url + "/admin/verticals/medical/suspend", json={"reason": "x"},
                         headers={"Authorization": f"Bearer {user}"}, timeout=30)
    assert refused.status_code == 403
    assert httpx.post(url + "/admin/verticals/medical/suspend", json={"reason": ""}, headers=H,
                      timeout=30).status_code == 400
    done = httpx.post(url + "/admin/verticals/medical/suspend", json={"reason": "dosage answers under review"},
                      headers=H, timeout=30)
    assert done.status_code == 200 and done.json()["suspended"]["actor"].startswith("key:")
    try:
        answer = chat("medical")
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "vertical_suspended"
        assert "dosage answers under review" in answer.json()["error"]["message"]
        assert chat("petrochem").status_code == 200
        assert "medical" in httpx.get(url + "/admin/status", headers=H, timeout=30).json()["suspended"]
        events = httpx.get(url + "/admin/verticals", headers=H, timeout=30).json()["events"]
        assert events[0]["action"] == "suspend" and events[0]["vertical"] == "medical"
    finally:
        assert httpx.post(url + "/admin/verticals/medical/resume", headers=H, timeout=30).status_code == 200
    import time

    time.sleep(0.6)   # the store is re-read at most every 0.5 s
    assert chat("medical").status_code == 200
    assert httpx.post(url + "/admin/verticals/medical/resume", headers=H, timeout=30).status_code == 404
    audit = httpx.get(url + "/admin/audit", headers=H, params={"vertical": "medical", "limit": 50}, timeout=30).json()
    assert {"admin/vertical/suspend", "admin/vertical/resume"} <= {r["endpoint"] for r in audit["requests"]}
