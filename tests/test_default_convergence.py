"""Default flags converge on every built-in data set (issue 11; docs/convergence.md has the table).

Each test fits with the defaults (only the data, the likelihood and ``--scale
learned`` given; ``iwae_samples`` lowered, which the fit does not use) and
compares the fitted scale with the number it must reach: the planted noise of
a synthetic set, the training MSE on the digits, Tipping & Bishop's σ²_ML for
the linear model. About 20–60 s each on one core.
"""

from __future__ import annotations

import pytest

from vaelik.inference import TrainConfig, fit
from vaelik.rundir import EVAL_FILE, read_json

pytestmark = pytest.mark.slow


def _fit(tmp_path, **config):
    fit(TrainConfig(scale="learned", iwae_samples=10, **config), tmp_path / "run", progress=False)
    return read_json(tmp_path / "run" / EVAL_FILE)


def test_ppca_recovers_the_planted_sigma(tmp_path):
    e = _fit(tmp_path, data="ppca", likelihood="normal")
    assert e["scale"] == pytest.approx(0.1, rel=0.10)
    assert e["converged"], e["convergence_reasons"]


def test_laplace_noise_recovers_the_planted_b(tmp_path):
    e = _fit(tmp_path, data="laplace-noise", likelihood="laplace")
    assert e["scale"] == pytest.approx(0.1, rel=0.10)
    assert e["converged"], e["convergence_reasons"]


def test_digits_sigma2_matches_the_mse(tmp_path):
    e = _fit(tmp_path, data="digits", likelihood="normal")
    assert e["scale_ratio_train"] == pytest.approx(1.0, abs=0.10)  # σ²/MSE on the training split
    assert e["converged"], e["convergence_reasons"]


def test_linear_vae_reaches_the_ppca_optimum(tmp_path):
    """σ² within 5 % of σ²_ML and the test ELBO within 1 % of the optimum's log p(x) (issue 11).

    The linear model's guide has one full covariance (``full``), which holds the exact
    posterior at every rotation of W; the diagonal guide (``linear-diag``) stayed
    1.4–1.9 % below with the same flags (docs/convergence.md).
    """
    e = _fit(tmp_path, data="ppca", likelihood="normal", model="linear")
    p = e["ppca"]
    assert e["converged"], e["convergence_reasons"]
    # the planted 4 directions, and at most one of the noise directions (sample eigenvalues
    # barely above σ²), counted as directions (the guide's coordinates mix them)
    assert p["active_components"] == e["active_units"] in (4, 5)
    assert p["sigma2_learned"] / p["sigma2_ml_active"] == pytest.approx(1.0, abs=0.05)
    assert p["ml_log_px"] - p["elbo_exact"] <= max(0.01 * abs(p["ml_log_px"]), 0.05)
    assert p["exact_log_px"] == pytest.approx(p["ml_log_px"], abs=0.05)
