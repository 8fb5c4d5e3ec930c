"""Locust user for benchmarks/scale_out.py: OpenAI chat calls through the load balancer, each outcome on record.

Run by scale_out.py (`locust -f benchmarks/locust_gateway.py --headless …`); configured by environment:
  DLM_KEYS     JSON {"steady": key, "victim": key, "limited": key}
  DLM_RESULTS  JSONL file: one line per request (times, key, vertical, stream, status, error code, outcome)
  DLM_MIX      JSON task weights (default: the fault run's mix)
  DLM_TOKENS   max_tokens per request (default 8)
Outcomes: ok (200, and a stream that ended with [DONE] and no error event), retriable (429/502/503/504 or a stream
error event with such a status), refused (401/403: a revoked key), cut (the connection closed mid-answer),
hung (no answer within 60 s), other (anything else: a bug).
"""

from __future__ import annotations

import json
import os
import time
import uuid

from locust import HttpUser, task
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ChunkedEncodingError, ReadTimeout

KEYS = json.loads(os.environ.get("DLM_KEYS", "{}"))
RESULTS = open(os.environ.get("DLM_RESULTS", os.devnull), "a", buffering=1)   # noqa: SIM115 - open for the run
MIX = json.loads(os.environ.get("DLM_MIX", "{}")) or {"steady": 6, "steady_stream": 3, "medical": 2, "victim": 1,
                                                       "limited": 3}
TOKENS = int(os.environ.get("DLM_TOKENS", "8"))
RETRIABLE = {429, 502, 503, 504}
RETRIABLE_TYPES = {"rate_limit_error", "upstream_error", "service_unavailable", "timeout_error"}   # error events
QUESTIONS = ["What is the boiling range of kerosene?", "What does a reformer unit produce?",
             "Why is sulfur removed from diesel?", "What is a heat exchanger used for?"]


def outcome_of(status: int) -> str:
    if status == 200:
        return "ok"
    if status in RETRIABLE:
        return "retriable"
    if status in (401, 403):
        return "refused"
    return "other"


class GatewayUser(HttpUser):
    connection_timeout = 5.0
    network_timeout = 60.0

    def call(self, key_name: str, vertical: str, stream: bool) -> None:
        rid = uuid.uuid4().hex
        body = {"model": vertical, "max_tokens": TOKENS, "stream": stream,
                "messages": [{"role": "user", "content": QUESTIONS[hash(rid) % len(QUESTIONS)]}]}
        headers = {"Authorization": f"Bearer {KEYS[key_name]}", "x-request-id": rid}
        record = {"rid": rid, "key": key_name, "vertical": vertical, "stream": stream, "t0": time.time()}
        try:
            with self.client.post("/v1/chat/completions", json=body, headers=headers, stream=stream,
                                  catch_response=True, name=f"{key_name}{'-stream' if stream else ''}") as response:
                record["status"] = response.status_code
                record["outcome"] = outcome_of(response.status_code)
                if response.status_code == 0:    # Locust's mark for a request that raised: the connection broke
                    record.update(outcome="cut", code=type(response.error).__name__,
                                  message=str(response.error)[:160])
                elif response.status_code != 200:
                    try:
                        error = response.json().get("error", {})
                        record.update(code=error.get("code"), message=str(error.get("message"))[:160])
                    except ValueError:
                        record["code"] = None    # haproxy's own 502/503 page
                elif stream:
                    done, error = False, None
                    for line in response.iter_lines():
                        if line == b"data: [DONE]":
                            done = True
                        elif line.startswith(b"data: {") and b'"error"' in line:
                            error = json.loads(line[6:]).get("error", {})
                    if error is not None:
                        record.update(code=error.get("code"), message=str(error.get("message"))[:160])
                        kind = error.get("type")
                        record["outcome"] = "refused" if kind in ("authentication_error", "permission_error") \
                            else "retriable" if kind in RETRIABLE_TYPES else "other"
                    elif not done:
                        record["outcome"] = "cut"
                response.success()    # every outcome is judged from the record, not by Locust
        except (ChunkedEncodingError, RequestsConnectionError) as exc:
            record.update(status=None, outcome="cut", code=type(exc).__name__)
        except ReadTimeout:
            record.update(status=None, outcome="hung", code="timeout")
        record["t1"] = time.time()
        RESULTS.write(json.dumps(record) + "\n")

    @task(MIX.get("steady", 0))
    def steady(self):
        self.call("steady", "petrochem", False)

    @task(MIX.get("steady_stream", 0))
    def steady_stream(self):
        self.call("steady", "petrochem", True)

    @task(MIX.get("medical", 0))
    def medical(self):
        self.call("steady", "medical", False)

    @task(MIX.get("victim", 0))
    def victim(self):
        self.call("victim", "petrochem", False)

    @task(MIX.get("limited", 0))
    def limited(self):
        self.call("limited", "petrochem", False)
