"""An open gateway (auth.required: false) and the Host check, on a real app with no engines: anonymous callers never
reach /admin, and a Host name the gateway does not answer (DNS rebinding) is refused before any route runs."""

from __future__ import annotations

from fastapi.testclient import TestClient

from domainlm.serving.app import allowed_hosts, create_app, host_name
from domainlm.serving.config import ServeConfig


def _config(tmp_path, auth=None, audit=None, **gateway):
    """A gateway with no engines; open (auth.required: false) unless `auth` says otherwise."""
    return ServeConfig.model_validate({
        "registry": str(tmp_path / "registry"),
        "auth": {"db": str(tmp_path / "gw.sqlite"), **(auth or {"required": False})},
        "audit": {"db": str(tmp_path / "gw.sqlite"), **(audit or {"flush_interval_s": 0.05})},
        "gateway": {"console": False, **gateway}, "bases": []})


def test_anonymous_callers_of_an_open_gateway_are_not_admins(tmp_path):
    with TestClient(create_app(_config(tmp_path, allowed_hosts=["testserver"]))) as client:
        assert client.get("/v1/models").status_code == 200          # open for the OpenAI routes
        for method, path in [("GET", "/admin/keys"), ("POST", "/admin/keys"), ("GET", "/admin/status")]:
            response = client.request(method, path, json={"name": "x", "scopes": ["admin"]})
            assert response.status_code == 403, (path, response.text)
            assert response.json()["error"]["code"] == "insufficient_scope"


def test_a_loopback_gateway_answers_only_loopback_host_names(tmp_path):
    config = _config(tmp_path)                                         # bound to 127.0.0.1, no allowed_hosts
    assert allowed_hosts(config.gateway) >= {"127.0.0.1", "localhost", "::1"}
    with TestClient(create_app(config), base_url="http://127.0.0.1:8080") as client:
        assert client.get("/health").status_code == 200
        rebound = client.get("/health", headers={"host": "attacker.example:8080"})
        assert rebound.status_code == 400 and rebound.json()["error"]["code"] == "invalid_host"
    assert host_name("[::1]:8080") == "::1" and host_name("LocalHost:1") == "localhost"
    assert allowed_hosts(_config(tmp_path, host="0.0.0.0").gateway) is None
    assert allowed_hosts(_config(tmp_path, allowed_hosts=["*"]).gateway) is None


def test_admin_actions_and_refusals_on_every_route_are_audited(tmp_path):
    """Finding 11: key creation and revocation, and 401/403 outside /v1, each leave an audit row naming the key."""
    config = _config(tmp_path, auth={"cache_ttl_s": 0}, console=True, allowed_hosts=["testserver"])
    app = create_app(config)
    with TestClient(app) as client:
        service = app.state.service
        admin = service.keys.create("root", ["admin"])[0]
        viewer = service.keys.create("viewer", ["medical"])[0]
        created = client.post("/admin/keys", json={"name": "new", "scopes": ["medical"]},
                              headers={"Authorization": f"Bearer {admin}"})
        assert created.status_code == 200
        new_id = created.json()["id"]
        assert client.delete(f"/admin/keys/{new_id}", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
        assert client.get("/admin/keys", headers={"Authorization": f"Bearer {viewer}"}).status_code == 403
        assert client.get("/console/api/audit").status_code == 401
        assert client.get("/metrics").status_code == 403
        service.audit.flush()
        rows = {(r["endpoint"], r["status"]): r for r in service.audit.rows(limit=50)}
    admin_id = next(k.id for k in service.keys.list() if k.name == "root")
    viewer_id = next(k.id for k in service.keys.list() if k.name == "viewer")
    assert rows[("POST /admin/keys", 200)]["key_id"] == admin_id
    assert rows[(f"DELETE /admin/keys/{new_id}", 200)]["key_id"] == admin_id
    assert rows[("GET /admin/keys", 403)]["key_id"] == viewer_id
    assert rows[("GET /console/api/audit", 401)]["key_id"] is None
    assert ("GET /metrics", 403) in rows


def test_console_and_admin_calls_count_against_the_keys_rate_limit(tmp_path):
    """Finding 15: outside /v1 a key is limited too (requests per minute)."""
    config = _config(tmp_path, auth={"cache_ttl_s": 0}, audit={}, console=True, allowed_hosts=["testserver"])
    app = create_app(config)
    with TestClient(app) as client:
        key = app.state.service.keys.create("slow", ["admin"], rpm=3)[0]
        headers = {"Authorization": f"Bearer {key}"}
        statuses = [client.get(path, headers=headers).status_code
                    for path in ("/console/api/session", "/admin/keys", "/console/api/verticals", "/admin/keys")]
    assert statuses == [200, 200, 200, 429]


def test_a_flood_of_random_keys_is_throttled_per_address_and_audited_once(tmp_path):
    """Finding 5: failed authentications are counted per client address; past the limit the address gets 429
    before any key lookup, a key that just worked still passes, and the audit keeps one row for the flood."""
    config = _config(tmp_path, auth={"cache_ttl_s": 30, "max_failures_per_minute": 5}, allowed_hosts=["testserver"])
    app = create_app(config)
    with TestClient(app) as client:
        service = app.state.service
        good = service.keys.create("good", ["medical"])[0]
        assert client.get("/v1/models", headers={"Authorization": f"Bearer {good}"}).status_code == 200
        codes = [client.get("/v1/models", headers={"Authorization": f"Bearer dlm_x_{i}"}).status_code
                 for i in range(8)]
        assert codes == [401] * 5 + [429] * 3
        assert client.get("/v1/models", headers={"Authorization": f"Bearer {good}"}).status_code == 200
        service.audit.flush()
        refused = [r for r in service.audit.rows(limit=100) if r["status"] in (401, 429)]
    assert len(refused) == 1
