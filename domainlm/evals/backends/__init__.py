"""Model backends (same shape each): hf (transformers + peft), vllm (offline engine), openai (any endpoint).

Each is imported only when chosen, so the CPU install never imports vLLM for an hf run.
"""

from __future__ import annotations

BACKENDS = {
    "hf": "domainlm.evals.backends.hf:HFBackend",
    "vllm": "domainlm.evals.backends.vllm:VLLMBackend",
    "openai": "domainlm.evals.backends.openai:OpenAIBackend",
}


def make_backend(cfg, base, subjects, tokenizer):
    """Build the configured backend for these subjects (base + adapters) from an EvalConfig."""
    import importlib

    module, _, name = BACKENDS[cfg.backend].partition(":")
    cls = getattr(importlib.import_module(module), name)
    if cfg.backend == "hf":
        return cls(base, subjects, cfg.hf, tokenizer, deterministic=cfg.deterministic)
    return cls(base, subjects, getattr(cfg, cfg.backend), tokenizer, seed=cfg.seed)


def max_length(cfg) -> int:
    """Longest context + continuation the backend scores (inputs are cut from the left beyond it)."""
    if cfg.backend == "vllm":
        return cfg.vllm.max_model_len - 1
    return cfg.hf.max_length
