"""The serving class: everything between a parsed HTTP request and an engine call.

    auth (401/403) → model route (404) → limits (400) → rate limit (429) → policy (refusal / system prompt)
    → engine (503 + Retry-After when no replica) → policy on the answer → headers, metrics, audit

Route handlers (routes.py) stay thin; engines (engines/) only speak OpenAI JSON to a model.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.responses import Response, StreamingResponse

from domainlm import log
from domainlm.serving.auth import ApiKey, KeyStore
from domainlm.serving.context import PromptCounter
from domainlm.serving.engines.base import EngineUnavailable, UpstreamError
from domainlm.serving.engines.sse import DONE_FRAME, frame
from domainlm.serving.errors import TYPES, APIError, bad_request, unavailable
from domainlm.serving.metrics import Metrics
from domainlm.serving.policy import RequestPolicy
from domainlm.serving.protocol import ChatCompletionRequest, CompletionRequest
from domainlm.serving.ratelimit import RateLimited, RateLimiter
from domainlm.serving.router import ModelTable, Route

logger = log.get("serving")

# an open gateway serves every model to anyone, but /admin never: that needs a real key with the admin scope
ANONYMOUS = ApiKey(id="anonymous", name="anonymous (auth.required: false)", scopes=("*", "base"),
                   rpm=None, tpm=None, created_at="")
FORWARDED = ("temperature", "top_p", "n", "stop", "seed", "presence_penalty", "frequency_penalty", "user")


def estimate_tokens(text: str) -> int:
    """Tokens to reserve against a key's per-minute budget before the engine counts them: UTF-8 bytes / 3 (about
    one token per CJK character, generous for English), settled against the engine's usage afterwards."""
    return len(text.encode()) // 3 + 16


@dataclass
class Call:
    """One request's bookkeeping, closed exactly once (metrics + audit)."""
    endpoint: str
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    key: ApiKey | None = None
    model: str | None = None
    route: Route | None = None
    status: int = 200
    error: str | None = None
    stream: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_text: str = ""
    answer: str | None = None
    policy: RequestPolicy | None = None
    reservation: list | None = None
    audited: bool = True                      # False: counted in metrics, no audit row (repeated auth failures)
    closed: bool = False

    @property
    def vertical(self) -> str:
        return (self.route.vertical or "base") if self.route else "unknown"


class GatewayService:
    def __init__(self, config, *, registry=None, keys: KeyStore | None = None, audit=None):
        from domainlm.registry import Registry
        from domainlm.serving.audit import AuditLog
        from domainlm.serving.auth import default_db

        self.config = config
        self.registry = registry or Registry(config.registry)
        self.keys = keys or KeyStore(config.auth.db, config.auth.cache_ttl_s)
        self.audit = audit or AuditLog(config.audit.db or default_db(), config.audit.flush_interval_s,
                                          retention_days=config.audit.retention_days,
                                          secret_file=config.audit.secret_file)
        self.metrics = Metrics()
        self.limiter = RateLimiter()
        self.table = ModelTable()
        self.engines: dict[str, object] = {}          # public base name → engine
        self.counters: dict[str, PromptCounter] = {}  # public base name → prompt counter
        self.groups: dict[str, object] = {}           # public base name → BaseGroup config
        self.base_sha: dict[str, str | None] = {}
        self.locks: dict[str, asyncio.Lock] = {}      # per vertical: promote / rollback / load
        self.problems: list[str] = []                 # why something configured is not served
        self.inflight: dict[str, int] = {}            # public route name → requests being answered
        self.auth_failures: OrderedDict[str, list] = OrderedDict()  # client address → [since, count, last minute's]
        self.started_at = time.time()

    # --- lifecycle (details in lifecycle.py) -------------------------------------------------------------------
    async def start(self) -> None:
        from domainlm.serving.lifecycle import start_engines

        await start_engines(self)

    async def stop(self) -> None:
        await asyncio.gather(*(engine.stop() for engine in self.engines.values()), return_exceptions=True)
        self.audit.close()

    def ready(self) -> tuple[bool, dict]:
        engines = {name: engine.ready() for name, engine in self.engines.items()}
        for name, engine in self.engines.items():
            status = engine.status()
            healthy = sum(r["healthy"] for p in status.get("pools", {}).values() for r in p["replicas"]) \
                if "pools" in status else int(engine.ready())
            self.metrics.replicas.labels(base=name).set(healthy)
        audit = self.audit.status()
        self.metrics.audit_dropped.set(audit["dropped_rows"])
        self.metrics.audit_failures.set(audit["failed_writes"])
        problems = self.problems + ([f"audit log writes failing ({audit['error']}); {audit['dropped_rows']} rows "
                                     "dropped so far"] if not audit["ok"] else [])
        return bool(engines) and all(engines.values()), {"engines": engines, "problems": problems, "audit": audit}

    def lock(self, vertical: str) -> asyncio.Lock:
        return self.locks.setdefault(vertical, asyncio.Lock())

    # --- auth --------------------------------------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> ApiKey:
        if not self.config.auth.required:
            return ANONYMOUS
        if not authorization or not authorization.lower().startswith("bearer "):
            raise APIError(401, "missing API key: send 'Authorization: Bearer <key>' (create one with "
                                "`domainlm keys create`)", code="invalid_api_key")
        key = self.keys.authenticate(authorization[7:].strip())
        if key is None:
            raise APIError(401, "invalid or revoked API key", code="invalid_api_key")
        return key

    def auth_failed(self, client: str) -> bool:
        """Count a failed authentication from `client` (per minute); True for the first of its minute, the one the
        audit keeps (all are counted in /metrics): a flood of random keys costs one audit row a minute."""
        clock = time.monotonic()
        entry = self.auth_failures.get(client)
        if entry is None or clock - entry[0] >= 60:
            previous = entry[1] if entry else 0
            self.auth_failures[client] = [clock, 1, previous]
            self.auth_failures.move_to_end(client)
            while len(self.auth_failures) > 10_000:
                self.auth_failures.popitem(last=False)
            return True
        entry[1] += 1
        return False

    def auth_throttled(self, client: str) -> bool:
        """Whether `client` failed authentication auth.max_failures_per_minute times within the last minute."""
        entry = self.auth_failures.get(client)
        return entry is not None and time.monotonic() - entry[0] < 60 \
            and entry[1] >= self.config.auth.max_failures_per_minute

    def require_admin(self, key: ApiKey) -> None:
        if not key.admin:
            raise APIError(403, "this key has no 'admin' scope", code="insufficient_scope")

    # --- shared request steps ----------------------------------------------------------------------------------
    def _route(self, call: Call, model: str) -> Route:
        route = self.table.resolve(model, call.key.can_use)
        call.route = route
        self.inflight[route.public] = self.inflight.get(route.public, 0) + 1
        self.metrics.inflight.labels(vertical=call.vertical).inc()
        if not call.key.can_use(route.vertical):
            what = f"vertical '{route.vertical}'" if route.vertical else "base models (scope 'base')"
            raise APIError(403, f"this key may not use {what}; its scopes are {list(call.key.scopes)}",
                           param="model", code="insufficient_scope")
        return route

    def _limits(self, req, route: Route) -> int:
        """Check n / stop / max_tokens against the configured limits; returns the max_tokens to use."""
        limits = self.config.limits
        if req.n > limits.max_n:
            raise bad_request(f"n={req.n} is above this gateway's limit of {limits.max_n}", "n")
        stops = req.stop_list()
        if len(stops) > limits.max_stop:
            raise bad_request(f"at most {limits.max_stop} stop sequences are allowed", "stop")
        if any(not s or len(s) > limits.max_stop_chars for s in stops):
            raise bad_request(f"stop sequences must be 1-{limits.max_stop_chars} characters", "stop")
        max_tokens = req.requested_max_tokens()
        if max_tokens is not None and max_tokens > limits.max_tokens:
            raise bad_request(f"max_tokens={max_tokens} is above this gateway's limit of {limits.max_tokens}",
                              "max_tokens")
        if max_tokens is None:
            max_tokens = min(limits.default_max_tokens, route.engine.max_model_len // 2)
        if max_tokens >= route.engine.max_model_len:
            raise bad_request(f"max_tokens={max_tokens} leaves no room for the prompt in the context length "
                              f"{route.engine.max_model_len}", "max_tokens", code="context_length_exceeded")
        return max_tokens

    async def _check_context(self, route: Route, bound: int, floor, exact, max_tokens: int) -> int:
        """Prompt tokens (an upper bound when that already fits) + max_tokens ≤ context length, else 400. A prompt
        whose byte count alone proves it too long (`floor()`: the fewest tokens it can make) is refused untokenized."""
        limit = route.engine.max_model_len
        if bound + max_tokens <= limit:
            return bound
        least = await asyncio.to_thread(floor)
        if least + max_tokens > limit:
            raise bad_request(f"prompt (at least {least} tokens) + max_tokens ({max_tokens}) exceeds the context "
                              f"length {limit} of '{route.public}'", "messages", code="context_length_exceeded")
        counted = await exact()
        if counted is not None and counted + max_tokens > limit:
            raise bad_request(f"prompt ({counted} tokens) + max_tokens ({max_tokens}) exceeds the context length "
                              f"{limit} of '{route.public}'", "messages", code="context_length_exceeded")
        return counted if counted is not None else bound

    def _admit(self, call: Call, estimated_tokens: int) -> None:
        key = call.key
        rpm = key.rpm or self.config.ratelimit.default_rpm
        tpm = key.tpm or self.config.ratelimit.default_tpm
        try:
            call.reservation = self.limiter.admit(key.id, rpm, tpm, estimated_tokens)
        except RateLimited as exc:
            self.metrics.rate_limited.labels(kind="tokens" if "tokens" in str(exc) else "requests").inc()
            raise APIError(429, str(exc), code="rate_limit_exceeded", retry_after=exc.retry_after) from None

    def admit_request(self, key: ApiKey) -> None:
        """One request (no tokens) against the key's per-minute limit: console and admin routes."""
        rpm = key.rpm or self.config.ratelimit.default_rpm
        try:
            self.limiter.admit(key.id, rpm, 1 << 40, 0)
        except RateLimited as exc:
            self.metrics.rate_limited.labels(kind="requests").inc()
            raise APIError(429, str(exc), code="rate_limit_exceeded", retry_after=exc.retry_after) from None

    def response_headers(self, call: Call) -> dict[str, str]:
        headers = {"x-request-id": call.request_id}
        if call.route:
            headers["x-domainlm-adapter"] = call.route.public
        if call.policy and (call.policy.applied or call.policy.prompt_notes):
            # streams send headers first: there they list the notes the prompt triggered; the final chunk has all
            headers["x-domainlm-policy-notes"] = ",".join(call.policy.applied or call.policy.prompt_notes)
        return headers

    # --- endpoints ---------------------------------------------------------------------------------------------
    async def chat(self, req: ChatCompletionRequest, call: Call) -> Response:
        call.model, call.stream = req.model, req.stream
        route = self._route(call, req.model)
        max_tokens = self._limits(req, route)
        if len(req.messages) > self.config.limits.max_messages:
            raise bad_request(f"at most {self.config.limits.max_messages} messages are allowed", "messages")
        messages = [{"role": m.role, "content": m.text()} for m in req.messages]
        call.prompt_text = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
        policy, messages, refusal = RequestPolicy.for_chat(route.vertical, messages)
        call.policy = policy
        counter = self.counters[route.engine.base_name]
        # admitted (and counted against the key's limits) before any tokenizer runs on the prompt
        self._admit(call, estimate_tokens(call.prompt_text) + max_tokens * req.n)
        prompt_bytes = PromptCounter.prompt_bytes_chat(messages)
        await self._check_context(route, PromptCounter.upper_bound_chat(messages),
                                  lambda: counter.lower_bound(prompt_bytes), lambda: counter.exact_chat(messages),
                                  max_tokens)
        if refusal is not None:
            self.metrics.policy.labels(vertical=call.vertical, action="refusal").inc()
            return self._refusal(call, req, refusal, "chat")
        body = {"model": route.engine_model, "messages": messages, "max_tokens": max_tokens,
                **{k: getattr(req, k) for k in FORWARDED if getattr(req, k) is not None}}
        if req.logprobs:
            body["logprobs"] = True
            if req.top_logprobs is not None:
                body["top_logprobs"] = req.top_logprobs
        return await self._dispatch(call, route, "chat", body, req)

    async def completions(self, req: CompletionRequest, call: Call) -> Response:
        call.model, call.stream = req.model, req.stream
        route = self._route(call, req.model)
        max_tokens = self._limits(req, route)
        prompts = req.prompts()
        if len(prompts) > self.config.limits.max_prompts:
            raise bad_request(f"at most {self.config.limits.max_prompts} prompts are allowed in one request", "prompt")
        call.prompt_text = "\n".join(prompts)
        policy, refusal = RequestPolicy.for_completion(route.vertical, prompts)
        call.policy = policy
        counter = self.counters[route.engine.base_name]
        self._admit(call, sum(estimate_tokens(p) for p in prompts) + max_tokens * req.n * len(prompts))
        longest = max(len(p.encode()) for p in prompts)
        await self._check_context(route, PromptCounter.upper_bound_text(prompts), lambda: counter.lower_bound(longest),
                                  lambda: counter.exact_text(prompts), max_tokens)
        if refusal is not None:
            self.metrics.policy.labels(vertical=call.vertical, action="refusal").inc()
            return self._refusal(call, req, refusal, "completions")
        body = {"model": route.engine_model, "prompt": req.prompt, "max_tokens": max_tokens,
                **{k: getattr(req, k) for k in FORWARDED if getattr(req, k) is not None}}
        if req.echo:
            body["echo"] = True
        if req.logprobs is not None:
            body["logprobs"] = req.logprobs
        return await self._dispatch(call, route, "completions", body, req)

    # --- engine call ---------------------------------------------------------------------------------------------
    async def _dispatch(self, call: Call, route: Route, kind: str, body: dict, req) -> Response:
        try:
            if not req.stream:
                result = await route.engine.request(kind, body)
                return self._complete(call, route, kind, result)
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}  # the gateway counts tokens; the client may not want it
            stream = route.engine.stream(kind, body)
            first = await anext(stream, None)  # engine errors before the first byte become proper HTTP errors
        except EngineUnavailable as exc:
            raise unavailable(str(exc), exc.retry_after) from None
        except UpstreamError as exc:
            raise upstream_api_error(exc) from None
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        filtered = call.policy.vertical is not None and kind == "chat"
        return StreamingResponse(self._relay(call, stream, first, include_usage, filtered),
                                 media_type="text/event-stream", headers=self.response_headers(call))

    def _complete(self, call: Call, route: Route, kind: str, result: dict) -> Response:
        result["model"] = route.public
        answers = []
        for choice in result.get("choices", []):
            if kind == "chat":
                message = choice.get("message") or {}
                text = message.get("content") or ""
                suffix = call.policy.suffix(text) if call.policy.vertical else ""
                message["content"] = text + suffix
                answers.append(message["content"])
            else:
                answers.append(choice.get("text") or "")
        self._count_usage(call, result.get("usage"))
        call.answer = "\n".join(answers)
        result["domainlm"] = {"adapter": route.public, "vertical": route.vertical, "version": route.version,
                              "policy": call.policy.summary() if call.policy else None}
        headers = self.response_headers(call)
        self.finish(call)
        return Response(json.dumps(result, ensure_ascii=False), media_type="application/json", headers=headers)

    async def _relay(self, call: Call, stream: AsyncIterator[bytes], first: bytes | None, include_usage: bool,
                     filtered: bool) -> AsyncIterator[bytes]:
        """Forward the engine's SSE payloads; add the policy chunk before each choice's finish; count usage."""
        texts: dict[int, str] = {}
        usage_payload = None
        ttft_done = False
        checked = time.monotonic()
        try:
            payload = first
            while payload is not None:
                if time.monotonic() - checked >= 1.0:   # a key revoked mid-stream stops its streams within ~1 s
                    checked = time.monotonic()
                    if call.key is not None and await asyncio.to_thread(self.keys.is_revoked, call.key.id):
                        call.status, call.error = 403, "API key revoked during the stream"
                        yield frame(json.dumps(APIError(403, "this API key was revoked", code="invalid_api_key")
                                               .body()).encode())
                        yield DONE_FRAME
                        return
                if not ttft_done:
                    self.metrics.ttft.labels(vertical=call.vertical).observe(time.perf_counter() - call.started)
                    ttft_done = True
                if b'"usage"' in payload and b'"choices":[]' in payload.replace(b" ", b""):
                    usage_payload = payload
                elif filtered:
                    for out in self._policy_chunks(call, payload, texts):
                        yield frame(out)
                else:
                    yield frame(payload)
                payload = await anext(stream, None)
            if usage_payload is not None:
                self._count_usage(call, json.loads(usage_payload).get("usage"))
                if include_usage:
                    yield frame(usage_payload)
            yield DONE_FRAME
        except (EngineUnavailable, UpstreamError) as exc:
            err = unavailable(str(exc), getattr(exc, "retry_after", 5)) if isinstance(exc, EngineUnavailable) \
                else upstream_api_error(exc)
            call.status, call.error = err.status, err.message
            yield frame(json.dumps(err.body()).encode())
            yield DONE_FRAME
        except asyncio.CancelledError:
            call.status, call.error = 499, "client closed the stream"
            raise
        finally:
            if texts:
                call.answer = "\n".join(texts[i] for i in sorted(texts))
            await stream.aclose()
            self.finish(call)

    def _policy_chunks(self, call: Call, payload: bytes, texts: dict[int, str]) -> list[bytes]:
        chunk = json.loads(payload)
        out = [payload]
        for choice in chunk.get("choices", []):
            index = choice.get("index", 0)
            texts[index] = texts.get(index, "") + ((choice.get("delta") or {}).get("content") or "")
            finish = choice.get("finish_reason")
            if finish is None:
                continue
            suffix = call.policy.suffix(texts[index])
            if not suffix:
                continue
            texts[index] += suffix
            choice["finish_reason"] = None
            note = {**chunk, "choices": [{"index": index, "delta": {"content": suffix}, "logprobs": None,
                                          "finish_reason": finish}],
                    "domainlm": {"adapter": call.route.public, "policy": call.policy.summary()}}
            self.metrics.policy.labels(vertical=call.vertical, action="note").inc()
            out = [json.dumps(chunk, ensure_ascii=False).encode(), json.dumps(note, ensure_ascii=False).encode()]
        return out

    def _refusal(self, call: Call, req, text: str, kind: str) -> Response:
        """Answer with the policy's refusal text without calling the model (same shapes as a model answer)."""
        rid, created, model = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}", \
            int(time.time()), call.route.public
        call.answer, call.prompt_tokens, call.completion_tokens = text, 0, 0
        extra = {"adapter": model, "vertical": call.route.vertical, "version": call.route.version,
                 "policy": call.policy.summary()}
        if kind == "chat":
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                      "finish_reason": "stop"}
            obj, chunk_obj = "chat.completion", "chat.completion.chunk"
            deltas = [{"role": "assistant", "content": ""}, {"content": text}]
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
            obj = chunk_obj = "text_completion"
            deltas = None
        headers = self.response_headers(call)
        self.finish(call)
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        if not req.stream:
            body = {"id": rid, "object": obj, "created": created, "model": model, "choices": [choice],
                    "usage": usage, "domainlm": extra}
            return Response(json.dumps(body, ensure_ascii=False), media_type="application/json", headers=headers)
        events = []
        if deltas:
            for i, delta in enumerate(deltas):
                events.append({"id": rid, "object": chunk_obj, "created": created, "model": model, "choices": [
                    {"index": 0, "delta": delta, "logprobs": None,
                     "finish_reason": "stop" if i == len(deltas) - 1 else None}], "domainlm": extra})
        else:
            events.append({"id": rid, "object": chunk_obj, "created": created, "model": model,
                           "choices": [choice], "domainlm": extra})
        if req.stream_options and req.stream_options.include_usage:
            events.append({"id": rid, "object": chunk_obj, "created": created, "model": model, "choices": [],
                           "usage": usage})
        raw = b"".join(frame(json.dumps(e, ensure_ascii=False).encode()) for e in events) + DONE_FRAME
        return Response(raw, media_type="text/event-stream", headers=headers)

    # --- accounting ----------------------------------------------------------------------------------------------
    def _count_usage(self, call: Call, usage: dict | None) -> None:
        if not usage:
            return
        call.prompt_tokens = usage.get("prompt_tokens")
        call.completion_tokens = usage.get("completion_tokens")

    def finish(self, call: Call) -> None:
        """Metrics + audit + rate-limit settlement, once per request, whatever happened."""
        if call.closed:
            return
        call.closed = True
        vertical, endpoint = call.vertical, call.endpoint
        if call.route is not None:
            self.inflight[call.route.public] -= 1
            self.metrics.inflight.labels(vertical=vertical).dec()
        elapsed = time.perf_counter() - call.started
        m = self.metrics
        m.requests.labels(endpoint=endpoint, vertical=vertical, status=str(call.status)).inc()
        m.latency.labels(endpoint=endpoint, vertical=vertical).observe(elapsed)
        if call.status >= 400:
            m.errors.labels(endpoint=endpoint, vertical=vertical, type=TYPES.get(call.status, "error")).inc()
        if call.prompt_tokens:
            m.tokens.labels(vertical=vertical, kind="prompt").inc(call.prompt_tokens)
        if call.completion_tokens:
            m.tokens.labels(vertical=vertical, kind="completion").inc(call.completion_tokens)
        if call.reservation is not None and call.prompt_tokens is not None:
            RateLimiter.settle(call.reservation, (call.prompt_tokens or 0) + (call.completion_tokens or 0))
        elif call.reservation is not None and call.status >= 400:
            RateLimiter.settle(call.reservation, 0)  # refused before the engine did any work
        if not call.audited:
            return
        policy = call.policy or RequestPolicy(call.route.vertical if call.route else None)
        texts = policy.audit(call.prompt_text, call.answer, self.audit.secret,
                             self.config.audit.base_prompts) if call.prompt_text else {}
        self.audit.record(request_id=call.request_id, key_id=call.key.id if call.key else None, endpoint=endpoint,
                          model=call.model, vertical=call.route.vertical if call.route else None,
                          version=call.route.version if call.route else None, status=call.status,
                          error=call.error, stream=call.stream, latency_ms=round(elapsed * 1000, 3),
                          prompt_tokens=call.prompt_tokens, completion_tokens=call.completion_tokens,
                          policy=policy.summary() if call.policy else None, **texts)


def upstream_api_error(exc: UpstreamError) -> APIError:
    """An engine's 4xx/5xx in the gateway's error shape (message kept, type normalised to OpenAI's)."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    return APIError(exc.status, str(error.get("message") or "the engine refused the request"),
                    param=error.get("param"), code=code if isinstance(code, str) else None)
