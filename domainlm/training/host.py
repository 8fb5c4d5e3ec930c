"""CPU process tuning for training: keep freed memory for reuse, and flush denormals.

glibc returns large freed blocks to the OS and maps fresh ones on the next allocation, so a training step that
allocates the same activations every time pays page faults for all of them again (visible as high system time).
Raising the mmap and trim thresholds keeps those blocks in the heap. Denormal floats (exp of very negative
logits) take a slow microcode path on x86; flushing them to zero changes nothing a bf16 model can represent.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import torch

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024      # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit
TRIM_THRESHOLD = 1024 * 1024 * 1024


def tune_cpu_process() -> dict:
    import numpy as np

    for dtype in (np.float16, np.float32, np.float64):   # cache numpy's float limits before denormals flush to
        np.finfo(dtype)                                  # zero (computed afterwards they warn "smallest_subnormal")
    applied = {"flush_denormal": torch.set_flush_denormal(True)}
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
    except OSError:
        mallopt = None
    if mallopt is not None:   # glibc only; other C libraries simply keep their defaults
        applied["mmap_threshold"] = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX))
        applied["trim_threshold"] = bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return applied
