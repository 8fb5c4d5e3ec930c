"""`python -m domainlm.kernels.build [-v]` (run by `make setup`): build every native CPU kernel ahead, so no process
pays the compile; where they cannot build (no AVX512-BF16, compiler or ninja) it says why and exits 0."""

from __future__ import annotations

import sys


def build_all(verbose: bool = False) -> None:
    from domainlm.kernels.ops.cpu_attention import KERNEL as attention
    from domainlm.kernels.ops.cpu_elementwise import KERNEL as elementwise
    from domainlm.kernels.ops.cpu_gemm import KERNEL as gemm
    from domainlm.kernels.ops.cpu_lora import KERNEL as lora

    for kernel in (lora, attention, elementwise, gemm):
        loaded = kernel.load(verbose=verbose)
        state = "built and loaded" if loaded is not None else f"not available ({kernel.fallback} serve)"
        print(f"{kernel.name}:", state)


if __name__ == "__main__":
    build_all(verbose="-v" in sys.argv)
