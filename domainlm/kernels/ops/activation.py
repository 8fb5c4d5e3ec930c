"""SwiGLU on a fused gate/up projection: silu(gate) · up, saving only the [T, 2I] input for backward.

Autograd through `act(gate) * up` keeps gate, up and silu(gate); this op keeps the one gate‖up tensor (the
output of the fused gate/up GEMM, alive anyway) and recomputes silu in backward:
d gate = g · up · σ(gate) · (1 + gate · (1 − σ(gate)))  (aten silu_backward),  d up = g · silu(gate).
Everything stays in the compute dtype (aten's kernels do the arithmetic in fp32 internally): an fp32 formulation
measured ~5× slower here, spending its time converting and re-reading [T, I] tensors.

bf16 on CPUs with AVX512-BF16: cpu_elementwise_kernel.cpp does the forward in one pass over gate‖up and the
backward (SwiGLU output for the LoRA gradient + d gate‖up) in one more, with eager's rounding at each step; the
eager formulation below serves everywhere else and is what the kernel is tested against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from domainlm.kernels.ops.cpu_elementwise import KERNEL


def eager_swiglu_forward(gate_up: torch.Tensor) -> torch.Tensor:
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate).mul_(up)


def eager_swiglu_backward(grad: torch.Tensor, gate_up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(silu(gate)·up, d[gate‖up]) in the compute dtype, the gradient written straight into the two halves of one
    tensor (no cat, no fp32 temporaries): d up = grad·silu(gate); d gate = silu_backward(grad·up, gate)."""
    gate, up = gate_up.chunk(2, dim=-1)
    silu_gate = F.silu(gate)
    grads = torch.empty_like(gate_up)
    d_gate, d_up = grads.chunk(2, dim=-1)
    torch.mul(grad, silu_gate, out=d_up)
    torch.mul(grad, up, out=d_gate)
    torch.ops.aten.silu_backward.grad_input(d_gate, gate, grad_input=d_gate)
    return silu_gate.mul_(up), grads


def swiglu_forward(gate_up: torch.Tensor) -> torch.Tensor:
    native = KERNEL.for_tensors(gate_up)
    return native.swiglu_forward(gate_up.contiguous()) if native else eager_swiglu_forward(gate_up)


def swiglu_backward(grad: torch.Tensor, gate_up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the forward output again, d[gate‖up]) from the gradient of the output."""
    native = KERNEL.for_tensors(gate_up)
    if native:
        return native.swiglu_backward(grad.to(gate_up.dtype).contiguous(), gate_up.contiguous())
    return eager_swiglu_backward(grad, gate_up)


class _SwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate_up):
        ctx.save_for_backward(gate_up)
        return swiglu_forward(gate_up)

    @staticmethod
    def backward(ctx, grad):
        (gate_up,) = ctx.saved_tensors
        return swiglu_backward(grad, gate_up)[1]


def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    """gate_up [..., 2I] (gate first) → [..., I]."""
    return _SwiGLU.apply(gate_up)


def reference_swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up
