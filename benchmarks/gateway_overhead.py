"""Gateway overhead: N concurrent streams straight at vLLM vs the same streams through the domainlm gateway.

    python benchmarks/gateway_overhead.py [--streams 16] [--max-tokens 64] [--rounds 2] [--pairs 100]

Both paths hit one vLLM server (base + one r16 all-linear adapter) with identical requests (greedy, the
vertical's system prompt already in the messages), so they do the same model work; the gateway adds auth, rate
limiting, policy, SSE relaying, metrics and audit. Prints
  throughput ratio  = gateway tokens/s ÷ direct tokens/s    (target ≥ 0.95)
  added latency     = p50 / p99 of (gateway − direct) on 1-token requests, interleaved (target p50 ≤ 3 ms)
The gateway runs as its own `domainlm serve` process, as in production. One run; the CPU is shared with vLLM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.serving_common import free_port, percentile, start_vllm, untrained_adapter, wait_http  # noqa: E402

QUESTIONS = ["What is the boiling range of kerosene?", "Explain what a distillation column does.",
             "What is the octane number of a fuel?", "Describe fluid catalytic cracking.",
             "What is the difference between crude oil and natural gas?", "What does a reformer unit produce?",
             "Why is sulfur removed from diesel?", "What is a heat exchanger used for in a refinery?"]


async def stream_once(client: httpx.AsyncClient, url: str, headers: dict, body: dict) -> tuple[int, float]:
    """(completion tokens, seconds) of one streamed chat completion."""
    started = time.perf_counter()
    tokens = 0
    async with client.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: {") and '"usage"' in line:
                usage = json.loads(line[6:]).get("usage")
                if usage:
                    tokens = usage["completion_tokens"]
    return tokens, time.perf_counter() - started


async def throughput(url: str, headers: dict, model: str, messages: list, streams: int, max_tokens: int) -> float:
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=streams * 2)) as client:
        bodies = [{"model": model, "messages": messages[i % len(messages)], "max_tokens": max_tokens,
                   "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
                  for i in range(streams)]
        started = time.perf_counter()
        results = await asyncio.gather(*(stream_once(client, url, headers, b) for b in bodies))
        return sum(t for t, _ in results) / (time.perf_counter() - started)


def latency_pairs(direct: tuple, gateway: tuple, messages: list, pairs: int) -> tuple[list[float], list[float]]:
    """Sequential 1-token requests, direct and through the gateway alternately (drift hits both equally)."""
    out = ([], [])
    with httpx.Client(timeout=120) as client:
        for i in range(pairs + 5):
            for side, (url, headers, model) in enumerate((direct, gateway)):
                body = {"model": model, "messages": messages[i % len(messages)], "max_tokens": 1, "temperature": 0}
                started = time.perf_counter()
                client.post(url + "/v1/chat/completions", json=body, headers=headers).raise_for_status()
                if i >= 5:  # warm-up pairs are not counted
                    out[side].append((time.perf_counter() - started) * 1000)
    return out


def process_cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="throughput rounds per path (alternating)")
    parser.add_argument("--pairs", type=int, default=100, help="latency request pairs")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()

    from domainlm.models import resolve_base
    from domainlm.registry import Registry
    from domainlm.serving.auth import KeyStore
    from domainlm.verticals.policy import apply_policy

    work = Path(args.workdir or tempfile.mkdtemp(prefix="gw-bench-"))
    base = resolve_base()
    registry = Registry(work / "registry")
    entry = registry.register(untrained_adapter(work / "adapter", base, "petrochem", seed=1))
    if entry.stage != "production":
        registry.promote("petrochem", entry.version, force=True, actor="benchmark")
    process, vllm_url = start_vllm(str(base.path), "smollm2-135m", {entry.ref: str(entry.path)}, work / "vllm.log")
    gateway = None
    try:
        port = free_port()
        config = {"gateway": {"port": port, "console": False}, "registry": str(work / "registry"),
                  "auth": {"db": str(work / "gw.sqlite")}, "audit": {"db": str(work / "gw.sqlite")},
                  "ratelimit": {"default_rpm": 1_000_000, "default_tpm": 100_000_000},
                  "bases": [{"model": "smollm2-135m", "verticals": ["petrochem"], "engine": "vllm",
                             "vllm": {"replicas": 0, "remote": [vllm_url]}}]}
        (work / "serve.yaml").write_text(json.dumps(config))
        key = KeyStore(work / "gw.sqlite").create("bench", ["*"])[0]
        gateway = subprocess.Popen([sys.executable, "-m", "domainlm.cli", "serve", "--config",
                                    str(work / "serve.yaml")], stdout=open(work / "gateway.log", "w"),
                                   stderr=subprocess.STDOUT, env={**os.environ, "DOMAINLM_LOG_LEVEL": "WARNING"})
        gw_url = f"http://127.0.0.1:{port}"
        wait_http(gw_url + "/ready", 300)
        messages = [apply_policy("petrochem", [{"role": "user", "content": q}], "en")[0] for q in QUESTIONS]
        direct = (vllm_url, {}, entry.ref)
        through = (gw_url, {"Authorization": f"Bearer {key}"}, "petrochem")

        asyncio.run(throughput(*direct, messages, args.streams, 8))   # warm both paths
        asyncio.run(throughput(*through, messages, args.streams, 8))
        rates = {"direct": [], "gateway": []}
        for _ in range(args.rounds):
            rates["direct"].append(asyncio.run(throughput(*direct, messages, args.streams, args.max_tokens)))
            rates["gateway"].append(asyncio.run(throughput(*through, messages, args.streams, args.max_tokens)))
        cpu_before = process_cpu_seconds(gateway.pid)
        d_lat, g_lat = latency_pairs(direct, through, messages, args.pairs)
        gateway_cpu_ms = (process_cpu_seconds(gateway.pid) - cpu_before) * 1000 / (args.pairs + 5)
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(60)
        process.stop()

    direct_rate = sum(rates["direct"]) / len(rates["direct"])
    gateway_rate = sum(rates["gateway"]) / len(rates["gateway"])
    added = {q: percentile(g_lat, q) - percentile(d_lat, q) for q in (50, 99)}
    print(f"streams={args.streams} max_tokens={args.max_tokens} rounds={args.rounds} (CPU shared with vLLM)")
    print(f"direct  : {direct_rate:8.1f} tok/s  rounds {[round(r, 1) for r in rates['direct']]}")
    print(f"gateway : {gateway_rate:8.1f} tok/s  rounds {[round(r, 1) for r in rates['gateway']]}")
    print(f"throughput ratio gateway/direct = {gateway_rate / direct_rate:.3f}  (target >= 0.95)")
    print(f"1-token latency direct  p50 {percentile(d_lat, 50):.2f} ms  p99 {percentile(d_lat, 99):.2f} ms")
    print(f"1-token latency gateway p50 {percentile(g_lat, 50):.2f} ms  p99 {percentile(g_lat, 99):.2f} ms")
    pairs = sorted(g - d for g, d in zip(g_lat, d_lat, strict=True))
    print(f"added latency p50 = {added[50]:.2f} ms (target <= 3 ms), p99 = {added[99]:.2f} ms; "
          f"median of paired differences {percentile(pairs, 50):.2f} ms")
    print(f"gateway process CPU per request = {gateway_cpu_ms:.2f} ms (the load-independent part of the overhead)")


if __name__ == "__main__":
    main()
