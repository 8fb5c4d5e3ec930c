"""Live numbers from the gateway's real Prometheus metrics: rates over a sliding window, bucket quantiles."""

from __future__ import annotations

import math

import pytest

from domainlm.serving.console.live import LiveSampler, quantile
from domainlm.serving.metrics import Metrics


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def serve(m: Metrics, vertical: str, seconds: float, status: int = 200, tokens: tuple[int, int] = (10, 5)) -> None:
    """What GatewayService.finish records for one request."""
    m.requests.labels(endpoint="chat", vertical=vertical, status=str(status)).inc()
    m.latency.labels(endpoint="chat", vertical=vertical).observe(seconds)
    if status >= 400:
        m.errors.labels(endpoint="chat", vertical=vertical, type="server_error").inc()
    m.tokens.labels(vertical=vertical, kind="prompt").inc(tokens[0])
    m.tokens.labels(vertical=vertical, kind="completion").inc(tokens[1])


def test_quantile_interpolates_inside_buckets_like_histogram_quantile():
    buckets = {0.1: 0, 0.5: 50, 1.0: 100, math.inf: 100}
    assert quantile(0.5, buckets) == pytest.approx(0.5)
    assert quantile(0.25, buckets) == pytest.approx(0.1 + 0.4 * 25 / 50)
    assert quantile(0.99, buckets) == pytest.approx(0.5 + 0.5 * 49 / 50)
    assert quantile(0.99, {1.0: 1, math.inf: 10}) == 1.0  # rank in +Inf: the largest finite bound
    assert quantile(0.5, {1.0: 0, math.inf: 0}) is None


def test_rates_latency_errors_and_tokens_per_vertical():
    m, clock = Metrics(), Clock()
    sampler = LiveSampler(m.registry, started_at=clock.t, window_s=60, clock=clock)
    for _ in range(20):
        serve(m, "medical", 0.2)
    serve(m, "medical", 3.0, status=503, tokens=(0, 0))
    serve(m, "petrochem", 0.04)
    m.requests.labels(endpoint="chat", vertical="unknown", status="401").inc()  # refused before routing
    clock.t += 10
    first = {r["vertical"]: r for r in sampler.read()["verticals"]}
    assert set(first) == {"medical", "petrochem"}
    med = first["medical"]
    assert med["requests"] == 21 and med["errors"] == 1 and med["rps"] == pytest.approx(2.1)
    assert med["prompt_tokens"] == 200 and med["completion_tokens"] == 100
    assert 100 < med["p50_ms"] <= 250 and 2500 < med["p99_ms"] <= 5000  # 0.2 s in (0.1, 0.25]; 3 s in (2.5, 5]
    assert first["petrochem"]["p50_ms"] <= 50

    # 70 s later, 7 more fast medical requests: the window now starts at the last reading, not at start-up
    clock.t += 70
    for _ in range(7):
        serve(m, "medical", 0.02)
    later = sampler.read()
    med = {r["vertical"]: r for r in later["verticals"]}["medical"]
    assert later["window_s"] == pytest.approx(70)
    assert med["rps"] == pytest.approx(7 / 70) and med["requests"] == 28
    assert med["p99_ms"] <= 25 and med["latency_scope"] == "window"  # the slow ones are out of the window
    idle = {r["vertical"]: r for r in later["verticals"]}["petrochem"]
    assert idle["rps"] == 0 and idle["latency_scope"] == "all" and idle["p50_ms"] <= 50
