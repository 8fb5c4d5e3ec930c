"""Non-inferiority of an adapter to its base on the same items: "not worse by more than a declared margin".

A point comparison ("general_regression ≤ 1 point") on 40 multiple-choice items reads one flipped answer as 2.5
points of regression: it cannot tell a regression from noise. The question a promotion has to answer is one-sided —
is the adapter at most `margin` points worse than the base? — and the test for it is the paired non-inferiority
test (Wellek 2010; ICH E9): with d_i = adapter_i − base_i in points on the same items,

    lower = mean(d) − z_{1−α} · sd(d) / √n        non-inferior  ⇔  lower > −margin

The metric is the gold option's probability (scorers.multiple_choice `gold_prob`, 0–1 like accuracy, so a margin in
points means the same on both): paired differences of a continuous score have a far smaller spread than those of
0/1 accuracy, so a few hundred items give the power that accuracy would need thousands for. Accuracy is reported
next to it, ungated. `power()` states, from the measured spread, how often this very test passes a model as good as
the base and fails one with a true 3-point regression; tests/evals/test_noninferiority.py checks both by simulation.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

Z = NormalDist()


def noninferiority(base, adapter, margin: float, alpha: float = 0.05) -> dict:
    """{diff, lower, sd, n, margin, alpha, passed} for paired per-item scores on a 0–1 scale (reported in points)."""
    b = 100.0 * np.asarray(base, dtype=np.float64)
    a = 100.0 * np.asarray(adapter, dtype=np.float64)
    if b.shape != a.shape or b.size < 2:
        raise ValueError("non-inferiority needs the same items (at least two) scored for base and adapter")
    d = a - b
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(d.size)
    lower = float(d.mean()) - Z.inv_cdf(1 - alpha) * se
    return {"diff": float(d.mean()), "lower": lower, "sd": sd, "n": int(d.size), "margin": float(margin),
            "alpha": float(alpha), "passed": bool(lower > -margin)}


def power(sd: float, n: int, margin: float, alpha: float = 0.05, regression: float = 3.0) -> dict:
    """With paired spread `sd` (points) over `n` items: the chance that the test passes a model exactly as good as
    the base (`pass_if_equal`), and that it fails one whose true score is `regression` points lower
    (`fail_if_regressed`). Normal approximation of the mean difference; n ≥ a few hundred makes it tight."""
    if n < 2:
        return {"pass_if_equal": None, "fail_if_regressed": None, "regression": regression}
    se = max(sd, 1e-9) / math.sqrt(n)
    z = Z.inv_cdf(1 - alpha)
    return {"pass_if_equal": Z.cdf(margin / se - z), "fail_if_regressed": Z.cdf((regression - margin) / se + z),
            "regression": float(regression)}


def items_needed(sd: float, margin: float, alpha: float = 0.05, pass_if_equal: float = 0.95) -> int:
    """Items for `pass_if_equal` power at a true difference of 0, given the paired spread (points)."""
    z = Z.inv_cdf(1 - alpha) + Z.inv_cdf(pass_if_equal)
    return int(math.ceil((z * sd / margin) ** 2))
