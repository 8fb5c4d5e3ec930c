"""Live service numbers for the console, read from the gateway's own Prometheus registry (no scraping, no HTTP).

Counters only grow, so rates need two readings: `LiveSampler` keeps timestamped snapshots and reports, per
vertical, requests/s and latency quantiles over the last `window_s` seconds (the first reading is the zero state
at gateway start, so the first poll already has a rate). Quantiles interpolate inside histogram buckets the way
PromQL's histogram_quantile does.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

WINDOW_S = 60.0  # requests/s and p50/p99 are over the last minute
MIN_SAMPLE_GAP_S = 1.0  # reads closer together than this reuse the history instead of adding to it


@dataclass
class VerticalCounts:
    requests: float = 0.0
    errors: float = 0.0
    prompt_tokens: float = 0.0
    completion_tokens: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound (s) → cumulative count


def snapshot(registry) -> dict[str, VerticalCounts]:
    """Totals per vertical label from a prometheus_client CollectorRegistry of domainlm.serving.metrics.Metrics."""
    out: dict[str, VerticalCounts] = {}

    def counts(labels: dict) -> VerticalCounts:
        return out.setdefault(labels.get("vertical", "unknown"), VerticalCounts())

    for family in registry.collect():
        for s in family.samples:
            if s.name == "domainlm_requests_total":
                counts(s.labels).requests += s.value
            elif s.name == "domainlm_errors_total":
                counts(s.labels).errors += s.value
            elif s.name == "domainlm_tokens_total":
                c = counts(s.labels)
                if s.labels.get("kind") == "prompt":
                    c.prompt_tokens += s.value
                elif s.labels.get("kind") == "completion":
                    c.completion_tokens += s.value
            elif s.name == "domainlm_request_latency_seconds_bucket":
                c = counts(s.labels)
                le = float(s.labels["le"])  # "+Inf" parses to inf
                c.buckets[le] = c.buckets.get(le, 0.0) + s.value  # summed over endpoints
    return out


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """histogram_quantile(q) in seconds from cumulative buckets {le: count}; None when there are no observations.

    Linear inside the bucket holding the rank q·N; in the +Inf bucket the answer is the largest finite bound.
    """
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower_bound
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return lower_bound


def _delta(new: VerticalCounts, old: VerticalCounts | None) -> VerticalCounts:
    if old is None:
        return new
    return VerticalCounts(
        requests=new.requests - old.requests, errors=new.errors - old.errors,
        prompt_tokens=new.prompt_tokens - old.prompt_tokens,
        completion_tokens=new.completion_tokens - old.completion_tokens,
        buckets={le: n - old.buckets.get(le, 0.0) for le, n in new.buckets.items()})


class LiveSampler:
    """Snapshots of one gateway's metrics; `read()` adds one and summarises against the one ~window_s old."""

    def __init__(self, registry, started_at: float | None = None, window_s: float = WINDOW_S, clock=time.time):
        self.registry = registry
        self.window_s = window_s
        self.clock = clock
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, dict[str, VerticalCounts]]] = deque()
        self._samples.append((started_at if started_at is not None else clock(), {}))  # zero state at start

    def read(self) -> dict:
        now = self.clock()
        current = snapshot(self.registry)
        with self._lock:
            if now - self._samples[-1][0] >= MIN_SAMPLE_GAP_S:   # a flood of reads cannot grow the history
                self._samples.append((now, current))
            # keep the newest sample that is at least window_s old as the reference point
            while len(self._samples) > 2 and self._samples[1][0] <= now - self.window_s:
                self._samples.popleft()
            ref_time, reference = self._samples[0]
        elapsed = max(now - ref_time, 1e-9)
        rows = []
        for vertical in sorted(current):
            if vertical == "unknown":  # requests refused before a model was resolved (auth, bad JSON)
                continue
            total = current[vertical]
            window = _delta(total, reference.get(vertical))
            latency = window.buckets if window.requests > 0 else total.buckets  # idle window: all-time numbers
            p50, p99 = quantile(0.5, latency), quantile(0.99, latency)
            rows.append({
                "vertical": vertical,
                "rps": round(window.requests / elapsed, 4),
                "requests": int(total.requests),
                "errors": int(total.errors),
                "prompt_tokens": int(total.prompt_tokens),
                "completion_tokens": int(total.completion_tokens),
                "p50_ms": None if p50 is None else round(p50 * 1000, 1),
                "p99_ms": None if p99 is None else round(p99 * 1000, 1),
                "latency_scope": "window" if window.requests > 0 else "all",
            })
        return {"updated": now, "window_s": round(elapsed, 1), "verticals": rows}
