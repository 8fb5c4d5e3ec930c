"""Fused ops (domainlm/kernels/ops) against their plain reference formulations: values and gradients."""

from __future__ import annotations

import pytest
import torch

from domainlm.kernels.ops.activation import reference_swiglu, swiglu
from domainlm.kernels.ops.attention import reference_attention, varlen_attention
from domainlm.kernels.ops.cross_entropy import IGNORE, linear_cross_entropy, reference_cross_entropy
from domainlm.kernels.ops import lora as lora_ops
from domainlm.kernels.ops.lora import fused_lora_linear, reference_lora_linear
from domainlm.kernels.ops.norm import reference_rms_norm, rms_norm

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # as the training tests: see tests/conftest.py


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def grads(fn, *tensors):
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = fn(*leaves)
    out.float().backward(torch.ones_like(out) if out.dim() else None)
    return out.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_chunked_cross_entropy_matches_full_logits(dtype, tol):
    torch.manual_seed(0)
    hidden = torch.randn(37, 64, dtype=dtype)
    weight = torch.randn(1000, 64, dtype=dtype) * 0.2
    targets = torch.randint(0, 1000, (37,))
    targets[[3, 17, 36]] = IGNORE
    ours, (gh, gw) = grads(lambda h, w: linear_cross_entropy(h, w, targets, chunk=8), hidden, weight)
    ref, (rh, rw) = grads(lambda h, w: reference_cross_entropy(h, w, targets), hidden, weight)
    assert abs(ours.item() - ref.item()) / ref.item() < tol
    assert rel(gh, rh) < tol * 2 and rel(gw, rw) < tol * 2
    assert gh[3].abs().max() == 0     # an ignored token gets no gradient
    with torch.no_grad():
        assert abs(linear_cross_entropy(hidden, weight, targets, chunk=5).item() - ref.item()) / ref.item() < tol


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_fused_lora_group_matches_per_projection_reference(dtype, tol):
    """q/k/v-like group: three projections, one without LoRA, with bias; LoRA params fp32 as in training."""
    torch.manual_seed(0)
    x = torch.randn(2, 11, 32, dtype=dtype)
    weights = [torch.randn(out, 32, dtype=dtype) * 0.1 for out in (24, 8, 8)]
    biases = [torch.randn(w.shape[0], dtype=dtype) for w in weights]
    a = [torch.randn(4, 32) * 0.1, torch.zeros(0, 32), torch.randn(4, 32) * 0.1]
    b = [torch.randn(24, 4) * 0.1, torch.zeros(8, 0), torch.randn(8, 4) * 0.1]
    scalings = [2.0, 0.0, 0.5]
    fused_w, fused_b = torch.cat(weights), torch.cat(biases)

    def ours(x, a0, b0, a2, b2):
        return fused_lora_linear(x, fused_w, fused_b, [a0, a[1], a2], [b0, b[1], b2], scalings)

    def ref(x, a0, b0, a2, b2):
        return reference_lora_linear(x, weights, biases, [a0, a[1], a2], [b0, b[1], b2], scalings)

    out, g_ours = grads(ours, x, a[0], b[0], a[2], b[2])
    expected, g_ref = grads(ref, x, a[0], b[0], a[2], b[2])
    assert out.shape == (2, 11, 40) and rel(out, expected) < tol
    for got, want in zip(g_ours, g_ref, strict=True):
        assert got.dtype == want.dtype and rel(got, want) < tol * 2


def test_fused_lora_wide_weight_folds_the_shrink_into_the_base_gemm():
    """With a [W; A] storage the op's output, input gradient and LoRA gradients equal the unfolded op's, also after
    A changes (the op rewrites the A rows); the output is then a strided view of the wider GEMM result."""
    torch.manual_seed(1)
    x = torch.randn(37, 32, dtype=torch.bfloat16)
    weights = [torch.randn(out, 32, dtype=torch.bfloat16) * 0.1 for out in (24, 8, 8)]
    a = [torch.randn(4, 32) * 0.1, torch.zeros(0, 32), torch.randn(4, 32) * 0.1]
    b = [torch.randn(24, 4) * 0.1, torch.zeros(8, 0), torch.randn(8, 4) * 0.1]
    wide = torch.empty(40 + 8, 32, dtype=torch.bfloat16)
    torch.cat(weights, out=wide[:40])
    scalings = [2.0, 0.0, 0.5]

    def run(use_wide, x, a0, b0, a2, b2):
        return fused_lora_linear(x, wide[:40], None, [a0, a[1], a2], [b0, b[1], b2], scalings, prologue="rmsnorm",
                                 norm_weight=torch.ones(32, dtype=torch.bfloat16), wide=wide if use_wide else None)

    for _ in range(2):
        out, g_wide = grads(lambda *t: run(True, *t), x, a[0], b[0], a[2], b[2])
        expected, g_plain = grads(lambda *t: run(False, *t), x, a[0], b[0], a[2], b[2])
        assert out.stride() == (48, 1) and rel(out, expected) < 1e-2
        for got, want in zip(g_wide, g_plain, strict=True):
            assert rel(got, want) < 1e-2
        with torch.no_grad():
            a[0].mul_(-1.5)   # a new A: the next call must rewrite wide's A rows
    with pytest.raises(ValueError, match="wide"):
        fused_lora_linear(x, weights[0], None, [a[0]], [b[0]], [2.0], wide=wide)


def test_fused_lora_sees_every_fused_adamw_step():
    """torch's fused AdamW leaves version counters unchanged; the trainer's post-step hook must still refresh the op's
    cached bf16 copies of A and B, so each forward uses the weights of the latest step."""
    torch.manual_seed(0)
    x = torch.randn(16, 32, dtype=torch.bfloat16)
    weight = torch.randn(24, 32, dtype=torch.bfloat16) * 0.1
    a = torch.nn.Parameter(torch.randn(4, 32) * 0.1)
    b = torch.nn.Parameter(torch.randn(24, 4) * 0.1)
    optimizer = torch.optim.AdamW([a, b], lr=0.05, fused=True)
    optimizer.register_step_post_hook(lambda *_: lora_ops.parameters_changed())
    for _ in range(3):
        out = fused_lora_linear(x, weight, None, [a], [b], [2.0])
        expected = reference_lora_linear(x, [weight], None, [a.detach()], [b.detach()], [2.0])
        assert rel(out, expected) < 2e-2
        versions = a._version, b._version
        out.float().square().sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        assert (a._version, b._version) == versions   # the case the hook exists for


def test_fused_lora_dropout_is_unbiased_and_seeded():
    torch.manual_seed(0)
    x = torch.randn(4000, 16)
    weight = torch.zeros(8, 16)
    a, b = torch.eye(16)[:4], torch.ones(8, 4)
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        runs.append(fused_lora_linear(x, weight, None, [a], [b], [1.0], dropout=0.5))
    assert torch.equal(runs[0], runs[1])                                   # same seed, same mask
    plain = fused_lora_linear(x, weight, None, [a], [b], [1.0])
    assert not torch.equal(runs[0], plain)
    assert abs(runs[0].mean().item() - plain.mean().item()) < 0.05        # inverted dropout keeps the mean


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])
def test_rms_norm_and_swiglu_match_reference(dtype, tol):
    torch.manual_seed(0)
    x, weight = torch.randn(13, 48, dtype=dtype), torch.randn(48, dtype=dtype)
    out, (gx,) = grads(lambda x: rms_norm(x, weight, 1e-5), x)
    ref, (rx,) = grads(lambda x: reference_rms_norm(x, weight, 1e-5), x)
    assert rel(out, ref) < tol and rel(gx, rx) < tol * 2
    gu = torch.randn(13, 96, dtype=dtype)
    out, (g,) = grads(swiglu, gu)
    ref, (r,) = grads(reference_swiglu, gu)
    assert rel(out, ref) < tol and rel(g, r) < tol * 2


@pytest.mark.parametrize("block", [128, 3])   # whole rows; query blocks (one row spans three)
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_varlen_attention_never_crosses_rows(dtype, tol, block, monkeypatch):
    from domainlm.kernels.ops import attention

    monkeypatch.setenv("DOMAINLM_CPU_KERNELS", "torch")   # grouped-GEMM path (compiled kernel: test_native_kernels)
    monkeypatch.setattr(attention, "QUERY_BLOCK", block)
    torch.manual_seed(0)
    cu = [0, 5, 12, 20]
    q = torch.randn(20, 6, 16, dtype=dtype)
    k, v = torch.randn(20, 2, 16, dtype=dtype), torch.randn(20, 2, 16, dtype=dtype)
    out, g_ours = grads(lambda q, k, v: varlen_attention(q, k, v, cu), q, k, v)
    ref, g_ref = grads(lambda q, k, v: reference_attention(q, k, v, cu), q, k, v)
    assert rel(out, ref) < tol and all(rel(a, b) < tol * 2 for a, b in zip(g_ours, g_ref, strict=True))
    alone = varlen_attention(q[5:12], k[5:12], v[5:12], [0, 7])
    assert rel(out[5:12], alone) < 1e-6    # the middle row sees nothing of its neighbours


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.bfloat16, 1e-2)])
def test_rope_matches_hf_rotate_half(dtype, tol):
    from domainlm.kernels.ops.rope import reference_rope, rope, signed_sin

    torch.manual_seed(0)
    angles = torch.randn(9, 1, 4).repeat(1, 1, 2)
    cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
    x = torch.randn(9, 3, 8, dtype=dtype)
    out, (g,) = grads(lambda x: rope(x, cos, signed_sin(sin)), x)
    ref, (r,) = grads(lambda x: reference_rope(x, cos, sin), x)
    assert rel(out, ref) < tol and rel(g, r) < tol


@pytest.mark.parametrize("prologue", ["rmsnorm", "swiglu"])
def test_fused_lora_prologue_is_recomputed_exactly(prologue):
    """rmsnorm / swiglu inside the LoRA op (recomputed in backward) == the separate ops followed by LoRA."""
    torch.manual_seed(0)
    width = 16 if prologue == "rmsnorm" else 32
    src = torch.randn(7, width)
    norm = torch.randn(16)
    weight, a, b = torch.randn(12, 16) * 0.1, torch.randn(4, 16) * 0.1, torch.randn(12, 4) * 0.1

    def fused(src, a, b):
        return fused_lora_linear(src, weight, None, [a], [b], [1.5], prologue=prologue, norm_weight=norm, eps=1e-5)

    def separate(src, a, b):
        x = reference_rms_norm(src, norm, 1e-5) if prologue == "rmsnorm" else reference_swiglu(src)
        return reference_lora_linear(x, [weight], None, [a], [b], [1.5])

    out, got = grads(fused, src, a, b)
    ref, want = grads(separate, src, a, b)
    assert rel(out, ref) < 1e-6 and all(rel(x, y) < 1e-5 for x, y in zip(got, want, strict=True))


@pytest.mark.slow
def test_compiled_elementwise_ops_match_eager():
    """torch.compile'd helpers (kernels/ops/compiled.py) compute what their eager definitions compute."""
    from domainlm.kernels.ops import compiled
    from domainlm.kernels.ops.cross_entropy import _loss_and_dlogits
    from domainlm.kernels.ops.norm import eager_rms_norm_backward as rms_norm_backward
    from domainlm.kernels.ops.norm import eager_rms_norm_forward as rms_norm_forward
    from domainlm.kernels.ops.rope import rope_forward

    torch.manual_seed(0)
    x, w, g = torch.randn(33, 64), torch.randn(64), torch.randn(33, 64)
    logits, targets = torch.randn(9, 500), torch.randint(0, 500, (9,))
    valid = torch.ones(9)
    valid[4] = 0
    cases = [(rms_norm_forward, (x, w, 1e-5)), (rms_norm_backward, (g, x, w, torch.rand(33, 1) + 0.5)),
             (rope_forward, (x.view(33, 2, 32), torch.randn(33, 1, 32), torch.randn(33, 1, 32))),
             (_loss_and_dlogits, (logits, targets, valid))]
    assert compiled.enable(True), "no C++ compiler: torch.compile cannot run here"
    try:
        for fn, args in cases:
            got, want = fn(*args), fn.eager(*args)
            got, want = (x if isinstance(x, tuple) else (x,) for x in (got, want))
            for a, b in zip(got, want, strict=True):
                assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), fn.__name__
    finally:
        compiled.enable(False)
    ref = reference_cross_entropy(logits, torch.eye(500), torch.where(valid > 0, targets, IGNORE))
    assert abs(_loss_and_dlogits.eager(logits, targets, valid)[0].item() - ref.item()) < 1e-3
