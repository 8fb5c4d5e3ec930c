"""ServeConfig: what `domainlm serve --config configs/serve/*.yaml` runs (validated by configs/ tests too).

One gateway in front of one engine group per base model. Each group serves the production adapters of its
verticals (plus pinned versions) from managed vLLM processes, remote vLLM URLs, or the in-process hf engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from domainlm.config import Strict


class GatewaySection(Strict):
    host: str = "127.0.0.1"                   # bind address of the gateway
    port: int = Field(8080, ge=0, le=65535)   # 0 = any free port
    max_body_bytes: int = Field(1 << 20, ge=1024)   # larger request bodies → 413
    request_timeout_s: float = Field(600.0, gt=0)   # upstream read timeout per request
    retry_after_s: int = Field(5, ge=1)       # Retry-After sent with 503 while no replica is healthy
    console: bool = True                      # mount the web console at /console when it is installed
    open_metrics: bool = False                # /metrics without a key (default: an admin key is needed)
    api_docs: bool = False                    # serve /docs and /openapi.json (they map every route; off by default)
    allowed_hosts: list[str] | None = None    # Host header names answered; None: loopback names when bound to
                                              # loopback, else any; ["*"]: any (DNS-rebinding guard)


class VllmSection(Strict):
    replicas: int = Field(1, ge=0)            # managed `vllm serve` processes per base (0 = only remote ones)
    remote: list[str] = Field(default_factory=list)  # URLs of vLLM servers started elsewhere (same adapter paths)
    api_key_env: str | None = None            # variable holding the vLLM servers' key (remote ones' --api-key); unset:
                                              # managed replicas get a random key per engine, remote ones none
    port_start: int = Field(18100, ge=1024, le=65000)  # managed replicas listen from here on (next free port)
    max_loras: int = Field(4, ge=1)           # adapters in one batch (vLLM --max-loras)
    max_lora_rank: int = Field(16, ge=1)      # largest adapter rank accepted (vLLM --max-lora-rank)
    max_model_len: int = Field(2048, ge=64)   # context length; also the gateway's prompt+max_tokens limit
    enforce_eager: bool = True                # eager mode: ~27 s start on CPU instead of ~107 s
    tensor_parallel_size: int = Field(1, ge=1)  # GPUs per replica (vLLM --tensor-parallel-size)
    kv_cache_gib: float = Field(1.0, gt=0)    # CPU only: VLLM_CPU_KVCACHE_SPACE in GiB
    omp_threads_bind: str | None = None       # CPU only: VLLM_CPU_OMP_THREADS_BIND (e.g. "0-1"); None = vLLM's
    extra_args: list[str] = Field(default_factory=list)  # appended to the vLLM command line (e.g. Ray executor)
    env: dict[str, str] = Field(default_factory=dict)  # extra environment for managed processes
    startup_timeout_s: float = Field(600.0, gt=0)   # a replica not ready by then is restarted
    health_interval_s: float = Field(2.0, gt=0)     # supervisor health-check period
    health_timeout_s: float = Field(5.0, gt=0)      # a probe unanswered this long counts as missed; a serving
                                                    # replica leaves rotation after 3 missed in a row (busy ≠ gone)
    restart_backoff_s: float = Field(2.0, ge=0)     # first restart delay (doubles up to 60 s)


class HfSection(Strict):
    max_batch: int = Field(8, ge=1)           # requests generated together in one batch
    batch_wait_ms: float = Field(5.0, ge=0)   # how long the batcher waits to fill a batch
    dtype: Literal["auto", "bfloat16", "float32", "float16"] = "auto"  # weights; auto: bf16 where native, else fp32
    max_model_len: int = Field(2048, ge=64)   # context length limit for prompt + max_tokens


class BaseGroup(Strict):
    model: str = "smollm2-135m"               # base model: embedded name, local HF folder, or cached hub id
    served_name: str | None = None            # name of the base model in /v1/models (default: the model ref)
    verticals: list[str] = Field(default_factory=list)  # verticals served on this base (their production adapters)
    pinned: list[str] = Field(default_factory=list)  # extra versions loaded at start, e.g. ["medical@2"]
    engine: Literal["auto", "vllm", "vllm-merged", "hf"] = "auto"  # auto = the accelerator backend's choice
    vllm: VllmSection = VllmSection()         # vLLM engine settings
    hf: HfSection = HfSection()               # in-process engine settings

    @field_validator("pinned")
    @classmethod
    def _pinned(cls, value: list[str]) -> list[str]:
        from domainlm.registry import parse_ref

        for ref in value:
            if parse_ref(ref)[1] is None:
                raise ValueError(f"'{ref}': a pinned version needs @N, e.g. medical@2")
        return value

    def public_base_name(self) -> str:
        return self.served_name or Path(self.model).name


class AuthSection(Strict):
    required: bool = True                     # false = open gateway (local experiments only)
    max_failures_per_minute: int = Field(30, ge=1)  # failed authentications per client address before 429
    db: str | None = None                     # keys database (default $DOMAINLM_HOME/gateway.sqlite)
    cache_ttl_s: float = Field(2.0, ge=0)     # key lookups cached this long (revocation delay from the CLI)


class RateLimitSection(Strict):
    default_rpm: int = Field(600, ge=1)       # requests per minute for keys created without --rpm
    default_tpm: int = Field(200_000, ge=1)   # tokens per minute (prompt + completion) without --tpm


class LimitsSection(Strict):
    max_tokens: int = Field(1024, ge=1)       # largest max_tokens a request may ask for
    default_max_tokens: int = Field(256, ge=1)  # used when a request gives none
    max_n: int = Field(4, ge=1)               # largest n (choices per request)
    max_stop: int = Field(4, ge=0)            # most stop sequences
    max_stop_chars: int = Field(64, ge=1)     # longest stop sequence
    max_messages: int = Field(256, ge=1)      # most chat messages per request
    max_prompts: int = Field(128, ge=1)       # most prompts in one completions request (a list)


class StateSection(Strict):
    url: str | None = None                    # where keys, suspensions, held answers and the audit live: a SQLite
                                              # path (default $DOMAINLM_HOME/gateway.sqlite, replicas on one machine)
                                              # or postgresql://user@host:port/db (replicas on many machines)
    redis: str | None = None                  # redis://host:port/db: rate limits shared by every replica, revocation
                                              # and suspension broadcast; None = per-replica limits, polling only

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        from domainlm.state.db import StateError, normalise_url

        if value is not None:
            try:
                normalise_url(value)
            except StateError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("redis")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"{value!r} is not a Redis URL (redis://host:port/db, rediss://…, unix://…)")
        return value


class AuditSection(Strict):
    db: str | None = None                     # audit database (default $DOMAINLM_HOME/gateway.sqlite)
    flush_interval_s: float = Field(0.5, gt=0)  # audit rows are written in batches off the request path
    retention_days: float | None = Field(90.0, gt=0)  # rows older than this are deleted (hourly); None = kept
    base_prompts: Literal["text", "hash", "none"] = "text"  # what the audit keeps of base-model prompts/answers
    secret_file: str | None = None            # HMAC key for hashed prompts (default: audit-hmac.key beside the db,
                                              # created 0600); replicas sharing one audit need the same file
    durable: bool = False                     # an answer is sent only after its audit row is committed (group
                                              # commit): a replica killed -9 loses no record of answers it gave
    durable_timeout_s: float = Field(5.0, gt=0)  # past this, the answer is withheld with a retriable 503


class ServeConfig(Strict):
    gateway: GatewaySection = GatewaySection()
    registry: str | None = None               # registry root (default $DOMAINLM_REGISTRY or ~/.cache/domainlm/registry)
    bases: list[BaseGroup] = Field(default_factory=lambda: [BaseGroup()])  # one engine group per base model
    auth: AuthSection = AuthSection()
    ratelimit: RateLimitSection = RateLimitSection()
    limits: LimitsSection = LimitsSection()
    audit: AuditSection = AuditSection()
    state: StateSection = StateSection()

    @model_validator(mode="after")
    def _unique(self) -> ServeConfig:
        from domainlm.registry.names import RegistryError, check_vertical

        seen: dict[str, str] = {}
        names = set()
        for group in self.bases:
            for vertical in group.verticals:
                try:
                    check_vertical(vertical)
                except RegistryError as exc:
                    raise ValueError(str(exc)) from None
                if vertical in seen:
                    raise ValueError(f"vertical '{vertical}' is served on two bases ({seen[vertical]}, {group.model})")
                seen[vertical] = group.model
            if group.public_base_name() in names:
                raise ValueError(f"two bases are served as '{group.public_base_name()}': set served_name")
            names.add(group.public_base_name())
        if self.limits.default_max_tokens > self.limits.max_tokens:
            raise ValueError("limits.default_max_tokens is larger than limits.max_tokens")
        return self
