r"""The linear model's guide with one full covariance (``full``), checked against pPCA's closed forms.

pPCA (Tipping & Bishop 1999): :math:`x = Wz + b + \varepsilon`, :math:`z \sim N(0, I_k)`,
:math:`\varepsilon \sim N(0, \sigma^2 I_d)`, so :math:`p(x) = N(b, WW^\top + \sigma^2 I)`
and :math:`p(z \mid x) = N(M^{-1}W^\top(x - b), \sigma^2 M^{-1})` with
:math:`M = W^\top W + \sigma^2 I` (their eq. 6). The ``full`` guide holds that
posterior for any W, so at it the ELBO *is* log p(x); a diagonal guide holds it
only when :math:`W^\top W` is diagonal, and otherwise falls short by
:math:`\tfrac12(\sum_i \log P_{ii} - \log\det P)`, :math:`P = I + W^\top W/\sigma^2`
(the KL from the best diagonal Normal to the posterior).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.distributions import kl_divergence
from torch.testing import assert_close

from vaelik.inference.convergence import judge_convergence
from vaelik.inference.evaluate import _linear_elbo, active_units, mutual_information, ppca_check
from vaelik.models import SCALE_TRIL_PARAM, build_model, get_likelihood

f64 = torch.float64
D, K, SIGMA = 7, 3, 0.3


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(D, K, generator=g, dtype=f64)  # columns far from orthogonal
    b = torch.randn(D, generator=g, dtype=f64)
    x = (torch.randn(50, K, generator=g, dtype=f64) @ w.T + b
         + SIGMA * torch.randn(50, D, generator=g, dtype=f64))
    return w, b, x


def _at_the_posterior(kind: str, w, b, x):
    """A linear model with decoder (W, b), σ = SIGMA, and its guide at the (best) posterior."""
    torch.manual_seed(0)
    model = build_model(kind, get_likelihood("normal", scale=SIGMA), D, K).double()
    m = w.T @ w + SIGMA**2 * torch.eye(K, dtype=f64)
    post_map = torch.linalg.solve(m, w.T)  # M^{-1} W^T: the posterior mean is post_map (x - b)
    with model.params():
        pyro.infer.Trace_ELBO().differentiable_loss(model.model, model.guide, x)  # create the params
        with torch.no_grad():
            model.decoder.head.weight.copy_(w)
            model.decoder.head.bias.copy_(b)
            model.encoder.head.weight[:K].copy_(post_map)
            model.encoder.head.bias[:K].copy_(-post_map @ b)
            if kind == "linear":
                cov = SIGMA**2 * torch.linalg.inv(m)
                pyro.get_param_store()[SCALE_TRIL_PARAM] = torch.linalg.cholesky(cov)
            else:  # the best diagonal Normal: variances 1 / diag(P)
                prec = torch.eye(K, dtype=f64) + w.T @ w / SIGMA**2
                raw = torch.log(torch.expm1(prec.diagonal().rsqrt() - 1e-5))  # softplus^-1
                model.encoder.head.bias[K:].copy_(raw)
                model.encoder.head.weight[K:].zero_()
    return model


def _log_px(w, b, x):
    cov = w @ w.T + SIGMA**2 * torch.eye(D, dtype=f64)
    return dist.MultivariateNormal(b, cov).log_prob(x)


def test_full_guide_at_the_posterior_makes_the_elbo_log_px():
    w, b, x = _problem()
    model = _at_the_posterior("linear", w, b, x)
    with model.params():
        assert_close(_linear_elbo(model, x, w, b, SIGMA**2), _log_px(w, b, x))
        # log p(x, z) - log q(z | x) = log p(x) for every z when q is the posterior: the
        # one-sample Trace_ELBO is exact, and the analytic-KL estimator agrees in expectation
        loss = pyro.infer.Trace_ELBO().differentiable_loss(model.model, model.guide, x)
        assert_close(-loss, _log_px(w, b, x).sum())
        check = ppca_check(model, x, x, val=x[:20])
    assert_close(check["elbo_exact"], check["exact_log_px"])
    # on the validation rows: the same numbers, and a posterior gap of 0 with no spread
    assert_close(check["elbo_exact_val"], check["exact_log_px_val"])
    assert_close(check["exact_log_px_val"], float(_log_px(w, b, x[:20]).mean()))
    assert check["posterior_gap_val_se"] < 1e-6
    # Tipping & Bishop's ML solution from the training rows (here all of x), on the 20 rows
    centred = x - x.mean(0)
    evals, evecs = torch.linalg.eigh(centred.T @ centred / x.shape[0])
    s2 = evals[: D - K].mean()
    top = evecs[:, D - K:]
    cov_ml = top @ torch.diag(evals[D - K:] - s2) @ top.T + s2 * torch.eye(D, dtype=f64)
    ml_rows = dist.MultivariateNormal(x.mean(0), cov_ml).log_prob(x[:20])
    assert_close(check["ml_log_px_val"], float(ml_rows.mean()))
    diffs = ml_rows - _log_px(w, b, x[:20])
    assert math.isclose(check["parameter_gap_val_se"], float(diffs.std()) / math.sqrt(20), rel_tol=1e-9)


def test_diagonal_guide_falls_short_by_the_mean_field_kl():
    w, b, x = _problem()
    model = _at_the_posterior("linear-diag", w, b, x)
    prec = torch.eye(K, dtype=f64) + w.T @ w / SIGMA**2
    gap = 0.5 * (prec.diagonal().log().sum() - torch.logdet(prec))
    assert gap > 0.1  # W^T W is far from diagonal: a real gap
    with model.params():
        elbo = _linear_elbo(model, x, w, b, SIGMA**2)
    assert_close(_log_px(w, b, x) - elbo, gap.expand(x.shape[0]), atol=1e-6, rtol=1e-6)


def test_kl_of_a_full_covariance_from_a_diagonal_normal():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(K, K, generator=g, dtype=f64)
    q = dist.MultivariateNormal(torch.randn(5, K, generator=g, dtype=f64),
                                scale_tril=torch.linalg.cholesky(a @ a.T + torch.eye(K, dtype=f64)))
    loc, scale = torch.randn(5, K, generator=g, dtype=f64), torch.rand(5, K, generator=g, dtype=f64) + 0.5
    p = dist.Normal(loc, scale).to_event(1)
    as_mvn = dist.MultivariateNormal(loc, scale_tril=torch.diag_embed(scale))
    assert_close(kl_divergence(q, p), kl_divergence(q, as_mvn))
    # against the prior of the model, N(0, I): 0.5 (|m|^2 + tr S - k - log det S)
    prior = dist.Normal(torch.zeros(5, K, dtype=f64), 1.0).to_event(1)
    s = q.covariance_matrix
    expected = 0.5 * (q.loc.pow(2).sum(-1) + s.diagonal(dim1=-2, dim2=-1).sum(-1) - K - torch.logdet(s))
    assert_close(kl_divergence(q, prior), expected)
    with pytest.raises(NotImplementedError):  # not a Normal over the last dimension
        kl_divergence(q, dist.Laplace(loc, scale).to_event(1))


def test_active_directions_do_not_depend_on_the_rotation():
    g = torch.Generator().manual_seed(0)
    loc = torch.cat([torch.randn(400, 2, generator=g, dtype=f64), 1e-3 * torch.randn(400, 4, generator=g, dtype=f64)], 1)
    rotation, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=f64))
    assert active_units(loc) == 2 and active_units(loc, directions=True) == 2
    mixed = loc @ rotation  # the 2 directions spread over the coordinates
    assert active_units(mixed) > 2 and active_units(mixed, directions=True) == 2


def test_mutual_information_with_a_shared_diagonal_covariance_is_the_diagonal_one():
    g = torch.Generator().manual_seed(0)
    loc, sd = torch.randn(300, K, generator=g, dtype=f64), torch.tensor([0.3, 0.5, 0.9], dtype=f64)
    torch.manual_seed(5)
    diagonal = mutual_information(loc, sd.expand(300, K))
    torch.manual_seed(5)
    full = mutual_information(loc, sd.expand(300, K), scale_tril=torch.diag(sd))
    assert math.isclose(diagonal, full, rel_tol=1e-9)


def test_verdict_judges_both_gaps_on_the_validation_split():
    # (closed-form ELBO, learned log p, optimum's log p, se of the parameter gap, se of the posterior gap)
    assert judge_convergence([], scale_mode="learned", held_out=(5.21, 5.218, 5.237, 0.024, 0.0003)).converged
    # 0.101 short, but within 0.0559 + 2 x 0.031: the 200 rows do not show it
    assert judge_convergence([], scale_mode="learned", held_out=(5.48, 5.4885, 5.5894, 0.031, 0.0003)).converged
    short = judge_convergence([], scale_mode="learned", held_out=(5.48, 5.4885, 5.5894, 0.01, 0.0003))
    assert short.reasons == ["exact log p(x) on the validation split 5.489 is 0.101 ± 0.01 nats per point "
                             "below the pPCA optimum's 5.589 (> 0.0559 + 2 standard errors): the parameters "
                             "are still short of the pPCA solution; raise --epochs or --patience"]
    loose = judge_convergence([], scale_mode="learned", held_out=(5.10, 5.18, 5.19, 0.02, 0.001))
    assert loose.reasons == ["the closed-form ELBO on the validation split 5.1 is 0.08 ± 0.001 nats per point "
                             "below the exact log p(x) of the learned parameters 5.18 (> 0.0519 + 2 standard "
                             "errors): q(z|x) is still short of the exact posterior; raise --epochs or --patience"]
    # the validation split is judged instead of the training split's optimum
    assert judge_convergence([], scale_mode="learned", optimum=(5.0, 5.742),
                             held_out=(5.21, 5.218, 5.237)).converged


def test_verdict_without_validation_judges_the_optimum_with_the_components_in_use():
    # learned 0.03 below the 4-component optimum, which is 0.03 below the 8-component one:
    # each gap within max(1 % of 5.74, 0.05) = 0.0574, so converged
    assert judge_convergence([], scale_mode="learned", optimum=(5.682, 5.712, 5.742)).converged
    short = judge_convergence([], scale_mode="learned", optimum=(5.60, 5.712, 5.742))
    assert short.reasons == ["exact log p(x) on the training split 5.6 is 0.112 nats per point below "
                             "the optimum's with the components in use, 5.712 (> 0.0574): the parameters "
                             "are still short of the pPCA solution; raise --epochs or --patience"]
    unused = judge_convergence([], scale_mode="learned", optimum=(5.60, 5.61, 5.742))
    assert unused.reasons == ["the latent dimensions the fit leaves unused are worth 0.132 nats per point "
                              "on the training split (> 0.0574): the pPCA optimum uses them; raise --epochs"]
    # two values: the optimum is the one with every component (as before)
    assert not judge_convergence([], scale_mode="learned", optimum=(5.60, 5.742)).converged
