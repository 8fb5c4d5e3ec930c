"""Two gateway processes on one PostgreSQL and one Redis (throwaway servers), through the official openai client:
the key's rate limit holds across both, a suspension made on one replica stops the other at once, a promotion made
through one is followed by the other, a revocation
from the CLI is refused by both within a second, every request lands in the one audit table exactly once, and
with audit.durable an answer is on the record before the client has it (a replica killed -9 right after loses
nothing)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import openai
import pytest
import yaml
from sqlalchemy import text

from domainlm.state import StateDB
from tests.fixtures.serving import free_port, registry_with_production, serve_config, stop_servers, wait_ready


def cli(*args):
    return subprocess.run([sys.executable, "-m", "domainlm.cli", *args], capture_output=True, text=True, timeout=120,
                          check=False)


def _ask(client):
    return client.chat.completions.create(model="petrochem", max_tokens=2,
                                          messages=[{"role": "user", "content": "What is crude oil?"}])


def _until(check, limit_s: float) -> float:
    """Seconds until check() is true, polled every 20 ms; fails past limit_s."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < limit_s, f"not within {limit_s} s"
        time.sleep(0.02)
    return time.monotonic() - start


def _refused(client, status: int) -> bool:
    try:
        _ask(client)
    except openai.APIStatusError as exc:
        return exc.status_code == status
    return False


@pytest.mark.slow
def test_two_replicas_share_limits_switches_revocations_and_audit(tmp_path, random_adapters, postgres_url,
                                                                  redis_server, base_model):
    from tests.fixtures.serving import build_adapter

    registry = registry_with_production(tmp_path, {"petrochem": random_adapters["petrochem"]})
    second = registry.register(build_adapter(tmp_path / "petrochem-v2", base_model, "petrochem", seed=7))
    made = cli("keys", "--db", postgres_url, "create", "--name", "app", "--scopes", "petrochem", "--rpm", "8")
    assert made.returncode == 0, made.stderr
    key, key_id = made.stdout.split()[0], made.stdout.split()[3]
    admin = cli("keys", "--db", postgres_url, "create", "--name", "ops",
                "--scopes", "admin,petrochem").stdout.split()[0]
    urls, procs = [], []
    try:
        for replica in range(2):
            config = serve_config(tmp_path, ["petrochem"], "hf")
            config["auth"] = {"cache_ttl_s": 60, "max_failures_per_minute": 100_000}   # revocation must beat it
            config["audit"] = {"flush_interval_s": 5, "secret_file": str(tmp_path / "audit-hmac.key"),
                               "durable": True}   # a long interval: only durability can put rows there in time
            config["state"] = {"url": postgres_url, "redis": redis_server.url}
            config["gateway"]["port"] = port = free_port()
            path = tmp_path / f"serve{replica}.yaml"
            path.write_text(yaml.safe_dump(config))
            procs.append(subprocess.Popen([sys.executable, "-m", "domainlm.cli", "serve", "--config", str(path)],
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                          start_new_session=True))
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, procs, strict=True):
            wait_ready(url, proc)
        clients = [openai.OpenAI(base_url=u + "/v1", api_key=key, max_retries=0, timeout=60) for u in urls]

        # 8 requests per minute for this key, whichever replica answers
        assert all(_ask(clients[i % 2]).model == "petrochem@1" for i in range(8))
        for client in clients:
            with pytest.raises(openai.RateLimitError) as limited:
                _ask(client)
            assert limited.value.body["code"] == "rate_limit_exceeded"

        # the emergency switch on replica 0 stops replica 1 at once (broadcast, not the 0.5 s poll)
        ops = [openai.OpenAI(base_url=u + "/v1", api_key=admin, max_retries=0, timeout=60) for u in urls]
        done = httpx.post(urls[0] + "/admin/verticals/petrochem/suspend", json={"reason": "drill"},
                          headers={"Authorization": f"Bearer {admin}"}, timeout=30)
        assert done.status_code == 200, done.text
        suspend_seen_s = _until(lambda: _refused(ops[1], 503), 1.0)
        assert httpx.post(urls[1] + "/admin/verticals/petrochem/resume", json={},
                          headers={"Authorization": f"Bearer {admin}"}, timeout=30).status_code == 200
        _until(lambda: _ask(ops[0]).model == "petrochem@1", 1.0)

        # a promotion through replica 0: replica 1 follows (the registry is shared; the broadcast says which vertical)
        promoted = httpx.post(urls[0] + "/admin/promote", json={"vertical": "petrochem", "version": second.version,
                                                                 "force": True},
                              headers={"Authorization": f"Bearer {admin}"}, timeout=120)
        assert promoted.status_code == 200, promoted.text
        follow_s = _until(lambda: _ask(ops[1]).model == second.ref, 30.0)
        assert _ask(ops[0]).model == second.ref

        # a revocation from the CLI, broadcast through Redis: both replicas refuse the key (401, not 429)
        revoked = cli("keys", "--db", postgres_url, "--redis", redis_server.url, "revoke", key_id)
        assert revoked.returncode == 0 and "broadcast to 2 gateway replica(s)" in revoked.stdout, revoked.stdout
        start = time.monotonic()
        for client in clients:
            _until(lambda c=client: _refused(c, 401), 1.0)
        revoke_seen_s = time.monotonic() - start
        print(f"suspension seen by the other replica after {suspend_seen_s * 1000:.0f} ms; promotion followed after "
              f"{follow_s * 1000:.0f} ms; revocation by both after {revoke_seen_s * 1000:.0f} ms (after the CLI "
              "returned)")

        # an answer, then kill -9 at once: with audit.durable its row is already committed
        last = ops[0].chat.completions.with_raw_response.create(
            model="petrochem", max_tokens=2, messages=[{"role": "user", "content": "What is a flare stack?"}])
        os.killpg(procs[0].pid, signal.SIGKILL)
        last_id = last.headers["x-request-id"]
        db = StateDB(postgres_url)
        with db.begin() as conn:
            rows = conn.execute(text("SELECT request_id, status FROM requests WHERE key_id = :k AND endpoint LIKE "
                                     "'%chat%'"), {"k": key_id}).all()
            switches = conn.execute(text("SELECT endpoint FROM requests WHERE endpoint LIKE 'admin/vertical/%' "
                                         "ORDER BY id")).scalars().all()
        assert sorted(status for _, status in rows).count(200) == 8
        assert len({request_id for request_id, _ in rows}) == len(rows)      # no request twice
        assert switches == ["admin/vertical/suspend", "admin/vertical/resume"]
        with db.begin() as conn:
            assert conn.execute(text("SELECT status FROM requests WHERE request_id = :r"), {"r": last_id}).scalar() \
                == 200
        db.dispose()
    finally:
        stop_servers(procs)
