r"""Likelihood families against their closed forms (DESIGN C1-C5).

One table of :class:`Case` rows (family, scale mode, closed form of
:math:`-\log p(x \mid z)` written with the family's equivalent loss) drives the
log-likelihood tests and the tests of the facts each family states (its line of
recon against the summed loss, the target of its scale), as Pyro's
``tests/distributions/conftest.py`` does.
Computations are in float64 so that 1e-5 compares formulas, not rounding.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyro
import pyro.optim
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from torch.testing import assert_close
from waiting import HANG_GUARD_S

from vaelik.errors import InputError
from vaelik.models import (
    Bernoulli,
    ContinuousBernoulli,
    Laplace,
    Normal,
    bce_loss,
    get_likelihood,
    likelihood_class,
    likelihood_names,
    mae_loss,
    mse_loss,
)
from vaelik.models.distributions import GlobalScaleLaplace, GlobalScaleNormal
from vaelik.models.likelihoods import likelihood_options

B, D = 7, 5
LOG_2PI = math.log(2 * math.pi)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


# ----------------------------------------------------------------------------------------
# Closed forms, per example (shape (B,)). ``s`` is what the likelihood's model_scale
# returned (a fixed, learned, per-dimension or sampled scale), None otherwise.


def cb_log_norm(lam: torch.Tensor) -> torch.Tensor:
    """log C(λ), C(λ) = 2·atanh(1−2λ)/(1−2λ) for λ ≠ 1/2 and C(1/2) = 2."""
    u = 1 - 2 * lam
    safe = torch.where(u == 0, torch.ones_like(u), u)
    c = torch.where(u == 0, torch.full_like(u, 2.0), 2 * torch.atanh(safe) / safe)
    return torch.log(c)


def normal_nll(lik, x, out, s):
    # C1: d/2·log(2πσ²) + SSE/(2σ²) with a global σ; the same per dimension otherwise
    sse = lik.loss(x, out).sum(-1)
    return D / 2 * torch.log(2 * math.pi * s**2) + sse / (2 * s**2)


def normal_per_dim_nll(lik, x, out, s):
    return (0.5 * torch.log(2 * math.pi * s**2) + lik.loss(x, out) / (2 * s**2)).sum(-1)


def normal_predicted_nll(lik, x, out, s):
    loc, sigma = out[:, :D], lik.min_scale + F.softplus(out[:, D:])
    return (0.5 * torch.log(2 * math.pi * sigma**2) + lik.loss(x, loc) / (2 * sigma**2)).sum(-1)


def normal_optimal_nll(lik, x, out, s):
    sigma2 = mse_loss(x, out).mean()  # the ML σ² of the batch: SSE/(B·d)
    return D / 2 * torch.log(2 * math.pi * sigma2) + lik.loss(x, out).sum(-1) / (2 * sigma2)


def laplace_nll(lik, x, out, s):
    # C4: d·log(2b) + L1/b
    return D * torch.log(2 * s) + lik.loss(x, out).sum(-1) / s


def laplace_per_dim_nll(lik, x, out, s):
    return (torch.log(2 * s) + lik.loss(x, out) / s).sum(-1)


def laplace_predicted_nll(lik, x, out, s):
    loc, b = out[:, :D], lik.min_scale + F.softplus(out[:, D:])
    return (torch.log(2 * b) + lik.loss(x, loc) / b).sum(-1)


def laplace_optimal_nll(lik, x, out, s):
    b = mae_loss(x, out).mean()
    return D * torch.log(2 * b) + lik.loss(x, out).sum(-1) / b


def bernoulli_nll(lik, x, out, s):
    # C5: exactly the summed BCE at p = sigmoid(logits)
    return lik.loss(x, torch.sigmoid(out)).sum(-1)


def cbernoulli_nll(lik, x, out, s):
    lam = torch.sigmoid(out)
    return (lik.loss(x, lam) - cb_log_norm(lam)).sum(-1)


@dataclass
class Case:
    family: str
    scale: float | str | None
    nll: Callable  # closed form of -log p(x|z) per example
    data: str = "real"  # real | grey | binary
    loss: Callable = mse_loss  # the family's equivalent loss

    @property
    def id(self) -> str:
        return f"{self.family}-{self.scale}-{self.data}"


CASES = [
    Case("normal", 0.1, normal_nll),
    Case("normal", 2.5, normal_nll),
    Case("normal", "learned", normal_nll),
    Case("normal", "bayesian", normal_nll),
    Case("normal", "per_dim", normal_per_dim_nll),
    Case("normal", "predicted", normal_predicted_nll),
    Case("normal", "optimal", normal_optimal_nll),
    Case("laplace", 0.1, laplace_nll, loss=mae_loss),
    Case("laplace", 1.7, laplace_nll, loss=mae_loss),
    Case("laplace", "learned", laplace_nll, loss=mae_loss),
    Case("laplace", "bayesian", laplace_nll, loss=mae_loss),
    Case("laplace", "per_dim", laplace_per_dim_nll, loss=mae_loss),
    Case("laplace", "predicted", laplace_predicted_nll, loss=mae_loss),
    Case("laplace", "optimal", laplace_optimal_nll, loss=mae_loss),
    Case("bernoulli", None, bernoulli_nll, data="binary", loss=bce_loss),
    Case("bernoulli", None, bernoulli_nll, data="grey", loss=bce_loss),
    Case("cbernoulli", None, cbernoulli_nll, data="grey", loss=bce_loss),
    Case("cbernoulli", None, cbernoulli_nll, data="binary", loss=bce_loss),
]


def make_inputs(case: Case, lik, seed: int = 0):
    """Random x, decoder output and the scale the model would pass (float64)."""
    gen = torch.Generator().manual_seed(seed)
    kw = {"generator": gen, "dtype": torch.float64}
    if case.data == "real":
        x = torch.randn(B, D, **kw)
    elif case.data == "grey":
        x = torch.rand(B, D, **kw)
    else:
        x = (torch.rand(B, D, **kw) > 0.5).double()
    out = torch.randn(B, D * lik.output_multiplier(), **kw)
    if case.scale in ("learned", "per_dim"):
        # a random value already in the store: model_scale must return it unchanged
        shape = () if case.scale == "learned" else (D,)
        pyro.param("scale", 0.2 + torch.rand(shape, **kw),
                   constraint=torch.distributions.constraints.greater_than(lik.min_scale))
    s = lik.model_scale(D, x)
    return x, out, s


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_log_prob_equals_closed_form(case):
    lik = get_likelihood(case.family, scale=case.scale)
    assert type(lik).loss is not None and lik.loss_name == case.loss.__name__.split("_")[0]
    for seed in range(3):
        pyro.clear_param_store()
        x, out, s = make_inputs(case, lik, seed)
        if case.scale in ("learned", "per_dim"):
            assert_close(s, pyro.param("scale"))  # model_scale hands over the stored value
        obs = lik.observation(out, s, x)
        assert obs.batch_shape == (B,) and obs.event_shape == (D,)
        assert_close(-obs.log_prob(x), case.nll(lik, x, out, s), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_loss_is_the_named_loss(case):
    lik = get_likelihood(case.family, scale=case.scale)
    gen = torch.Generator().manual_seed(1)
    x, p = torch.rand(B, D, generator=gen), torch.rand(B, D, generator=gen) * 0.98 + 0.01
    assert_close(lik.loss(x, p), case.loss(x, p), rtol=0, atol=0)


# ----------------------------------------------------------------------------------------
# The facts each family states (what fitting writes to eval.json and the analysis reads),
# checked against the distribution itself, for every row of the table.


def _global_scale(lik, obs, s):
    """The one scale of a fixed / learned / optimal observation (None for no scale)."""
    if lik.scale_mode == "optimal":
        return float(obs.base_dist.scale.reshape(-1)[0])
    return None if s is None else float(s.detach().reshape(-1)[0])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_stated_line_is_the_log_density(case):
    """recon = intercept + slope · Σ_j loss(x_j, E[x_j|z]) where a family states a line."""
    lik = get_likelihood(case.family, scale=case.scale)
    for seed in range(3):
        pyro.clear_param_store()
        x, out, s = make_inputs(case, lik, seed)
        obs = lik.observation(out, s, x)
        loss_sum = lik.loss(x, obs.mean).sum(-1)
        facts = lik.facts(d=D, scale=_global_scale(lik, obs, s))
        if lik.scale_mode in ("per_dim", "predicted", "bayesian") or not facts.affine:
            assert facts.line_slope is None and facts.line_intercept is None and facts.line_reason
            continue
        assert facts.line_reason == ""
        stated = facts.line_intercept + facts.line_slope * loss_sum
        assert_close(obs.log_prob(x), stated, rtol=1e-10, atol=1e-10)


def test_continuous_bernoulli_states_no_line_because_it_has_none():
    lik = ContinuousBernoulli()
    gen = torch.Generator().manual_seed(8)
    x = torch.rand(50, D, generator=gen, dtype=torch.float64)
    obs = lik.observation(torch.randn(50, D, generator=gen, dtype=torch.float64), None, x)
    assert lik.facts(d=D).affine is False and "log C" in lik.facts(d=D).line_reason
    # the gap between log p and -BCE (the log-normaliser) is not one constant
    gap = obs.log_prob(x) + lik.loss(x, obs.base_dist.probs).sum(-1)
    assert float(gap.std()) > 0.1


@pytest.mark.parametrize("family", sorted({case.family for case in CASES}))
def test_stated_ratio_target_is_the_ml_scale(family):
    """The scale the facts say is reached (loss^(1/p), ratio s^p/loss = 1) is the ML scale."""
    cls = likelihood_class(family)
    if cls.scale_power is None:  # states no target: no ratio, no label
        facts = get_likelihood(family).facts(d=D, scale=1.0, loss=1.0)
        assert facts.scale_ratio is None and facts.ratio_label is None and facts.target_label is None
        return
    lik = get_likelihood(family, scale="learned")
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(300, D, generator=gen, dtype=torch.float64)
    x_hat = torch.randn(300, D, generator=gen, dtype=torch.float64)
    loss = float(lik.loss(x, x_hat).mean())
    facts = lik.facts(d=D, scale=1.0, loss=loss)
    stated = facts.target(loss)
    assert_close(torch.tensor(stated, dtype=torch.float64), lik.optimal_scale(x, x_hat).reshape(()),
                 rtol=1e-12, atol=0)
    assert facts.ratio(stated, loss) == pytest.approx(1.0, rel=1e-12)
    assert lik.facts(d=D, scale=stated, loss=loss).scale_ratio == pytest.approx(1.0, rel=1e-12)
    target = torch.tensor(stated, dtype=torch.float64, requires_grad=True)
    # a stationary point of the log-likelihood in the scale, and a maximum
    logp = lik.base(x_hat, target).to_event(1).log_prob(x).sum()
    (grad,) = torch.autograd.grad(logp, target)
    logp = logp.detach()
    assert abs(float(grad)) < 1e-8 * abs(float(logp))
    for factor in (0.98, 1.02):
        assert lik.base(x_hat, target.detach() * factor).to_event(1).log_prob(x).sum() < logp


def test_facts_labels_and_symbols():
    normal = get_likelihood("normal", scale=0.5).facts(d=3, scale=0.5, loss=0.25)
    assert (normal.scale_symbol, normal.target_label, normal.ratio_label) == ("σ", "√MSE", "σ²/MSE")
    assert normal.loss_sum_column == "sse" and normal.loss_sum_label.startswith("SSE")
    assert normal.scale_ratio == pytest.approx(1.0)
    laplace = get_likelihood("laplace").facts()
    assert (laplace.scale_symbol, laplace.target_label, laplace.ratio_label) == ("b", "MAE", "b/MAE")
    assert laplace.loss_sum_label.startswith("SAE")
    for family in ("bernoulli", "cbernoulli"):
        facts = get_likelihood(family).facts(d=3)
        assert facts.scale_symbol is None and facts.ratio_label is None and facts.loss_sum_column == "bce_sum"
    # JSON round trip, as eval.json stores it
    import json

    from vaelik.rundir.family import FamilyFacts

    assert FamilyFacts.from_dict(json.loads(json.dumps(normal.to_dict()))) == normal


def test_analysis_fixtures_state_the_classes_facts():
    """The torch-free fixtures of tests/analysis write what the classes state."""
    sys.path.insert(0, str(Path(__file__).parent / "analysis"))
    try:
        from analysis_fixtures import FAMILY_FACTS
    finally:
        sys.path.pop(0)
    run_keys = ("line_slope", "line_intercept", "scale_ratio", "line_reason")
    for key, stated in FAMILY_FACTS.items():
        facts = get_likelihood(stated.name).facts(d=4, scale=0.3)
        mine, theirs = facts.to_dict(), stated.to_dict()
        assert {k: v for k, v in mine.items() if k not in run_keys} == \
            {k: v for k, v in theirs.items() if k not in run_keys}, key
        if not facts.affine:
            assert mine["line_reason"] == theirs["line_reason"]


# ----------------------------------------------------------------------------------------
# Finding a family: registered name, module:Class, entry point; its options.


def test_unknown_option_lists_the_accepted_ones():
    with pytest.raises(InputError, match=r"likelihood 'normal' has no option 'df'; it accepts: "
                                         r"init_scale, min_scale, prior_log_sd, prior_median, scale"):
        get_likelihood("normal", df=4)
    with pytest.raises(InputError, match="has no option 'init_scale'; it accepts: no options"):
        get_likelihood("bernoulli", init_scale=0.3)
    assert likelihood_options(Bernoulli) == []


@pytest.mark.parametrize("name, message", [
    ("no_such_module_xyz:StudentT", "cannot import module 'no_such_module_xyz'"),
    ("examples.student_t:Nope", "has no 'Nope'; its likelihood classes: StudentT"),
    ("examples/none.py:StudentT", "no file 'examples/none.py'"),
    ("vaelik.models:get_likelihood", "not a subclass of vaelik.models.Likelihood"),
    ("examples.student_t:", "write a class as module:Class"),
])
def test_bad_module_class_name_is_one_line(name, message, monkeypatch):
    monkeypatch.chdir(EXAMPLES.parent)
    with pytest.raises(InputError, match=re.escape(message)) as info:
        likelihood_class(name)
    assert str(info.value).startswith(f"unknown likelihood {name!r}") and "\n" not in str(info.value)


def test_module_class_name_from_the_working_directory_and_a_file(monkeypatch):
    monkeypatch.chdir(EXAMPLES.parent)
    dotted = get_likelihood("examples.student_t:StudentT", scale="learned", df=4)
    by_file = get_likelihood(str(EXAMPLES / "student_t.py") + ":StudentT", df=5)
    assert type(dotted).__name__ == type(by_file).__name__ == "StudentT"
    assert dotted.df == 4.0 and by_file.df == 5.0
    assert dotted.facts().options == {"df": 4.0}
    with pytest.raises(InputError, match="has no option 'nu'; it accepts: df, init_scale"):
        get_likelihood("examples.student_t:StudentT", nu=4)


def _entry_point_dist(root: Path) -> None:
    """An installed distribution (a .dist-info on sys.path) with a vaelik.likelihoods entry point."""
    (root / "vaelik_ep_family.py").write_text((EXAMPLES / "student_t.py").read_text())
    info = root / "vaelik_ep_family-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vaelik-ep-family\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[vaelik.likelihoods]\nep-student-t = vaelik_ep_family:StudentT\n")


def test_entry_point_family_is_found(tmp_path, monkeypatch):
    _entry_point_dist(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "ep-student-t" in likelihood_names()
    lik = get_likelihood("ep-student-t", df=6)
    assert type(lik).__name__ == "StudentT" and lik.df == 6.0


def test_spawned_process_finds_user_families_without_importing_them(tmp_path):
    """What a sweep worker or Ray task does: resolve the stored name in a fresh interpreter."""
    import os
    import subprocess

    _entry_point_dist(tmp_path)
    code = ("from vaelik.models import get_likelihood as g;"
            "print(g('examples.student_t:StudentT', df=4).df, g('ep-student-t', df=7).df)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLES.parent), str(tmp_path)])}
    done = subprocess.run([sys.executable, "-c", code], cwd=EXAMPLES.parent, env=env,
                          capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4.0", "7.0"]


def test_losses_written_out():
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(4, 3, generator=gen, dtype=torch.float64)
    p = torch.rand(4, 3, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    assert_close(mse_loss(x, p), (x - p) ** 2)
    assert_close(mae_loss(x, p), (x - p).abs())
    assert_close(bce_loss(x, p), F.binary_cross_entropy(p, x, reduction="none"))
    # outside [0, 1] (e.g. ppca data) BCE is still a number, not an error
    y = torch.tensor([[-1.0, 2.0]], dtype=torch.float64)
    q = torch.tensor([[0.25, 0.5]], dtype=torch.float64)
    assert_close(bce_loss(y, q), -(y * q.log() + (1 - y) * (1 - q).log()))


def test_normal_fixed_nll_is_affine_in_sse_with_slope_one_over_two_sigma2():
    sigma = 0.3
    lik = Normal(scale=sigma)
    x = torch.randn(50, D, dtype=torch.float64)
    out = x + torch.randn(50, D, dtype=torch.float64) * torch.linspace(0.01, 2, 50)[:, None]
    nll = -lik.observation(out, lik.model_scale(D, x), x).log_prob(x)
    sse = mse_loss(x, out).sum(-1)
    slope, intercept = np.polyfit(sse.numpy(), nll.numpy(), 1)
    assert slope == pytest.approx(1 / (2 * sigma**2), rel=1e-8)
    assert intercept == pytest.approx(D / 2 * math.log(2 * math.pi * sigma**2), rel=1e-8)


def test_bernoulli_is_normalised_only_on_binary_data():
    lik = Bernoulli()
    assert lik.is_normalised_on(torch.tensor([[0.0, 1.0, 1.0]]))[0] is True
    ok, reason = lik.is_normalised_on(torch.tensor([[0.0, 0.5, 1.0]]))
    assert ok is False and "C5" in reason
    # the grey-level "mass" over {0, 1/2, 1} does not sum to 1 (it exceeds it)
    p = torch.tensor([[0.3]])
    total = sum(lik.observation(torch.logit(p), None, torch.tensor([[v]])).log_prob(
        torch.tensor([[v]])).exp() for v in (0.0, 0.5, 1.0))
    assert float(total) > 1.01
    for family in ("normal", "laplace", "cbernoulli"):
        assert get_likelihood(family).is_normalised_on(torch.rand(3, 2))[0] is True


# ----------------------------------------------------------------------------------------
# Continuous Bernoulli: a normalised density on [0, 1] whose mean is not λ.

CB_LAMBDAS = [0.01, 0.2, 0.4, 0.4991, 0.4999, 0.5, 0.5 + 1e-6, 0.5004, 0.5009, 0.75, 0.99]


@pytest.mark.parametrize("lam", CB_LAMBDAS)
def test_continuous_bernoulli_integrates_to_one(lam):
    grid = torch.linspace(0, 1, 200_001, dtype=torch.float64)[:, None]
    logits = torch.logit(torch.tensor(lam, dtype=torch.float64)).expand(grid.shape)
    density = ContinuousBernoulli().observation(logits, None, grid).log_prob(grid).exp()
    assert_close(torch.trapezoid(density, grid[:, 0]), torch.tensor(1.0, dtype=torch.float64),
                 rtol=0, atol=1e-8)
    # and the reported point estimate (.mean) is the density's first moment, not λ
    mean = torch.trapezoid(density * grid[:, 0], grid[:, 0])
    obs_mean = ContinuousBernoulli().observation(logits[:1], None, grid[:1]).mean
    assert_close(obs_mean[0, 0], mean, rtol=0, atol=1e-8)
    if abs(lam - 0.5) > 0.1:
        assert abs(float(mean) - lam) > 0.01


def test_continuous_bernoulli_log_normaliser_closed_form_near_half():
    # torch switches to a Taylor expansion within 1e-3 of 1/2: compare with atanh directly
    lam = torch.tensor([0.4990, 0.4995, 0.49999, 0.5, 0.50001, 0.5005, 0.5010], dtype=torch.float64)
    x = torch.full_like(lam, 0.3)[:, None]
    logp = ContinuousBernoulli().observation(torch.logit(lam)[:, None], None, x).log_prob(x)
    expected = -bce_loss(x, lam[:, None]).sum(-1) + cb_log_norm(lam)
    assert_close(logp, expected, rtol=0, atol=1e-10)
    assert_close(cb_log_norm(torch.tensor([0.5], dtype=torch.float64)),
                 torch.tensor([math.log(2)], dtype=torch.float64))


# ----------------------------------------------------------------------------------------
# C2/C3/C4: the maximum-likelihood scale for a fixed decoder mean.


def fit_scale_by_svi(lik, x, x_hat, steps=250):
    """Optimise only the likelihood's pyro.param "scale" by SVI on the model log-lik."""

    def model():
        s = lik.model_scale(x.shape[-1], x)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", lik.observation(x_hat, s, x), obs=x)

    def guide():
        pass

    # lr decays from 0.1 to ~6e-4: fast start, then settles to well below 1e-3 relative
    optim = pyro.optim.ClippedAdam({"lr": 0.1, "lrd": 0.98})
    svi = pyro.infer.SVI(model, guide, optim, pyro.infer.Trace_ELBO())
    for _ in range(steps):
        svi.step()
    return pyro.param("scale").detach()


@pytest.fixture
def fixed_mean():
    """x and a fixed decoder mean x̂ with per-dimension error levels 0.05 ... 0.8."""
    gen = torch.Generator().manual_seed(3)
    n, d = 400, 6
    x_hat = torch.rand(n, d, generator=gen)
    levels = torch.linspace(0.05, 0.8, d)
    return x_hat + levels * torch.randn(n, d, generator=gen), x_hat


def test_learned_sigma_converges_to_rmse(fixed_mean):
    x, x_hat = fixed_mean
    sigma = fit_scale_by_svi(Normal(scale="learned"), x, x_hat)
    assert_close(sigma, mse_loss(x, x_hat).mean().sqrt(), rtol=1e-3, atol=0)


def test_per_dim_sigma_converges_to_per_dim_rmse(fixed_mean):
    x, x_hat = fixed_mean
    sigma = fit_scale_by_svi(Normal(scale="per_dim"), x, x_hat)
    assert sigma.shape == (x.shape[1],)
    assert_close(sigma, mse_loss(x, x_hat).mean(0).sqrt(), rtol=1e-3, atol=0)


def test_learned_laplace_b_converges_to_mae(fixed_mean):
    x, x_hat = fixed_mean
    b = fit_scale_by_svi(Laplace(scale="learned"), x, x_hat)
    assert_close(b, mae_loss(x, x_hat).mean(), rtol=1e-3, atol=0)


@pytest.mark.parametrize(
    "family, statistic",
    [("normal", lambda x, m: mse_loss(x, m).mean().sqrt()), ("laplace", lambda x, m: mae_loss(x, m).mean())],
    ids=["normal-sqrt-mse", "laplace-mae"],
)
def test_optimal_scale_is_the_ml_value(fixed_mean, family, statistic):
    x, x_hat = fixed_mean
    lik = get_likelihood(family, scale="optimal")
    obs = lik.observation(x_hat, lik.model_scale(x.shape[1], x), x)
    scale = obs.base_dist.scale
    assert_close(scale, statistic(x, x_hat).expand_as(scale), rtol=0, atol=0)
    # it is a maximum: moving it either way lowers the log-likelihood
    best = obs.log_prob(x).sum()
    for factor in (0.99, 1.01):
        other = lik.base(x_hat, scale * factor).to_event(1).log_prob(x).sum()
        assert other < best
    # no gradient flows into the decoder mean through the optimal scale
    x_hat = x_hat.clone().requires_grad_()
    assert not lik.observation(x_hat, None, x).base_dist.scale.requires_grad


def test_optimal_scale_clipped_at_min_scale():
    lik = Normal(scale="optimal", min_scale=0.05)
    x = torch.rand(4, 3)
    scale = lik.observation(x + 1e-4, None, x).base_dist.scale
    assert_close(scale, torch.full_like(scale, 0.05))


# ----------------------------------------------------------------------------------------
# A user-defined family: examples/student_t.py, imported from its file.


@pytest.fixture(scope="module")
def student_t_module():
    path = EXAMPLES / "student_t.py"
    spec = importlib.util.spec_from_file_location("vaelik_example_student_t", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_student_t_registers_and_matches_scipy(student_t_module):
    assert "student-t" in likelihood_names()
    lik = get_likelihood("student-t", scale="learned", df=3.0)
    assert isinstance(lik, student_t_module.StudentT) and lik.scale_mode == "learned"
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(B, D, generator=gen, dtype=torch.float64) * 2
    out = torch.randn(B, D, generator=gen, dtype=torch.float64)
    pyro.param("scale", torch.tensor(0.7, dtype=torch.float64))
    s = lik.model_scale(D, x)
    expected = scipy.stats.t.logpdf(x.numpy(), 3.0, loc=out.numpy(), scale=0.7).sum(-1)
    assert_close(lik.observation(out, s, x).log_prob(x), torch.from_numpy(expected),
                 rtol=1e-10, atol=1e-10)


def test_student_t_fits_digits_end_to_end(student_t_module):
    from vaelik.inference import TrainConfig, fit

    result = fit(
        TrainConfig(data="digits", likelihood="student-t", scale="learned", init_scale=0.3,
                    epochs=2, hidden_dim=32, elbo="jit-meanfield", iwae_samples=4),
        progress=False,
    )
    assert isinstance(result.model.likelihood, student_t_module.StudentT)
    train = result.metrics[result.metrics.split == "train"]
    assert np.isfinite(result.metrics[["elbo", "recon", "kl", "mse", "scale"]].to_numpy()).all()
    assert train.elbo.iloc[1] > train.elbo.iloc[0]  # it learned something
    assert result.evaluation["likelihood"] == "student-t"
    assert result.evaluation["scale"] == pytest.approx(train.scale.iloc[-1])
    # the fitted model's log-likelihood is the Student-t density, on random inputs
    gen = torch.Generator().manual_seed(5)
    x, z = torch.rand(6, 64, generator=gen), torch.randn(6, 8, generator=gen)
    with result.model.params(), torch.no_grad():
        lik = result.model.likelihood
        s = lik.model_scale(64, x)
        out = result.model.decoder(z)
        logp = lik.observation(out, s, x).log_prob(x)
    assert lik.df == 3.0  # the default
    expected = scipy.stats.t.logpdf(x.double().numpy(), lik.df, loc=out.double().numpy(),
                                    scale=float(s)).sum(-1)
    assert_close(logp.double(), torch.from_numpy(expected), rtol=1e-5, atol=1e-4)


def test_student_t_run_directory_reaches_the_analysis(student_t_module, tmp_path):
    """A user family trained from the CLI with its ``df`` reaches every table and figure.

    Nothing inside vaelik names the Student-t: the family is found by its
    ``file.py:Class`` name and ``--lik-opt df=4`` reaches its constructor; the
    labels of the scale table, the identity table and the families figure come
    from the facts it states.
    """
    import json

    from vaelik.analysis import identity_table, load_runs, pointwise_frame, sigma_table
    from vaelik.analysis.report import write_report
    from vaelik.cli import main

    name = f"{EXAMPLES / 'student_t.py'}:StudentT"
    out = tmp_path / "student-t-df4"
    code = main(["train", "--data", "digits", "--likelihood", name, "--lik-opt", "df=4",
                 "--scale", "learned", "--init-scale", "0.3", "--epochs", "2", "--hidden-dim", "32",
                 "--iwae-samples", "4", "--quiet", "--out", str(out)])
    assert code == 0
    assert json.loads((out / "config.json").read_text())["likelihood_options"] == {"df": 4}
    evaluation = json.loads((out / "eval.json").read_text())
    family = evaluation["family"]
    assert family["name"] == "student-t" and family["options"] == {"df": 4.0}
    assert family["scale_symbol"] == "σ" and family["loss_sum_column"] == "sse"
    assert family["affine"] is False and family["line_slope"] is None

    runs = load_runs(tmp_path).runs
    scales = sigma_table(runs)
    assert list(scales["run"]) == ["student-t-df4"]
    row = scales.iloc[0]
    assert row["symbol"] == "σ" and row["sigma"] == pytest.approx(evaluation["scale"])
    assert math.isnan(row["ratio"])  # the family states no target for its scale
    ident = identity_table(runs).iloc[0]
    assert ident["loss_sum_label"].startswith("SSE") and "BCE" not in ident["loss_sum_label"]
    assert math.isnan(ident["slope_theory"]) and "not a line in the SSE" in ident["reason"]
    assert set(pointwise_frame(runs)["loss_sum_label"]) == {ident["loss_sum_label"]}

    # the report lists it in its table of scales and draws it in the families figure. The report
    # judges converged runs only and two epochs do not converge (eval.json says so); this test is
    # about labels, so the verdict is set as a converged run would have it
    assert evaluation["converged"] is False
    (out / "eval.json").write_text(json.dumps({**evaluation, "converged": True,
                                               "convergence_reasons": []}))
    report = write_report(tmp_path, tmp_path / "report.html", tmp_path / "report.md")
    lines = [line for line in report.markdown.read_text().splitlines() if "student-t-df4" in line]
    assert any("| σ |" in line for line in lines)
    assert any(line.startswith("| student-t | student-t-df4 |") and "SSE Σ(x−x̂)²" in line
               for line in lines)
    assert (tmp_path / "report-families-identity.png").stat().st_size > 0


def test_student_t_fits_with_default_init_scale(student_t_module):
    from vaelik.inference import TrainConfig, build

    build(TrainConfig(data="digits", likelihood="student-t", scale="learned", epochs=1))


def test_extending_doc_shows_the_tested_class(student_t_module):
    """docs/extending.md's first code block contains examples/student_t.py's class verbatim."""
    doc = (EXAMPLES.parent / "docs" / "extending.md").read_text()
    first = re.findall(r"```python\n(.*?)```", doc, flags=re.S)[0]
    assert inspect.getsource(student_t_module.StudentT) in first
    # and its imports are the file's (exec-ing it would re-register "student-t")
    source = Path(student_t_module.__file__).read_text()
    for line in first.splitlines():
        if line.startswith(("import ", "from ")):
            assert line in source.splitlines()


# ----------------------------------------------------------------------------------------
# Normal / Laplace with a global scale: the scale stays unbroadcast (docs/performance.md).


@pytest.mark.parametrize(
    "ours, theirs",
    [(GlobalScaleNormal, torch.distributions.Normal), (GlobalScaleLaplace, torch.distributions.Laplace)],
    ids=["normal", "laplace"],
)
@pytest.mark.parametrize("scale_shape", [(), (1, 1), (3, 1, 1)], ids=["0d", "1x1", "per-draw"])
def test_global_scale_distribution_matches_torch(ours, theirs, scale_shape):
    gen = torch.Generator().manual_seed(7)
    loc = torch.randn(3, B, D, generator=gen, requires_grad=True)
    x = torch.randn(B, D, generator=gen)
    raw = (0.2 + torch.rand(scale_shape, generator=gen)).requires_grad_()
    new, ref = ours(loc, raw, validate_args=True), theirs(loc, raw, validate_args=True)
    assert new.batch_shape == ref.batch_shape == (3, B, D)
    assert new.scale.shape == scale_shape  # not broadcast
    assert new.support is ref.support and new.arg_constraints == ref.arg_constraints
    # the per-element formula is torch's: equal values; gradients equal to round-off
    lp, lp_ref = new.log_prob(x), ref.log_prob(x)
    assert_close(lp, lp_ref, rtol=0, atol=0)
    g = torch.autograd.grad(lp.sum(), (loc, raw))
    g_ref = torch.autograd.grad(lp_ref.sum(), (loc, raw))
    assert_close(g[0], g_ref[0], rtol=0, atol=0)
    assert_close(g[1], g_ref[1])
    for stat in ("mean", "mode", "variance", "stddev"):
        assert_close(getattr(new, stat), getattr(ref, stat), rtol=0, atol=0)
    assert_close(new.entropy(), ref.entropy(), rtol=0, atol=0)
    # to_event, expand, sampling
    ind = new.to_event(1)
    assert ind.batch_shape == (3, B) and ind.event_shape == (D,)
    assert_close(ind.log_prob(x), torch.distributions.Independent(ref, 1).log_prob(x))
    big = new.expand((2, 3, B, D))
    assert big.batch_shape == (2, 3, B, D) and big.scale.shape == scale_shape
    assert_close(big.log_prob(x), lp.expand(2, 3, B, D), rtol=0, atol=0)
    assert new.sample().shape == (3, B, D) and big.sample((4,)).shape == (4, 2, 3, B, D)
    r = new.rsample((2,))
    assert r.shape == (2, 3, B, D) and r.requires_grad
    torch.manual_seed(0)
    a = new.sample((5,))
    torch.manual_seed(0)
    assert_close(a, ref.sample((5,)), rtol=0, atol=0)


@pytest.mark.parametrize("cls", [GlobalScaleNormal, GlobalScaleLaplace], ids=["normal", "laplace"])
def test_global_scale_distribution_validates(cls):
    loc = torch.zeros(B, D)
    with pytest.raises(ValueError, match="scale"):
        cls(loc, torch.tensor(-1.0), validate_args=True)
    with pytest.raises(ValueError, match="scale"):
        cls(loc, torch.tensor(0.0), validate_args=True)
    obs = cls(loc, torch.tensor(0.5), validate_args=True)
    with pytest.raises(ValueError):
        obs.log_prob(torch.full((B, D), float("nan")))  # outside the support
    with pytest.raises(ValueError):
        obs.log_prob(torch.zeros(B + 1, D))  # not broadcastable
    cls(loc, torch.tensor(-1.0), validate_args=False)  # as torch: only when validating


@pytest.mark.parametrize("family", ["normal", "laplace"])
@pytest.mark.parametrize("scale", [0.3, "learned", "optimal", "bayesian", "per_dim", "predicted"])
def test_only_global_scales_take_the_unbroadcast_distribution(family, scale):
    pyro.clear_param_store()
    lik = get_likelihood(family, scale=scale)
    x = torch.rand(B, D)
    out = torch.randn(B, D * lik.output_multiplier())
    with pyro.poutine.trace():
        s = lik.model_scale(D, x)
    obs = lik.observation(out, s, x)
    is_global = scale not in ("per_dim", "predicted")
    assert isinstance(obs.base_dist, (GlobalScaleNormal, GlobalScaleLaplace)) == is_global
    assert obs.batch_shape == (B,) and obs.event_shape == (D,)
    assert_close(obs.mean, out[:, :D], rtol=0, atol=0)
    ref = {"normal": torch.distributions.Normal, "laplace": torch.distributions.Laplace}[family]
    base = obs.base_dist
    expected = torch.distributions.Independent(ref(base.loc, base.scale), 1).log_prob(x)
    assert_close(obs.log_prob(x), expected)


def test_bernoulli_observed_loss_is_minus_log_prob_even_for_saturated_logits():
    """The summed BCE that C5 compares with recon: exact where the probabilities saturate."""
    import pyro.distributions as pdist

    from vaelik.models import Bernoulli

    logits = torch.tensor([[-40.0, -20.0, -3.0, 0.0, 5.0, 25.0]])
    x = torch.tensor([[0.5, 1.0, 0.25, 0.0, 1.0, 0.9375]])  # grey levels too
    obs = pdist.Bernoulli(logits=logits, validate_args=False).to_event(1)
    got = Bernoulli().observed_loss(obs, x)
    # -[x log σ(l) + (1-x) log σ(-l)] in float64
    l64, x64 = logits.double(), x.double()
    expected = -(x64 * torch.nn.functional.logsigmoid(l64) + (1 - x64) * torch.nn.functional.logsigmoid(-l64))
    torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=1e-6)
    assert float((got.double() - expected).abs().max()) < 1e-5
    # the probability-based loss clamps: off by nats at the saturated pixels
    clamped = Bernoulli().loss(x, obs.mean)
    assert float((clamped.double() - expected).abs().max()) > 1.0
