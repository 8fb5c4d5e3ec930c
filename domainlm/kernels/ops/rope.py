"""Rotary position embedding with the sign of rotate_half folded into a signed sin table.

HF's `q·cos + rotate_half(q)·sin` costs slice, neg, cat, two muls and an add forward and as many in autograd's
backward. With sin± = [−sin₁, sin₂] (the table's halves) and swap(x) = [x₂, x₁], the rotation is
y = x·cos + swap(x)·sin± and its adjoint dx = g·cos + swap(g·sin±): three passes each way, and nothing is saved
but the (shared) tables.
"""

from __future__ import annotations

import torch

from domainlm.kernels.ops.compiled import elementwise


def signed_sin(sin: torch.Tensor) -> torch.Tensor:
    half = sin.shape[-1] // 2
    return torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)


def _swap_halves(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((x[..., half:], x[..., :half]), dim=-1)


@elementwise
def rope_forward(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    return torch.addcmul(x * cos, _swap_halves(x), sin_signed)


@elementwise
def rope_backward(grad: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    # y_i = x_i cos_i + x_{i±half} s_i  →  dx_j = g_j cos_j + g_{j±half} s_{j±half}
    return grad * cos + _swap_halves(grad * sin_signed)


class _Rope(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cos, sin_signed):
        ctx.save_for_backward(cos, sin_signed)
        return rope_forward(x, cos, sin_signed)

    @staticmethod
    def backward(ctx, grad):
        cos, sin_signed = ctx.saved_tensors
        return rope_backward(grad, cos, sin_signed), None, None


def rope(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """x [T, heads, D]; cos / sin_signed [T, 1, D] (sin_signed = signed_sin(sin))."""
    return _Rope.apply(x, cos, sin_signed)


def reference_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """transformers' apply_rotary_pos_emb for one tensor."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin
