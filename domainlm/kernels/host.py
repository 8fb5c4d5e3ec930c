"""What this host's CPU and toolchain offer: /proc/cpuinfo flags and a C++ compiler (no torch import).

`DOMAINLM_CPU_FLAGS_OFF` hides CPU flags from the whole product: every choice that depends on the CPU (bf16 or
fp32, native kernels or portable torch ops, torch.compile on AMX) reads `cpu_flags()`, so with
`DOMAINLM_CPU_FLAGS_OFF=portable` an AVX512-BF16 machine behaves as an AVX2-only one (Hygon's class, most older
servers) and a developer can run that class's test suite (`make test-portable`) on their own machine. The value is
a comma- or space-separated list of flag names or shell patterns (`avx512*,amx*`); `portable` stands for
`avx512*,amx*`. `hide_torch_isa()` makes torch's own kernels (ATen dispatch, oneDNN) follow the same switch.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import shutil

FLAGS_OFF_ENV = "DOMAINLM_CPU_FLAGS_OFF"
PORTABLE = ("avx512*", "amx*")   # what an AVX2-only x86 CPU lacks compared with an AVX512-BF16 / AMX one


@functools.cache
def detected_cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (`avx512_bf16`, `amx_bf16` …); empty where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def hidden_flag_patterns() -> tuple[str, ...]:
    """The patterns of DOMAINLM_CPU_FLAGS_OFF (`portable` expanded); empty when the switch is unset."""
    patterns: list[str] = []
    for word in os.environ.get(FLAGS_OFF_ENV, "").replace(",", " ").split():
        patterns.extend(PORTABLE if word == "portable" else (word,))
    return tuple(patterns)


def cpu_flags() -> frozenset[str]:
    """The flags the product may use: those detected, less the ones DOMAINLM_CPU_FLAGS_OFF hides (read at each
    call, so a test can switch classes with monkeypatch)."""
    return _masked(detected_cpu_flags(), hidden_flag_patterns())


@functools.cache
def _masked(flags: frozenset[str], patterns: tuple[str, ...]) -> frozenset[str]:
    return frozenset(f for f in flags if not any(fnmatch.fnmatchcase(f, p) for p in patterns))


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16 among the (possibly overridden) CPU flags: bf16 matmul runs natively (elsewhere it is
    emulated, slowly)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def cpu_class() -> str:
    """'avx512-bf16' where bf16 matmul runs natively (AVX512-BF16 or AMX), 'avx2' where only AVX2/FMA is there,
    'baseline' otherwise: the class a test or report names."""
    if cpu_has_native_bf16():
        return "avx512-bf16"
    return "avx2" if {"avx2", "fma"} <= cpu_flags() else "baseline"


def hide_torch_isa(environ: dict | None = None) -> dict:
    """When the switch hides AVX-512, cap torch's own ISA too (ATen's dispatch and oneDNN read these variables
    when torch is first imported, so call this before that, or pass the result to a child process's env).
    Returns the variables set; an explicit setting already in the environment wins.

    torch.compile's on-disk cache moves to its own folder as well: inductor's cache keys do not tell the capped
    ISA from the full one, so kernels generated for 8-lane AVX2 vectors were reused by a full-ISA process (16-lane
    AVX-512 stores: heap corruption) and the other way round (wrong results). Measured here with the compiled
    RMSNorm of tests/kernels/test_ops.py before this separation."""
    env = os.environ if environ is None else environ
    has_avx512 = any(f.startswith("avx512") for f in detected_cpu_flags())
    if not has_avx512 or any(f.startswith("avx512") for f in cpu_flags()):
        return {}
    import getpass
    import tempfile

    default_cache = os.path.join(tempfile.gettempdir(), "torchinductor_" + getpass.getuser().replace(os.sep, "_"))
    wanted = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
              "TORCHINDUCTOR_CACHE_DIR": env.get("TORCHINDUCTOR_CACHE_DIR", default_cache) + "-isa-avx2"}
    for key, value in wanted.items():
        env.setdefault(key, value)
    return wanted


def cxx_compiler() -> str | None:
    """Path of the C++ compiler torch's extension builds and inductor would use ($CXX, c++, g++, clang++)."""
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        found = name and shutil.which(name)
        if found:
            return found
    return None
