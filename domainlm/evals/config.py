"""The eval config (configs/eval/*.yaml): which tasks, which backend, how prompts are built, how scores are tested."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from domainlm.config.loader import Strict

TASK_NAME = r"^[a-z][a-z0-9_]*$"


class TaskRef(Strict):
    """One task of a suite: a built-in name, or a user task file (YAML + JSONL/CSV), with per-task overrides."""

    name: str | None = Field(None, pattern=TASK_NAME)   # built-in task (domainlm eval --list-tasks)
    file: str | None = None                             # user task YAML, relative to the eval config's folder
    limit: int | None = Field(None, ge=1)               # item cap for this task (overrides the global limit)
    capped: bool = True                                 # false: the run's limit / --limit leaves this task whole
    # (a stratified sample sized for a gate's power: a flat cap would cut its size and its strata)
    few_shot: int | None = Field(None, ge=0)            # shots for this task (overrides prompt.few_shot)
    max_new_tokens: int | None = Field(None, ge=1)      # generation length for generate/judge tasks
    params: dict = Field(default_factory=dict)          # builder parameters, e.g. {per_subject: 4}

    @model_validator(mode="after")
    def _one_source(self):
        if (self.name is None) == (self.file is None):
            raise ValueError("give exactly one of 'name' (built-in task) or 'file' (task YAML)")
        return self


def _as_refs(value):
    """Suites accept bare names as shorthand for {name: ...}."""
    if value is None:
        return []
    return [{"name": v} if isinstance(v, str) else v for v in value]


class PromptConfig(Strict):
    style: Literal["plain", "chat"] = "plain"  # plain text prompt, or the model's chat template (recorded in report)
    system: str | None = None                  # system message for chat style (None: the template's default)
    few_shot: int = Field(0, ge=0)             # default shots per item, drawn with a fixed seed


class HFConfig(Strict):
    dtype: Literal["auto", "bfloat16", "float32", "float16"] = "auto"  # auto: bf16 where native, else fp32
    device: str = "auto"            # auto → cuda when present, else cpu
    pack_tokens: int = Field(1024, ge=64)    # tokens per packed row (context shared by all options)
    batch_rows: int = Field(0, ge=0)         # packed rows per forward (0 → 1 on CPU, 16 on CUDA)
    max_length: int = Field(2048, ge=64)     # longest context+continuation; contexts are cut from the left
    gen_batch_size: int = Field(8, ge=1)     # prompts per generate() batch (sorted by length, left-padded)
    threads: int = Field(0, ge=0)            # CPU threads (0 = torch default); 1 avoids OpenMP stalls on a busy CPU
    merge_adapters: Literal["auto", "on", "off"] = "auto"  # on: each adapter merged into its own base copy (base
    # speed; unmerged LoRA costs ~2x on a CPU); off: LoRA layers on one shared base; auto: on up to 3B parameters


class VLLMConfig(Strict):
    dtype: Literal["auto", "bfloat16", "float32", "float16"] = "auto"  # auto: bf16 where native, else fp32
    max_model_len: int = Field(2048, ge=64)  # engine context; small keeps CPU KV cache and start-up small
    enforce_eager: bool = True               # no graph capture: engine starts in ~27 s instead of ~107 s on CPU
    kv_cache_gib: int = Field(2, ge=1)       # VLLM_CPU_KVCACHE_SPACE on CPU
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1)  # fraction of an accelerator's memory for the engine
    max_num_seqs: int = Field(64, ge=1)      # concurrent sequences per engine step


class OpenAIConfig(Strict):
    endpoint: str | None = None              # base URL, e.g. http://127.0.0.1:8000/v1 (the gateway or vLLM)
    api_key_env: str = "OPENAI_API_KEY"      # env var holding the key ("EMPTY" when unset)
    models: dict[str, str] = Field(default_factory=dict)  # subject label → served model name (base, medical@1, …)
    mc_prompt: Literal["tokens", "text"] = "tokens"  # send token ids (exact split) or text (split by offsets)
    batch: int = Field(16, ge=1)             # prompts per /v1/completions call
    concurrency: int = Field(4, ge=1)        # parallel HTTP calls
    timeout_s: float = Field(300, gt=0)      # per HTTP call


class JudgeConfig(Strict):
    endpoint: str | None = None              # OpenAI-compatible endpoint of the judge model (judge tasks only)
    model: str | None = None                 # judge model name served there
    api_key_env: str = "OPENAI_API_KEY"
    max_score: int = Field(10, ge=2)         # the rubric's scale: 1..max_score, reported as score/max_score
    max_tokens: int = Field(64, ge=1)        # judge reply length


class BootstrapConfig(Strict):
    samples: int = Field(2000, ge=100)       # resamples for CIs and paired tests
    seed: int = 0                            # resampling seed: reports are reproducible
    alpha: float = Field(0.05, gt=0, lt=1)   # 95% intervals; significance level of the paired test


class CacheConfig(Strict):
    enabled: bool = True                     # results cache: reruns and resumed runs skip finished requests
    path: str | None = None                  # SQLite file (default $DOMAINLM_HOME/eval_cache.sqlite)


class EvalConfig(Strict):
    vertical: str = Field(pattern=r"^[a-z][a-z0-9_]*$")  # medical | petrochem | marine | general
    base_model: str | None = None            # base model (default: the embedded smollm2-135m)
    domain_tasks: list[TaskRef] = Field(default_factory=list)   # the domain suite (domain_gain, significance)
    general_tasks: list[TaskRef] = Field(default_factory=list)  # the general-regression suite
    safety_tasks: list[TaskRef] = Field(default_factory=list)   # the safety suite: harmful compliance and
    # over-refusal rates with 95% intervals, per category (reported apart from the domain and general suites)
    limit: int | None = Field(None, ge=1)    # items per task (deterministic sample); --limit overrides
    cap_all: bool = False                    # true: the limit caps `capped: false` tasks too (smoke runs)
    seed: int = 1234                         # few-shot draws, item sampling, generation seed
    deterministic: bool = True               # seeds, deterministic kernels, one forward per question: reruns and
                                             # resumed runs give identical scores (false: pack/batch across items)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    backend: Literal["hf", "vllm", "openai"] = "hf"
    hf: HFConfig = Field(default_factory=HFConfig)
    vllm: VLLMConfig = Field(default_factory=VLLMConfig)
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    bootstrap: BootstrapConfig = Field(default_factory=BootstrapConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    output_dir: str | None = None            # report folder (default $DOMAINLM_HOME/evals/<vertical>/<run id>)

    _domain = field_validator("domain_tasks", mode="before")(classmethod(lambda cls, v: _as_refs(v)))
    _general = field_validator("general_tasks", mode="before")(classmethod(lambda cls, v: _as_refs(v)))
    _safety = field_validator("safety_tasks", mode="before")(classmethod(lambda cls, v: _as_refs(v)))

    @model_validator(mode="after")
    def _has_tasks(self):
        if not self.domain_tasks and not self.general_tasks and not self.safety_tasks:
            raise ValueError("no tasks: list at least one task under domain_tasks, general_tasks or safety_tasks")
        return self
