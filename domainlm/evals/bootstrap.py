"""Bootstrap statistics: 95% intervals of a mean, and the paired test of adapter vs base on the same items.

Paired bootstrap (Koehn 2004; Berg-Kirkpatrick et al. 2012): resample item indices with replacement, apply the
same indices to both systems, recompute the improvement. p = share of resamples where the adapter is not better,
(1 + #{δ* <= 0}) / (1 + B), so p is never reported as exactly 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _indices(n: int, samples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def mean_ci(values, samples: int = 2000, seed: int = 0, alpha: float = 0.05) -> dict:
    """{mean, ci_low, ci_high, n}: percentile interval of the bootstrap distribution of the mean."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    means = x[_indices(x.size, samples, seed)].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return {"mean": float(x.mean()), "ci_low": float(low), "ci_high": float(high), "n": int(x.size)}


@dataclass(frozen=True)
class Paired:
    """One task's paired comparison, in the task's reporting unit (points, or % NLL reduction)."""

    base: np.ndarray       # per-item scores of the base
    adapter: np.ndarray    # per-item scores of the adapter, same items, same order
    relative: bool         # True: effect = 100 * (base - adapter) / base (NLL, lower is better)

    def effect(self, idx: np.ndarray | None = None) -> np.ndarray | float:
        """Improvement of the adapter: points (accuracy-like, ×100) or percent NLL reduction; rows of idx → array."""
        b = self.base if idx is None else self.base[idx]
        a = self.adapter if idx is None else self.adapter[idx]
        if self.relative:
            mb, ma = b.mean(axis=-1), a.mean(axis=-1)
            return 100.0 * (mb - ma) / np.where(mb == 0, 1.0, mb)
        return 100.0 * (a.mean(axis=-1) - b.mean(axis=-1))


def paired_test(pair: Paired, samples: int = 2000, seed: int = 0, alpha: float = 0.05) -> dict:
    """{effect, ci_low, ci_high, p_value, significant} for one task."""
    if pair.base.shape != pair.adapter.shape or pair.base.size == 0:
        raise ValueError("paired bootstrap needs the same non-empty item set for base and adapter")
    replicate = pair.effect(_indices(pair.base.size, samples, seed))
    low, high = np.quantile(replicate, [alpha / 2, 1 - alpha / 2])
    p = (1 + int(np.sum(replicate <= 0))) / (1 + samples)
    return {"effect": float(pair.effect()), "ci_low": float(low), "ci_high": float(high), "p_value": p,
            "significant": bool(p < alpha)}


def suite_test(pairs: list[Paired], samples: int = 2000, seed: int = 0, alpha: float = 0.05) -> dict | None:
    """Stratified paired bootstrap over a suite: items are resampled within each task, and the suite effect is
    the unweighted mean of the task effects (points for accuracy-like tasks, % reduction for NLL tasks)."""
    if not pairs:
        return None
    rng_seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=len(pairs))
    replicates = np.stack([p.effect(_indices(p.base.size, samples, int(s)))
                           for p, s in zip(pairs, rng_seeds, strict=True)])
    suite = replicates.mean(axis=0)
    low, high = np.quantile(suite, [alpha / 2, 1 - alpha / 2])
    p = (1 + int(np.sum(suite <= 0))) / (1 + samples)
    effect = float(np.mean([pair.effect() for pair in pairs]))
    return {"effect": effect, "ci_low": float(low), "ci_high": float(high), "p_value": p,
            "significant": bool(p < alpha), "tasks": len(pairs)}
