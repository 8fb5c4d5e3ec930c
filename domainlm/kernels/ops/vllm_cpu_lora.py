"""Multi-LoRA ops for vLLM on the CPU: two GEMMs per LoRA'd projection instead of a per-token weight gather.

vLLM's CPU punica ops (vllm/lora/ops/torch_ops) compute every token's LoRA as `einsum("bi,boi->bo", x,
W[idx])`: they first copy one (rank × hidden) weight matrix *per token* (`W[idx]`), then run a batched
matrix-vector product in fp32, once per slice (q, k, v …). On a CPU that is memory-bound: a 256-token batch of a
rank-16 adapter on a 576-wide projection copies 256 × 16 × 576 × 4 B ≈ 9.4 MB per slice per step, and
matrix-vector products cannot use AMX.

Here all `L` adapter slots and all `S` slices of a projection are handled with two dense GEMMs over the
concatenated weights (oneDNN, weights prepacked once per adapter load) and one multiply by a per-step token mask:

    shrink  Y = x @ [A_s,l]ᵀ                  (T × S·L·r)                                       one GEMM
    select  Z = Y ⊙ M,  M[t, s, l] = scale if l = idx[t] else 0   (built once per step, shared by all layers)
    expand  out += Z @ blockdiag(B_s)          (the other slots' rows of Z are zero)            one GEMM

Four tensor ops per projection: at decode sizes each op's fixed cost, more than its FLOPs, is what LoRA adds.
The extra work is the other slots' columns: for L=3, r=16, all seven Llama projections, about 20 % of the base
GEMM FLOPs. Measured on a 2-core EPYC, 30 layers of SmolLM2-135M's projections with cold caches, 48 decode
tokens: LoRA adds 47 % to the base linears' time (75 % with a gather/scatter selection instead of the mask;
≈ 5× with vLLM's per-token gather). Slicing the expand per projection (no zero blocks) measured no faster.
Tokens without an adapter (idx < 0) get no LoRA, as in the GPU kernels. The lm_head LoRA is skipped when no
adapter trains lm_head (`add_lora_logits`).

Where the CPU has AVX512-BF16 and a compiler is present, `add_lora_linear` hands each projection to the compiled
kernel in cpu_lora_kernel.cpp (cpu_lora.py builds it) instead (only the token's own slot, one call);
DOMAINLM_VLLM_LORA_OPS=dense keeps the GEMM path above.

vLLM reaches these ops through its own extension points, nothing is patched: domainlm's platform plugin (entry point
`vllm.platform_plugins: domainlm_cpu`, vllm_plugin.py) names `DomainlmCpuPlatform` (vllm_cpu_platform.py), vLLM's
CPU platform with one change — its punica-wrapper getter returns `DomainlmPunicaWrapperCPU` (vllm_cpu_punica.py),
whose LoRA methods call the functions below. vLLM resolves the platform in each of its processes (API server, engine
core, workers; offline `vllm.LLM` too), so every vLLM engine on this machine runs the same ops.
DOMAINLM_VLLM_LORA_OPS=vllm keeps vLLM's own.

Derived operands (concatenated weights, prepacked GEMMs, the step's token mask) live in a `LoraCache` that belongs to
the wrapper (one per engine), keyed by the identity and in-place version counter of the vLLM tensor they come from.
"""

from __future__ import annotations

import os
import sys

import torch

ENV = "DOMAINLM_VLLM_LORA_OPS"


def _slots(weights: torch.Tensor) -> torch.Tensor:
    """(L, 1, a, b) or (L, a, b) → (L, a, b)."""
    return weights.squeeze(1) if weights.dim() == 4 else weights


def _version(t: torch.Tensor) -> int | None:
    """The in-place version counter; None for inference-mode tensors (they have none: never cached)."""
    try:
        return t._version
    except RuntimeError:
        return None


class LoraCache:
    """Operands derived from vLLM's LoRA tensors, owned by one punica wrapper.

    Every LoRA layer of one forward step sees the same token → slot indices, and vLLM's stacked weights change only
    when an adapter is (un)loaded (in place, which bumps the tensor's version counter). An entry is found by the
    owning tensor's identity, the kind of operand and its shape, and is valid while that tensor is the same object at
    the same version; it holds the tensor, so a new tensor that happens to reuse the memory can never hit it.
    """

    def __init__(self, limit: int = 8192):
        self.entries: dict[tuple, tuple] = {}
        self.limit = limit
        self.warned = False

    def get(self, owner, kind: str, version, shape: tuple, build):
        if version is None:
            if kind != "onehot" and not self.warned:  # a tensor without a version counter: compute afresh
                self.warned = True
                print("domainlm: LoRA weights without a version counter: weight caches off (slower)", file=sys.stderr)
            return build()
        slot = (id(owner), kind, shape)
        hit = self.entries.get(slot)
        if hit is not None and hit[0] is owner and hit[1] == version:
            return hit[2]
        if len(self.entries) >= self.limit:
            self.entries.clear()
        value = build()
        self.entries[slot] = (owner, version, value)
        return value


def _owner(t: torch.Tensor) -> torch.Tensor:
    return t._base if t._base is not None else t


def _onehot(cache: LoraCache, indices: torch.Tensor, tokens: int, slots: int, dtype: torch.dtype) -> torch.Tensor:
    """(T, L, 1): 1 where token t uses slot l; all zeros for tokens without an adapter (index < 0)."""
    return cache.get(_owner(indices), "onehot", _version(indices), (indices.storage_offset(), tokens, slots, dtype),
                     lambda: (indices[:tokens].unsqueeze(1) == torch.arange(slots)).to(dtype).unsqueeze(2))


def _a_cat(cache: LoraCache, a: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(L, r, in) → (L·r, in): the shrink GEMM's weights, rebuilt only when an adapter is (un)loaded."""
    return cache.get(_owner(a), "a", _version(a), (a.storage_offset(), tuple(a.shape), dtype),
                 lambda: a.reshape(a.shape[0] * a.shape[1], -1).to(dtype).contiguous())


def _b_cat(cache: LoraCache, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(L, out, r) → (L·r, out): the expand GEMM's right-hand side."""
    return cache.get(_owner(b), "b", _version(b), (b.storage_offset(), tuple(b.shape), dtype),
                 lambda: b.permute(0, 2, 1).reshape(b.shape[0] * b.shape[2], b.shape[1]).to(dtype).contiguous())


def _shrink(cache, inputs, lora_a, output, indices, scaling):
    a = _slots(lora_a)                                   # (L, r, hidden)
    slots, rank = a.shape[0], a.shape[1]
    tokens = output.shape[0]
    # in the output's dtype (fp32 buffer, like vLLM's own CPU op): same numbers, one GEMM instead of T gathers
    x = inputs[:tokens].to(output.dtype)
    y = (x @ _a_cat(cache, a, output.dtype).t()).view(tokens, slots, rank)
    picked = (y * _onehot(cache, indices, tokens, slots, y.dtype)).sum(dim=1)
    output[:, :rank] = scaling * picked


def _expand(cache, inputs, lora_b, output, indices, offset, size, add_inputs):
    b = _slots(lora_b)                                   # (L, out, r)
    slots, out_dim, rank = b.shape
    tokens = output.shape[0]
    onehot = _onehot(cache, indices, tokens, slots, b.dtype)
    z = inputs[:tokens].to(b.dtype).unsqueeze(1) * onehot          # (T, L, r), zeros outside the token's slot
    result = z.view(tokens, slots * rank) @ _b_cat(cache, b, b.dtype)      # (T, out)
    width = min(size, out_dim)
    if add_inputs:
        output[:, offset:offset + width] += result[:, :width]
    else:
        output[:, offset:offset + width] = result[:, :width]


# The six punica ops of vLLM's CPU wrapper (vllm/lora/ops/torch_ops), with the wrapper's cache first.
def bgmv_shrink(cache, inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling: float = 1.0):
    _shrink(cache, inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling)


def bgmv_expand(cache, inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs: bool = True):
    if inputs.shape[0] == 1 and output_tensor.shape[0] != 1:  # vLLM's broadcast case (one row for all)
        lora_indices_tensor = lora_indices_tensor[:1]
        output_tensor = output_tensor[:1]
    _expand(cache, inputs, lora_b_weights, output_tensor, lora_indices_tensor, 0, output_tensor.shape[1], add_inputs)


def bgmv_expand_slice(cache, inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset: int,
                      slice_size: int, add_inputs: bool = True):
    _expand(cache, inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset, slice_size, add_inputs)


def _per_token(lora_indices_tensor, seq_len_tensor):
    return torch.repeat_interleave(lora_indices_tensor, seq_len_tensor)


def sgmv_shrink(cache, inputs, lora_a_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                batches, max_seq_length, token_nums, scaling):
    bgmv_shrink(cache, inputs, lora_a_weights, output_tensor, _per_token(lora_indices_tensor, seq_len_tensor),
                scaling)


def sgmv_expand(cache, inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                batches, max_seq_length, token_nums, add_inputs=False):
    bgmv_expand(cache, inputs, lora_b_weights, output_tensor, _per_token(lora_indices_tensor, seq_len_tensor),
                add_inputs)


def sgmv_expand_slice(cache, inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor,
                      lora_indices_tensor, batches, max_seq_length, token_nums, slice_offset, slice_size,
                      add_inputs=False):
    bgmv_expand_slice(cache, inputs, lora_b_weights, output_tensor, _per_token(lora_indices_tensor, seq_len_tensor),
                      slice_offset, slice_size, add_inputs)


def _versions(tensors) -> tuple | None:
    """The layer's tensors and their version counters (None when one has none)."""
    versions = tuple((id(t), _version(t)) for t in tensors)
    return None if any(v[1] is None for v in versions) else versions


def _a_all(cache: LoraCache, lora_a_stacked, dtype) -> torch.Tensor:
    """All slices' A of a layer stacked: (S·L·r, in), so one GEMM shrinks every slice (q, k, v) at once."""
    return cache.get(_owner(lora_a_stacked[0]), "a_all", _versions(lora_a_stacked), (dtype,),
                     lambda: torch.cat([_a_cat(cache, _slots(a), dtype) for a in lora_a_stacked]).contiguous())


def _b_block(cache: LoraCache, lora_b_stacked, output_slices, dtype) -> torch.Tensor:
    """(S·L·r, Σ out): slice s's B in rows s·L·r… and columns of its output slice, zeros elsewhere."""
    def build() -> torch.Tensor:
        parts = [_slots(b) for b in lora_b_stacked]
        block = torch.zeros(sum(p.shape[0] * p.shape[2] for p in parts), sum(output_slices), dtype=dtype)
        row = col = 0
        for b, size in zip(parts, output_slices, strict=True):
            slots, out_dim, rank = b.shape
            width = min(size, out_dim)
            block[row:row + slots * rank, col:col + width] = _b_cat(cache, b, dtype)[:, :width]
            row, col = row + slots * rank, col + size
        return block
    return cache.get(_owner(lora_b_stacked[0]), "b_block", _versions(lora_b_stacked), (tuple(output_slices), dtype),
                     build)


class _Gemm:
    """x @ W for a fixed W (K × N): vLLM's oneDNN GEMM (weights prepacked once, AMX on bf16), else torch."""

    def __init__(self, weight: torch.Tensor):
        self.weight = weight.contiguous()
        self.handler = None
        try:
            from vllm import _custom_ops

            if _custom_ops._supports_onednn:
                self.handler = _custom_ops.create_onednn_mm(self.weight, 32)
                self._mm = _custom_ops.onednn_mm
        except (ImportError, AttributeError, RuntimeError):
            self.handler = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.handler is not None:
            return self._mm(self.handler, x.contiguous(), None)
        return x @ self.weight


def _token_mask(cache: LoraCache, indices: torch.Tensor, tokens: int, slices: int, slots: int, rank: int,
                scale: float, dtype: torch.dtype) -> torch.Tensor | None:
    """(T, S·L·r): `scale` in the columns of token t's own slot (in every slice), 0 elsewhere and for tokens without
    an adapter; None when no token has one. Built once per step and shape, shared by every layer: multiplying the
    shrink GEMM's output by it picks each token's slot, applies the scale and zeroes the rest in one op."""
    def build():
        idx = indices[:tokens]
        if not bool((idx >= 0).any()):
            return (None,)
        own = (idx.view(tokens, 1) == torch.arange(slots)).to(dtype) * scale             # (T, L)
        return (own.view(tokens, 1, slots, 1).expand(tokens, slices, slots, rank).reshape(tokens, -1).contiguous(),)
    return cache.get(_owner(indices), "mask", _version(indices),
                     (indices.storage_offset(), tokens, slices, slots, rank, scale, dtype), build)[0]


def add_lora_linear(wrapper, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices, *, buffer=None,
                    **kwargs):
    """PunicaWrapperCPU.add_lora_linear fused over slices and slots: per projection one shrink GEMM, one multiply
    by the step's token mask and one expand GEMM (oneDNN, weights prepacked per adapter load) instead of a
    per-token weight gather per slice. Four ops per call: at decode sizes each op's fixed cost, not the FLOPs,
    is what LoRA adds. The zero blocks of the expand add (S−1)·L·r rows of work for packed q/k/v (S=3) and
    gate/up (S=2), and the other slots' rows (L−1)·r.

        y[:, slice s] += scale · (x @ A_s[idx[t]]ᵀ) @ B_s[idx[t]]ᵀ      for every token t, idx[t] < 0 → no LoRA
    """
    if wrapper.is_prefill and wrapper.no_lora:
        return None
    cache = wrapper.lora_cache
    x2 = x.view(-1, x.shape[-1])
    y2 = y.view(-1, y.shape[-1])
    tokens = x2.shape[0]
    first = _slots(lora_a_stacked[0])
    slices, slots, rank = len(lora_a_stacked), first.shape[0], first.shape[1]
    indices = wrapper.token_lora_indices
    kernel = _kernel() if y2.dtype == x2.dtype == torch.bfloat16 and rank % 2 == 0 and rank <= 128 else None
    if kernel is not None and x2.stride(1) == 1 and y2.stride(1) == 1:
        return _apply_kernel(kernel, wrapper, y2, x2, indices, tokens, lora_a_stacked, lora_b_stacked, scale,
                             output_slices)
    mask = _token_mask(cache, indices, tokens, slices, slots, rank, scale, y2.dtype)
    if mask is None:
        return None  # base-only batch: nothing to add (vLLM's CPU ops compute it anyway)
    shrink, expand = cache.get(_owner(lora_a_stacked[0]), "gemms", _versions((*lora_a_stacked, *lora_b_stacked)),
                               (tuple(output_slices), y2.dtype),
                               lambda: (_Gemm(_a_all(cache, lora_a_stacked, y2.dtype).t()),
                                        _Gemm(_b_block(cache, lora_b_stacked, output_slices, y2.dtype))))
    z = shrink(x2 if x2.dtype == y2.dtype else x2.to(y2.dtype)).mul_(mask)  # every slot computed, own slot kept
    result = expand(z)
    if result.shape[1] == y2.shape[1]:
        y2 += result
    else:
        y2[:, :result.shape[1]] += result
    return None


_KERNEL: list = []      # [module or None], decided once per process (tests reset it)


def _kernel():
    """The compiled per-token-slot kernel (cpu_lora_kernel.cpp) unless DOMAINLM_VLLM_LORA_OPS=dense, or None."""
    if not _KERNEL:
        if os.environ.get(ENV, "auto") == "dense":
            _KERNEL.append(None)
        else:
            from domainlm.kernels.ops.cpu_lora import load

            _KERNEL.append(load())
    return _KERNEL[0]


def _apply_kernel(kernel, wrapper, y2, x2, indices, tokens, lora_a_stacked, lora_b_stacked, scale, output_slices):
    """The kernel path of add_lora_linear, lean on Python: it runs 7 × layers times per decode step, so the
    per-layer operands and the step's "any adapter?" answer are looked up by identity and version counters."""
    try:
        step = (indices._version, indices.storage_offset(), tokens)
        versions = tuple(t._version for t in lora_a_stacked) + tuple(t._version for t in lora_b_stacked)
    except RuntimeError:  # inference-mode tensors carry no version counter: nothing can be cached
        step = versions = None
    seen = wrapper.step_has_lora
    if step is None or seen is None or seen[0] != step:
        seen = wrapper.step_has_lora = (step, bool((indices[:tokens] >= 0).any()))
    if not seen[1]:
        return None  # base-only batch: nothing to add
    # keyed by the layer's tuple of A tensors (one per projection, alive as long as the engine)
    a, bp, cols, widths, total = wrapper.lora_cache.get(
        lora_a_stacked, "kernel", versions, (tuple(output_slices),),
        lambda: (*_kernel_weights(lora_a_stacked, lora_b_stacked, output_slices), sum(output_slices)))
    idx = indices[:tokens] if indices.shape[0] != tokens else indices
    kernel.lora_apply(y2 if y2.shape[1] == total else y2[:, :total], x2, a, bp,
                      idx if idx.dtype == torch.int64 else idx.long(), cols, widths, float(scale))
    return None


def _kernel_weights(lora_a_stacked, lora_b_stacked, output_slices) -> tuple:
    """The kernel's operands, rebuilt only when an adapter is (un)loaded: A (S, L, r, in) and Bᵀ with rows j, j+1
    interleaved per column, (L, S·r/2, N, 2), plus each slice's output columns and width."""
    a = torch.stack([_slots(t).to(torch.bfloat16) for t in lora_a_stacked]).contiguous()
    slices, slots, rank = a.shape[0], a.shape[1], a.shape[2]
    total = sum(output_slices)
    bt = torch.zeros(slots, slices * rank, total, dtype=torch.bfloat16)
    cols, widths, col = [], [], 0
    for s, (b, size) in enumerate(zip(lora_b_stacked, output_slices, strict=True)):
        b = _slots(b)                                                      # (L, out, r)
        width = min(size, b.shape[1])
        bt[:, s * rank:(s + 1) * rank, col:col + width] = b[:, :width].transpose(1, 2).to(torch.bfloat16)
        cols.append(col)
        widths.append(width)
        col += size
    paired = bt.view(slots, slices * rank // 2, 2, total).transpose(-1, -2).contiguous()
    return a, paired, cols, widths


def add_lora_logits(wrapper, y, x, lora_a_stacked, lora_b_stacked, scale, *, buffer=None, **kwargs):
    """PunicaWrapperCPU.add_lora_logits: adapters that do not train lm_head (the domainlm presets never do) leave
    its LoRA slots all zero, so there is nothing to add — skipping saves a (T × L·r) @ (L·r × vocab) GEMM per step
    and avoids vLLM's CPU path failing on prompt log-prob batches (one logits row per prompt token, but one
    sampler index per sequence)."""
    cache = wrapper.lora_cache
    if not cache.get(_owner(lora_b_stacked), "nonzero", _version(lora_b_stacked), (tuple(lora_b_stacked.shape),),
                     lambda: bool(lora_b_stacked.count_nonzero())):
        return None
    y2 = y.view(-1, y.shape[-1])
    x2 = x.view(-1, x.shape[-1])
    indices = wrapper.sampler_indices
    if indices.shape[0] != x2.shape[0]:
        raise RuntimeError("LoRA adapters with a trained lm_head cannot return prompt log-probs on the CPU engine "
                           f"({x2.shape[0]} logits rows, {indices.shape[0]} sequences)")
    shrunk = torch.zeros((x2.shape[0], lora_b_stacked.size(-1)), dtype=torch.float32)
    _shrink(cache, x2, lora_a_stacked, shrunk, indices, scale)
    _expand(cache, shrunk, lora_b_stacked, y2, indices, 0, y2.shape[1], True)
    return None
