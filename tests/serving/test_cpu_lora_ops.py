"""domainlm's CPU multi-LoRA ops give vLLM's own CPU LoRA results (to bf16 rounding) on mixed-adapter batches, and
vLLM reaches them through domainlm's platform plugin — its own extension point, nothing patched."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("vllm.lora.punica_wrapper.punica_cpu")

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

from vllm.lora.punica_wrapper import punica_cpu  # noqa: E402

from domainlm.kernels.backends import get_backend  # noqa: E402
from domainlm.kernels.host import cpu_class, cpu_flags  # noqa: E402
from domainlm.kernels.ops import vllm_cpu_lora as cpu_lora_ops  # noqa: E402
from domainlm.kernels.ops.vllm_cpu_punica import DomainlmPunicaWrapperCPU  # noqa: E402


def wrapper(indices: torch.Tensor, cls=DomainlmPunicaWrapperCPU):
    """A punica wrapper (domainlm's, or vLLM's own `cls`) whose per-token adapter indices are `indices` (decode)."""
    w = cls(max_num_batched_tokens=256, max_batches=8, device="cpu")
    w._token_lora_indices[: len(indices)] = indices
    w.indices_len[0] = len(indices)
    w.is_prefill, w.no_lora = False, False
    return w


def exact(base, x, a, b, indices, scale, slices):
    """fp32 reference: base + scale · (x Aᵀ) Bᵀ per token with its own slot, and a bound on the terms' size."""
    out, size = base.float().clone(), torch.zeros(base.shape)
    col = 0
    for s, width in enumerate(slices):
        for t, slot in enumerate(indices.tolist()):
            aa, bb = a[s][slot, 0].float(), b[s][slot, 0].float()
            out[t, col:col + width] += scale * (x[t].float() @ aa.t()) @ bb.t()
            size[t, col:col + width] = scale * (x[t].float().abs() @ aa.abs().t()) @ bb.abs().t()
        col += width
    return out, size


def ops_mode(name: str, monkeypatch) -> None:
    """'dense': the GEMM path; 'kernel': the compiled AVX512-BF16 kernel (skipped only where it cannot exist)."""
    from domainlm.kernels.ops import cpu_lora as cpu_lora_kernel

    monkeypatch.setattr(cpu_lora_ops, "_KERNEL", [])
    monkeypatch.setenv(cpu_lora_ops.ENV, "dense" if name == "dense" else "auto")
    if name == "kernel":
        if "avx512_bf16" not in cpu_flags():
            pytest.skip(f"the compiled kernel needs AVX512-BF16 ({cpu_class()} CPU here); the dense path is checked")
        reason = cpu_lora_kernel.unavailable_reason()
        if reason:
            pytest.skip(f"CPU LoRA kernel unavailable here: {reason}")
        assert cpu_lora_kernel.load() is not None, "AVX512-BF16 and a compiler are here, yet the kernel did not build"


@pytest.mark.parametrize("ops", ["kernel", "dense"])
@pytest.mark.parametrize("tokens, slices, scale", [(1, (576,), 1.0), (37, (576, 192, 192), 1.0),
                                                   (64, (1536, 1536), 1.0), (37, (576, 192, 192), 0.5)])
def test_fused_linear_matches_vllm_ops(tokens, slices, scale, ops, monkeypatch):
    ops_mode(ops, monkeypatch)
    torch.manual_seed(tokens)
    slots, rank = 4, 16
    a = tuple(torch.randn(slots, 1, rank, 576, dtype=torch.bfloat16) * 0.05 for _ in slices)
    b = tuple(torch.randn(slots, 1, out, rank, dtype=torch.bfloat16) * 0.05 for out in slices)
    x = torch.randn(tokens, 576, dtype=torch.bfloat16)
    indices = torch.randint(0, slots - 1, (tokens,))  # the last slot stays free, as vLLM keeps it for "no LoRA"
    expected = torch.randn(tokens, sum(slices), dtype=torch.bfloat16)
    ours = expected.clone()
    truth, size = exact(expected, x, a, b, indices, scale, slices)
    wrapper(indices, punica_cpu.PunicaWrapperCPU).add_lora_linear(expected, x, a, b, scale, slices)  # vLLM's ops
    wrapper(indices).add_lora_linear(ours, x, a, b, scale, slices)
    # bf16 output rounding (one step) + bf16 rounding of the rank-r intermediate, relative to the terms' size
    tolerance = truth.abs() * 2 ** -8 + size * 2 ** -7 + 1e-6
    assert ((expected.float() - truth).abs() <= tolerance).all()      # vLLM's ops meet the bound
    assert ((ours.float() - truth).abs() <= tolerance).all()
    assert (ours.float() - truth).abs().mean() <= (expected.float() - truth).abs().mean() * 1.5


@pytest.mark.parametrize("ops", ["kernel", "dense"])
def test_tokens_without_adapter_get_no_lora_and_logits_skip_zero_slots(ops, monkeypatch):
    ops_mode(ops, monkeypatch)
    slots, rank = 3, 8
    a = (torch.randn(slots, 1, rank, 64, dtype=torch.bfloat16),)
    b = (torch.randn(slots, 1, 32, rank, dtype=torch.bfloat16),)
    x = torch.randn(6, 64, dtype=torch.bfloat16)
    w = wrapper(torch.tensor([0, -1, 2, -1, 1, 0]))
    y = torch.zeros(6, 32, dtype=torch.bfloat16)
    w.add_lora_linear(y, x, a, b, 1.0, (32,))
    assert y[[1, 3]].abs().max() == 0 and y[[0, 2, 4, 5]].abs().max() > 0
    logits = torch.randn(10, 100)
    before = logits.clone()
    zero_b = torch.zeros(slots, 1, 100, rank, dtype=torch.bfloat16)
    w.add_lora_logits(logits, torch.randn(10, 64), torch.randn(slots, 1, rank, 64), zero_b, 1.0)
    assert torch.equal(logits, before)  # 10 prompt-token rows vs 6 sequences: fine, nothing to add


def test_prefill_indices_made_in_inference_mode_work():
    """vLLM builds per-token prefill indices inside inference_mode: such tensors have no version counter."""
    slots, rank = 2, 8
    a = torch.randn(slots, 1, rank, 64, dtype=torch.bfloat16)
    b = torch.randn(slots, 1, 32, rank, dtype=torch.bfloat16)
    x = torch.randn(5, 64, dtype=torch.bfloat16)
    cache, lengths, slots_used = cpu_lora_ops.LoraCache(), torch.tensor([2, 3]), torch.tensor([0, 1])
    with torch.inference_mode():
        buffer = torch.zeros(5, rank)
        cpu_lora_ops.sgmv_shrink(cache, x, a, buffer, None, lengths, slots_used, 2, 3, 5, 1.0)
        out = torch.zeros(5, 32, dtype=torch.bfloat16)
        cpu_lora_ops.sgmv_expand(cache, buffer, b, out, None, lengths, slots_used, 2, 3, 5, True)
    reference = torch.stack([(x[t].float() @ a[i, 0].float().t()) for t, i in enumerate([0, 0, 1, 1, 1])])
    assert torch.allclose(buffer, reference, atol=1e-2, rtol=1e-2)
    assert out.abs().max() > 0


@pytest.mark.parametrize("ops", ["kernel", "dense"])
def test_cached_operands_follow_adapter_reloads_and_new_batches(ops, monkeypatch):
    """Weights are cached per layer and the batch's adapter check per step: an in-place adapter (re)load or a new
    token → slot mapping must be seen on the next call."""
    ops_mode(ops, monkeypatch)
    torch.manual_seed(0)
    a = (torch.randn(3, 1, 16, 64, dtype=torch.bfloat16),)
    b = (torch.randn(3, 1, 32, 16, dtype=torch.bfloat16),)
    x = torch.randn(4, 64, dtype=torch.bfloat16)
    w = wrapper(torch.tensor([0, 1, -1, 2]))
    first = torch.zeros(4, 32, dtype=torch.bfloat16)
    w.add_lora_linear(first, x, a, b, 1.0, (32,))
    b[0][1].mul_(2)                                   # vLLM loads adapters into the stacked weights in place
    second = torch.zeros(4, 32, dtype=torch.bfloat16)
    w.add_lora_linear(second, x, a, b, 1.0, (32,))
    assert torch.equal(first[0], second[0]) and torch.allclose(second[1], 2 * first[1], rtol=1e-2, atol=1e-2)
    assert second[2].abs().max() == 0
    w._token_lora_indices[:4] = torch.tensor([-1, -1, -1, -1])   # next step: a base-only batch
    third = torch.zeros(4, 32, dtype=torch.bfloat16)
    w.add_lora_linear(third, x, a, b, 1.0, (32,))
    assert third.abs().max() == 0


def test_vllm_picks_the_domainlm_cpu_platform_through_its_plugin():
    """In a fresh process with the CPU backend's serving environment, vLLM's own platform resolution activates
    domainlm's platform plugin, and the platform names domainlm's punica wrapper; DOMAINLM_VLLM_LORA_OPS=vllm gives
    vLLM's own CPU platform back. vLLM's PunicaWrapperCPU class is left as vLLM ships it."""
    code = textwrap.dedent("""
        import json
        from vllm.platforms import current_platform
        from vllm.lora.punica_wrapper import punica_cpu
        from vllm.lora.ops.torch_ops import lora_ops
        print("PLATFORM " + json.dumps([type(current_platform).__module__ + "." + type(current_platform).__name__,
                                        current_platform.get_punica_wrapper(), current_platform.is_cpu(),
                                        punica_cpu.bgmv_shrink is lora_ops.bgmv_shrink]))
    """)
    serving = get_backend("cpu").serving_env()
    assert "VLLM_TARGET_DEVICE" not in serving and serving["VLLM_PLUGINS"].split(",")[0] == "domainlm_cpu"
    seen = {}
    for ops in ("auto", "vllm"):
        env = {**os.environ, **serving, "DOMAINLM_VLLM_LORA_OPS": ops}
        env.pop("VLLM_TARGET_DEVICE", None)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        seen[ops] = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("PLATFORM "))[9:])
    assert seen["auto"] == ["domainlm.kernels.ops.vllm_cpu_platform.DomainlmCpuPlatform",
                            "domainlm.kernels.ops.vllm_cpu_punica.DomainlmPunicaWrapperCPU", True, True]
    assert seen["vllm"] == ["vllm.platforms.cpu.CpuPlatform",
                            "vllm.lora.punica_wrapper.punica_cpu.PunicaWrapperCPU", True, True]
