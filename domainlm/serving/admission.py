"""Admission: everything that decides whether a request reaches an engine, in one order for every endpoint.

    auth (401/403, per-address throttle 429) → model route (404/403, suspended vertical 503) → limits (400)
    → rate limit (429)
    → context length (400, refused untokenized when the bytes alone prove it too long)

Endpoints (serving_chat.py, serving_completion.py) describe their prompt as a `PromptSize` and call `admit` once.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from domainlm.serving.auth import ApiKey
from domainlm.serving.call import Call
from domainlm.serving.errors import APIError, bad_request
from domainlm.serving.ratelimit import LimiterUnavailable, RateLimited
from domainlm.serving.router import Route

# an open gateway serves every model to anyone, but /admin never: that needs a real key with the admin scope
ANONYMOUS = ApiKey(id="anonymous", name="anonymous (auth.required: false)", scopes=("*", "base"),
                   rpm=None, tpm=None, created_at="")
MAX_TRACKED_ADDRESSES = 10_000           # auth-failure counters kept (oldest dropped first)


def estimate_tokens(text: str) -> int:
    """Tokens to reserve against a key's per-minute budget before the engine counts them: UTF-8 bytes / 3 (about
    one token per CJK character, generous for English), settled against the engine's usage afterwards."""
    return len(text.encode()) // 3 + 16


@dataclass
class PromptSize:
    """What admission needs to know about a prompt, cheapest first."""
    estimate: int                                   # estimated prompt tokens, reserved against the key's budget
    upper_bound: int                                # tokens it can at most make (no tokenizer)
    lower_bound: Callable[[], int]                  # tokens it makes at least, from its bytes (no tokenizer)
    exact: Callable[[], Awaitable[int | None]]      # the tokenizer's count (None when unknown)
    param: str                                      # the request field a context error names
    prompts: int = 1                                # prompts answered (each gets n answers of max_tokens)


class Admission:
    def __init__(self, service):
        self.service = service      # GatewayService: config, keys, model table, limiter, metrics, in-flight counts

    # --- who ----------------------------------------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> ApiKey:
        if not self.service.config.auth.required:
            return ANONYMOUS
        if not authorization or not authorization.lower().startswith("bearer "):
            raise APIError(401, "missing API key: send 'Authorization: Bearer <key>' (create one with "
                                "`domainlm keys create`)", code="invalid_api_key")
        key = self.service.keys.authenticate(authorization[7:].strip())
        if key is None:
            raise APIError(401, "invalid or revoked API key", code="invalid_api_key")
        return key

    def auth_failed(self, client: str) -> bool:
        """Count a failed authentication from `client` (per minute); True for the first of its minute, the one the
        audit keeps (all are counted in /metrics): a flood of random keys costs one audit row a minute."""
        failures: OrderedDict = self.service.auth_failures
        clock = time.monotonic()
        entry = failures.get(client)
        if entry is None or clock - entry[0] >= 60:
            previous = entry[1] if entry else 0
            failures[client] = [clock, 1, previous]
            failures.move_to_end(client)
            while len(failures) > MAX_TRACKED_ADDRESSES:
                failures.popitem(last=False)
            return True
        entry[1] += 1
        return False

    def auth_throttled(self, client: str) -> bool:
        """Whether `client` failed authentication auth.max_failures_per_minute times within the last minute."""
        entry = self.service.auth_failures.get(client)
        return entry is not None and time.monotonic() - entry[0] < 60 \
            and entry[1] >= self.service.config.auth.max_failures_per_minute

    @staticmethod
    def require_admin(key: ApiKey) -> None:
        if not key.admin:
            raise APIError(403, "this key has no 'admin' scope", code="insufficient_scope")

    def admit_request(self, key: ApiKey) -> None:
        """One request (no tokens) against the key's per-minute limit: console and admin routes (called from the
        key dependency, which FastAPI runs in its thread pool, so a Redis round trip blocks no event loop)."""
        self._reserve_now(key, 0, tokens_per_minute=1 << 40)

    # --- what ---------------------------------------------------------------------------------------------------
    async def admit(self, call: Call, req, prompt: PromptSize) -> int:
        """Route, limits, rate limit and context for one OpenAI request; returns the max_tokens to send.
        The request is counted against the key's limits before any tokenizer runs on its prompt."""
        route = call.route
        max_tokens = self._limits(req, route)
        call.reservation = await self._reserve(call.key, prompt.estimate + max_tokens * req.n * prompt.prompts)
        await self._check_context(route, prompt, max_tokens)
        return max_tokens

    def route(self, call: Call, model: str) -> Route:
        service = self.service
        route = service.table.resolve(model, call.key.can_use)
        call.route = route
        service.inflight[route.public] = service.inflight.get(route.public, 0) + 1
        service.metrics.inflight.labels(vertical=call.vertical).inc()
        if not call.key.can_use(route.vertical):
            what = f"vertical '{route.vertical}'" if route.vertical else "base models (scope 'base')"
            raise APIError(403, f"this key may not use {what}; its scopes are {list(call.key.scopes)}",
                           param="model", code="insufficient_scope")
        suspended = service.suspensions.get(route.vertical)
        if suspended is not None:
            raise APIError(503, f"vertical '{route.vertical}' is suspended since {suspended.suspended_at}: "
                                f"{suspended.reason}", param="model", code="vertical_suspended")
        return route

    def _limits(self, req, route: Route) -> int:
        """Check n / stop / max_tokens against the configured limits; returns the max_tokens to use."""
        limits = self.service.config.limits
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

    async def _reserve(self, key: ApiKey, tokens: int):
        if getattr(self.service.limiter, "remote", False):   # a Redis round trip: off the event loop
            return await asyncio.to_thread(self._reserve_now, key, tokens)
        return self._reserve_now(key, tokens)

    def _reserve_now(self, key: ApiKey, tokens: int, tokens_per_minute: int | None = None):
        ratelimit = self.service.config.ratelimit
        rpm = key.rpm or ratelimit.default_rpm
        tpm = tokens_per_minute or key.tpm or ratelimit.default_tpm
        try:
            return self.service.limiter.admit(key.id, rpm, tpm, tokens)
        except LimiterUnavailable as exc:   # fail closed: a key's quota is never exceeded because Redis is away
            raise APIError(503, str(exc), code="rate_limiter_unavailable", retry_after=1.0) from None
        except RateLimited as exc:
            kind = "tokens" if tokens and "tokens" in str(exc) else "requests"
            self.service.metrics.rate_limited.labels(kind=kind).inc()
            raise APIError(429, str(exc), code="rate_limit_exceeded", retry_after=exc.retry_after) from None

    @staticmethod
    async def _check_context(route: Route, prompt: PromptSize, max_tokens: int) -> None:
        """Prompt tokens (an upper bound when that already fits) + max_tokens ≤ context length, else 400. A prompt
        whose byte count alone proves it too long is refused before the tokenizer sees it."""
        limit = route.engine.max_model_len
        if prompt.upper_bound + max_tokens <= limit:
            return
        least = await asyncio.to_thread(prompt.lower_bound)
        if least + max_tokens > limit:
            raise bad_request(f"prompt (at least {least} tokens) + max_tokens ({max_tokens}) exceeds the context "
                              f"length {limit} of '{route.public}'", prompt.param, code="context_length_exceeded")
        counted = await prompt.exact()
        if counted is not None and counted + max_tokens > limit:
            raise bad_request(f"prompt ({counted} tokens) + max_tokens ({max_tokens}) exceeds the context length "
                              f"{limit} of '{route.public}'", prompt.param, code="context_length_exceeded")
