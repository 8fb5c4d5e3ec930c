"""The one rule for `dtype: auto` everywhere a dtype is chosen (training precision, evaluation, serving, benchmarks).

bf16 where the device computes it natively, else fp32: on a CPU without AVX512-BF16 / AMX (AVX2-only, Hygon's
class) torch and vLLM emulate bf16 matmuls several times slower than fp32, and an AVX2 user would pick fp32 there.
On an accelerator bf16 is native unless torch says otherwise.
"""

from __future__ import annotations

from domainlm.kernels.host import cpu_has_native_bf16

DTYPES = ("bfloat16", "float32", "float16")


def auto_dtype(device: str = "cpu") -> str:
    """'bfloat16' where `device` ('cpu', 'cuda', 'cuda:0' …) runs bf16 natively, else 'float32'."""
    if device.split(":")[0] == "cpu":
        return "bfloat16" if cpu_has_native_bf16() else "float32"
    if device.startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16"


def resolve_dtype(requested: str, device: str = "cpu") -> str:
    """`requested` unless it is 'auto', which becomes auto_dtype(device)."""
    if requested == "auto":
        return auto_dtype(device)
    if requested not in DTYPES:
        raise ValueError(f"dtype {requested!r}: expected auto or one of {', '.join(DTYPES)}")
    return requested
