"""Build and load `cpu_lora_kernel.cpp` (per-token-slot multi-LoRA with AVX512-BF16), or say why not.

The extension is compiled once per source, flags, torch version and Python with torch's cpp_extension into
~/.cache/domainlm/ext/ (machine-wide, not per DOMAINLM_HOME, so test homes reuse it), under torch's file lock,
so the vLLM API process and its engine process can both load it. `make setup` builds it ahead; otherwise the
first load compiles (about 30 s). Used only where /proc/cpuinfo lists avx512_bf16 and a C++ compiler is present;
everywhere else `load()` returns None and the dense GEMM ops in cpu_lora_ops serve.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from domainlm.kernels.host import cpu_flags, cxx_compiler

SOURCE = Path(__file__).with_name("cpu_lora_kernel.cpp")
FLAGS = ["-O3", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512bf16", "-fopenmp"]
_state: dict = {}


def unavailable_reason() -> str | None:
    """Why the kernel cannot be used here (None when it can be built)."""
    if not {"avx512_bf16", "avx512bw"} <= cpu_flags():
        return "the CPU has no AVX512-BF16"
    if cxx_compiler() is None:
        return "no C++ compiler ($CXX, c++, g++, clang++) on PATH"
    from torch.utils.cpp_extension import is_ninja_available

    if not is_ninja_available():
        return "ninja is not installed (pip install ninja)"
    return None


def build_dir() -> Path:
    import torch

    tag = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode() + torch.__version__.encode()
                         + sys.version.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "domainlm" / "ext" / f"cpu_lora_kernel-{tag}"


def load(verbose: bool = False):
    """The compiled module (with `lora_apply`), or None when unavailable; the reason goes to stderr once."""
    if "module" in _state:
        return _state["module"]
    module, reason = None, unavailable_reason()
    if reason is None:
        try:
            from torch.utils.cpp_extension import load as build

            folder = build_dir()
            folder.mkdir(parents=True, exist_ok=True)
            module = build(name="domainlm_cpu_lora_kernel", sources=[str(SOURCE)], extra_cflags=FLAGS,
                           extra_ldflags=["-fopenmp"], build_directory=str(folder), verbose=verbose)
        except Exception as exc:  # noqa: BLE001 — any build failure means "use the dense ops", with the reason
            reason = f"build failed: {str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}"
    if reason is not None:
        print(f"domainlm: CPU LoRA kernel not used ({reason}); dense GEMM LoRA ops instead", file=sys.stderr)
    _state["module"] = module
    return module


if __name__ == "__main__":  # `python -m domainlm.serving.engines.cpu_lora_kernel`: build ahead (make setup)
    loaded = load(verbose="-v" in sys.argv)
    print("cpu LoRA kernel:", "built and loaded" if loaded is not None else "not available (dense ops serve)")
