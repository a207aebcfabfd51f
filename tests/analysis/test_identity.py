"""C1/C4/C5: planted lines are recovered and compared with the line each run's family states.

That the stated lines are the densities' own is checked against the distributions in
tests/test_likelihoods.py (the analysis holds no formula).
"""

import math

import numpy as np
import pytest
from analysis_fixtures import make_run

from vaelik.analysis import fit_line, identity_table, load_runs, pointwise_frame, theoretical_line
from vaelik.rundir.family import FamilyFacts


def test_planted_lines_recovered(suite):
    root, planted = suite
    table = identity_table(load_runs(root).runs).set_index("run")
    for name in ("normal-learned-s0", "normal-fixed-0.05", "normal-fixed-1", "laplace-learned-s0",
                 "bernoulli-s0", "linear-s0"):
        row, p = table.loc[name], planted[name]
        assert row["slope"] == pytest.approx(p["slope"], rel=1e-8)
        assert row["intercept"] == pytest.approx(p["intercept"], rel=1e-8, abs=1e-8)
        assert row["slope_theory"] == pytest.approx(p["slope"], rel=1e-12)
        assert row["intercept_theory"] == pytest.approx(p["intercept"], rel=1e-12, abs=1e-12)
        assert row["r2"] > 1 - 1e-10
        assert row["slope_rel_error"] < 1e-8


def test_labels_come_from_the_facts(suite):
    root, _ = suite
    runs = load_runs(root).runs
    table = identity_table(runs).set_index("run")
    assert table.loc["normal-learned-s0", "loss_sum_label"].startswith("SSE")
    assert table.loc["laplace-learned-s0", "loss_sum_label"].startswith("SAE")
    assert table.loc["bernoulli-s0", "loss_sum_label"].startswith("summed BCE")
    points = pointwise_frame(runs, ["laplace-learned-s0"])
    assert set(points["loss_sum_label"]) == {table.loc["laplace-learned-s0", "loss_sum_label"]}


def test_arbitrary_line_recovered_and_judged_wrong(tmp_path):
    make_run(tmp_path, "odd", sigma=0.2, pointwise="arbitrary")
    row = identity_table(load_runs(tmp_path).runs).iloc[0]
    assert row["slope"] == pytest.approx(-3.25, rel=1e-8)
    assert row["intercept"] == pytest.approx(7.5, rel=1e-8)
    assert row["slope_theory"] == pytest.approx(-1 / (2 * 0.2**2))
    assert row["slope_rel_error"] > 0.5


def test_theoretical_line_reads_the_stored_numbers():
    facts = FamilyFacts("anything", affine=True, line_slope=-2.5, line_intercept=1.25)
    assert theoretical_line(facts) == (-2.5, 1.25, "")
    slope, intercept, reason = theoretical_line(facts.with_run(line_slope=None, line_reason="why"))
    assert math.isnan(slope) and math.isnan(intercept) and reason == "why"
    slope, _, reason = theoretical_line(None)
    assert math.isnan(slope) and "vaelik evaluate" in reason


@pytest.mark.parametrize("run", ["normal-per_dim-s0", "normal-bayesian-s0"])
def test_undefined_theory_says_why(suite, run):
    root, _ = suite
    row = identity_table(load_runs(root).runs).set_index("run").loc[run]
    assert math.isnan(row["slope_theory"]) and math.isnan(row["intercept_theory"]) and row["reason"]


def test_continuous_bernoulli_not_affine(suite):
    root, _ = suite
    row = identity_table(load_runs(root).runs).set_index("run").loc["cb-s0"]
    assert row["r2"] < 1 and math.isnan(row["intercept_theory"]) and "log C" in row["reason"]


def test_fit_line_degenerate():
    assert all(math.isnan(v) for v in fit_line(np.ones(5), np.arange(5.0)))
    assert all(math.isnan(v) for v in fit_line(np.arange(2.0), np.arange(2.0)))
