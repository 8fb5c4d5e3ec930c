"""Which schema validates which folder of configs/ (imported lazily so `domainlm --help` stays fast)."""

from __future__ import annotations

import importlib

# configs/<folder>/*.yaml → the pydantic model that validates it
SCHEMAS = {
    "train": "domainlm.training.config:TrainConfig",
    "eval": "domainlm.evals.config:EvalConfig",
    "serve": "domainlm.serving.config:ServeConfig",
    "pipeline": "domainlm.pipeline.config:PipelineConfig",
    "sweep": "domainlm.pipeline.sweep:SweepConfig",
    "recipes": "domainlm.pipeline.sweep:Recipe",
    "verticals": "domainlm.verticals.spec:VerticalSpec",
    "accelerate": "domainlm.training.accelerate_config:AccelerateConfig",
}


def schema_for(kind: str):
    module, _, name = SCHEMAS[kind].partition(":")
    return getattr(importlib.import_module(module), name)
