"""RMSNorm with a frozen weight, computed like transformers' LlamaRMSNorm (fp32 statistics, output in x's dtype).

Autograd through the plain formulation keeps several fp32 [T, H] intermediates per call; this op keeps x and one
fp32 rstd per token and rebuilds the rest in backward: dx = rstd · (gw − x̂ · mean(gw · x̂)), gw = g·w, x̂ = x·rstd.
bf16 on AVX512-BF16 CPUs: cpu_elementwise_kernel.cpp does each of the three in one pass per row (same formula and
rounding); the eager (optionally compiled) functions below serve elsewhere and are its test reference.
"""

from __future__ import annotations

import torch

from domainlm.kernels.ops.cpu_elementwise import KERNEL
from domainlm.kernels.ops.compiled import elementwise


def rms_norm_forward(x: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    native = KERNEL.for_tensors(x, weight)
    if native:   # cpu_elementwise_kernel.cpp: one pass per row, same formula and rounding
        return native.rms_norm_forward(x.contiguous(), weight.contiguous(), eps)
    return eager_rms_norm_forward(x, weight, eps)


def rms_norm_apply(x: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor) -> torch.Tensor:
    native = KERNEL.for_tensors(x, weight)
    if native:
        return native.rms_norm_apply(x.contiguous(), weight.contiguous(), rstd.contiguous())
    return eager_rms_norm_apply(x, weight, rstd)


def rms_norm_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor) -> torch.Tensor:
    native = KERNEL.for_tensors(grad, x, weight)
    if native:
        return native.rms_norm_backward(grad.contiguous(), x.contiguous(), weight.contiguous(), rstd.contiguous())
    return eager_rms_norm_backward(grad, x, weight, rstd)


@elementwise
def eager_rms_norm_forward(x: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, rstd): y = w · (x · rstd) in x's dtype, rstd = 1/√(mean(x²) + eps) in fp32 per token."""
    xf = x.float()
    rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True).add_(eps))
    return weight * (xf * rstd).to(x.dtype), rstd


@elementwise
def eager_rms_norm_apply(x: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor) -> torch.Tensor:
    """The forward output again from x and its saved rstd (backward recomputes instead of holding it)."""
    return weight * (x.float() * rstd).to(x.dtype)


@elementwise
def eager_rms_norm_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                            rstd: torch.Tensor) -> torch.Tensor:
    xhat = x.float() * rstd
    gw = grad.float() * weight.float()
    return ((gw - xhat * (gw * xhat).mean(-1, keepdim=True)) * rstd).to(x.dtype)


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, eps):
        y, rstd = rms_norm_forward(x, weight, eps)
        ctx.save_for_backward(x, weight, rstd)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, weight, rstd = ctx.saved_tensors
        return rms_norm_backward(grad_y, x, weight, rstd), None, None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    if weight.requires_grad:
        raise ValueError("rms_norm here is for frozen norm weights (LoRA training)")
    return _RMSNorm.apply(x, weight, eps)


def reference_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' LlamaRMSNorm.forward."""
    xf = x.to(torch.float32)
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(x.dtype)
