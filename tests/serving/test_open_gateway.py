"""An open gateway (auth.required: false) and the Host check, on a real app with no engines: anonymous callers never
reach /admin, and a Host name the gateway does not answer (DNS rebinding) is refused before any route runs."""

from __future__ import annotations

from fastapi.testclient import TestClient

from domainlm.serving.app import allowed_hosts, create_app, host_name
from domainlm.serving.config import ServeConfig


def _config(tmp_path, **gateway):
    return ServeConfig.model_validate({
        "registry": str(tmp_path / "registry"), "auth": {"db": str(tmp_path / "gw.sqlite"), "required": False},
        "audit": {"db": str(tmp_path / "gw.sqlite"), "flush_interval_s": 0.05},
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
