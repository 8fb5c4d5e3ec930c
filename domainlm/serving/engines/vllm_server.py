"""The vLLM engine: managed `vllm serve --enable-lora` processes and/or remote vLLM URLs for one base model.

    LoRA mode   one pool of N replicas serves the base and every adapter (runtime LoRA load/unload endpoints)
    merged mode one pool per adapter, each replica running the adapter merged into the base weights
                (for accelerators whose vLLM has no LoRA support), plus one pool for the base itself

Requests go to the least-loaded healthy replica; a replica that refuses connections is marked down and the request
fails over to the next one before any byte reaches the client. A supervisor task health-checks every replica,
restarts managed processes that died or hang, and re-loads the wanted adapters into replicas that come back.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import httpx

from domainlm import log
from domainlm.ports import free_port
from domainlm.serving.engines.base import Adapter, EngineUnavailable, UpstreamError
from domainlm.serving.engines.replica import Pool, Replica, now
from domainlm.serving.engines.sse import data_payloads
from domainlm.serving.engines.vllm_process import ProcessSpec, VllmProcess

logger = log.get("serving.vllm")

ROUTES = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
# the replica is gone or dropped the connection: fail over (before the first byte) or end the stream
CONNECT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)
SLOW_PROBES_TO_DOWN = 3   # health probes that time out in a row before a serving replica leaves rotation


def configured_api_key(settings) -> str | None:
    """The key the vLLM servers use (remote ones were started with it as --api-key), from the variable the config
    names; None when it names none."""
    name = settings.api_key_env
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise ValueError(f"vllm.api_key_env names ${name}, which is not set: export the vLLM servers' key there")
    return value


def adapter_problem(adapter: Adapter) -> str | None:
    """None when the adapter's files still hash to the artifact that was registered; else what changed. Run before
    every load and every restart: a file swapped in the registry folder after promotion is never served."""
    from domainlm.artifacts import artifact_id, verify_artifact
    from domainlm.errors import DomainlmError

    try:
        manifest = verify_artifact(adapter.path)
    except DomainlmError as exc:
        return str(exc)
    if artifact_id(manifest) != adapter.artifact_id:
        return f"{adapter.path}: manifest rewritten since registration (artifact id {artifact_id(manifest)[:12]})"
    return None


class AdapterLoadError(Exception):
    """The adapter could not be loaded on every healthy replica, or the load did not take."""


class VllmEngine:
    def __init__(self, *, base_name: str, model_path: str | None, settings, backend_env: dict,
                 backend_args: dict, merged: bool, log_dir: Path, retry_after_s: float = 5.0,
                 request_timeout_s: float = 600.0, merge_dir: Path | None = None):
        self.base_name = base_name
        self.model_path = model_path
        self.settings = settings                      # serving.config.VllmSection
        self.max_model_len = settings.max_model_len
        self.merged = merged
        self.log_dir = log_dir
        self.merge_dir = merge_dir
        self.retry_after_s = retry_after_s
        # managed replicas listen on loopback and answer /v1 (runtime LoRA loading included) only with this key
        # (a fresh one per engine unless configured): whoever reaches a replica cannot swap an adapter past the gateway
        self.remote_api_key = configured_api_key(settings)
        self.api_key = self.remote_api_key or secrets.token_urlsafe(32)
        self.env = {**backend_env, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", **settings.env,
                    "VLLM_API_KEY": self.api_key}
        if backend_env.get("DOMAINLM_BACKEND") == "cpu":
            self.env.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{settings.kv_cache_gib:g}")
            if settings.omp_threads_bind:
                self.env.setdefault("VLLM_CPU_OMP_THREADS_BIND", settings.omp_threads_bind)
        self.backend_args = backend_args
        self.pools: dict[str, Pool] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._next_port = settings.port_start
        # requests go through aiohttp (a fraction of httpx's per-request CPU: the gateway shares the machine with
        # the engine); health checks and admin calls, off the hot path, through httpx
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s, sock_connect=5.0)
        self._session: aiohttp.ClientSession | None = None
        self._probe = httpx.AsyncClient(timeout=httpx.Timeout(settings.health_timeout_s, connect=2.0))
        self._supervisor: asyncio.Task | None = None
        self._stopping = False

    # --- lifecycle -----------------------------------------------------------------------------------------------
    def _spec(self, model_path: str, served: list[str], lora: bool, adapters: dict[str, Adapter]) -> ProcessSpec:
        s = self.settings
        return ProcessSpec(model_path=model_path, served_names=served, port=0, enable_lora=lora,
                           lora_modules={n: str(a.path) for n, a in adapters.items()} if lora else {},
                           max_loras=s.max_loras, max_lora_rank=s.max_lora_rank, max_model_len=s.max_model_len,
                           enforce_eager=s.enforce_eager, tensor_parallel_size=s.tensor_parallel_size,
                           backend_args=self.backend_args, extra_args=list(s.extra_args), env=self.env)

    def _add_managed(self, pool: Pool, count: int) -> None:
        for _ in range(count):
            port = free_port(self._next_port)
            self._next_port = port + 1
            name = pool.key.replace("@", "-")
            process = VllmProcess(replace(pool.spec, port=port), self.log_dir / f"vllm-{name}-{port}.log")
            pool.replicas.append(Replica(url=f"http://127.0.0.1:{port}", process=process, api_key=self.api_key,
                                         backoff_s=self.settings.restart_backoff_s))

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on the serving event loop
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=aiohttp.TCPConnector(
                limit=1024, keepalive_timeout=30), raise_for_status=False)
        return self._session

    async def start(self, adapters: list[Adapter]) -> None:
        s = self.settings
        wanted = {a.name: a for a in adapters}
        if self.merged:
            base = Pool(key="base", base_name=self.base_name, lora=False,
                        spec=self._spec(self.model_path, [self.base_name], False, {}) if self.model_path else None)
            self.pools["base"] = base
            if base.spec and s.replicas:
                self._add_managed(base, s.replicas)
            for adapter in adapters:
                await self._start_merged_pool(adapter, wait=False)
        else:
            pool = Pool(key="lora", base_name=self.base_name, lora=True, adapters=dict(wanted),
                        spec=self._spec(self.model_path, [self.base_name], True, wanted) if self.model_path else None)
            pool.replicas += [Replica(url=u.rstrip("/"), backoff_s=s.restart_backoff_s, api_key=self.remote_api_key)
                              for u in s.remote]
            if pool.spec and s.replicas:
                self._add_managed(pool, s.replicas)
            self.pools["lora"] = pool
        for pool in self.pools.values():
            for replica in pool.replicas:
                if replica.process and not replica.process.alive():
                    replica.process.start()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"vllm-supervisor-{self.base_name}")

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor:
            self._supervisor.cancel()
            try:
                await self._supervisor
            except asyncio.CancelledError:
                logger.info("supervisor stopped", base=self.base_name)
        processes = [r.process for p in self.pools.values() for r in p.replicas if r.process]
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in processes))
        if self._session is not None:
            await self._session.close()
        await self._probe.aclose()

    async def wait_ready(self, timeout: float) -> bool:
        deadline = now() + timeout
        while now() < deadline:
            if self.ready():
                return True
            await asyncio.sleep(0.5)
        return self.ready()

    def ready(self) -> bool:
        return bool(self.pools) and all(p.ready() for p in self.pools.values())

    def loaded(self) -> set[str]:
        names = set()
        for pool in self.pools.values():
            names |= set(pool.adapters) if pool.lora else ({pool.key} if pool.key != "base" else set())
        return names

    def status(self) -> dict:
        return {"kind": "vllm-merged" if self.merged else "vllm-lora", "base": self.base_name,
                "ready": self.ready(), "pools": {k: p.status() for k, p in self.pools.items()}}

    # --- supervision ---------------------------------------------------------------------------------------------
    async def _supervise(self) -> None:
        while not self._stopping:
            checks = [self._check(pool, r) for pool in list(self.pools.values()) for r in pool.replicas]
            await asyncio.gather(*checks, return_exceptions=True)
            await asyncio.sleep(self.settings.health_interval_s)

    async def _check(self, pool: Pool, replica: Replica) -> None:
        process = replica.process
        if process is not None and not process.alive():
            if replica.healthy or not replica.last_error.startswith("exited"):
                logger.warning("vllm replica died", url=replica.url, code=process.exit_code(), tail=process.tail(5))
            replica.mark_down(f"exited with code {process.exit_code()}")
            if now() >= replica.restart_at:
                await self._restart(pool, replica)
            return
        slow = False
        try:
            response = await self._probe.get(replica.url + "/health", headers=replica.headers())
            ok = response.status_code == 200
        except httpx.TimeoutException as exc:
            ok, response, slow = False, exc, True
        except httpx.HTTPError as exc:
            ok, response = False, exc
        if ok:
            if not replica.healthy:
                await self._sync_adapters(pool, replica)
                replica.healthy, replica.healthy_since = True, now()
                replica.consecutive_failures, replica.backoff_s = 0, self.settings.restart_backoff_s
                logger.info("vllm replica healthy", url=replica.url, restarts=replica.restarts)
            return
        replica.consecutive_failures += 1
        if slow and replica.healthy and replica.consecutive_failures < SLOW_PROBES_TO_DOWN:
            # busy, not gone: on a loaded host /health can wait behind generation. A replica that refuses
            # connections or fails requests leaves rotation at once; one that is only slow to answer the probe
            # stays until it has missed SLOW_PROBES_TO_DOWN in a row
            return
        was_healthy = replica.healthy
        replica.mark_down(f"health check failed: {response!r}"[:300])
        if was_healthy:
            logger.warning("vllm replica unhealthy", url=replica.url, error=replica.last_error)
        if process is None:
            return
        starting_too_long = not replica.healthy_since and now() - process.started_at > self.settings.startup_timeout_s
        hung = replica.healthy_since and replica.consecutive_failures >= 5
        if starting_too_long or hung:
            logger.warning("vllm replica not answering, restarting", url=replica.url)
            await self._restart(pool, replica)

    async def _restart(self, pool: Pool, replica: Replica) -> None:
        """Stop what is left of the process and start it again with the adapters wanted now."""
        process = replica.process
        await asyncio.to_thread(process.stop, 5.0)
        if pool.lora:
            intact = {}
            for name, adapter in pool.adapters.items():
                problem = await asyncio.to_thread(adapter_problem, adapter)
                if problem:
                    logger.error("adapter not reloaded: failed verification", adapter=name, error=problem)
                else:
                    intact[name] = str(adapter.path)
            process.spec = replace(process.spec, lora_modules=intact)
        process.start()
        replica.restarts += 1
        replica.healthy_since = 0.0
        replica.consecutive_failures = 0
        replica.restart_at = now() + replica.backoff_s
        replica.backoff_s = min(replica.backoff_s * 2 or 1.0, 60.0)
        logger.info("vllm replica restarted", url=replica.url, pid=process.pid, restarts=replica.restarts)

    async def _sync_adapters(self, pool: Pool, replica: Replica) -> None:
        """A replica that (re)appears gets every wanted adapter (remote servers restart without our flags)."""
        if not pool.lora or not pool.adapters:
            return
        served = await self._served(replica)
        for name, adapter in list(pool.adapters.items()):
            try:
                if name in served and served[name].get("root") != str(adapter.path):
                    # another folder under our adapter's name (loaded by someone else): replaced by ours
                    logger.warning("replica serves a foreign adapter under our name", url=replica.url, adapter=name,
                                   root=served[name].get("root"))
                    await self._unload_on(replica, name)
                    served.pop(name)
                if name not in served:
                    await self._load_on(replica, adapter)
            except (AdapterLoadError, httpx.HTTPError) as exc:
                logger.error("adapter sync failed", url=replica.url, adapter=name, error=str(exc))

    # --- routing -------------------------------------------------------------------------------------------------
    def _pool_for(self, model: str) -> Pool:
        for pool in self.pools.values():
            if model in pool.names() and (pool.lora or model == pool.base_name):
                return pool
        raise UpstreamError(404, {"error": {"message": f"model '{model}' is not loaded on this engine",
                                            "type": "not_found_error", "param": "model", "code": "model_not_found"}})

    def _unavailable(self, pool: Pool) -> EngineUnavailable:
        down = "; ".join(f"{r.url}: {r.last_error or 'starting'}" for r in pool.replicas) or "no replicas configured"
        return EngineUnavailable(f"no healthy vLLM replica for '{pool.base_name}' ({down})", self.retry_after_s)

    def _claim(self, pool: Pool, tried: set[int]):
        """The least-loaded healthy replica not yet tried, counted as busy; 503 when none is left."""
        replica = pool.pick(tried)
        if replica is None:
            raise self._unavailable(pool)
        replica.inflight += 1
        replica.served += 1
        return replica

    async def request(self, route: str, body: dict) -> dict:
        pool = self._pool_for(body["model"])
        tried: set[int] = set()
        while True:
            replica = self._claim(pool, tried)
            try:
                async with self._http().post(replica.url + ROUTES[route], json=body,
                                                  headers=replica.headers()) as response:
                    status, raw = response.status, await response.read()
            except CONNECT_ERRORS as exc:
                replica.mark_down(f"request failed: {exc!r}")
                tried.add(id(replica))
                continue
            except asyncio.TimeoutError:
                raise UpstreamError(504, _error_body(504, "the engine did not answer in time")) from None
            finally:
                replica.inflight -= 1
            return _json_or_error(status, raw)

    async def stream(self, route: str, body: dict) -> AsyncIterator[bytes]:
        pool = self._pool_for(body["model"])
        tried: set[int] = set()
        while True:
            replica = self._claim(pool, tried)
            started = False
            try:
                async with self._http().post(replica.url + ROUTES[route], json=body,
                                                  headers=replica.headers()) as response:
                    if response.status != 200:
                        _json_or_error(response.status, await response.read())
                    async for payload in data_payloads(response.content.iter_any()):
                        started = True
                        yield payload
                return
            except asyncio.TimeoutError:
                raise UpstreamError(504, _error_body(504, "the engine did not answer in time")) from None
            except CONNECT_ERRORS as exc:
                replica.mark_down(f"stream failed: {exc!r}")
                if started:  # bytes already reached the client: it cannot be replayed elsewhere
                    raise EngineUnavailable(f"replica {replica.url} failed mid-stream", self.retry_after_s) from None
                tried.add(id(replica))
            finally:
                replica.inflight -= 1

    # --- adapters ------------------------------------------------------------------------------------------------
    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def _served(self, replica: Replica) -> dict[str, dict]:
        response = await self._probe.get(replica.url + "/v1/models", headers=replica.headers())
        response.raise_for_status()
        return {m["id"]: m for m in response.json().get("data", [])}

    async def _load_on(self, replica: Replica, adapter: Adapter) -> None:
        problem = await asyncio.to_thread(adapter_problem, adapter)
        if problem:
            raise AdapterLoadError(f"{adapter.name} failed verification, not loaded: {problem}")
        try:
            response = await self._probe.post(replica.url + "/v1/load_lora_adapter", headers=replica.headers(),
                                              json={"lora_name": adapter.name, "lora_path": str(adapter.path)})
        except httpx.HTTPError as exc:
            raise AdapterLoadError(f"{replica.url}: load request failed: {exc!r}") from None
        if response.status_code == 200:
            return
        if response.status_code == 400 and "already been loaded" in response.text:
            served = await self._served(replica)
            if served.get(adapter.name, {}).get("root") == str(adapter.path):
                return
            raise AdapterLoadError(f"{replica.url}: a different '{adapter.name}' is loaded "
                                   f"({served.get(adapter.name, {}).get('root')})")
        raise AdapterLoadError(f"{replica.url}: vLLM answered {response.status_code}: {response.text[:300]}")

    async def _verify_on(self, replica: Replica, adapter: Adapter) -> None:
        """The load took: the replica lists the adapter on this base and generates one token with it."""
        served = await self._served(replica)
        card = served.get(adapter.name)
        if card is None or card.get("parent") != self.base_name:
            raise AdapterLoadError(f"{replica.url}: '{adapter.name}' is not listed after loading")
        probe = await self._probe.post(replica.url + "/v1/completions", headers=replica.headers(),
                                        json={"model": adapter.name, "prompt": "Hi", "max_tokens": 1,
                                              "temperature": 0})
        if probe.status_code != 200:
            raise AdapterLoadError(f"{replica.url}: '{adapter.name}' fails to generate: {probe.text[:300]}")

    async def load_adapter(self, adapter: Adapter) -> None:
        async with self._lock(adapter.name):
            if self.merged:
                await self._start_merged_pool(adapter, wait=True)
                return
            pool = self.pools["lora"]
            healthy = [r for r in pool.replicas if r.healthy]
            if not healthy:
                raise self._unavailable(pool)
            previous = pool.adapters.get(adapter.name)
            pool.adapters[adapter.name] = adapter   # wanted from now on: restarts and late replicas get it too
            try:
                await asyncio.gather(*(self._load_on(r, adapter) for r in healthy))
                await asyncio.gather(*(self._verify_on(r, adapter) for r in healthy))
            except (AdapterLoadError, httpx.HTTPError) as exc:
                if previous is None:
                    pool.adapters.pop(adapter.name, None)
                    await asyncio.gather(*(self._unload_on(r, adapter.name) for r in healthy),
                                         return_exceptions=True)
                raise AdapterLoadError(str(exc)) from None
            logger.info("adapter loaded", adapter=adapter.name, replicas=len(healthy))

    async def _unload_on(self, replica: Replica, name: str) -> None:
        response = await self._probe.post(replica.url + "/v1/unload_lora_adapter", headers=replica.headers(),
                                          json={"lora_name": name})
        if response.status_code not in (200, 404):
            raise AdapterLoadError(f"{replica.url}: unload answered {response.status_code}: {response.text[:300]}")

    async def unload_adapter(self, name: str) -> None:
        async with self._lock(name):
            if self.merged:
                pool = self.pools.pop(name, None)
                if pool:
                    await asyncio.gather(*(asyncio.to_thread(r.process.stop) for r in pool.replicas if r.process))
                return
            pool = self.pools["lora"]
            pool.adapters.pop(name, None)
            await asyncio.gather(*(self._unload_on(r, name) for r in pool.replicas if r.healthy),
                                 return_exceptions=True)
            logger.info("adapter unloaded", adapter=name)

    # --- merged mode ---------------------------------------------------------------------------------------------
    async def _start_merged_pool(self, adapter: Adapter, wait: bool) -> None:
        from domainlm import paths
        from domainlm.artifacts.merge import cached_merge

        if self.model_path is None:
            raise AdapterLoadError("merged serving needs the base model's local folder (managed replicas only)")
        folder = await asyncio.to_thread(cached_merge, adapter.path, adapter.artifact_id, self.model_path,
                                         self.merge_dir or paths.home() / "merged",
                                         f"{adapter.vertical}-{adapter.version}")
        pool = Pool(key=adapter.name, base_name=adapter.name, lora=False,
                    spec=self._spec(str(folder), [adapter.name], False, {}))
        self._add_managed(pool, max(1, self.settings.replicas))
        self.pools[adapter.name] = pool
        if wait:
            for replica in pool.replicas:
                replica.process.start()
            deadline = now() + self.settings.startup_timeout_s
            while not pool.ready() and now() < deadline:
                await asyncio.sleep(1.0)
            if not pool.ready():
                raise AdapterLoadError(f"merged engine for '{adapter.name}' did not become healthy")


def _error_body(status: int, message: str) -> dict:
    from domainlm.serving.errors import TYPES

    return {"error": {"message": message, "type": TYPES.get(status, "server_error"), "param": None, "code": None}}


def _json_or_error(status: int, raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if status == 200 and isinstance(body, dict):
        return body
    if not isinstance(body, dict) or "error" not in body:
        body = _error_body(status, raw.decode(errors="replace")[:500] or "empty answer from engine")
    # the engine broke (5xx) or answered nonsense: 502, not the gateway's fault; 4xx are passed on as they are
    raise UpstreamError(status if 400 <= status < 500 else 502, body)
