"""Small pure parts of the gateway: SSE framing, rate-limit arithmetic, prompt-length bound, config checks."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domainlm.errors import ConfigError
from domainlm.serving.config import ServeConfig
from domainlm.serving.engines.sse import data_payloads
from domainlm.serving.engines.vllm_process import ProcessSpec, engine_args_to_flags
from domainlm.serving.ratelimit import RateLimited, RateLimiter


async def _collect(chunks):
    async def source():
        for c in chunks:
            yield c
    return [p async for p in data_payloads(source())]


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
                        min_size=1).filter(lambda p: p.strip() != "[DONE]"), min_size=1, max_size=6),
       st.integers(1, 7))
@settings(max_examples=60, deadline=None)
def test_sse_payloads_survive_any_chunking(payloads, cut):
    stream = b"".join(b"data: " + p.encode() + b"\n\n" for p in payloads) + b"data: [DONE]\n\ndata: after\n\n"
    chunks = [stream[i:i + cut] for i in range(0, len(stream), cut)]
    assert asyncio.run(_collect(chunks)) == [p.encode().lstrip(b" ") for p in payloads]


def test_rate_limiter_windows_and_retry_after():
    now = [1000.0]
    limiter = RateLimiter(clock=lambda: now[0])
    for _ in range(3):
        limiter.admit("k", rpm=3, tpm=10_000, estimated_tokens=10)
    with pytest.raises(RateLimited) as info:
        limiter.admit("k", rpm=3, tpm=10_000, estimated_tokens=10)
    assert info.value.retry_after == pytest.approx(60.0)
    now[0] += 30
    with pytest.raises(RateLimited) as info:
        limiter.admit("k", rpm=3, tpm=10_000, estimated_tokens=10)
    assert info.value.retry_after == pytest.approx(30.0)
    now[0] += 30.01
    reservation = limiter.admit("k", rpm=3, tpm=100, estimated_tokens=90)
    with pytest.raises(RateLimited, match="tokens per minute"):
        limiter.admit("k", rpm=3, tpm=100, estimated_tokens=20)
    RateLimiter.settle(reservation, 5)  # the real usage was small: the budget frees up
    limiter.admit("k", rpm=3, tpm=100, estimated_tokens=20)
    limiter.admit("other", rpm=1, tpm=100, estimated_tokens=1)  # keys are independent


@given(st.text(max_size=300))
@settings(max_examples=40, deadline=None)
def test_prompt_byte_bound_is_never_below_the_real_token_count(text):
    from domainlm.models import resolve_base
    from domainlm.serving.context import PromptCounter

    counter = _counter(resolve_base().path)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]
    assert asyncio.run(counter.exact_chat(messages)) <= PromptCounter.upper_bound_chat(messages)


_COUNTERS = {}


def _counter(path):
    from domainlm.serving.context import PromptCounter

    return _COUNTERS.setdefault(str(path), PromptCounter(path))


def test_vllm_command_line():
    spec = ProcessSpec(model_path="/m", served_names=["base"], port=9, lora_modules={"medical@2": "/r/medical/2"},
                       backend_args={"enable_lora": True, "dtype": "bfloat16", "enforce_eager": True})
    cmd = spec.command()
    assert cmd[1:3] == ["-m", "vllm.entrypoints.launchers.api_server.entry"]   # ops come by the vLLM plugin
    assert cmd[cmd.index("--lora-modules") + 1] == "medical@2=/r/medical/2"
    assert cmd.count("--enforce-eager") == 1 and cmd[cmd.index("--dtype") + 1] == "bfloat16"
    assert engine_args_to_flags({"a_b": False, "c": None, "d": 2}) == ["--no-a-b", "--d", "2"]


@pytest.mark.parametrize("data, message", [
    ({"bases": [{"verticals": ["medical"]}, {"model": "x", "verticals": ["medical"]}]}, "served on two bases"),
    ({"bases": [{"verticals": ["../x"]}]}, "invalid vertical name"),
    ({"bases": [{"pinned": ["medical"]}]}, "needs @N"),
    ({"limits": {"max_tokens": 8, "default_max_tokens": 16}}, "default_max_tokens"),
    ({"gateway": {"port": 70000}}, "gateway.port"),
])
def test_config_mistakes_are_named(data, message):
    from domainlm.config.loader import validate

    with pytest.raises(ConfigError, match=message):
        validate(ServeConfig, data, "test.yaml")


def test_a_managed_process_dies_with_the_process_that_started_it(tmp_path):
    """kill -9 of a gateway (or an aborted test run) takes its vLLM replicas down with it: the child gets SIGTERM
    from the kernel (PR_SET_PDEATHSIG, set by the same preexec hook VllmProcess.start uses)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "from domainlm.children import die_with_parent\n"
        "child = subprocess.Popen(['sleep', '120'], start_new_session=True, preexec_fn=die_with_parent)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(child, 0)                       # running while its parent lives
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the child outlived its killed parent")


def test_a_prompt_too_long_by_its_bytes_alone_is_refused_without_tokenizing():
    from domainlm.models import resolve_base
    from domainlm.serving.context import PromptCounter

    counter = _counter(resolve_base().path)
    longest = counter.longest_token_bytes()
    assert 8 <= longest <= 256
    text = "word " * 200_000                                   # 1 MB: tokenizing it would take seconds
    assert counter.lower_bound(len(text.encode())) * longest >= len(text.encode())
    assert counter.lower_bound(len(text.encode())) > 2048    # refused against a 2,048-token context, untokenized
    sample = "The reactor's relief valve lifted at 12 bar; 反应器安全阀在12巴起跳。" * 5
    exact = asyncio.run(counter.exact_text([sample]))
    assert counter.lower_bound(len(sample.encode())) <= exact <= PromptCounter.upper_bound_text([sample])


def test_a_tampered_adapter_is_never_loaded_onto_a_replica(tmp_path, base_model):
    """Finding 7: every (re)load re-hashes the registered folder first; a swapped file stops it before any request."""
    from domainlm.registry import Registry
    from domainlm.serving.engines.base import Adapter
    from domainlm.serving.engines.replica import Replica
    from domainlm.serving.engines.vllm_server import AdapterLoadError, VllmEngine, adapter_problem
    from domainlm.serving.config import VllmSection
    from tests.fixtures.serving import build_adapter

    entry = Registry(tmp_path / "registry").register(build_adapter(tmp_path / "a", base_model, "medical", seed=3))
    adapter = Adapter(entry.ref, entry.path, "medical", entry.version, entry.artifact_id)
    assert adapter_problem(adapter) is None
    weights = entry.path / "adapter_model.safetensors"
    weights.chmod(0o644)
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    assert "sha256 mismatch" in adapter_problem(adapter)
    engine = VllmEngine(base_name="smollm2-135m", model_path=None, settings=VllmSection(), backend_env={},
                        backend_args={}, merged=False, log_dir=tmp_path)
    unreachable = Replica("http://127.0.0.1:9", api_key="k")   # verification fails before any connection
    with pytest.raises(AdapterLoadError, match="failed verification, not loaded"):
        asyncio.run(engine._load_on(unreachable, adapter))


def test_revocation_from_another_process_is_seen_within_a_second_and_floods_cannot_evict_keys(tmp_path):
    """Findings 13 and 5: the gateway's KeyStore notices a CLI revocation (another KeyStore on the same database)
    within max_age_s; random bearer tokens fill only a small negative cache, never the known keys' LRU."""
    import time

    from domainlm.serving import auth
    from domainlm.serving.auth import KeyStore

    gateway, cli = KeyStore(tmp_path / "k.sqlite", cache_ttl_s=60), KeyStore(tmp_path / "k.sqlite")
    secret, record = gateway.create("stream", ["medical"])
    assert gateway.authenticate(secret) is not None and not gateway.is_revoked(record.id)
    cli.revoke(record.id)
    assert gateway.authenticate(secret) is not None        # the auth cache still holds it (cache_ttl_s = 60) ...
    time.sleep(1.05)
    assert gateway.is_revoked(record.id)                    # ... but streams re-check revocation every second
    other, _ = gateway.create("other", ["medical"])
    assert gateway.authenticate(other) is not None
    for i in range(auth.MAX_UNKNOWN + 500):
        assert gateway.authenticate(f"dlm_nope_{i}") is None
    assert len(gateway._unknown) == auth.MAX_UNKNOWN
    assert any(cached[0].name == "other" for cached in gateway._cache.values())


def test_audit_writes_survive_a_locked_database_and_the_queue_stays_bounded(tmp_path):
    """Finding 6: a locked database fails writes; they are retried (rows kept), the failure is visible in status(),
    the queue never grows past its bound (extra rows counted as dropped), and writing resumes once the lock goes."""
    import sqlite3
    import time

    from domainlm.serving.audit import AuditLog

    path = tmp_path / "audit.sqlite"
    log = AuditLog(path, flush_interval_s=0.01, max_queue=20, busy_timeout_s=0.05)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    log.record(request_id="r0", endpoint="chat", status=200)
    deadline = time.time() + 10
    while log.status()["ok"] and time.time() < deadline:      # the writer is now retrying r0's batch
        time.sleep(0.05)
    for i in range(1, 100):
        log.record(request_id=f"r{i}", endpoint="chat", status=200)
    status = log.status()
    assert not status["ok"] and "locked" in status["error"]
    assert status["queued"] == 20 and status["dropped_rows"] == 99 - 20
    blocker.execute("ROLLBACK")
    blocker.close()
    deadline = time.time() + 15
    while not log.status()["ok"] and time.time() < deadline:
        time.sleep(0.05)
    kept = log.rows(limit=200)
    assert log.status()["ok"] and len(kept) == 100 - log.status()["dropped_rows"]
    log.close()


def test_audit_retention_deletes_old_rows_and_the_hmac_secret_is_private(tmp_path):
    """Finding 12: rows past retention_days go (text with them); the HMAC key file is created 0600 and reused."""
    import stat
    import time

    from domainlm.serving.audit import AuditLog

    log = AuditLog(tmp_path / "a.sqlite", flush_interval_s=0.01, retention_days=30)
    old = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 40 * 86400))
    log.record(request_id="old", endpoint="chat", status=200, prompt="forty days ago", ts=old)
    log.record(request_id="new", endpoint="chat", status=200, prompt="today")
    log.flush()
    assert log.purge() == 1
    assert [r["request_id"] for r in log.rows()] == ["new"]
    key_file = tmp_path / "audit-hmac.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(log.secret) == 32
    assert AuditLog(tmp_path / "a.sqlite").secret == log.secret          # the same key after a restart
    log.close()
