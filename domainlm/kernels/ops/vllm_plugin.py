"""domainlm's vLLM general plugin (entry point `vllm.general_plugins: domainlm_cpu_lora`, declared in pyproject).

vLLM runs every installed general plugin once in each of its processes — the OpenAI API server, the engine core,
the workers, an offline `vllm.LLM` — before it builds a model. On the CPU platform this one installs domainlm's
multi-LoRA ops (vllm_cpu_lora.py); elsewhere, or with DOMAINLM_VLLM_LORA_OPS=vllm, it does nothing. So the gateway's
replicas, the vLLM eval backend and any user's own vLLM script on this machine compute LoRA the same way, and no
domainlm module has to be the process's main to get them in.
"""

from __future__ import annotations

import os

def register() -> None:
    if os.environ.get("DOMAINLM_VLLM_LORA_OPS", "auto") == "vllm":
        return
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    from domainlm.kernels.ops.vllm_cpu_lora import install

    install()
