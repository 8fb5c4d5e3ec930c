"""Build and load domainlm's AVX512-BF16 C++ kernels (torch cpp_extension), or say why one cannot be used.

Each kernel is compiled once per source (with the headers beside it), flags, torch version and Python into
~/.cache/domainlm/ext/ (machine-wide, not per DOMAINLM_HOME, so test homes reuse it), under torch's file lock, so
several processes (the vLLM API server and its engine, two training ranks) can load it at once. `make setup` builds
them all ahead (kernels/build.py); otherwise the first load compiles (about 30 s each). Used only where the CPU
flags (kernels/host.py) list avx512_bf16 and a C++ compiler and ninja are present; everywhere else `load()` returns
None and the caller's portable torch ops serve.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from domainlm.kernels.host import FLAGS_OFF_ENV, cpu_flags, cxx_compiler, detected_cpu_flags

FLAGS = ["-O3", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512bf16", "-fopenmp"]


def native_enabled() -> bool:
    """False when DOMAINLM_CPU_KERNELS=torch: the training ops take their portable torch paths (A/B comparisons);
    read at each call, so one process can time both."""
    return os.environ.get("DOMAINLM_CPU_KERNELS", "auto") != "torch"


def _bf16():
    import torch

    return torch.bfloat16


class NativeKernel:
    """One C++ source file built into one extension module named `name`."""

    def __init__(self, name: str, source: Path, fallback: str):
        self.name, self.source, self.fallback = name, source, fallback
        self._loaded: dict = {}

    def unavailable_reason(self) -> str | None:
        """Why the kernel cannot be used here (None when it can be built)."""
        if not {"avx512_bf16", "avx512bw"} <= cpu_flags():
            hidden = {"avx512_bf16", "avx512bw"} <= detected_cpu_flags()
            return "the CPU has no AVX512-BF16" + (f" (hidden by {FLAGS_OFF_ENV})" if hidden else "")
        if cxx_compiler() is None:
            return "no C++ compiler ($CXX, c++, g++, clang++) on PATH"
        from torch.utils.cpp_extension import is_ninja_available

        if not is_ninja_available():
            return "ninja is not installed (pip install ninja)"
        return None

    def build_dir(self) -> Path:
        import torch

        headers = b"".join(h.read_bytes() for h in sorted(self.source.parent.glob("*.h")))   # shared helpers
        tag = hashlib.sha256(self.source.read_bytes() + headers + " ".join(FLAGS).encode()
                             + torch.__version__.encode() + sys.version.encode()).hexdigest()[:16]
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return cache / "domainlm" / "ext" / f"{self.name}-{tag}"

    def for_tensors(self, *tensors):
        """The module when every tensor is a CPU bf16 tensor and native kernels are enabled, else None."""
        if not native_enabled() or any(t.device.type != "cpu" or t.dtype != _bf16() for t in tensors):
            return None
        return self.load()

    def load(self, verbose: bool = False):
        """The compiled module, or None when unavailable; the reason goes to stderr once per process."""
        if "module" in self._loaded:
            return self._loaded["module"]
        module, reason = None, self.unavailable_reason()
        if reason is None:
            try:
                from torch.utils.cpp_extension import load as build

                folder = self.build_dir()
                folder.mkdir(parents=True, exist_ok=True)
                module = build(name=f"domainlm_{self.name}", sources=[str(self.source)], extra_cflags=FLAGS,
                               extra_ldflags=["-fopenmp"], build_directory=str(folder), verbose=verbose)
            except Exception as exc:  # noqa: BLE001 — any build failure means "use the portable ops", with the reason
                text = str(exc).strip()
                reason = f"build failed: {text.splitlines()[-1] if text else type(exc).__name__}"
        if reason is not None:
            print(f"domainlm: {self.name} not used ({reason}); {self.fallback} instead", file=sys.stderr)
        self._loaded["module"] = module
        return module
