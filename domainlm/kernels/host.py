"""What this host's CPU and toolchain offer: /proc/cpuinfo flags and a C++ compiler (no torch import)."""

from __future__ import annotations

import functools
import os
import shutil


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (`avx512_bf16`, `amx_bf16` …); empty where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cxx_compiler() -> str | None:
    """Path of the C++ compiler torch's extension builds and inductor would use ($CXX, c++, g++, clang++)."""
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        found = name and shutil.which(name)
        if found:
            return found
    return None
