"""Multi-LoRA ops for vLLM on the CPU: two GEMMs per LoRA'd projection instead of a per-token weight gather.

vLLM's CPU punica ops (vllm/lora/ops/torch_ops) compute every token's LoRA as `einsum("bi,boi->bo", x,
W[idx])`: they first copy one (rank × hidden) weight matrix *per token* (`W[idx]`), then run a batched
matrix-vector product. On a CPU that is memory-bound: a 256-token batch of a rank-16 adapter on a 576-wide
projection copies 256 × 16 × 576 × 2 B ≈ 4.7 MB per projection per step, and matrix-vector products cannot use AMX.

Here all `L` adapter slots are handled with dense GEMMs over the concatenated weights, then each token keeps
its own slot's slice:

    shrink  y[t]   = scale · x[t] @ A[idx[t]]ᵀ        →  Y = x @ [A_0; …; A_{L-1}]ᵀ  (T × L·r), y[t] = Y[t, idx[t]]
    expand  out[t] += y[t] @ B[idx[t]]ᵀ               →  Z[t, idx[t]] = y[t] (T × L·r, zeros elsewhere), out += Z @ B_catᵀ

The extra work is the other L−1 slots' columns: for L=4, r=16 on a 576×576 projection, 2·576·64·2 FLOPs per token
against 2·576·576 for the base GEMM (+22% on that projection, far less on the wider MLP ones), all on AMX/BLAS.
Tokens without an adapter (idx < 0) get zero LoRA output, as in the GPU kernels.

`install()` swaps these into vLLM's CPU punica wrapper module; `vllm_entry` calls it in the API server and (as
module-level code of the spawned main) in the engine-core process. DOMAINLM_VLLM_LORA_OPS=vllm keeps vLLM's own.
"""

from __future__ import annotations

import os
import sys

import torch

ENV = "DOMAINLM_VLLM_LORA_OPS"


def _slots(weights: torch.Tensor) -> torch.Tensor:
    """(L, 1, a, b) or (L, a, b) → (L, a, b)."""
    return weights.squeeze(1) if weights.dim() == 4 else weights


def _shrink(inputs, lora_a, output, indices, scaling):
    a = _slots(lora_a)                                   # (L, r, hidden)
    slots, rank = a.shape[0], a.shape[1]
    tokens = output.shape[0]
    x = inputs[:tokens].to(output.dtype)
    y = (x @ a.reshape(slots * rank, -1).to(output.dtype).t()).view(tokens, slots, rank)
    idx = indices[:tokens]
    picked = y[torch.arange(tokens), idx.clamp(min=0)]   # (T, r)
    picked = picked * (idx >= 0).unsqueeze(1).to(picked.dtype)
    output[:, :rank] = scaling * picked


def _expand(inputs, lora_b, output, indices, offset, size, add_inputs):
    b = _slots(lora_b)                                   # (L, out, r)
    slots, out_dim, rank = b.shape
    tokens = output.shape[0]
    idx = indices[:tokens]
    z = torch.zeros(tokens, slots, rank, dtype=output.dtype)
    keep = idx >= 0
    z[keep.nonzero().squeeze(1), idx[keep]] = inputs[:tokens][keep].to(output.dtype)
    result = z.view(tokens, slots * rank) @ b.permute(0, 2, 1).reshape(slots * rank, out_dim).to(output.dtype)
    width = min(size, out_dim)
    if add_inputs:
        output[:, offset:offset + width] += result[:, :width]
    else:
        output[:, offset:offset + width] = result[:, :width]


def bgmv_shrink(inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling: float = 1.0):
    _shrink(inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling)


def bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs: bool = True):
    if inputs.shape[0] == 1 and output_tensor.shape[0] != 1:  # vLLM's broadcast case (one row for all)
        lora_indices_tensor = lora_indices_tensor[:1]
        output_tensor = output_tensor[:1]
    _expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, 0, output_tensor.shape[1], add_inputs)


def bgmv_expand_slice(inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset: int,
                      slice_size: int, add_inputs: bool = True):
    _expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset, slice_size, add_inputs)


def _per_token(lora_indices_tensor, seq_len_tensor):
    return torch.repeat_interleave(lora_indices_tensor, seq_len_tensor)


def sgmv_shrink(inputs, lora_a_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                batches, max_seq_length, token_nums, scaling):
    bgmv_shrink(inputs, lora_a_weights, output_tensor, _per_token(lora_indices_tensor, seq_len_tensor), scaling)


def sgmv_expand(inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                batches, max_seq_length, token_nums, add_inputs=False):
    bgmv_expand(inputs, lora_b_weights, output_tensor, _per_token(lora_indices_tensor, seq_len_tensor), add_inputs)


def sgmv_expand_slice(inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                      batches, max_seq_length, token_nums, slice_offset, slice_size, add_inputs=False):
    bgmv_expand_slice(inputs, lora_b_weights, output_tensor, _per_token(lora_indices_tensor, seq_len_tensor),
                      slice_offset, slice_size, add_inputs)


OPS = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice", "sgmv_shrink", "sgmv_expand", "sgmv_expand_slice")


def install() -> bool:
    """Replace vLLM's CPU punica ops with these (idempotent). False when disabled or vLLM has no CPU wrapper."""
    if os.environ.get(ENV, "dense") == "vllm":
        return False
    try:
        from vllm.lora.punica_wrapper import punica_cpu
    except ImportError:
        return False
    for name in OPS:
        setattr(punica_cpu, name, globals()[name])
    print(f"domainlm: dense CPU multi-LoRA ops installed (pid {os.getpid()})", file=sys.stderr, flush=True)
    return True
