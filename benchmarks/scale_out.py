"""Scale-out proof: gateway replicas behind HAProxy on one PostgreSQL + Redis, under Locust load, with faults.

    python benchmarks/scale_out.py [--duration 58] [--users 6] [--scaling-seconds 20] [--json OUT]

Everything is started here, on loopback, in a temp dir, and stopped at the end: a throwaway PostgreSQL and Redis,
two vLLM servers (real, the embedded base + two adapters), three `domainlm serve` replicas (state.url on
PostgreSQL, state.redis, audit.durable), HAProxy (leastconn, health checks, retry on connection failure) in front,
and Locust (benchmarks/locust_gateway.py) as the load generator.

Part 1, faults under load (--duration s): at 25 % of the run kill -9 one gateway replica, at 40 % kill -9 one vLLM
server, at 55 % revoke a key from the CLI (broadcast through Redis), at 70 % suspend a vertical through the admin
API. Checked, each printed PASS/FAIL with its numbers:
  - every request ends as a success or a clean error (0 hung, 0 unclassified); connections cut mid-answer happen
    only in the seconds after the gateway replica was killed (streams it was relaying)
  - every success appears exactly once in the audit table (by the request id the client sent)
  - the rate-limited key (rpm 60) gets 60 ± 5 % admissions across all replicas during the minute
  - the revoked key and the suspended vertical are refused by every surviving replica within 1 s (probed directly)
Part 2, scaling (--scaling-seconds per side, against a canned upstream, so the gateway is what is measured): the
same Locust load through 1 replica and through 3 (HAProxy in front of both), alternating; successes per second and
p50 latency, and the gateway's added p50 over calling the upstream directly. On a machine with fewer cores than
replicas + load generator + upstream the replicas share the CPU: the ratio then says what that machine allows.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.serving_common import free_port, percentile, start_vllm, untrained_adapter, wait_http  # noqa: E402

HERE = Path(__file__).resolve().parent
BASE_NAME = "smollm2-135m"


# --- processes -----------------------------------------------------------------------------------------------------
def start_haproxy(work: Path, name: str, port: int, servers: list[int]) -> subprocess.Popen:
    lines = ["global", "  maxconn 4096", "defaults", "  mode http", "  timeout connect 2s", "  timeout client 90s",
             "  timeout server 90s", "  retries 2", "  option redispatch",
             "  retry-on conn-failure empty-response",   # nothing reached the gateway yet: safe to send elsewhere
             f"frontend {name}", f"  bind 127.0.0.1:{port}", f"  default_backend {name}_gateways",
             f"backend {name}_gateways", "  balance leastconn", "  option httpchk",
             # HTTP/1.1 with a loopback Host: the gateway's DNS-rebinding guard refuses other names
             "  http-check send meth GET uri /health ver HTTP/1.1 hdr Host 127.0.0.1",
             "  http-check expect status 200", "  default-server inter 300ms fall 2 rise 2"]
    lines += [f"  server g{i} 127.0.0.1:{p} check" for i, p in enumerate(servers)]
    config = work / f"{name}.haproxy.cfg"
    config.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(["haproxy", "-f", str(config), "-db"], stdout=open(work / f"{name}.haproxy.log", "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/health", 30)
    return proc


def start_gateway(work: Path, name: str, registry: Path, state: dict, remote: list[str], verticals: list[str],
                  secret: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    config = {"gateway": {"port": port, "console": False}, "registry": str(registry), "state": state,
              "auth": {"max_failures_per_minute": 1_000_000},
              "audit": {"durable": True, "flush_interval_s": 0.5, "secret_file": str(secret)},
              "ratelimit": {"default_rpm": 1_000_000, "default_tpm": 100_000_000},
              "bases": [{"model": BASE_NAME, "verticals": verticals, "engine": "vllm",
                         "vllm": {"replicas": 0, "remote": remote, "health_interval_s": 0.5}}]}
    path = work / f"{name}.yaml"
    path.write_text(json.dumps(config))
    proc = subprocess.Popen([sys.executable, "-m", "domainlm.cli", "serve", "--config", str(path)],
                            stdout=open(work / f"{name}.log", "w"), stderr=subprocess.STDOUT, start_new_session=True,
                            env={"DOMAINLM_LOG_LEVEL": "WARNING", **os.environ})
    return proc, f"http://127.0.0.1:{port}"


def run_locust(work: Path, name: str, host: str, users: int, seconds: float, keys: dict, mix: dict | None = None,
               tokens: int = 8) -> subprocess.Popen:
    results = work / f"{name}.jsonl"
    env = {**os.environ, "DLM_KEYS": json.dumps(keys), "DLM_RESULTS": str(results), "DLM_MIX": json.dumps(mix or {}),
           "DLM_TOKENS": str(tokens)}
    return subprocess.Popen([sys.executable, "-m", "locust", "-f", str(HERE / "locust_gateway.py"), "--headless",
                             "-u", str(users), "-r", str(users), "-t", f"{int(seconds)}s", "--host", host,
                             "--only-summary", "--stop-timeout", "70"],
                            stdout=open(work / f"{name}.locust.log", "w"), stderr=subprocess.STDOUT, env=env)


def records(work: Path, name: str) -> list[dict]:
    path = work / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def stop_all(procs: list) -> None:
    for proc in procs:
        try:
            if hasattr(proc, "stop"):
                proc.stop()
            elif proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired, OSError):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, OSError):
                pass


def probe_until(url: str, key: str, model: str, wanted: int, limit_s: float = 5.0) -> float | None:
    """Seconds until a direct request to one replica gets `wanted` (None: not within limit_s)."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        response = httpx.post(url + "/v1/chat/completions", timeout=30, headers={"Authorization": f"Bearer {key}"},
                              json={"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]})
        if response.status_code == wanted:
            return time.monotonic() - start
        time.sleep(0.01)
    return None


# --- part 1 --------------------------------------------------------------------------------------------------------
def faults_under_load(work: Path, args, pg, redis_server, registry_root: Path, adapters: dict, base) -> dict:
    from sqlalchemy import text

    from domainlm.serving.auth import KeyStore
    from domainlm.state import StateDB

    procs: list = []
    try:
        # both boot at once, from this thread (a server dies with the thread that started it)
        vllm = [start_vllm(str(base.path), BASE_NAME, {ref: str(path) for ref, path in adapters.items()},
                           work / f"vllm{i}.log", kv_gib=1.0, wait=False) for i in range(2)]
        procs += [v[0] for v in vllm]
        for process, url in vllm:
            wait_http(url + "/health", 600, process)
        store = KeyStore(pg.url)
        keys, ids = {}, {}
        for name, scopes, rpm in (("steady", ["petrochem", "medical"], None), ("victim", ["petrochem"], None),
                                  ("limited", ["petrochem"], args.limited_rpm), ("admin", ["admin", "*"], None)):
            keys[name], record = store.create(name, scopes, rpm)
            ids[name] = record.id
        state = {"url": pg.url, "redis": redis_server.url}
        gateways = [start_gateway(work, f"gw{i}", registry_root, state, [v[1] for v in vllm],
                                  ["petrochem", "medical"], work / "audit-hmac.key") for i in range(3)]
        procs += [g[0] for g in gateways]
        for _, url in gateways:
            wait_http(url + "/ready", 300, None)
        lb_port = free_port()
        procs.append(start_haproxy(work, "faults", lb_port, [int(u.rsplit(":", 1)[1]) for _, u in gateways]))
        print(f"part 1: 2 vLLM, 3 gateways, HAProxy on :{lb_port}; Locust {args.users} users for {args.duration:g} s",
              flush=True)

        events: dict[str, float] = {}
        probes: dict[str, list] = {}
        locust = run_locust(work, "faults", f"http://127.0.0.1:{lb_port}", args.users, args.duration,
                            {k: keys[k] for k in ("steady", "victim", "limited")})
        started = time.time()

        def at(fraction: float) -> None:
            time.sleep(max(0.0, started + fraction * args.duration - time.time()))

        at(0.25)
        os.killpg(gateways[2][0].pid, signal.SIGKILL)
        events["gateway_killed"] = time.time()
        at(0.40)
        os.killpg(vllm[1][0].pid, signal.SIGKILL)
        events["vllm_killed"] = time.time()
        at(0.55)
        done = subprocess.run([sys.executable, "-m", "domainlm.cli", "keys", "--db", pg.url, "--redis",
                               redis_server.url, "revoke", ids["victim"]], capture_output=True, text=True)
        events["revoked"] = time.time()
        probes["revocation_s"] = [probe_until(url, keys["victim"], "petrochem", 401) for _, url in gateways[:2]]
        at(0.70)
        suspended = httpx.post(gateways[0][1] + "/admin/verticals/medical/suspend", json={"reason": "drill"},
                               headers={"Authorization": f"Bearer {keys['admin']}"}, timeout=30)
        events["suspended"] = time.time()
        probes["suspension_s"] = [probe_until(url, keys["steady"], "medical", 503) for _, url in gateways[:2]]
        locust.wait(args.duration + 120)
        rows = records(work, "faults")

        outcomes: dict[str, int] = {}
        for r in rows:
            outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
        cuts = [r for r in rows if r["outcome"] == "cut"]
        cut_window = (events["gateway_killed"] - 0.5, events["gateway_killed"] + 3.0)
        cuts_elsewhere = [r for r in cuts if not cut_window[0] <= r["t1"] <= cut_window[1]]
        successes = [r["rid"] for r in rows if r["outcome"] == "ok"]
        db = StateDB(pg.url)
        with db.begin() as conn:
            counted = dict(conn.execute(text("SELECT request_id, COUNT(*) FROM requests GROUP BY request_id")).all())
        db.dispose()
        missing = [rid for rid in successes if counted.get(rid, 0) == 0]
        twice = [rid for rid in successes if counted.get(rid, 0) > 1]
        limited = [r for r in rows if r["key"] == "limited"]
        limited_ok = sum(r["outcome"] == "ok" for r in limited)
        limited_admitted = sum(r.get("status") != 429 for r in limited)   # answered, or cut after admission
        victim_late = [r for r in rows if r["key"] == "victim" and r["outcome"] == "ok"
                       and r["t0"] > events["revoked"] + 1.0]
        medical_late = [r for r in rows if r["vertical"] == "medical" and r["outcome"] == "ok"
                        and r["t0"] > events["suspended"] + 1.0]
        rpm = args.limited_rpm
        checks = {
            "no request hung or unclassified": (outcomes.get("hung", 0) == 0 and outcomes.get("other", 0) == 0,
                                                f"hung {outcomes.get('hung', 0)}, other {outcomes.get('other', 0)}"),
            "cuts only from the killed replica": (not cuts_elsewhere, f"{len(cuts)} cut, {len(cuts_elsewhere)} "
                                                                      "outside the 3 s after the kill"),
            "every success audited exactly once": (not missing and not twice, f"{len(successes)} successes, "
                                                   f"{len(missing)} missing, {len(twice)} twice"),
            "global rate limit within ±5 %": (limited_ok <= rpm * 1.05 and limited_admitted >= rpm * 0.95,
                                              f"rpm {rpm}: {limited_ok} answered, {limited_admitted} admitted of "
                                              f"{len(limited)} sent"),
            "revocation on every replica ≤ 1 s": (done.returncode == 0 and all(
                p is not None and p <= 1.0 for p in probes["revocation_s"]) and not victim_late,
                f"probes {probes['revocation_s']} s after the CLI returned; {len(victim_late)} successes > 1 s "
                f"after; CLI: {done.stdout.strip()}"),
            "suspension on every replica ≤ 1 s": (suspended.status_code == 200 and all(
                p is not None and p <= 1.0 for p in probes["suspension_s"]) and not medical_late,
                f"probes {probes['suspension_s']} s after the API returned; {len(medical_late)} successes > 1 s "
                "after"),
        }
        return {"requests": len(rows), "outcomes": outcomes, "checks": {k: {"passed": v[0], "detail": v[1]}
                                                                        for k, v in checks.items()}}
    finally:
        stop_all(procs)


# --- part 2 --------------------------------------------------------------------------------------------------------
def scaling(work: Path, args, pg, redis_server, registry_root: Path) -> dict:
    from domainlm.serving.auth import KeyStore

    procs: list = []
    try:
        upstream_port = free_port()
        upstream = subprocess.Popen([sys.executable, str(HERE / "canned_upstream.py"), "--port", str(upstream_port),
                                     "--base", BASE_NAME], start_new_session=True)
        procs.append(upstream)
        upstream_url = f"http://127.0.0.1:{upstream_port}"
        wait_http(upstream_url + "/health", 30)
        key = KeyStore(pg.url).create("scaling", ["*"])[0]
        state = {"url": pg.url, "redis": redis_server.url}
        gateways = [start_gateway(work, f"sc{i}", registry_root, state, [upstream_url], ["petrochem"],
                                  work / "audit-hmac.key") for i in range(3)]
        procs += [g[0] for g in gateways]
        for _, url in gateways:
            wait_http(url + "/ready", 300, None)
        ports = [int(u.rsplit(":", 1)[1]) for _, u in gateways]
        one, three = free_port(), free_port()
        procs.append(start_haproxy(work, "one", one, ports[:1]))
        procs.append(start_haproxy(work, "three", three, ports))
        direct_key = {"steady": key, "victim": key, "limited": key}
        sides = {"direct": upstream_url, "1 replica": f"http://127.0.0.1:{one}", "3 replicas": f"http://127.0.0.1:{three}"}
        results: dict[str, list] = {side: [] for side in sides}
        for round_ in range(args.scaling_rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for side in order:
                name = f"scale-{side.replace(' ', '')}-{round_}"
                run_locust(work, name, sides[side], args.scaling_users, args.scaling_seconds, direct_key,
                           mix={"steady": 1}).wait(args.scaling_seconds + 90)
                ok = [r for r in records(work, name) if r["outcome"] == "ok"]
                span = max(r["t1"] for r in ok) - min(r["t0"] for r in ok) if ok else 1.0
                results[side].append({"rps": len(ok) / span,
                                      "p50_ms": percentile([(r["t1"] - r["t0"]) * 1000 for r in ok], 50) if ok else
                                      None, "errors": sum(r["outcome"] != "ok" for r in records(work, name))})
                print(f"  round {round_ + 1} {side:<11} {results[side][-1]['rps']:8.1f} ok/s  p50 "
                      f"{results[side][-1]['p50_ms']:.1f} ms  errors {results[side][-1]['errors']}", flush=True)
        summary = {side: {"rps": statistics.median(r["rps"] for r in rs),
                          "p50_ms": statistics.median(r["p50_ms"] for r in rs)} for side, rs in results.items()}
        added = {side: summary[side]["p50_ms"] - summary["direct"]["p50_ms"] for side in ("1 replica", "3 replicas")}
        return {"summary": summary, "throughput_ratio": summary["3 replicas"]["rps"] / summary["1 replica"]["rps"],
                "added_p50_ms": added, "added_p50_ratio": added["3 replicas"] / added["1 replica"],
                "cpu_cores": os.cpu_count()}
    finally:
        stop_all(procs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=58.0, help="seconds of load in part 1 (≤ 60: one window)")
    parser.add_argument("--users", type=int, default=6)
    parser.add_argument("--limited-rpm", type=int, default=20, help="below what the load asks of that key")
    parser.add_argument("--scaling-seconds", type=float, default=20.0)
    parser.add_argument("--scaling-users", type=int, default=16)
    parser.add_argument("--scaling-rounds", type=int, default=2)
    parser.add_argument("--skip-faults", action="store_true")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from domainlm.models import resolve_base
    from domainlm.registry import Registry
    from domainlm.state.throwaway import ThrowawayPostgres, ThrowawayRedis

    work = Path(args.workdir or tempfile.mkdtemp(prefix="scale-out-"))
    base = resolve_base()
    registry = Registry(work / "registry")
    adapters = {}
    for seed, vertical in enumerate(("petrochem", "medical"), start=1):
        entry = registry.register(untrained_adapter(work / f"adapter-{vertical}", base, vertical, seed=seed))
        if entry.stage != "production":
            registry.promote(vertical, entry.version, force=True, actor="benchmark")
        adapters[entry.ref] = entry.path
    report: dict = {"workdir": str(work)}
    with ThrowawayPostgres() as pg, ThrowawayRedis() as redis_server:
        if not args.skip_faults:
            report["faults"] = faults_under_load(work, args, pg, redis_server, work / "registry", adapters, base)
            print(f"\npart 1: {report['faults']['requests']} requests, outcomes {report['faults']['outcomes']}")
            for name, check in report["faults"]["checks"].items():
                print(f"  {'PASS' if check['passed'] else 'FAIL'}  {name}: {check['detail']}")
        if not args.skip_scaling:
            print(f"\npart 2: Locust {args.scaling_users} users, {args.scaling_seconds:g} s per side, canned "
                  "upstream", flush=True)
            report["scaling"] = scaling(work, args, pg, redis_server, work / "registry")
    failed = [n for n, c in report.get("faults", {}).get("checks", {}).items() if not c["passed"]]
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if args.skip_scaling:
        return 1 if failed else 0
    s = report["scaling"]
    print(f"\n{'side':<12}{'ok/s':>10}{'p50 ms':>10}   (median of {args.scaling_rounds} rounds, {s['cpu_cores']} "
          "CPU cores shared by everything)")
    for side, v in s["summary"].items():
        print(f"{side:<12}{v['rps']:>10.1f}{v['p50_ms']:>10.1f}")
    print(f"throughput 3 replicas / 1 replica: {s['throughput_ratio']:.2f}× (target ≥ 2.5× where cores allow)")
    print(f"added p50 over direct: 1 replica {s['added_p50_ms']['1 replica']:.1f} ms, 3 replicas "
          f"{s['added_p50_ms']['3 replicas']:.1f} ms: {s['added_p50_ratio']:.2f}× (target ≤ 1.5×)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
