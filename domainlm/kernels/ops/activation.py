"""SwiGLU on a fused gate/up projection: silu(gate) · up, saving only the [T, 2I] input for backward.

Autograd through `act(gate) * up` keeps gate, up and silu(gate); this op keeps the one gate‖up tensor (the
output of the fused gate/up GEMM, alive anyway) and recomputes silu in backward:
d gate = g · up · σ(gate) · (1 + gate · (1 − σ(gate)))  (aten silu_backward),  d up = g · silu(gate).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from domainlm.kernels.ops.compiled import elementwise


@elementwise
def swiglu_forward(gate_up: torch.Tensor) -> torch.Tensor:
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


@elementwise
def swiglu_backward(grad: torch.Tensor, gate_up: torch.Tensor) -> torch.Tensor:
    gate, up = gate_up.chunk(2, dim=-1)
    d_gate = torch.ops.aten.silu_backward(grad * up, gate)   # σ(g)·(1 + g·(1 − σ(g))) · (grad·up), one kernel
    return torch.cat([d_gate, grad * F.silu(gate)], dim=-1)


@elementwise
def swiglu_forward_keep_sigmoid(gate_up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(silu(gate)·up, σ(gate)): with σ kept, backward needs no exponential (the costly part on CPU)."""
    gate, up = gate_up.float().chunk(2, dim=-1)
    sig = torch.sigmoid(gate)
    return (gate * sig * up).to(gate_up.dtype), sig.to(gate_up.dtype)


@elementwise
def swiglu_from_sigmoid(gate_up: torch.Tensor, sig: torch.Tensor) -> torch.Tensor:
    gate, up = gate_up.float().chunk(2, dim=-1)
    return (gate * sig.float() * up).to(gate_up.dtype)


@elementwise
def swiglu_backward_from_sigmoid(grad: torch.Tensor, gate_up: torch.Tensor, sig: torch.Tensor) -> torch.Tensor:
    gate, up = gate_up.float().chunk(2, dim=-1)
    s, g = sig.float(), grad.float()
    d_gate = g * up * s * (1.0 + gate * (1.0 - s))
    return torch.cat([d_gate, g * gate * s], dim=-1).to(gate_up.dtype)


class _SwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate_up):
        ctx.save_for_backward(gate_up)
        return swiglu_forward(gate_up)

    @staticmethod
    def backward(ctx, grad):
        (gate_up,) = ctx.saved_tensors
        return swiglu_backward(grad, gate_up)


def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    """gate_up [..., 2I] (gate first) → [..., I]."""
    return _SwiGLU.apply(gate_up)


def reference_swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up
