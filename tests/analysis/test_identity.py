"""C1/C4/C5: planted lines are recovered, and the closed forms match direct densities."""

import math

import numpy as np
import pytest
from analysis_fixtures import make_run

from vaelik.analysis import fit_line, identity_table, load_runs, theoretical_line


def test_planted_lines_recovered(suite):
    root, planted = suite
    table = identity_table(load_runs(root).runs).set_index("run")
    for name in ("normal-learned-s0", "normal-fixed-0.05", "normal-fixed-1", "laplace-learned-s0",
                 "bernoulli-s0", "linear-s0"):
        row, p = table.loc[name], planted[name]
        assert row["slope"] == pytest.approx(p["slope"], rel=1e-8)
        assert row["intercept"] == pytest.approx(p["intercept"], rel=1e-8, abs=1e-8)
        assert row["slope_theory"] == pytest.approx(p["slope"], rel=1e-12)
        assert row["r2"] > 1 - 1e-10
        assert row["slope_rel_error"] < 1e-8


def test_arbitrary_line_recovered_and_judged_wrong(tmp_path):
    make_run(tmp_path, "odd", sigma=0.2, pointwise="arbitrary")
    row = identity_table(load_runs(tmp_path).runs).iloc[0]
    assert row["slope"] == pytest.approx(-3.25, rel=1e-8)
    assert row["intercept"] == pytest.approx(7.5, rel=1e-8)
    assert row["slope_theory"] == pytest.approx(-1 / (2 * 0.2**2))
    assert row["slope_rel_error"] > 0.5


def test_normal_closed_form_equals_density():
    rng = np.random.default_rng(0)
    d, sigma = 10, 0.37
    x, xhat = rng.normal(size=(50, d)), rng.normal(size=(50, d))
    direct = np.sum(-0.5 * np.log(2 * math.pi * sigma**2) - (x - xhat) ** 2 / (2 * sigma**2), axis=1)
    slope, intercept, _ = theoretical_line("normal", "learned", sigma, d)
    np.testing.assert_allclose(intercept + slope * np.sum((x - xhat) ** 2, axis=1), direct, rtol=1e-12)


def test_laplace_closed_form_equals_density():
    rng = np.random.default_rng(1)
    d, b = 7, 0.21
    x, xhat = rng.normal(size=(40, d)), rng.normal(size=(40, d))
    direct = np.sum(-np.log(2 * b) - np.abs(x - xhat) / b, axis=1)
    slope, intercept, _ = theoretical_line("laplace", "fixed", b, d)
    np.testing.assert_allclose(intercept + slope * np.sum(np.abs(x - xhat), axis=1), direct, rtol=1e-12)


def test_bernoulli_closed_form_equals_density():
    rng = np.random.default_rng(2)
    x = (rng.uniform(size=(30, 12)) > 0.5).astype(float)
    p = rng.uniform(0.05, 0.95, size=(30, 12))
    bce = -np.sum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=1)
    direct = np.sum(np.log(np.where(x == 1, p, 1 - p)), axis=1)
    slope, intercept, _ = theoretical_line("bernoulli", "none", None, 12)
    np.testing.assert_allclose(intercept + slope * bce, direct, rtol=1e-12)


@pytest.mark.parametrize("mode", ["per_dim", "predicted", "bayesian"])
def test_undefined_theory_says_why(mode):
    slope, intercept, reason = theoretical_line("normal", mode, 0.1, 16)
    assert math.isnan(slope) and math.isnan(intercept) and reason


def test_continuous_bernoulli_not_affine(suite):
    root, _ = suite
    row = identity_table(load_runs(root).runs).set_index("run").loc["cb-s0"]
    assert row["r2"] < 1 and math.isnan(row["intercept_theory"]) and "log C" in row["reason"]


def test_fit_line_degenerate():
    assert all(math.isnan(v) for v in fit_line(np.ones(5), np.arange(5.0)))
    assert all(math.isnan(v) for v in fit_line(np.arange(2.0), np.arange(2.0)))
