"""The console's page, files and JSON API through the real gateway app (real registry, key store, SQLite)."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from domainlm.serving.console import static_files

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "domainlm" / "serving" / "console" / "static"
SVG_NS = "http://www.w3.org/2000/svg"  # a namespace name, never fetched


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"]), body
    return body["error"]


# --- page and files ---------------------------------------------------------------------------------------------
def test_page_and_every_file_it_loads_come_from_the_package(console_client):
    c = console_client.client
    page = c.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    wanted = set(re.findall(r'/console/static/([\w.]+)', page.text))
    for name in static_files.names():
        if name.endswith(".js"):
            wanted |= set(re.findall(r'from "\./([\w.]+)"', (STATIC / name).read_text()))
    assert {"app.js", "app.css", "i18n.js", "charts.js", "view_playground.js"} <= wanted
    assert wanted | {"index.html"} == set(static_files.names())  # nothing shipped that the page does not use
    for name in wanted:
        response = c.get(f"/console/static/{name}")
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind), name
        assert response.content == (STATIC / name).read_bytes()


def test_no_file_points_outside_the_gateway():
    for path in STATIC.iterdir():
        if path.suffix in (".html", ".js", ".css"):
            text = path.read_text().replace(SVG_NS, "")
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), f"{path.name} names a host"
            assert "@import" not in text and "localStorage.setItem(KEY" not in text


def test_static_route_serves_only_console_files(console_client):
    c = console_client.client
    for bad in ("__init__.py", "..%2Frouter.py", "%2e%2e%2fstatic_files.py", "missing.js", "APP.JS"):
        response = c.get(f"/console/static/{bad}")
        assert response.status_code == 404, bad
        assert error_of(response)["type"] == "not_found_error"


def test_package_data_ships_the_console_files():
    """setuptools' package-data patterns must match every served file, in a folder that is a package."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["*"]
    assert (STATIC / "__init__.py").is_file()
    for name in static_files.names():
        assert any(fnmatch(name, p) for p in patterns), f"{name} would be left out of the wheel"


# --- auth -------------------------------------------------------------------------------------------------------
def test_api_takes_the_same_keys_as_the_openai_routes(console_client):
    cc = console_client
    missing = cc.call("GET", "/console/api/session", None)
    assert missing.status_code == 401 and error_of(missing)["code"] == "invalid_api_key"
    assert cc.call("GET", "/console/api/verticals", "dlm_nope_nope").status_code == 401
    viewer = cc.call("GET", "/console/api/session", cc.viewer_key).json()
    assert viewer["name"] == "viewer" and viewer["admin"] is False and viewer["scopes"] == ["*"]
    assert cc.call("GET", "/console/api/session", cc.admin_key).json()["admin"] is True
    key_id = viewer["id"]
    cc.service.keys.revoke(key_id)
    assert cc.call("GET", "/console/api/session", cc.viewer_key).status_code == 401


# --- views ------------------------------------------------------------------------------------------------------
def test_verticals_show_registry_state_gates_and_titles(console_client):
    from domainlm.verticals import get_vertical

    rows = {v["name"]: v for v in console_client.call("GET", "/console/api/verticals",
                                                       console_client.viewer_key).json()["verticals"]}
    assert {"medical", "petrochem", "marine"} <= set(rows)
    medical = rows["medical"]
    assert medical["production"] == 1 and medical["candidates"] == [2] and medical["archived"] == []
    assert medical["reported"] == []
    assert medical["title"] == {"en": "Medical", "zh": "医疗"}
    gates = get_vertical("medical").gates
    assert {g["name"]: g["value"] for g in medical["gates"]} == {
        k: v for k, v in gates.model_dump().items() if v is not None and v is not False}
    assert rows["marine"]["production"] is None and rows["marine"]["candidates"] == []
    assert rows["petrochem"]["candidates"] == [1]
    assert medical["served"] is False and medical["engine"] is None  # this app runs no engine


def test_a_scoped_key_sees_only_its_verticals(console_client):
    cc = console_client
    medical_only = cc.service.keys.create("medical-only", ["medical", "admin"])[0]
    names = [v["name"] for v in cc.call("GET", "/console/api/verticals", medical_only).json()["verticals"]]
    assert names == ["medical"]
    assert cc.call("GET", "/console/api/registry/medical", medical_only).status_code == 200
    for method, path, body in [("GET", "/console/api/registry/petrochem", None),
                               ("GET", "/console/api/reports/petrochem/1", None),
                               ("POST", "/console/api/registry/petrochem/promote", {"version": 1, "force": True}),
                               ("POST", "/console/api/registry/petrochem/rollback", None)]:
        refused = cc.call(method, path, medical_only, json=body)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["error"]["code"] == "insufficient_scope"


def test_registry_history_carries_manifest_details(console_client, base_model, medical_adapter_v2):
    import json

    data = console_client.call("GET", "/console/api/registry/medical", console_client.viewer_key).json()
    assert data["production"] == 1 and [e["version"] for e in data["entries"]] == [2, 1]
    v2 = data["entries"][0]
    manifest = json.loads((medical_adapter_v2 / "manifest.json").read_text())
    assert v2["stage"] == "candidate" and v2["ref"] == "medical@2"
    assert v2["base"]["weights_sha256"] == base_model.weights_sha256
    assert v2["config"] == manifest["config"] and v2["data_sources"] == manifest["data_sources"]
    assert v2["artifact_id"] == console_client.registry.get("medical", 2).artifact_id
    assert v2["has_report"] is False
    no_report = console_client.call("GET", "/console/api/reports/medical/2", console_client.viewer_key)
    assert no_report.status_code == 404 and "no eval report attached" in error_of(no_report)["message"]
    assert [e["event"] for e in data["events"]][-1] == "register"
    unknown = console_client.call("GET", "/console/api/registry/nosuch", console_client.viewer_key)
    assert unknown.status_code == 404 and "nosuch" in error_of(unknown)["message"]
    bad = console_client.call("GET", "/console/api/registry/..%2Fx", console_client.viewer_key)
    assert bad.status_code in (400, 404)


# --- admin actions ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,path,body", [
    ("POST", "/console/api/registry/medical/promote", {"version": 2, "force": True}),
    ("POST", "/console/api/registry/medical/rollback", None),
    ("GET", "/console/api/audit", None),
])
def test_read_only_key_is_refused_with_a_clear_message(console_client, method, path, body):
    response = console_client.call(method, path, console_client.viewer_key, json=body)
    error = error_of(response)
    assert response.status_code == 403 and error["type"] == "permission_error"
    assert "'admin' scope" in error["message"] and "'viewer'" in error["message"]
    assert console_client.registry.production("medical").version == 1  # nothing moved


def test_admin_promotes_through_the_gates_and_rolls_back(console_client):
    cc = console_client
    refused = cc.call("POST", "/console/api/registry/medical/promote", cc.admin_key, json={"version": 2})
    assert refused.status_code == 409 and "no eval report attached" in error_of(refused)["message"]
    assert cc.registry.production("medical").version == 1

    promoted = cc.call("POST", "/console/api/registry/medical/promote", cc.admin_key,
                       json={"version": 2, "force": True})
    assert promoted.status_code == 200 and promoted.json()["production"] == 2
    stages = {e["version"]: e["stage"] for e in promoted.json()["entries"]}
    assert stages == {1: "archived", 2: "production"}
    admin_id = cc.call("GET", "/console/api/session", cc.admin_key).json()["id"]
    assert promoted.json()["events"][0] == {**promoted.json()["events"][0], "event": "force",
                                            "actor": f"key:{admin_id}", "version": 2, "previous": 1}

    rolled = cc.call("POST", "/console/api/registry/medical/rollback", cc.admin_key)
    assert rolled.status_code == 200 and rolled.json()["production"] == 1
    assert cc.registry.production("medical").version == 1
    again = cc.call("POST", "/console/api/registry/medical/rollback", cc.admin_key)
    assert again.status_code == 409 and "no earlier production version" in error_of(again)["message"]


def test_audit_log_lists_calls_with_key_names(console_client):
    cc = console_client
    cc.call("POST", "/v1/chat/completions", cc.viewer_key,
            json={"model": "medical", "messages": [{"role": "user", "content": "hello"}]})  # 404: no engine here
    rows = cc.call("GET", "/console/api/audit?limit=5", cc.admin_key).json()["rows"]
    assert rows and rows[0]["endpoint"] == "chat" and rows[0]["status"] == 404
    assert rows[0]["who"].startswith("viewer (") and "answer" not in rows[0]
    assert cc.call("GET", "/console/api/audit?limit=0", cc.admin_key).status_code == 400
