"""Learning-rate schedule: linear warmup, then cosine / linear decay to min_lr_ratio × lr, or constant."""

from __future__ import annotations

import math

import torch


def lr_factor(step: int, *, total: int, warmup: int, kind: str, floor: float) -> float:
    """Multiplier of the peak lr for optimizer step `step` (0-based: the step about to be taken)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if kind == "cosine" else 1.0 - progress
    return floor + (1.0 - floor) * shape


def build_scheduler(optimizer, *, total: int, warmup: int, kind: str, floor: float):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total=total, warmup=warmup, kind=kind, floor=floor))
