"""Bootstrap intervals and paired tests behave as statistics should (seeded, so exact and repeatable)."""

from __future__ import annotations

import numpy as np

from domainlm.evals.bootstrap import Paired, mean_ci, paired_test, suite_test


def test_mean_ci_brackets_the_mean_and_narrows_with_more_items():
    rng = np.random.default_rng(1)
    small = mean_ci(rng.random(30) < 0.6, samples=1000)
    large = mean_ci(rng.random(3000) < 0.6, samples=1000)
    assert small["ci_low"] <= small["mean"] <= small["ci_high"]
    assert (large["ci_high"] - large["ci_low"]) < (small["ci_high"] - small["ci_low"]) / 5
    assert mean_ci([1, 0, 1], seed=3) == mean_ci([1, 0, 1], seed=3)


def test_paired_test_separates_real_gains_from_noise():
    rng = np.random.default_rng(2)
    base = (rng.random(400) < 0.5).astype(float)
    better = base.copy()
    better[np.flatnonzero(base == 0)[:60]] = 1.0         # +15 points on the same items
    shuffled = rng.permutation(base)                      # same accuracy, unrelated per item
    gain = paired_test(Paired(base, better, relative=False))
    noise = paired_test(Paired(base, shuffled, relative=False))
    assert abs(gain["effect"] - 15.0) < 1e-9 and gain["significant"] and gain["p_value"] < 0.001
    assert not noise["significant"] and noise["p_value"] > 0.2


def test_nll_effect_is_a_relative_reduction():
    base = np.array([2.0, 3.0, 4.0, 3.0])
    adapter = base * 0.8
    test = paired_test(Paired(base, adapter, relative=True), samples=500)
    assert abs(test["effect"] - 20.0) < 1e-9 and test["significant"]
    worse = paired_test(Paired(base, base * 1.1, relative=True), samples=500)
    assert worse["effect"] < 0 and not worse["significant"]


def test_suite_test_pools_tasks_with_equal_weight():
    rng = np.random.default_rng(3)
    flat = (rng.random(200) < 0.25).astype(float)
    nll = rng.uniform(2, 3, size=50)
    suite = suite_test([Paired(flat, rng.permutation(flat), relative=False), Paired(nll, nll * 0.8, relative=True)])
    assert abs(suite["effect"] - 10.0) < 1e-9           # (0 points + 20 %) / 2
    assert suite["significant"] and suite["tasks"] == 2
    assert suite_test([]) is None
