"""`domainlm keys` and `domainlm serve` as a user runs them (real subprocesses, real SQLite, real HTTP)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml
from openai import OpenAI

from tests.fixtures.serving import free_port, registry_with_production, serve_config, wait_ready


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "domainlm.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False, **kw)


def test_keys_create_list_revoke_store_only_hashes(tmp_path):
    db = tmp_path / "keys.sqlite"
    created = cli("keys", "--db", str(db), "create", "--name", "alice", "--scopes", "medical,admin", "--rpm", "5")
    assert created.returncode == 0, created.stderr
    key = created.stdout.splitlines()[0]
    assert key.startswith("dlm_") and key.encode() not in db.read_bytes()
    from domainlm.hashing import sha256_bytes
    from domainlm.serving.auth import KeyStore

    store = KeyStore(db, cache_ttl_s=0)
    assert sha256_bytes(key).encode() in db.read_bytes()
    record = store.authenticate(key)
    assert record.scopes == ("admin", "medical") and record.rpm == 5
    listed = json.loads(cli("keys", "--db", str(db), "list", "--json").stdout)
    assert [k["name"] for k in listed] == ["alice"] and "key" not in listed[0]
    assert cli("keys", "--db", str(db), "revoke", record.id).returncode == 0
    assert store.authenticate(key) is None
    assert "revoked" in cli("keys", "--db", str(db), "list").stdout
    bad = cli("keys", "--db", str(db), "create", "--name", "x", "--scopes", "../etc")
    assert bad.returncode == 2 and "invalid scope" in bad.stderr and "Traceback" not in bad.stderr
    missing = cli("keys", "--db", str(db), "revoke", "nope")
    assert missing.returncode == 2 and "no API key with id 'nope'" in missing.stderr


def test_serve_check_validates_shipped_configs():
    result = cli("serve", "--config", "configs/serve/production.yaml", "--check")
    assert result.returncode == 0 and json.loads(result.stdout)["bases"][0]["vllm"]["tensor_parallel_size"] == 2
    bad = cli("serve", "--config", "configs/serve/local.yaml", "bases.0.vllm.replicas=-1", "--check")
    assert bad.returncode == 2 and "bases.0.vllm.replicas" in bad.stderr


@pytest.mark.slow
def test_serve_command_runs_the_gateway_until_sigterm(tmp_path, random_adapters):
    registry_with_production(tmp_path, {"petrochem": random_adapters["petrochem"]})
    config = serve_config(tmp_path, ["petrochem"], "hf")
    config["gateway"]["port"] = port = free_port()
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    key = cli("keys", "--db", str(tmp_path / "gateway.sqlite"), "create", "--name", "t",
              "--scopes", "petrochem").stdout.split()[0]
    proc = subprocess.Popen([sys.executable, "-m", "domainlm.cli", "serve", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "DOMAINLM_LOG_LEVEL": "INFO"})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, 180)
        client = OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
        answer = client.chat.completions.create(model="petrochem", max_tokens=4,
                                                messages=[{"role": "user", "content": "What is crude oil?"}])
        assert answer.model == "petrochem@1" and answer.choices[0].message.content
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    # uvicorn shuts down gracefully (engines stopped) and then re-raises SIGTERM, the conventional exit status
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "gateway stopped" in out and "Traceback" not in out
