"""What the shared state costs per request: the embedded default against PostgreSQL + Redis, side by side.

    python benchmarks/shared_state.py [--rounds 3] [--json OUT]

Starts a throwaway PostgreSQL and Redis (temp dirs, free loopback ports), then alternates the two sides in each
round (this machine is noisy; the ratios are what to read):
  rate limit  one admission: in-process RateLimiter vs RedisRateLimiter (one Lua script round trip)
  key lookup  one authentication that misses the cache: SQLite file vs PostgreSQL
  audit       rows per second through AuditLog (batched by its writer thread): SQLite vs PostgreSQL
Medians over each round's operations; the ratio is shared-side / embedded-side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domainlm.serving.audit import AuditLog  # noqa: E402
from domainlm.serving.auth import KeyStore  # noqa: E402
from domainlm.serving.ratelimit import RateLimiter  # noqa: E402
from domainlm.serving.ratelimit_redis import RedisRateLimiter  # noqa: E402
from domainlm.state.throwaway import ThrowawayPostgres, ThrowawayRedis  # noqa: E402


def per_op_us(fn, n: int) -> float:
    times = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def admit_us(limiter, n: int) -> float:
    return per_op_us(lambda i: limiter.admit(f"k{i % 50}", 1_000_000, 1 << 40, 100), n)


def lookup_us(store: KeyStore, secrets: list[str], n: int) -> float:
    def one(i):
        store._cache.clear()   # every lookup misses the cache: the database round trip is what is measured
        assert store.authenticate(secrets[i % len(secrets)]) is not None
    return per_op_us(one, n)


def audit_rows_per_s(where, rows: int) -> float:
    log = AuditLog(where, flush_interval_s=0.05, retention_days=None)
    start = time.perf_counter()
    for i in range(rows):
        log.record(request_id=f"r{i}", key_id="k", endpoint="chat", model="medical@1", vertical="medical",
                   status=200, latency_ms=12.5, prompt_tokens=40, completion_tokens=60, prompt_sha256="0" * 64)
    log.flush(timeout=120)
    elapsed = time.perf_counter() - start
    log.close()
    return rows / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ops", type=int, default=2000, help="admissions / lookups per side per round")
    parser.add_argument("--rows", type=int, default=20000, help="audit rows per side per round")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"rate limit (µs)": [], "key lookup (µs)": [],
                                                     "audit (rows/s)": []}
    with ThrowawayPostgres() as pg, ThrowawayRedis() as redis_server, tempfile.TemporaryDirectory() as tmp:
        local_keys, shared_keys = KeyStore(Path(tmp) / "gateway.sqlite"), KeyStore(pg.url)
        local_secrets = [local_keys.create(f"k{i}", ["medical"])[0] for i in range(20)]
        shared_secrets = [shared_keys.create(f"k{i}", ["medical"])[0] for i in range(20)]
        remote = RedisRateLimiter(redis_server.url)
        for round_ in range(args.rounds):
            order = [0, 1] if round_ % 2 == 0 else [1, 0]      # alternate which side goes first
            pair = {}
            for side in order:
                pair[side] = (admit_us(RateLimiter() if side == 0 else remote, args.ops),
                              lookup_us(*((local_keys, local_secrets) if side == 0 else (shared_keys, shared_secrets)),
                                        args.ops // 4),
                              audit_rows_per_s(Path(tmp) / f"audit{round_}.sqlite" if side == 0 else pg.url,
                                               args.rows))
            for index, name in enumerate(results):
                results[name].append((pair[0][index], pair[1][index]))
            print(f"round {round_ + 1}: " + "; ".join(
                f"{name} embedded {pair[0][i]:,.1f} shared {pair[1][i]:,.1f}" for i, name in enumerate(results)),
                flush=True)
        remote.close()
    print(f"\n{'measure':<18}{'embedded':>12}{'shared':>12}{'shared/embedded':>18}   (median of {args.rounds} rounds)")
    summary = {}
    for name, pairs in results.items():
        local, shared = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
        summary[name] = {"embedded": local, "shared": shared, "ratio": shared / local}
        print(f"{name:<18}{local:>12,.1f}{shared:>12,.1f}{shared / local:>17.2f}×")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
