"""Causal varlen attention through the compiled AVX512-BF16 kernel (cpu_attention_kernel.cpp), bf16 on the CPU.

What it replaces: the grouped-GEMM torch formulation in attention.py, which issues a few small GEMMs and copies
per row, query block and kv head from Python and ran at about a fifth of the bf16 GEMM peak on MedQuAD-length
rows. The kernel computes each (row, kv head) on one thread with register-tiled dot products, a fused fp32 softmax
and only the causal triangle; the forward keeps the log-sum-exp per query and the backward recomputes the
probabilities from it (flash attention's recipe), so no n² tensor is kept between the passes. It reads the packed
q‖k‖v projection directly and applies RoPE itself (and its adjoint in backward), so the split, the rotation ops and
their copies disappear from the training step.

`available(head_dim, *tensors)` says whether a call can take this path: bf16 CPU tensors, head_dim a multiple of 16
(≤ 256), the kernel built (AVX512-BF16, a compiler, ninja) and DOMAINLM_CPU_KERNELS not set to `torch`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from domainlm.kernels.native import NativeKernel

KERNEL = NativeKernel("cpu_attention_kernel", Path(__file__).with_name("cpu_attention_kernel.cpp"),
                      "grouped-GEMM torch attention")
# Query positions per backward chunk: bounds the transposed-probability buffers (rep·chunk·n bf16 values twice per
# thread) on long rows; rows up to this length take one chunk.
QUERY_CHUNK = 512
_NO_TABLE = torch.empty(0, dtype=torch.bfloat16)


def available(head_dim: int, *tensors: torch.Tensor) -> bool:
    if head_dim % 16 or head_dim > 256:
        return False
    return KERNEL.for_tensors(*tensors) is not None


def _table(t: torch.Tensor | None, tokens: int, head_dim: int) -> torch.Tensor:
    """A RoPE table [T, 1, D] (or [T, D]) as contiguous bf16 [T, D]; none → an empty tensor (no rotation)."""
    if t is None:
        return _NO_TABLE
    return t.reshape(tokens, head_dim).to(torch.bfloat16).contiguous()


class KernelAttention(torch.autograd.Function):
    """qkv [T, (H + 2·Hkv)·D] → [T, H, D]; RoPE on q and k when cos / sin± ([T, 1, D] or [T, D]) are given."""

    @staticmethod
    def forward(ctx, qkv, cu, scale, heads, kv_heads, cos, sin_signed):
        if qkv.stride(-1) != 1:   # rows may be further apart than their width (a wider GEMM output): no copy then
            qkv = qkv.contiguous()
        tokens, head_dim = qkv.shape[0], qkv.shape[1] // (heads + 2 * kv_heads)
        bounds = torch.tensor(cu, dtype=torch.int64)
        cos_t, sin_t = _table(cos, tokens, head_dim), _table(sin_signed, tokens, head_dim)
        out, lse = KERNEL.load().attention_forward(qkv, bounds, scale, heads, kv_heads, cos_t, sin_t)
        ctx.save_for_backward(qkv, out, lse, bounds, cos_t, sin_t)
        ctx.scale, ctx.heads, ctx.kv_heads = scale, heads, kv_heads
        return out

    @staticmethod
    def backward(ctx, grad_out):
        qkv, out, lse, bounds, cos_t, sin_t = ctx.saved_tensors
        dqkv = KERNEL.load().attention_backward(grad_out.to(torch.bfloat16).contiguous(), qkv, out, lse, bounds,
                                                ctx.scale, ctx.heads, ctx.kv_heads, cos_t, sin_t, QUERY_CHUNK)
        return dqkv, None, None, None, None, None, None
