"""Build the engine for one base group: the accelerator backend decides vLLM-LoRA, merged vLLM, or hf."""

from __future__ import annotations

from pathlib import Path

from domainlm import log, paths

logger = log.get("serving")


def engine_kind(group) -> tuple[str, str]:
    """(vllm-lora | merged | hf, why). `engine: auto` asks the backend (domainlm.kernels.backends)."""
    if group.engine == "vllm":
        return "vllm-lora", "engine: vllm in the serve config"
    if group.engine == "vllm-merged":
        return "merged", "engine: vllm-merged in the serve config"
    if group.engine == "hf":
        return "hf", "engine: hf in the serve config"
    from domainlm.kernels.backends import select_backend
    from domainlm.serving.engines.lora_mode import lora_serving_mode

    mode = lora_serving_mode(select_backend())
    return mode.mode, mode.reason


def build_engine(group, model_path: str | None, config, log_dir: Path | None = None):
    kind, why = engine_kind(group)
    logger.info("engine chosen", base=group.public_base_name(), kind=kind, why=why)
    retry = config.gateway.retry_after_s
    if kind == "hf":
        from domainlm.serving.engines.hf import HfEngine

        if model_path is None:
            raise ValueError(f"the hf engine needs the base model '{group.model}' locally")
        return HfEngine(base_name=group.public_base_name(), model_path=model_path, settings=group.hf,
                        retry_after_s=retry)
    from domainlm.kernels.backends import select_backend
    from domainlm.serving.engines.lora_mode import vllm_engine_args
    from domainlm.serving.engines.vllm_server import VllmEngine

    backend = select_backend()
    return VllmEngine(base_name=group.public_base_name(), model_path=model_path, settings=group.vllm,
                      backend_env=backend.serving_env(), backend_args=vllm_engine_args(backend),
                      merged=kind == "merged", log_dir=log_dir or paths.home() / "logs",
                      retry_after_s=retry, request_timeout_s=config.gateway.request_timeout_s)
