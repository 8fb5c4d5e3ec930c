"""Prometheus metrics of the gateway (its own CollectorRegistry, so several apps in one process stay separate)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# latency buckets in seconds: 5 ms … 2 min (a 135M model on CPU answers in ~0.1–5 s; 7B on GPU similar)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# the guard's regex checks: 10 µs … 1 s
GUARD_BUCKETS = (1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 1)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("domainlm_requests", "Gateway requests by endpoint, vertical and HTTP status",
                                ["endpoint", "vertical", "status"], registry=r)
        self.errors = Counter("domainlm_errors", "Requests answered with an error, by type",
                              ["endpoint", "vertical", "type"], registry=r)
        self.tokens = Counter("domainlm_tokens", "Tokens processed, kind = prompt | completion",
                              ["vertical", "kind"], registry=r)
        self.latency = Histogram("domainlm_request_latency_seconds", "Time from request to last byte",
                                 ["endpoint", "vertical"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("domainlm_time_to_first_token_seconds", "Streaming: time to the first chunk",
                              ["vertical"], buckets=LATENCY_BUCKETS, registry=r)
        self.inflight = Gauge("domainlm_requests_in_flight", "Requests being answered", ["vertical"], registry=r)
        self.policy = Counter("domainlm_policy_actions", "Policy actions: refusal, note, disclaimer",
                              ["vertical", "action"], registry=r)
        # safety (issue 19): what the guard flagged and did, what clients got, and what it cost; the alert rules in
        # deploy/prometheus/domainlm-alerts.yml read these
        self.guard_inputs = Counter("domainlm_guard_flagged_inputs", "Requests a vertical's input check flagged, by "
                                    "rule and action (refuse | notice | allow)", ["vertical", "rule", "action"],
                                    registry=r)
        self.guard_outputs = Counter("domainlm_guard_flagged_outputs", "Answers a vertical's output check flagged, "
                                     "by rule and action (refuse | hold | notice | allow)",
                                     ["vertical", "rule", "action"], registry=r)
        self.guard_seconds = Histogram("domainlm_guard_check_seconds", "Time the guard's checks added to a request",
                                       ["vertical"], buckets=GUARD_BUCKETS, registry=r)
        self.answers = Counter("domainlm_answers", "Vertical answers by verdict: answered | model_refusal | "
                               "gateway_refusal | blocked | held", ["vertical", "verdict"], registry=r)
        self.alerts = Counter("domainlm_alerts_received", "Alertmanager notifications received, by alert and status",
                              ["alertname", "status"], registry=r)
        self.replicas = Gauge("domainlm_engine_replicas_healthy", "Healthy engine replicas per base model",
                              ["base"], registry=r)
        self.rate_limited = Counter("domainlm_rate_limited", "Requests refused by a rate limit", ["kind"],
                                    registry=r)
        self.audit_dropped = Gauge("domainlm_audit_dropped_rows", "Audit rows lost: queue full while writes failed",
                                   registry=r)
        self.audit_failures = Gauge("domainlm_audit_failed_writes", "Failed audit write attempts (retried)",
                                    registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
