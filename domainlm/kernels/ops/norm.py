"""RMSNorm with a frozen weight, computed like transformers' LlamaRMSNorm (fp32 statistics, output in x's dtype).

Autograd through the plain formulation keeps several fp32 [T, H] intermediates per call; this op keeps x and one
fp32 rstd per token and rebuilds the rest in backward: dx = rstd · (gw − x̂ · mean(gw · x̂)), gw = g·w, x̂ = x·rstd.
"""

from __future__ import annotations

import torch


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, eps):
        xf = x.float()
        rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True).add_(eps))
        y = weight * (xf * rstd).to(x.dtype)
        ctx.save_for_backward(x, weight, rstd)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, weight, rstd = ctx.saved_tensors
        xhat = x.float() * rstd
        gw = grad_y.float() * weight.float()
        dx = (gw - xhat * (gw * xhat).mean(-1, keepdim=True)) * rstd
        return dx.to(x.dtype), None, None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    if weight.requires_grad:
        raise ValueError("rms_norm here is for frozen norm weights (LoRA training)")
    return _RMSNorm.apply(x, weight, eps)


def reference_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' LlamaRMSNorm.forward."""
    xf = x.to(torch.float32)
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(x.dtype)
