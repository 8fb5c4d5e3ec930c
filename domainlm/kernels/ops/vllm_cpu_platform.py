"""vLLM's CPU platform with domainlm's multi-LoRA ops, reached through vLLM's extension points (no patching).

`DomainlmCpuPlatform` is vLLM's `CpuPlatform` but for the punica wrapper it names, as vllm-ascend's NPUPlatform names
its own: `DomainlmPunicaWrapperCPU` (vllm_cpu_punica.py) is vLLM's CPU wrapper whose LoRA methods run the ops of
vllm_cpu_lora.py, with their cached operands on the wrapper itself. domainlm's platform plugin (vllm_plugin.py) makes
vLLM pick this platform in every process it starts. Imports vLLM: only vLLM loads this module, by qualified name.
"""

from __future__ import annotations

from vllm.platforms.cpu import CpuPlatform

WRAPPER = "domainlm.kernels.ops.vllm_cpu_punica.DomainlmPunicaWrapperCPU"


class DomainlmCpuPlatform(CpuPlatform):
    """vLLM's CPU platform; LoRA runs through DomainlmPunicaWrapperCPU."""

    @classmethod
    def get_punica_wrapper(cls) -> str:
        return WRAPPER
