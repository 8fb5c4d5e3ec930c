"""The compiled SwiGLU and RMSNorm kernels (cpu_elementwise_kernel.cpp) for bf16 training on AVX512-BF16 CPUs.

activation.py and norm.py call `KERNEL.for_tensors(...)`: the module when the tensors are CPU bf16 and the kernel
is built, else None and their eager formulations serve (they are also what the kernel is tested against).
"""

from __future__ import annotations

from pathlib import Path

from domainlm.kernels.native import NativeKernel

KERNEL = NativeKernel("cpu_elementwise_kernel", Path(__file__).with_name("cpu_elementwise_kernel.cpp"),
                      "eager SwiGLU / RMSNorm")
