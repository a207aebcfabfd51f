r"""Numbers of the final evaluation checked against their closed forms.

- The pPCA check (C8) of a linear model whose latent is as wide as the data or
  wider: the maximum-likelihood solution is then the sample covariance itself,
  :math:`\log p_\mathrm{ML}(x) = \log\mathcal N(x; \bar x, S)`; it used to slice
  the eigenvalues with a negative index and fail the final evaluation.
- Data lying in a subspace (σ²_ML = 0): the optimum within the model's bound
  σ ≥ min_scale, never a singular covariance.
- ``scale_per_dim`` of a predicted scale is the root-mean-square over the test
  points, :math:`\sqrt{\tfrac1n\sum_n \sigma_j(x_n)^2}` (docs/run-directory.md),
  not their mean.
"""

from __future__ import annotations

import json
import math

import pyro
import pytest
import torch
from torch.testing import assert_close

from vaelik.inference import TrainConfig, fit
from vaelik.inference.data import Dataset
from vaelik.inference.evaluate import evaluate_model, ppca_check
from vaelik.inference.terms import elbo_terms
from vaelik.models import build_model, get_likelihood

f64 = torch.float64


def _linear(d: int, k: int, scale="optimal"):
    torch.manual_seed(0)
    return build_model("linear", get_likelihood("normal", scale=scale), d, k).double()


@pytest.mark.parametrize("k", [6, 9])
def test_ppca_check_with_a_latent_as_wide_as_the_data(k):
    d = 6
    x = torch.randn(300, d, dtype=f64) @ torch.randn(d, d, dtype=f64)
    model = _linear(d, k)
    with model.params():
        check = ppca_check(model, x, x[:50])
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / x.shape[0]
    exact = torch.distributions.MultivariateNormal(mean, cov).log_prob(x[:50]).mean()
    assert check["sigma2_ml"] == 0.0
    assert check["ml_log_px"] == pytest.approx(float(exact), rel=1e-9)


def test_ppca_check_on_data_in_a_subspace_stays_within_the_scale_bound():
    d, k, rank = 6, 3, 2
    x = torch.randn(200, rank, dtype=f64) @ torch.randn(rank, d, dtype=f64)
    model = _linear(d, k)
    floor = model.likelihood.min_scale ** 2
    with model.params():
        check = ppca_check(model, x, x[:20])
    assert abs(check["sigma2_ml"]) < 1e-12
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / x.shape[0]
    evals, evecs = torch.linalg.eigh(cov)
    bounded = evecs @ torch.diag(evals.clamp_min(floor)) @ evecs.T  # λ_i kept, the rest at min_scale²
    exact = torch.distributions.MultivariateNormal(mean, bounded).log_prob(x[:20]).mean()
    assert check["ml_log_px"] == pytest.approx(float(exact), rel=1e-9)


def test_linear_optimal_scale_with_a_wide_latent_completes(tmp_path):
    """`vaelik train --model linear --scale optimal --latent-dim 30` on 20-d ppca: a finished run."""
    config = TrainConfig(data="ppca", model="linear", scale="optimal", latent_dim=30, epochs=1,
                         iwae_samples=8, patience=0)
    result = fit(config, tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "eval.json").read_text(encoding="utf-8"))
    assert (tmp_path / "run" / "status").read_text().strip() == "completed"
    assert saved["ppca"]["sigma2_ml"] == 0.0 and math.isfinite(saved["ppca"]["ml_log_px"])
    assert result.evaluation["ppca"] == saved["ppca"]


def test_scale_per_dim_of_a_predicted_scale_is_the_rms_over_the_test_points():
    d, n = 5, 64
    torch.manual_seed(1)
    x = torch.rand(n, d)
    data = Dataset("rand", train=x, test=x)
    model = build_model("vae", get_likelihood("normal", scale="predicted"), d, 2, 8)
    config = TrainConfig(scale="predicted", iwae_samples=4)
    with model.params():
        pyro.set_rng_seed(5)
        record = evaluate_model(model, data, config)
        pyro.set_rng_seed(5)
        scale = elbo_terms(model, x).scale  # (n, d): the same draws as the evaluation's first pass
    assert scale.shape == (n, d)
    rms = scale.pow(2).mean(0).sqrt()
    assert_close(torch.tensor(record["scale_per_dim"]), rms)
    assert not torch.allclose(rms, scale.mean(0))  # a mean would be another number
