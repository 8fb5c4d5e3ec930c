"""Aᵀ B over the token dimension for the LoRA weight gradients (cpu_gemm_kernel.cpp), with the BLAS elsewhere.

`weight_grad(a, b)`: a [T, R] (thin: the rank-R activation or its gradient), b [T, N] → fp32 [R, N]. The kernel
serves bf16 on AVX512-BF16 CPUs when R is a multiple of 8; otherwise `(aᵀ b).float()` does.
"""

from __future__ import annotations

from pathlib import Path

import torch

from domainlm.kernels.native import NativeKernel

KERNEL = NativeKernel("cpu_gemm_kernel", Path(__file__).with_name("cpu_gemm_kernel.cpp"), "BLAS thin GEMMs")


def weight_grad(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    native = KERNEL.for_tensors(a, b) if a.shape[1] % 8 == 0 and a.stride(1) == 1 and b.stride(1) == 1 else None
    if native:
        return native.tn_gemm(a, b)
    return torch.mm(a.t(), b).float()
