"""Fused LoRA linear: y = p(x) Wᵀ + b + Σᵢ sᵢ · (drop(p(x)) Aᵢᵀ) Bᵢᵀ for projections that share one input.

Projections that read the same input (q/k/v, gate/up) are one op: their frozen base weights are one concatenated
matrix and their A matrices one [R = Σ rᵢ, in] matrix, so the base GEMM, the LoRA shrink and the input gradient
are one GEMM each for the group. Each Bᵢ (scale sᵢ folded in) expands into its own output columns: a
block-diagonal [out, R] B (one GEMM instead of one per projection) does 2–3× the expand FLOPs in three products
and measured 1.4–1.7× slower for q/k/v and gate/up on 2354 tokens.

p is an optional elementwise prologue computed inside the op — `rmsnorm` (frozen weight, as transformers'
LlamaRMSNorm) or `swiglu` (silu(gate)·up of a fused gate‖up input) — and recomputed in backward from the op's
input, which the surrounding graph keeps anyway (the residual stream, the gate‖up GEMM output). So the normed
input and the SwiGLU product, [T, H] and [T, I] per layer, are never held for backward.

Memory held: the op's input (no copy), fp32 rstd for rmsnorm, the rank-R activation xa, and
the dropout mask when dropout is on; peft keeps an fp32 copy of x per projection. LoRA parameters stay fp32
(optimizer master weights) and are cast to the compute dtype once per optimizer step; their gradients come back
in fp32. The frozen base weight gets no gradient. Dropout draws one mask per group (peft: one per projection,
same distribution each).
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F

from domainlm.kernels.ops.activation import swiglu_backward, swiglu_forward
from domainlm.kernels.ops.cpu_gemm import weight_grad
from domainlm.kernels.ops.norm import rms_norm_apply, rms_norm_backward, rms_norm_forward

PROLOGUES = (None, "rmsnorm", "swiglu")


def _blocks(ranks: list[int], outs: list[int]) -> list[tuple[int, int, int, int, int]]:
    """(projection index, output rows [r0, r1), rank columns [c0, c1)) of each adapted projection."""
    blocks, row, col = [], 0, 0
    for index, (rank, out) in enumerate(zip(ranks, outs, strict=True)):
        if rank:
            blocks.append((index, row, row + out, col, col + rank))
        row, col = row + out, col + rank
    return blocks


_CASTS: dict[tuple, tuple] = {}
_EPOCH = [0]


def parameters_changed() -> None:
    """Invalidate every cached compute-dtype copy of the LoRA weights. For updates that bypass autograd's version
    counters: torch's fused AdamW rewrites the parameters in one kernel and leaves their versions where they were."""
    _EPOCH[0] += 1


def _compute_copies(a_list, b_list, scalings, dtype, a_into: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(A concatenated, each sᵢ·Bᵢ) in the compute dtype, rebuilt only when a parameter changed.

    Keyed by each tensor's identity and version counter (an in-place update bumps the version) and by the epoch that
    `parameters_changed()` advances (the trainer calls it after every optimizer step), so the copies are made once per
    optimizer step and shared by forward, backward and every micro-batch until then. Weak references guard against a
    freed tensor's id being reused by a new one. With `a_into` (the A rows of a wide weight) the A copy is written
    there and that view is returned.
    """
    tensors = (*a_list, *b_list)
    target = None if a_into is None else (a_into.data_ptr(), tuple(a_into.shape))
    key = (dtype, _EPOCH[0], target, tuple(scalings), *((id(t), t._version) for t in tensors))
    hit = _CASTS.get(key)
    if hit is None or any(ref() is not t for ref, t in zip(hit[0], tensors, strict=True)):
        if len(_CASTS) > 1024:
            _CASTS.clear()
        a_cat = torch.cat([a.detach().to(dtype) for a in a_list]) if len(a_list) > 1 else a_list[0].detach().to(dtype)
        if a_into is not None:
            a_cat = a_into.copy_(a_cat)
        hit = _CASTS[key] = (tuple(weakref.ref(t) for t in tensors), a_cat,
                             [b.detach().to(dtype) * s for b, s in zip(b_list, scalings, strict=True)])
    return hit[1], hit[2]


def _apply_prologue(kind, src, norm_weight, eps):
    if kind == "rmsnorm":
        return rms_norm_forward(src, norm_weight, eps)
    if kind == "swiglu":
        return swiglu_forward(src), None
    return src, None


class _FusedLoRALinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, src, weight, bias, dropout, scalings, prologue, norm_weight, eps, wide, *ab):
        a_list, b_list = list(ab[0::2]), list(ab[1::2])
        x, rstd = _apply_prologue(prologue, src, norm_weight, eps)
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        out = weight.shape[0]
        folded = wide is not None and dropout == 0 and x2.dtype == wide.dtype
        a_cat, b_scaled = _compute_copies(a_list, b_list, scalings, x2.dtype, wide[out:] if folded else None)
        mask = None
        if folded:   # one GEMM gives y (the first columns, a strided view) and x·Aᵀ (the last R columns)
            both = F.linear(x2, wide)
            y, xa = both[:, :out], both[:, out:].contiguous()
        else:
            y = F.linear(x2, weight, bias)
            if dropout > 0:
                mask = torch.rand(x2.shape, device=x2.device, dtype=torch.float32) < (1.0 - dropout)
                xd = x2 * mask.to(x2.dtype) * (1.0 / (1.0 - dropout))
            else:
                xd = x2
            xa = xd @ a_cat.t()                               # [T, R]
        blocks = _blocks([a.shape[0] for a in a_list], [b.shape[0] for b in b_list])
        for index, r0, r1, c0, c1 in blocks:                  # each projection's expand into its own columns of y
            y[:, r0:r1].addmm_(xa[:, c0:c1], b_scaled[index].t())
        ctx.save_for_backward(src, norm_weight, rstd, xa, weight, a_cat, mask, *b_scaled)
        ctx.dropout, ctx.scalings, ctx.prologue, ctx.blocks = dropout, scalings, prologue, blocks
        ctx.param_dtypes = [a.dtype for a in a_list], [b.dtype for b in b_list]
        return y.view(*shape[:-1], y.shape[-1])

    @staticmethod
    def backward(ctx, grad_y):
        src, norm_weight, rstd, xa, weight, a_cat, mask, *b_scaled = ctx.saved_tensors
        g = grad_y.reshape(-1, grad_y.shape[-1]).to(xa.dtype)
        gxa = torch.empty_like(xa)                            # [T, R]: every column belongs to one block
        for index, r0, r1, c0, c1 in ctx.blocks:              # scales included (sᵢ·Bᵢ)
            torch.mm(g[:, r0:r1], b_scaled[index], out=gxa[:, c0:c1])
        x = grad_src = None
        if ctx.needs_input_grad[0]:
            grad_x = gxa @ a_cat                              # [T, in] through the LoRA branch
            if mask is not None:
                grad_x.mul_(mask.to(grad_x.dtype) * (1.0 / (1.0 - ctx.dropout)))
            grad_x = grad_x.addmm_(g, weight).view(*src.shape[:-1], weight.shape[1])   # in place: no copy of C
            if ctx.prologue == "rmsnorm":
                grad_src = rms_norm_backward(grad_x, src, norm_weight, rstd)
            elif ctx.prologue == "swiglu":   # one pass gives the SwiGLU output again and its input's gradient
                x, grad_src = swiglu_backward(grad_x, src)
            else:
                grad_src = grad_x
        if x is None:   # the op's input again, for the LoRA A gradient
            if ctx.prologue == "rmsnorm":
                x = rms_norm_apply(src, norm_weight, rstd)
            elif ctx.prologue == "swiglu":
                x = swiglu_forward(src)
            else:
                x = src
        x2 = x.reshape(-1, x.shape[-1])
        xd = x2 * mask.to(x2.dtype) * (1.0 / (1.0 - ctx.dropout)) if mask is not None else x2
        grad_a_cat = weight_grad(gxa, xd)                     # [R, in] fp32: Σ over tokens
        a_dtypes, b_dtypes = ctx.param_dtypes
        grads: list[torch.Tensor | None] = [None] * (2 * len(a_dtypes))   # None = zero (rank-0 blocks)
        for index, r0, r1, c0, c1 in ctx.blocks:
            grads[2 * index] = grad_a_cat[c0:c1].to(a_dtypes[index])
            grad_b = torch.empty((r1 - r0, c1 - c0), dtype=b_dtypes[index], device=xa.device)   # [outᵢ, rᵢ]
            torch.mul(weight_grad(xa[:, c0:c1], g[:, r0:r1]).t(), ctx.scalings[index], out=grad_b)   # contiguous,
            grads[2 * index + 1] = grad_b                     # as AccumulateGrad wants it (no layout copy there)
        return (grad_src, None, None, None, None, None, None, None, None, *grads)


def fused_lora_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, lora_a: list[torch.Tensor],
                      lora_b: list[torch.Tensor], scalings: list[float], dropout: float = 0.0, *,
                      prologue: str | None = None, norm_weight: torch.Tensor | None = None,
                      eps: float = 1e-6, wide: torch.Tensor | None = None) -> torch.Tensor:
    """x [..., in] (or [..., 2·in] for swiglu); weight [Σ outᵢ, in] frozen; lora_a[i] [rᵢ, in]; lora_b[i] [outᵢ, rᵢ].

    Returns [..., Σ outᵢ] (a strided view when `wide` folds the shrink in). prologue: None, "rmsnorm" (needs
    norm_weight, eps) or "swiglu". wide: optional [Σ outᵢ + Σ rᵢ, in] storage whose first rows are `weight`; the op
    writes the compute-dtype A rows after them and, when there is no bias and no dropout, gets x·Aᵀ from the base
    GEMM as R extra output columns instead of a second, thin GEMM that reads x again.
    """
    if weight.requires_grad or (norm_weight is not None and norm_weight.requires_grad):
        raise ValueError("fused_lora_linear trains only the LoRA matrices; base and norm weights must be frozen")
    if sum(b.shape[0] for b in lora_b) != weight.shape[0]:
        raise ValueError("the LoRA B matrices must cover every output row of the fused base weight")
    if prologue not in PROLOGUES or (prologue == "rmsnorm" and norm_weight is None):
        raise ValueError(f"prologue must be one of {PROLOGUES} (rmsnorm needs norm_weight)")
    if wide is not None and (bias is not None or wide.shape != (weight.shape[0] + sum(a.shape[0] for a in lora_a),
                                                                 weight.shape[1])
                             or wide.data_ptr() != weight.data_ptr() or wide.requires_grad):
        raise ValueError("wide must be frozen [Σ outᵢ + Σ rᵢ, in] storage starting with weight, and bias None")
    return _FusedLoRALinear.apply(x, weight, bias, float(dropout), list(scalings), prologue, norm_weight, float(eps),
                                  wide, *[t for pair in zip(lora_a, lora_b, strict=True) for t in pair])


def reference_lora_linear(x, weights: list[torch.Tensor], biases, lora_a, lora_b, scalings) -> torch.Tensor:
    """Unfused, per projection, in the LoRA parameters' dtype (what peft computes), concatenated."""
    outs = []
    for i, w in enumerate(weights):
        base = F.linear(x, w, None if biases is None else biases[i])
        lora = F.linear(F.linear(x.to(lora_a[i].dtype), lora_a[i]), lora_b[i]) * scalings[i]
        outs.append(base + lora.to(base.dtype))
    return torch.cat(outs, dim=-1)
