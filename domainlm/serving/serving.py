"""The gateway service: the state one gateway process shares, and the parts that act on it.

    routes.py (thin handlers) → admission.py (auth, route, limits, rate limit, context)
    → serving_chat.py / serving_completion.py (one endpoint class each) → relay.py (engine call, SSE, refusals)
    → finish() here: metrics, rate-limit settlement, audit — once per request, whatever happened

Engines (engines/) only speak OpenAI JSON to a model.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict

from domainlm import log
from domainlm.serving.admission import Admission
from domainlm.serving.audit import AuditUnavailable
from domainlm.serving.auth import KeyStore
from domainlm.serving.suspension import SuspensionStore
from domainlm.serving.call import Call
from domainlm.serving.context import PromptCounter
from domainlm.serving.errors import TYPES, APIError
from domainlm.serving.guardrails import Guard
from domainlm.serving.metrics import Metrics
from domainlm.serving.policy import RequestPolicy
from domainlm.serving.ratelimit import RateLimiter
from domainlm.serving.relay import EngineRelay
from domainlm.serving.review import ReviewQueue
from domainlm.serving.router import ModelTable
from domainlm.serving.serving_chat import ChatEndpoint
from domainlm.serving.serving_completion import CompletionEndpoint

logger = log.get("serving")
FOLLOWED = ("registry_changed", "adapter_loaded", "adapter_unloaded")   # other replicas' serving changes


class GatewayService:
    def __init__(self, config, *, registry=None, keys: KeyStore | None = None, audit=None):
        from domainlm.registry import Registry
        from domainlm.serving.audit import AuditLog
        from domainlm.serving.auth import default_db

        self.config = config
        self.registry = registry or Registry(config.registry)
        state = config.state.url or default_db()   # SQLite beside the registry, or the replicas' PostgreSQL
        self.keys = keys or KeyStore(config.auth.db or state, config.auth.cache_ttl_s)
        # the emergency switch lives beside the keys: every replica sharing that database sees a suspension
        self.suspensions = SuspensionStore(self.keys.db)
        self.reviews = ReviewQueue(self.keys.db)     # answers held by a vertical's guard, for every replica
        self.audit = audit or AuditLog(config.audit.db or state, config.audit.flush_interval_s,
                                          retention_days=config.audit.retention_days,
                                          secret_file=config.audit.secret_file)
        self.metrics = Metrics()
        self.limiter, self.broadcast, self.loop = RateLimiter(), None, None
        if config.state.redis:   # shared limits + instant revocation/suspension on every replica
            self._share_through_redis(config.state.redis)
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
        self.admission = Admission(self)
        self.relay = EngineRelay(self)
        self.guard = Guard(self)
        self.chat = ChatEndpoint(self)
        self.completions = CompletionEndpoint(self)

    # --- lifecycle (details in lifecycle.py) -------------------------------------------------------------------
    async def start(self) -> None:
        from domainlm.serving.lifecycle import start_engines

        self.loop = asyncio.get_running_loop()   # where the broadcast thread hands serving changes
        await start_engines(self)

    def _share_through_redis(self, url: str) -> None:
        from domainlm.serving.broadcast import Broadcast
        from domainlm.serving.ratelimit_redis import RedisRateLimiter

        self.limiter = RedisRateLimiter(url)
        self.broadcast = Broadcast(url, self._on_broadcast)
        self.keys.on_revoke = lambda key_id: self.broadcast.publish("key_revoked", id=key_id)
        self.suspensions.on_switch = lambda vertical: self.broadcast.publish("vertical_switched", vertical=vertical)

    async def announce(self, kind: str, **fields) -> None:
        """Tell the other replicas (with state.redis) that what this one serves changed; they follow."""
        if self.broadcast is not None:
            await asyncio.to_thread(self.broadcast.publish, kind, **fields)

    @contextlib.asynccontextmanager
    async def adapter_lock(self, ref: str):
        """Across replicas (Redis) one load of `ref` into the shared vLLM servers at a time; in process otherwise
        (the per-vertical lock already orders a replica's own loads)."""
        if self.broadcast is None:
            yield
            return
        lock = self.broadcast.client.lock(f"dlm:lock:adapter:{ref}", timeout=300, blocking_timeout=300)
        acquired = await asyncio.to_thread(lock.acquire)
        try:
            yield
        finally:
            if acquired:
                await asyncio.to_thread(lock.release)

    def _on_broadcast(self, event: dict) -> None:
        """On the broadcast thread: caches are dropped here; serving changes run on the gateway's event loop."""
        kind = event.get("kind")
        if kind in ("key_revoked", "resync"):
            self.keys.forget()
        if kind in ("vertical_switched", "resync"):
            self.suspensions.forget()
        if kind in FOLLOWED and not event.get("mine") and self.loop is not None:
            asyncio.run_coroutine_threadsafe(self._follow(event), self.loop)

    async def _follow(self, event: dict) -> None:
        """Another replica promoted, rolled back, loaded or unloaded: serve the same (registry and vLLM servers are
        shared, so this mostly updates this replica's routing table). Failures are logged; /admin/sync retries."""
        from domainlm.registry import parse_ref
        from domainlm.serving import lifecycle

        try:
            if event["kind"] == "registry_changed":
                vertical = event["vertical"]
                if vertical in {v for g in self.config.bases for v in g.verticals}:
                    async with self.lock(vertical):
                        await lifecycle.follow_registry(self, vertical, "replica")
            elif event["kind"] == "adapter_loaded":
                vertical, version = parse_ref(event["ref"])
                if event["ref"] not in self.table.pinned:
                    async with self.lock(vertical):
                        await lifecycle.load_version(self, vertical, version, "replica")
            elif event["kind"] == "adapter_unloaded" and event["ref"] in self.table.pinned:
                vertical, _ = parse_ref(event["ref"])
                async with self.lock(vertical):
                    self.table.remove_version(event["ref"])
        except Exception as exc:   # noqa: BLE001 - a follower must not die on one bad event
            logger.error("could not follow another replica", event=event, error=str(exc))

    async def stop(self) -> None:
        await asyncio.gather(*(engine.stop() for engine in self.engines.values()), return_exceptions=True)
        self.audit.close()
        for shared in (self.broadcast, self.limiter):
            if hasattr(shared, "close"):
                shared.close()

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

    # --- accounting ----------------------------------------------------------------------------------------------
    async def finish_answered(self, call: Call) -> None:
        """finish() for an answer about to be delivered. With audit.durable, wait until its audit row is committed
        (group commit with the other replicas' rows in flight): a replica killed afterwards loses no record of an
        answer it gave. If the row cannot be written in audit.durable_timeout_s, the answer is withheld: 503."""
        waiter = self.finish(call, durable=self.config.audit.durable)
        if waiter is None:
            return
        try:
            await asyncio.wait_for(asyncio.wrap_future(waiter), self.config.audit.durable_timeout_s)
        except (AuditUnavailable, asyncio.TimeoutError) as exc:
            raise APIError(503, f"the answer could not be put on the audit record ({exc or 'timed out'}); retry",
                           code="audit_unavailable", retry_after=1.0) from None

    def finish(self, call: Call, durable: bool = False):
        """Metrics + audit + rate-limit settlement, once per request, whatever happened. Returns the audit row's
        Future when `durable` (None otherwise, or when the call is not audited)."""
        if call.closed:
            return None
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
            self.limiter.settle(call.reservation, (call.prompt_tokens or 0) + (call.completion_tokens or 0))
        elif call.reservation is not None and call.status >= 400:
            self.limiter.settle(call.reservation, 0)  # refused before the engine did any work
        self.guard.observe(call)
        if not call.audited:
            return None
        policy = call.policy or RequestPolicy(call.route.vertical if call.route else None)
        texts = policy.audit(call.prompt_text, call.answer, self.audit.secret,
                             self.config.audit.base_prompts) if call.prompt_text else {}
        route = call.route
        return self.audit.record(durable=durable, request_id=call.request_id, key_id=call.key.id if call.key else None,
                                 endpoint=endpoint, model=call.model, vertical=route.vertical if route else None,
                                 version=route.version if route else None, status=call.status, error=call.error,
                                 stream=call.stream, latency_ms=round(elapsed * 1000, 3),
                                 prompt_tokens=call.prompt_tokens, completion_tokens=call.completion_tokens,
                                 policy=policy.summary() if call.policy else None, **texts)

