"""Build and load `cpu_lora_kernel.cpp` (per-token-slot multi-LoRA with AVX512-BF16), or say why not.

Built like every native kernel (domainlm/kernels/native.py: cached per source in ~/.cache/domainlm/ext; `make
setup` builds it ahead through `python -m domainlm.kernels.build`). Where it cannot be used, `load()` returns None
and the dense GEMM ops in vllm_cpu_lora.py serve.
"""

from __future__ import annotations

from pathlib import Path

from domainlm.kernels.native import NativeKernel

KERNEL = NativeKernel("cpu_lora_kernel", Path(__file__).with_name("cpu_lora_kernel.cpp"), "dense GEMM LoRA ops")
unavailable_reason = KERNEL.unavailable_reason
load = KERNEL.load
