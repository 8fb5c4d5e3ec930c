"""SwiGLU on a fused gate/up projection: silu(gate) · up, saving only the [T, 2I] input for backward.

Autograd through `act(gate) * up` keeps gate, up and silu(gate); this op keeps the one gate‖up tensor (the
output of the fused gate/up GEMM, alive anyway) and recomputes sigmoid in backward:
d gate = g · up · σ(gate) · (1 + gate · (1 − σ(gate))),  d up = g · silu(gate).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _SwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate_up):
        gate, up = gate_up.chunk(2, dim=-1)
        ctx.save_for_backward(gate_up)
        return F.silu(gate) * up

    @staticmethod
    def backward(ctx, grad):
        (gate_up,) = ctx.saved_tensors
        gate, up = gate_up.float().chunk(2, dim=-1)
        g = grad.float()
        sig = torch.sigmoid(gate)
        d_up = g * gate * sig
        d_gate = g * up * sig * (1.0 + gate * (1.0 - sig))
        return torch.cat([d_gate, d_up], dim=-1).to(gate_up.dtype)


def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    """gate_up [..., 2I] (gate first) → [..., I]."""
    return _SwiGLU.apply(gate_up)


def reference_swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up
