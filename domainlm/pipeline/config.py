"""Schema of configs/pipeline/*.yaml: which verticals, how long to train, how much to evaluate, how to serve."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from domainlm.config import Strict


class TrainStage(Strict):
    config_dir: str = "configs/train"          # <config_dir>/<vertical>.yaml is each vertical's training config
    overrides: list[str] = []                  # key=value overrides applied to every vertical's training config
    per_vertical: dict[str, list[str]] = {}    # extra overrides for one vertical
    recipes_dir: str | None = "configs/recipes"  # <dir>/<vertical>.yaml from `domainlm sweep`: its overrides apply
    # after `overrides` (a tuned recipe wins over the run's defaults), before per_vertical; None → no recipes
    nproc: int = Field(1, ge=1)                # training processes (CPU gloo ranks, or one per GPU/NPU)
    accelerate_config: str | None = None       # FSDP / DeepSpeed launch config (configs/accelerate/*.yaml)


class EvalStage(Strict):
    config_dir: str = "configs/eval"           # <config_dir>/<vertical>.yaml is each vertical's eval config
    limit: int | None = Field(None, ge=1)      # items per task (None: all); sampled deterministically
    backend: str = "hf"                        # hf | vllm: how base and adapters are scored offline
    overrides: list[str] = []                  # key=value overrides applied to every eval config


class ServeStage(Strict):
    config: str = "configs/serve/local.yaml"   # gateway + engine config used to answer the demo questions
    max_tokens: int = Field(96, ge=1)          # answer length for the demo questions


class Question(Strict):
    en: str
    zh: str | None = None


class PipelineConfig(Strict):
    base_model: str = "smollm2-135m"           # embedded name, local HF dir, or hub id already downloaded
    verticals: list[str] = Field(default_factory=lambda: ["medical", "petrochem", "marine"])
    workdir: str = "outputs/quickstart"        # state.json, adapters, eval reports, filing records, summary
    registry: str | None = None                # registry root (None: $DOMAINLM_REGISTRY or $DOMAINLM_HOME/registry)
    train: TrainStage = TrainStage()
    eval: EvalStage = EvalStage()
    serve: ServeStage = ServeStage()
    questions: dict[str, Question] = {}        # vertical → the real question asked through the gateway at the end
    smoke: dict[str, Any] = {}                 # partial config deep-merged by `--smoke` (the reduced CI version)

    @model_validator(mode="after")
    def _smoke_is_valid(self):
        if self.smoke:  # a typo in the smoke section fails at load time, not only when CI runs --smoke
            PipelineConfig.model_validate({**merge(self.model_dump(exclude={"smoke"}), self.smoke)})
        return self


def merge(base: dict, extra: dict) -> dict:
    """Deep merge: mappings merge key by key, anything else in `extra` replaces."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
