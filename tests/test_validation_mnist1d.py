"""The MNIST-1D claims study (``validation/mnist1d_claims.py``) without training: its statistics
on synthetic numbers (the paired t-test as scipy computes it, the bootstrap interval around a
known shift), the claims' verdicts on made-up cells, the example specs as the study's own, and
its registration in the suite."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from relaxsim.scans.spec import load_spec
from relaxsim.validation import mnist1d_claims as study
from relaxsim.validation import suite

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_paired_test_is_scipys():
    rng = np.random.default_rng(3)
    a = 0.6 + 0.02 * rng.standard_normal(10)
    b = a - 0.01 + 0.01 * rng.standard_normal(10)
    got = study.paired(a, b)
    want = stats.ttest_rel(a, b)
    assert math.isclose(got["t"], want.statistic, rel_tol=1e-12)
    assert math.isclose(got["p"], want.pvalue, rel_tol=1e-12)
    assert math.isclose(got["diff"], float(np.mean(a - b)), rel_tol=1e-12)
    assert got["n"] == 10 and got["significant"] == (want.pvalue < study.ALPHA)
    assert got["ci_low"] <= got["diff"] <= got["ci_high"]


def test_bootstrap_interval_contains_the_true_shift_and_is_reproducible():
    rng = np.random.default_rng(7)
    shift = 0.03
    a = 0.55 + 0.02 * rng.standard_normal(40)
    b = a - shift + 0.01 * rng.standard_normal(40)  # a - b: the shift plus zero-mean noise
    lo, hi = study.bootstrap_ci(a - b)
    assert lo < shift < hi
    assert hi - lo < 0.02  # about 4 standard errors of 0.01 / sqrt(40)
    assert study.bootstrap_ci(a - b) == (lo, hi)  # fixed seed: the same interval
    assert study.paired(a, b)["significant"]  # a shift of 3 standard deviations of the noise


def test_constant_differences_as_scipy_gives_them():
    got = study.paired([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])  # exact binary fractions: all 0.5
    assert got["t"] == math.inf and got["p"] == 0.0 and got["significant"]
    assert got["ci_low"] == got["ci_high"] == 0.5
    same = study.paired([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])  # no difference at all: no p-value
    assert math.isnan(same["p"]) and not same["significant"] and same["ci_low"] == 0.0
    with pytest.raises(ValueError):
        study.paired([0.5], [0.4])


def _found(means: dict, budget=study.HEAT_BUDGET, steps=(study.STEPS,), seeds=(0, 1, 2)):
    """Cells keyed (budget, L_T, L_W) whose per-seed accuracies are ``mean +- 0.01``."""
    found = {}
    for lt in steps:
        for lw in study.BANKS:
            if lw > lt:
                continue
            m = means[lt, lw] if (lt, lw) in means else means.get(lw, 0.5)
            found[budget, lt, lw] = {"hidden": 10, "kind": "x", "bank_params": 1,
                                     "acc": {s: m + 0.01 * (s - 1) for s in seeds}}
    return found


def test_claim_verdicts_on_made_up_cells():
    plan = {"budgets": (study.HEAT_BUDGET,), "seeds": (0, 1, 2), "epochs": 1}
    verdicts, tests, rows = study.equal_budget(_found({1: 0.50, 2: 0.60, 4: 0.55, 8: 0.52}),
                                               plan)
    assert verdicts[0]["passed"] and verdicts[0]["best"] == 2 and len(tests) == 4
    verdicts, _, _ = study.equal_budget(_found({1: 0.50, 2: 0.51, 4: 0.55, 8: 0.56}), plan)
    assert not verdicts[0]["passed"]

    heat = {(2, 1): 0.5, (2, 2): 0.5, (4, 1): 0.5, (4, 2): 0.7, (4, 4): 0.5,
            (8, 1): 0.5, (8, 2): 0.6, (8, 4): 0.6, (8, 8): 0.5}
    verdict, rows = study.heatmap(_found(heat, steps=study.HEAT_STEPS), plan)
    assert len(rows) == 9 and verdict["passed"] and verdict["best"]["banks"] == 2
    heat[2, 1] = 0.9  # the best cell an RNN: balanced is not best
    verdict, _ = study.heatmap(_found(heat, steps=study.HEAT_STEPS), plan)
    assert not verdict["passed"] and verdict["best"]["banks"] == 1

    verdict, _, _ = study.sequence(_found({1: 0.5, 2: 0.6, 4: 0.65, 8: 0.655}), plan)
    assert verdict["passed"] and verdict["rises"]  # +0.005 < std 0.01: saturated
    verdict, _, _ = study.sequence(_found({1: 0.5, 2: 0.6, 4: 0.65, 8: 0.70}), plan)
    assert not verdict["passed"]  # still rising by 5 std
    verdict, _, _ = study.sequence(_found({1: 0.7, 2: 0.6, 4: 0.55, 8: 0.5}), plan)
    assert verdict["passed"] and not verdict["rises"]  # falls: saturated only trivially


@pytest.mark.parametrize("part", study.PARTS)
def test_example_specs_are_the_studys_full_scans(part):
    example = load_spec(EXAMPLES / f"mnist1d_{part}.toml")
    ours = load_spec(study.specs(study.FULL)[part])
    assert example.budget == ours.budget and example.seeds == ours.seeds
    assert [p.id for p in example.expand()] == [p.id for p in ours.expand()]


def test_the_study_is_registered():
    assert "mnist1d_claims" in suite.STUDIES
    assert suite.study("mnist1d_claims") is study and study.NAME == "mnist1d_claims"
    assert callable(study.check) and study.TITLE
