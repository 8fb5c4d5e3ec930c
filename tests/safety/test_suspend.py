"""The emergency switch: `domainlm vertical suspend` stops a vertical on every gateway replica sharing the database
within 2 s (a 503 naming the reason, through the official openai client), is audit-logged, and `resume` undoes it."""

from __future__ import annotations

import subprocess
import sys
import time

import openai
import pytest
import yaml

from domainlm.serving.suspension import SuspensionError, SuspensionStore, switch
from tests.fixtures.serving import free_port, registry_with_production, serve_config, stop_servers, wait_ready


def cli(*args):
    return subprocess.run([sys.executable, "-m", "domainlm.cli", *args], capture_output=True, text=True, timeout=120,
                          check=False)


def test_store_suspends_resumes_and_keeps_every_switch(tmp_path):
    rows = []
    store, other = SuspensionStore(tmp_path / "g.sqlite"), SuspensionStore(tmp_path / "g.sqlite", max_age_s=0.2)
    assert other.get("medical") is None
    switch(store, "suspend", "medical", "key:ops", lambda **row: rows.append(row), "guard alert: blocked outputs")
    time.sleep(0.25)
    seen = other.get("medical")   # another replica's store: within its max_age_s
    assert seen.reason == "guard alert: blocked outputs" and seen.actor == "key:ops"
    with pytest.raises(SuspensionError, match="reason"):
        store.suspend("marine", "   ", "key:ops")
    with pytest.raises(SuspensionError, match="invalid vertical name"):
        store.suspend("Medical!", "x", "key:ops")
    switch(store, "resume", "medical", "key:ops", lambda **row: rows.append(row))
    with pytest.raises(SuspensionError, match="not suspended"):
        store.resume("medical", "key:ops")
    time.sleep(0.25)
    assert other.get("medical") is None
    assert [e["action"] for e in store.events()] == ["resume", "suspend"]
    assert [r["endpoint"] for r in rows] == ["admin/vertical/suspend", "admin/vertical/resume"]
    assert rows[0]["policy"]["reason"] == "guard alert: blocked outputs" and rows[0]["status"] == 200


def _start(config_path):
    return subprocess.Popen([sys.executable, "-m", "domainlm.cli", "serve", "--config", str(config_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _ask(client):
    return client.chat.completions.create(model="petrochem", max_tokens=2,
                                          messages=[{"role": "user", "content": "What is crude oil?"}])


@pytest.mark.slow
def test_suspend_reaches_every_replica_within_two_seconds_and_resume_undoes_it(tmp_path, random_adapters):
    registry_with_production(tmp_path, {"petrochem": random_adapters["petrochem"]})
    db = tmp_path / "gateway.sqlite"
    key = cli("keys", "--db", str(db), "create", "--name", "t", "--scopes", "petrochem").stdout.split()[0]
    urls, procs = [], []
    try:
        for replica in range(2):   # two gateway processes, one shared database
            config = serve_config(tmp_path, ["petrochem"], "hf")
            config["gateway"]["port"] = port = free_port()
            path = tmp_path / f"serve{replica}.yaml"
            path.write_text(yaml.safe_dump(config))
            procs.append(_start(path))
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, procs, strict=True):
            wait_ready(url, proc)
        clients = [openai.OpenAI(base_url=u + "/v1", api_key=key, max_retries=0, timeout=60) for u in urls]
        assert all(_ask(c).model == "petrochem@1" for c in clients)

        done = cli("vertical", "--db", str(db), "suspend", "petrochem", "--reason", "interlock advice under review")
        assert done.returncode == 0 and "suspended petrochem" in done.stdout
        switched = time.monotonic()
        for client in clients:
            while True:
                try:
                    _ask(client)
                except openai.APIStatusError as exc:
                    assert exc.status_code == 503 and exc.body["code"] == "vertical_suspended"
                    assert "interlock advice under review" in exc.body["message"]
                    break
                assert time.monotonic() - switched < 2.0, "a replica still served a suspended vertical after 2 s"
                time.sleep(0.05)
        assert time.monotonic() - switched < 2.0
        status = cli("vertical", "--db", str(db), "status")
        assert "petrochem" in status.stdout and "interlock advice under review" in status.stdout

        assert cli("vertical", "--db", str(db), "resume", "petrochem").returncode == 0
        time.sleep(1.0)
        assert all(_ask(c).model == "petrochem@1" for c in clients)
        import sqlite3

        with sqlite3.connect(db) as con:   # both switches on the audit record
            audit = [r[0] for r in con.execute("SELECT endpoint FROM requests WHERE endpoint LIKE 'admin/vertical/%'")]
        assert audit == ["admin/vertical/suspend", "admin/vertical/resume"]
    finally:
        stop_servers(procs)
