"""The compiled AVX512-BF16 training kernels against their references.

Attention (cpu_attention_kernel.cpp) against the fp32 reference formulation and the grouped-GEMM torch path, on
packed rows of awkward lengths (1 token, odd, not a multiple of the 4-query tile or 16-key tile, several backward
chunks), GQA and head dims 16–128. SwiGLU and RMSNorm (cpu_elementwise_kernel.cpp) against the eager ops they
replace, bit for bit where eager's rounding is reproduced. Skipped only where a kernel cannot exist (no
AVX512-BF16, no compiler, no ninja); where it can, a failed build fails the test.
"""

from __future__ import annotations

import pytest
import torch

from domainlm.kernels.ops import activation, cpu_attention, norm
from domainlm.kernels.ops.attention import _GroupedAttention, reference_attention, varlen_attention
from domainlm.kernels.ops.cpu_elementwise import KERNEL as ELEMENTWISE



# the portable ops they replace are checked in test_ops.py on every CPU; one torch thread as in the training tests
pytestmark = [pytest.mark.avx512_bf16, pytest.mark.usefixtures("one_torch_thread")]


def built(kernel):
    reason = kernel.unavailable_reason()
    if reason:   # AVX512-BF16 is here (the marker saw to that); a missing compiler or ninja still skips
        pytest.skip(f"{kernel.name} unavailable here: {reason}")
    module = kernel.load()
    assert module is not None, f"AVX512-BF16, a compiler and ninja are here, yet {kernel.name} did not build"
    return module


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30)).item()


def attention_grads(fn, q, k, v, grad):
    leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
    out = fn(*leaves)
    out.backward(grad.to(out.dtype))
    return [out.detach()] + [t.grad for t in leaves]


@pytest.mark.parametrize("lengths, heads, kv_heads, dim, chunk", [
    ([5, 1, 17, 40], 6, 2, 64, 512),        # GQA 3:1, a 1-token row, odd lengths
    ([300, 77, 129], 9, 3, 64, 512),        # SmolLM2's heads at MedQuAD lengths
    ([33, 70], 4, 4, 128, 7),               # no GQA, head_dim 128, many backward chunks (7 runs as 8: odd tails)
    ([3, 64, 2], 2, 1, 32, 5),
    ([19], 4, 2, 16, 4),
])
def test_attention_kernel_matches_reference(lengths, heads, kv_heads, dim, chunk, monkeypatch):
    built(cpu_attention.KERNEL)
    monkeypatch.setattr(cpu_attention, "QUERY_CHUNK", chunk)
    torch.manual_seed(len(lengths) * dim)
    cu = [0]
    for n in lengths:
        cu.append(cu[-1] + n)
    total = cu[-1]
    q = torch.randn(total, heads, dim).bfloat16()
    k, v = torch.randn(total, kv_heads, dim).bfloat16(), torch.randn(total, kv_heads, dim).bfloat16()
    grad = torch.randn(total, heads, dim).bfloat16()
    scale = dim ** -0.5
    def kernel(q, k, v):
        qkv = torch.cat([q.reshape(total, -1), k.reshape(total, -1), v.reshape(total, -1)], dim=1)
        return cpu_attention.KernelAttention.apply(qkv, cu, scale, heads, kv_heads, None, None)

    ours = attention_grads(kernel, q, k, v, grad)
    ref = attention_grads(lambda q, k, v: reference_attention(q.float(), k.float(), v.float(), cu), q, k, v, grad)
    eager = attention_grads(lambda q, k, v: _GroupedAttention.apply(q, k, v, cu, scale), q, k, v, grad)
    for name, a, b, c in zip(("out", "dq", "dk", "dv"), ours, ref, eager, strict=True):
        if b.abs().max() == 0:      # a lone 1-token row has no q/k gradient at all
            assert a.abs().max() == 0, name
            continue
        # bf16 in and out: the kernel must be at least as close to fp32 as the eager bf16 path (~4e-3 here)
        assert rel(a, b) < 8e-3, (name, rel(a, b))
        assert rel(a, b) <= rel(c, b) * 1.25, (name, rel(a, b), rel(c, b))


@pytest.mark.parametrize("dim", [64, 16])
def test_attention_kernel_applies_rope_and_its_adjoint(dim):
    """Packed q‖k‖v with RoPE tables (the fused training layer's call) against HF's rotate_half RoPE followed by
    the fp32 reference attention, values and the gradient of the packed input."""
    from domainlm.kernels.ops.attention import qkv_attention
    from domainlm.kernels.ops.rope import reference_rope, signed_sin

    built(cpu_attention.KERNEL)
    torch.manual_seed(dim)
    cu, heads, kv_heads = [0, 9, 40, 41, 100], 6, 2
    total = cu[-1]
    positions = torch.cat([torch.arange(b - a) for a, b in zip(cu[:-1], cu[1:], strict=True)]).float()
    angles = positions[:, None] * (10000.0 ** (-torch.arange(0, dim, 2).float() / dim))[None, :]
    angles = torch.cat([angles, angles], dim=-1)[:, None, :]          # [T, 1, D] as transformers builds it
    cos, sin = angles.cos().bfloat16(), angles.sin().bfloat16()
    qkv = torch.randn(total, (heads + 2 * kv_heads) * dim).bfloat16()
    grad = torch.randn(total, heads, dim).bfloat16()

    def reference(packed):
        q, k, v = packed.float().split([heads * dim, kv_heads * dim, kv_heads * dim], dim=-1)
        q = reference_rope(q.reshape(total, heads, dim), cos.float(), sin.float())
        k = reference_rope(k.reshape(total, kv_heads, dim), cos.float(), sin.float())
        return reference_attention(q, k, v.reshape(total, kv_heads, dim), cu, dim ** -0.5)

    results = []
    for fn in (lambda p: qkv_attention(p, heads, kv_heads, cu, dim ** -0.5, cos, signed_sin(sin)), reference):
        leaf = qkv.clone().requires_grad_(True)
        out = fn(leaf)
        out.backward(grad.to(out.dtype))
        results.append((out.detach(), leaf.grad))
    (out, dqkv), (ref_out, ref_dqkv) = results
    assert rel(out, ref_out) < 8e-3 and rel(dqkv, ref_dqkv) < 1e-2, (rel(out, ref_out), rel(dqkv, ref_dqkv))
    for part in torch.split(torch.arange(qkv.shape[1]), [heads * dim, kv_heads * dim, kv_heads * dim]):  # q, k, v
        assert rel(dqkv[:, part], ref_dqkv[:, part]) < 1e-2
    # q‖k‖v as the front columns of a wider GEMM output (the layout a folded LoRA shrink gives): the same bits
    wider = torch.cat([qkv, torch.randn(total, 48).bfloat16()], dim=1).requires_grad_(True)
    out_view = qkv_attention(wider[:, :qkv.shape[1]], heads, kv_heads, cu, dim ** -0.5, cos, signed_sin(sin))
    out_view.backward(grad)
    assert torch.equal(out_view, out) and torch.equal(wider.grad[:, :qkv.shape[1]], dqkv)


def test_attention_kernel_rows_are_independent_and_routed():
    built(cpu_attention.KERNEL)
    torch.manual_seed(0)
    cu = [0, 5, 12, 20]
    q = torch.randn(20, 6, 64).bfloat16()
    k, v = torch.randn(20, 2, 64).bfloat16(), torch.randn(20, 2, 64).bfloat16()
    assert cpu_attention.available(64, q, k, v)
    packed = varlen_attention(q, k, v, cu)
    alone = varlen_attention(q[5:12], k[5:12], v[5:12], [0, 7])
    assert torch.equal(packed[5:12], alone)     # the middle row sees nothing of its neighbours, bit for bit
    assert not cpu_attention.available(64, q.float(), k.float(), v.float())        # fp32 takes the torch path
    assert not cpu_attention.available(8, q, k, v)                 # head_dim 8: not a multiple of 16


def test_kernels_switch_off_with_environment(monkeypatch):
    built(cpu_attention.KERNEL)
    q = torch.randn(4, 2, 16).bfloat16()
    monkeypatch.setenv("DOMAINLM_CPU_KERNELS", "torch")
    assert not cpu_attention.available(16, q)
    assert ELEMENTWISE.for_tensors(q) is None


@pytest.mark.parametrize("tokens, inter", [(37, 1536), (5, 24)])     # 24: a masked 8-lane tail per row
def test_swiglu_kernel_is_eager_bit_for_bit(tokens, inter):
    module = built(ELEMENTWISE)
    torch.manual_seed(tokens)
    gate_up = (torch.randn(tokens, 2 * inter) * 3).bfloat16()
    grad = torch.randn(tokens, inter).bfloat16()
    assert torch.equal(module.swiglu_forward(gate_up), activation.eager_swiglu_forward(gate_up))
    h, d = module.swiglu_backward(grad, gate_up)
    h_ref, d_ref = activation.eager_swiglu_backward(grad, gate_up)
    assert torch.equal(h, h_ref)
    # eager's silu_backward uses libm-accurate exp; the kernel's polynomial may differ in the last bf16 bit
    assert rel(d, d_ref) < 1e-3 and (d != d_ref).float().mean() < 0.01


@pytest.mark.parametrize("tokens, hidden", [(41, 576), (3, 40)])
def test_rms_norm_kernel_matches_eager(tokens, hidden):
    module = built(ELEMENTWISE)
    torch.manual_seed(hidden)
    x = (torch.randn(tokens, hidden) * 3).bfloat16()
    weight = (torch.rand(hidden) + 0.5).bfloat16()
    grad = torch.randn(tokens, hidden).bfloat16()
    y, rstd = module.rms_norm_forward(x, weight, 1e-5)
    y_ref, rstd_ref = norm.eager_rms_norm_forward(x, weight, 1e-5)
    assert rstd.shape == rstd_ref.shape and rel(rstd, rstd_ref) < 1e-6
    # fp32 sums in another order: at most a rare last-bit difference after rounding to bf16
    assert rel(y, y_ref) < 1e-4 and (y != y_ref).float().mean() < 1e-3
    assert torch.equal(module.rms_norm_apply(x, weight, rstd_ref), norm.eager_rms_norm_apply(x, weight, rstd_ref))
    dx = module.rms_norm_backward(grad, x, weight, rstd_ref)
    assert rel(dx, norm.eager_rms_norm_backward(grad, x, weight, rstd_ref)) < 1e-4


@pytest.mark.parametrize("tokens, rank, width", [(2354, 16, 1536), (2353, 48, 576), (7, 8, 45), (1, 8, 32)])
def test_lora_weight_grad_kernel_matches_fp32(tokens, rank, width):
    """Aᵀ B over tokens (cpu_gemm_kernel.cpp): odd token counts, column tails, a strided B (a column slice of a
    wider gradient, as LoRA's per-projection B gradient reads it), against fp32 products of the same bf16 values."""
    from domainlm.kernels.ops.cpu_gemm import KERNEL as GEMM
    from domainlm.kernels.ops.cpu_gemm import weight_grad

    module = built(GEMM)
    torch.manual_seed(tokens + rank)
    a = torch.randn(tokens, rank).bfloat16()
    wide = torch.randn(tokens, width + 7).bfloat16()
    b = wide[:, 3:3 + width]
    want = a.float().t() @ b.float()
    got = module.tn_gemm(a, b)
    assert got.dtype == torch.float32 and got.shape == (rank, width)
    assert rel(got, want) < 1e-5            # fp32 sums: far inside bf16 rounding
    assert rel(weight_grad(a, b), want) < 1e-5
    odd = torch.randn(tokens, 4).bfloat16()   # rank 4: not a multiple of 8, the BLAS serves
    assert rel(weight_grad(odd, b), odd.float().t() @ b.float()) < 1e-2
